"""Every input submitted gets exactly one outcome: the run loop's account of its batches.

The executors (a plain loop, Dask) hand back (batch, outcomes) pairs. `Accounts` stands
between them and the records, fail closed: an input of a batch without an outcome (the batch
returned too few, or a batch never came back while the executor ended normally) is quarantined
as ``outcome-missing``, never dropped; an outcome for an input the batch did not hold, or a
second outcome for one input, stops the run (`AccountingError`) before it is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pipeline.runner.discover import SourceFile
from pipeline.runner.manifest import Location
from pipeline.runner.outcome import Outcome

OUTCOME_MISSING = "outcome-missing"

Batch = tuple[tuple[SourceFile, Location], ...]
Quarantine = Callable[[SourceFile, str], Outcome]  # (input, reason) -> a quarantined outcome, original kept


class AccountingError(RuntimeError):
    """A batch's outcomes name an input it was not given, or one input twice."""


class Accounts:
    """The batches submitted and not yet settled, by the run index of their inputs."""

    def __init__(self, quarantine: Quarantine) -> None:
        self._quarantine = quarantine
        self._outstanding: dict[int, Batch] = {}  # first input's index -> batch

    def track(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        """Pass `batches` through to the executor, noting each as outstanding."""
        for batch in batches:
            if batch:
                self._outstanding[batch[0][0].index] = batch
            yield batch

    def settle(self, batch: Batch, outcomes: tuple[Outcome, ...]) -> tuple[Outcome, ...]:
        """The batch's outcomes in its order, one per input: missing ones quarantined."""
        if batch:
            self._outstanding.pop(batch[0][0].index, None)
        wanted = {src.index for src, _ in batch}
        by_index: dict[int, Outcome] = {}
        for outcome in outcomes:
            if outcome.index not in wanted or outcome.index in by_index:
                raise AccountingError("a batch returned an outcome for an input it was not given, or two for one")
            by_index[outcome.index] = outcome
        return tuple(by_index.get(src.index) or self._quarantine(src, OUTCOME_MISSING) for src, _ in batch)

    def unsettled(self) -> Iterator[tuple[Batch, tuple[Outcome, ...]]]:
        """Batches submitted that never came back, each with every input quarantined; call
        only when the executor has ended normally (a lost scheduler leaves them to do)."""
        while self._outstanding:
            _, batch = self._outstanding.popitem()
            yield batch, tuple(self._quarantine(src, OUTCOME_MISSING) for src, _ in batch)


__all__ = ["OUTCOME_MISSING", "AccountingError", "Accounts", "Batch"]
