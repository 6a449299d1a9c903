"""The executors of a run: batches of inputs -> (batch, outcomes), in this process or on Dask.

Inputs are cut into batches (`chunked`: smaller ones at the end, so that no worker idles while
another finishes). Dask at the edge: at most a few batches per worker thread in flight
(`cluster.submit_bounded`), a batch whose task failed redone one file a task, a lost scheduler a
`SchedulerLostError` that stops the run with the inputs in flight left to do.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pipeline.profile.plan import Plan
from pipeline.runner.accounting import Batch
from pipeline.runner.cluster import BATCHES_PER_WORKER, SchedulerLostError, connect, submit_bounded
from pipeline.runner.outcome import Outcome
from pipeline.runner.process import WorkerConfig, process_batch, unread_outcome
from pipeline.runner.task import pack, process_packed, tune_allocator, tune_switch_interval
from pipeline.scrub.keys import Keys

Done = tuple[Batch, tuple[Outcome, ...]]
T = TypeVar("T")


Execute = Callable[[Iterator[Batch]], Iterator[Done]]


@contextlib.contextmanager
def start_executor(
    workers: int | None, scheduler: str | None, memory_limit: str, plan: Plan, keys: Keys, worker_cfg: WorkerConfig,
    announce: Callable[[str], None], dashboard: bool = False,
) -> Iterator[tuple[Execute, str, int]]:
    """Yield (execute, executor name, worker threads): a plain loop in this process with
    ``workers=0`` and no scheduler, else a local cluster (with its dashboard when `dashboard`)
    or the scheduler at `scheduler`."""
    if scheduler is None and workers == 0:
        yield (lambda batches: _run_serial(batches, plan, keys, worker_cfg)), "serial", 0
        return
    with connect(workers, scheduler, memory_limit, announce, dashboard) as (client, executor):
        threads = max(1, sum(client.nthreads().values()))
        yield (lambda batches: _run_dask(client, batches, plan, keys, worker_cfg, threads)), executor, threads


def _run_serial(batches: Iterator[Batch], plan: Plan, keys: Keys, worker_cfg: WorkerConfig) -> Iterator[Done]:
    tune_allocator()  # as a Dask worker does before its first batch (`pipeline.runner.task`)
    tune_switch_interval()
    for batch in batches:
        yield batch, process_batch([src for src, _ in batch], plan, keys, worker_cfg)


def _run_dask(
    client: Any, batches: Iterator[Batch], plan: Plan, keys: Keys, worker_cfg: WorkerConfig, threads: int
) -> Iterator[Done]:
    """At most BATCHES_PER_WORKER batches per worker thread in flight; a new one is
    submitted as each completes. A batch whose task failed (it raised, or its worker died more
    often than Dask retries) is redone file by file (`_one_by_one`), and a batch this loop failed
    to yield is quarantined by the run's accounting; a lost scheduler stops the run
    (`SchedulerLostError`) with the inputs in flight left to do. The plan, keys and worker
    configuration travel as bytes pickled once (`pipeline.runner.task`)."""
    from distributed.comm.core import CommClosedError

    context = pack(plan, keys, worker_cfg)

    def arguments(batch: Batch) -> tuple[Any, ...]:
        return tuple(src for src, _ in batch), context

    for batch, future in submit_bounded(client, process_packed, batches, arguments, threads):
        try:
            outcomes: tuple[Outcome, ...] = future.result()
        except (Exception, asyncio.CancelledError) as exc:
            _raise_if_scheduler_lost(client, exc, CommClosedError)
            reason = f"unexpected-{type(exc).__name__}"
            outcomes = tuple(_one_by_one(client, batch, context, keys, worker_cfg, reason))
        yield batch, outcomes


def _raise_if_scheduler_lost(client: Any, exc: BaseException, closed: type[Exception]) -> None:
    """A cancelled future, a closed connection or a client that is not running: the scheduler
    went away, which is not the batch's fault; its inputs stay to do (the run stops)."""
    if isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError | closed | ConnectionError) or str(
            getattr(client, "status", "running")) != "running":
        raise SchedulerLostError("the Dask scheduler was lost mid-run: rerun to resume") from None


def _one_by_one(client: Any, batch: Batch, context: bytes, keys: Keys, worker_cfg: WorkerConfig,
                reason: str) -> Iterator[Outcome]:
    """A batch whose task failed is redone one file a task: a file the failed task had already
    published is published again (promote accepts the identical file there), so the manifest
    and the release agree; a file whose own task fails is quarantined with the batch's reason."""
    from distributed.comm.core import CommClosedError

    for src, _ in batch:
        try:
            [outcome] = client.submit(process_packed, (src,), context, pure=False).result()
        except (Exception, asyncio.CancelledError) as exc:
            _raise_if_scheduler_lost(client, exc, CommClosedError)
            outcome = unread_outcome(src, keys, reason, worker_cfg)
        yield outcome


def chunked(items: Iterator[T], size: int, workers: int = 0) -> Iterator[tuple[T, ...]]:
    """Batches of `size` items, looking a few batches ahead; once the end is in sight, what is
    left is shared out in smaller batches (about a share per worker thread and batch in flight,
    at least a tenth of `size`), so that no worker idles while another finishes a whole batch.
    With one worker thread or none (the serial loop), plain batches of `size`."""
    if workers < 2:
        while batch := tuple(itertools.islice(items, size)):
            yield batch
        return
    ahead: collections.deque[T] = collections.deque()
    window = size * (BATCHES_PER_WORKER * workers + 1)
    for item in items:
        ahead.append(item)
        if len(ahead) >= window + size:
            yield tuple(ahead.popleft() for _ in range(size))
    smallest = max(1, size // 10)
    while ahead:
        share = -(-len(ahead) // (BATCHES_PER_WORKER * workers))
        yield tuple(ahead.popleft() for _ in range(min(len(ahead), size, max(smallest, share))))
