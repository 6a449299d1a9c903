"""The quarantine ledger: ``ledger.jsonl`` in the (owner-only) quarantine folder, one line per
quarantined input, with its source id, run index, reason code and where the operator finds it:
its path relative to its input root (``input``) and that root's number on the command line
(``root``, from 1). Never a value. The source path goes nowhere else: not to the manifest,
the release, its report, run.json or the logs; `quarantined_inputs` reads it back for the
terminal only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.files import make_private_dir
from pipeline.runner.outcome import Disposition, Outcome


def relative_input(path: Path, roots: tuple[Path, ...]) -> tuple[int, str]:
    """(root number from 1, path relative to that root) of an input found under `roots`; a
    root that is a file is named by its own name. (0, "") for a path under no root."""
    best: tuple[int, Path] | None = None
    for number, root in enumerate(roots, start=1):
        if (path == root or path.is_relative_to(root)) and (best is None or len(root.parts) > len(best[1].parts)):
            best = (number, root)
    if best is None:
        return 0, ""
    number, root = best
    return number, (path.name if path == root else path.relative_to(root).as_posix())


class Ledger:
    """``ledger.jsonl`` in the quarantine folder: one line per quarantined input (and per
    quarantined input later published by a retry), with its source id, index, reason code and
    input-relative path; never a value. Use as a context manager."""

    def __init__(self, path: Path, run_id: int) -> None:
        make_private_dir(path.parent)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handle = os.fdopen(descriptor, "a", encoding="utf-8")
        self._run_id = run_id
        self._dirty = False  # lines written since the last flush

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, outcome: Outcome, time: str, where: tuple[int, str] = (0, "")) -> None:
        """One line for `outcome`; `where` is its input's (root number, relative path)."""
        line = {"time": time, "run": self._run_id, "source_id": outcome.source_id, "index": outcome.index,
                "disposition": outcome.disposition.value, "reason": outcome.reason,
                "root": where[0], "input": where[1]}
        self._handle.write(json.dumps(line, sort_keys=True) + "\n")
        self._dirty = True

    def flush(self) -> None:
        """Make the lines added so far durable (nothing to do, no fsync, when none were)."""
        if not self._dirty:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._dirty = False

    def close(self) -> None:
        self.flush()
        self._handle.close()



def quarantined_inputs(ledger: Path, quarantined: dict[str, str]) -> list[tuple[int, str, str]]:
    """(root number, input-relative path, reason) of each input the ledger names whose content
    is still quarantined (`quarantined`: source_id -> reason, from the manifest), by path;
    inputs a later run published are left out."""
    latest: dict[tuple[str, int, str], str] = {}
    if ledger.is_file():
        with ledger.open(encoding="utf-8") as handle:
            for text in handle:
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash
                where = (str(line.get("source_id")), int(line.get("root") or 0), str(line.get("input") or ""))
                latest[where] = str(line.get("disposition"))
    found = {(root, path, quarantined[source]) for (source, root, path), disposition in latest.items()
             if disposition == Disposition.QUARANTINED.value and source in quarantined and path}
    return sorted(found)
