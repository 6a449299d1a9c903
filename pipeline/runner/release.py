"""The release tree: names built from the new identifiers, leftovers of a dead run, the lock.

Release names come from the scrubbed dataset's new identifiers (`release_name`), never from
input names or paths. Files reach the release through `pipeline.files.StagingFolder`, staged in
the staging folder beside the release (`staging_folder`), never inside it: as unnamed files where
the file system allows, which a run killed at any moment leaves nowhere, else as named ones,
which it leaves there and the next run sweeps (`clean_staging`, which also removes the name a
process killed while it probed the folder for unnamed files may leave).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from pydicom.dataset import Dataset

from pipeline.errors import Cause, InputError, WriteError
from pipeline.files import PARTIAL_SUFFIX, Beside, beside

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_COMPONENT = 128

# --- release names ---------------------------------------------------------------------------


def release_name(ds: Dataset) -> PurePosixPath:
    """``<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` of a
    scrubbed dataset, each part reduced to ``[A-Za-z0-9._-]``."""
    parts = (
        _component(ds.get("PatientID"), "no-patient-id"),
        _component(ds.get("StudyInstanceUID"), "no-study-uid"),
        _component(ds.get("SeriesInstanceUID"), "no-series-uid"),
    )
    sop = ds.get("SOPInstanceUID")
    if not str(sop or "").strip():
        raise WriteError("the scrubbed dataset has no SOPInstanceUID to name its file", cause=Cause.NO_SOP_UID)
    return PurePosixPath(*parts, _component(sop, "") + ".dcm")


def _component(value: object, fallback: str) -> str:
    text = _UNSAFE.sub("_", str(value or "").strip().rstrip("\x00"))[:_MAX_COMPONENT]
    text = text.lstrip(".")  # hidden names are reserved for temporary files
    return text or fallback


def staging_folder(release: Path) -> Path:
    """``<release>.staging``: where a run stages outputs, beside the release (so on its file
    system, as `promote`'s link needs) and never inside it."""
    return beside(release, Beside.STAGING)


# --- housekeeping ----------------------------------------------------------------------------


def clean_partials(folder: Path) -> int:
    """Remove every leftover ``.*.partial`` file (or link) below `folder`; return how many."""
    removed = 0
    if not folder.is_dir():
        return removed
    for directory, _subdirectories, names in os.walk(folder):
        for name in names:
            if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
                Path(directory, name).unlink(missing_ok=True)
                removed += 1
    return removed


def clean_staging(folder: Path) -> int:
    """Remove every ``*.partial`` file (or link) directly in the staging `folder`, left by a
    run that died; return how many. Nothing else there is touched."""
    removed = 0
    if not folder.is_dir():
        return removed
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(PARTIAL_SUFFIX) and not entry.is_dir(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


def prune_empty_dirs(folder: Path) -> None:
    """Remove empty folders below `folder` (not `folder` itself), deepest first."""
    for directory, subdirectories, names in os.walk(folder, topdown=False):
        if Path(directory) != folder and not names and not subdirectories:
            with contextlib.suppress(OSError):
                os.rmdir(directory)


@contextlib.contextmanager
def release_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive `fcntl.flock` on `lock_path` for the duration; an `InputError` if
    another run holds it. The file is removed on release."""
    while True:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise InputError("another run is working on this release (its lock file is held)") from None
        try:
            same = os.stat(lock_path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(descriptor)  # the holder removed it between our open and flock: retry
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()
        os.close(descriptor)
