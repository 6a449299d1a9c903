"""Putting bytes on disk safely: stage, promote, quarantine, and the release's lock.

A file reaches the release in two steps. `stage` writes it under a hidden temporary name
(``.<name>.<random>.partial``) in the folder it is meant for and fsyncs it; `promote` links
it to its final name, which never replaces an existing file: an identical file already
there (a rerun after an interruption) is accepted, a different one is refused
(`DuplicateOutputError`: two inputs claim one SOP Instance UID). Release names come from
the scrubbed dataset's new identifiers (`release_name`), never from input names or paths.

The quarantine folder lies outside the release and holds originals, so it is owner-only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path, PurePosixPath

from pydicom.dataset import Dataset

from pipeline.errors import InputError, WriteError

PARTIAL_SUFFIX = ".partial"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_COMPONENT = 128


class QuarantineMode(StrEnum):
    """What the quarantine folder keeps of a quarantined input."""

    COPY = "copy"  # a copy of the original, <source id>.dcm
    REFERENCE = "reference"  # a symbolic link to the original, <source id>.dcm


class DuplicateOutputError(WriteError):
    """Another input already produced a different file under the same release name."""

    code = "duplicate-sop-instance"


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
        raise WriteError("the scrubbed dataset has no SOPInstanceUID to name its file")
    return PurePosixPath(*parts, _component(sop, "") + ".dcm")


def _component(value: object, fallback: str) -> str:
    text = _UNSAFE.sub("_", str(value or "").strip().rstrip("\x00"))[:_MAX_COMPONENT]
    text = text.lstrip(".")  # hidden names are reserved for temporary files
    return text or fallback


# --- stage and promote -----------------------------------------------------------------------


def stage(data: bytes, target: Path, mode: int = 0o666) -> Path:
    """Write `data` to a fresh hidden ``.partial`` file beside `target`, fsync it, and
    return its path. `mode` is filtered by the umask."""
    staged = target.with_name(f".{target.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise WriteError(f"cannot stage an output ({type(exc).__name__})") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:  # a full disk, or an interruption: no partial file stays behind
        discard(staged)
        if isinstance(exc, OSError):
            raise WriteError(f"cannot stage an output ({type(exc).__name__})") from None
        raise
    return staged


def promote(staged: Path, target: Path) -> None:
    """Give the staged file its final name without replacing anything; the staged name is
    gone afterwards, whatever happens."""
    try:
        try:
            os.link(staged, target)
        except FileExistsError:
            if not _same_bytes(staged, target):
                raise DuplicateOutputError("a different file already has this release name") from None
        except OSError:
            # No hard links on this file system: exclusive create is not available, so a
            # plain existence check guards the replace.
            if target.exists():
                if not _same_bytes(staged, target):
                    raise DuplicateOutputError("a different file already has this release name") from None
            else:
                os.replace(staged, target)
        _fsync_directory(target.parent)
    except OSError as exc:
        raise WriteError(f"cannot promote an output ({type(exc).__name__})") from None
    finally:
        discard(staged)


def discard(staged: Path) -> None:
    """Remove a staged file if it is still there."""
    with contextlib.suppress(OSError):
        staged.unlink(missing_ok=True)


def _same_bytes(first: Path, second: Path) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    return first.read_bytes() == second.read_bytes()


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(data: bytes, target: Path, mode: int = 0o666) -> None:
    """Stage and replace: for the run's own records (run.json), which a rerun rewrites."""
    staged = stage(data, target, mode)
    try:
        os.replace(staged, target)
    except OSError as exc:
        discard(staged)
        raise WriteError(f"cannot write a record ({type(exc).__name__})") from None


# --- quarantine ------------------------------------------------------------------------------


def make_private_dir(directory: Path) -> None:
    """Create `directory` (and parents) readable by its owner only."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


def quarantine(source_id: str, data: bytes | None, source: Path, folder: Path, mode: QuarantineMode) -> None:
    """Keep the original of a quarantined input as ``<source id>.dcm`` in `folder`: an
    owner-only copy of `data`, or a symbolic link to `source`. The name is content-addressed,
    so a file already there is the same original and is left as it is."""
    target = folder / f"{source_id}.dcm"
    if target.is_symlink() or target.exists():
        if mode is QuarantineMode.COPY and target.is_symlink():
            target.unlink()
        else:
            return
    try:
        if mode is QuarantineMode.REFERENCE or data is None:
            staged = folder / f".{target.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}"
            os.symlink(source.resolve(), staged)
            os.replace(staged, target)
        else:
            promote(stage(data, target, mode=0o600), target)
    except OSError as exc:
        raise WriteError(f"cannot quarantine an original ({type(exc).__name__})") from None


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
