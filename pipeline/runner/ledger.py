"""The quarantine ledger: ``ledger.jsonl`` in the (owner-only) quarantine folder, one line per
quarantined input, with its source id, run index and reason code; never a value or a path."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.files import make_private_dir
from pipeline.runner.outcome import Outcome


class Ledger:
    """``ledger.jsonl`` in the quarantine folder: one line per quarantined input (and per
    quarantined input later published by a retry), with its source id, index and reason
    code; never a value or a path. Use as a context manager."""

    def __init__(self, path: Path, run_id: int) -> None:
        make_private_dir(path.parent)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handle = os.fdopen(descriptor, "a", encoding="utf-8")
        self._run_id = run_id

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, outcome: Outcome, time: str) -> None:
        line = {"time": time, "run": self._run_id, "source_id": outcome.source_id, "index": outcome.index,
                "disposition": outcome.disposition.value, "reason": outcome.reason}
        self._handle.write(json.dumps(line, sort_keys=True) + "\n")

    def flush(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self.flush()
        self._handle.close()

