"""The run record (``<release>.run.json`` beside the release) and the confidential mapping.

The run record says how a release was made: profile, options, recipe digests, package
versions, the key's fingerprint (never the key), counts by disposition, times and exit
status. It names no file and no value.

The mapping files (``uid_mapping.csv`` and ``patient_mapping.csv``, both with MIDI-B's columns
id_old,id_new) are written only into a folder the user names, owner-only, never into
the release. Rows are appended as results arrive; a pair may repeat, never contradict.
"""

from __future__ import annotations

import csv
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TextIO

from pipeline.outcome import Outcome
from pipeline.write import make_private_dir, write_atomically

PACKAGES = (
    "deid-pipeline", "pydicom", "deid", "dask", "distributed", "numpy", "pylibjpeg",
    "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle", "tqdm",
)
UID_MAPPING = "uid_mapping.csv"
PATIENT_MAPPING = "patient_mapping.csv"
_SEEN_LIMIT = 1_000_000  # remembered pairs, to keep repeats rare without unbounded memory


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a release depends on ("absent" when missing)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything run.json holds: settings and counts, never a path or a value."""

    profile: str
    options: tuple[str, ...]
    recipes: tuple[tuple[str, str], ...]
    plan_digest: str
    key_fingerprint: str
    lookup_fingerprint: str
    executor: str  # "serial", "local-cluster" or "scheduler"
    workers: int
    batch_size: int
    started: str
    ended: str
    exit_status: int
    completed: bool
    processed: dict[str, int]  # this run's outcomes by disposition
    unchanged: dict[str, int]  # inputs a previous run had done, by disposition
    manifest: dict[str, int]  # every row of the manifest by status
    packages: dict[str, str] = field(default_factory=package_versions)


def write_run_record(path: Path, record: RunRecord) -> None:
    """Write run.json atomically (a rerun replaces it)."""
    text = json.dumps(asdict(record), indent=2, sort_keys=True) + "\n"
    write_atomically(text.encode("utf-8"), path)


class MappingWriter:
    """Appends (original, new) UID pairs and (PatientID, pseudonym) pairs to owner-only
    CSV files in the mapping folder. Use as a context manager."""

    def __init__(self, folder: Path) -> None:
        make_private_dir(folder)
        # Columns id_old,id_new: the layout the MIDI-B validation script reads for both mappings.
        self._uids = _open_private(folder / UID_MAPPING, ("id_old", "id_new"))
        self._patients = _open_private(folder / PATIENT_MAPPING, ("id_old", "id_new"))
        self._seen: set[tuple[str, str]] = set()

    def __enter__(self) -> MappingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, outcome: Outcome) -> None:
        uid_writer = csv.writer(self._uids)
        for pair in outcome.uid_pairs:
            if self._first_time(pair):
                uid_writer.writerow(pair)
        if outcome.patient_pair is not None and self._first_time(outcome.patient_pair):
            csv.writer(self._patients).writerow(outcome.patient_pair)

    def flush(self) -> None:
        for handle in (self._uids, self._patients):
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        self.flush()
        self._uids.close()
        self._patients.close()

    def _first_time(self, pair: tuple[str, str]) -> bool:
        if pair in self._seen:
            return False
        if len(self._seen) >= _SEEN_LIMIT:
            self._seen.clear()
        self._seen.add(pair)
        return True


def _open_private(path: Path, header: tuple[str, str]) -> TextIO:
    """Open a CSV for appending with mode 0600, writing the header when it is new."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(descriptor, 0o600)
    handle = os.fdopen(descriptor, "a", newline="", encoding="utf-8")
    if handle.tell() == 0:
        csv.writer(handle).writerow(header)
    return handle


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
