"""Putting bytes on disk safely: stage, promote, write atomically, owner-only folders.

`stage` writes bytes under a temporary name and fsyncs them: in a staging folder given by
the caller (``<random>.partial``; a run stages in a folder beside its release, so no
unverified file is ever inside the release tree, whatever is killed and when), or else
hidden beside their target (``.<name>.<random>.partial``). `promote` links the staged file
to its final name, which never replaces an existing file: an identical file already there
(a rerun after an interruption) is accepted, a different one is refused
(`DuplicateOutputError`). The staging folder must be on the target's file system.
`write_atomically` stages and replaces, for records a rerun rewrites.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from enum import StrEnum
from pathlib import Path

from pipeline.errors import Cause, WriteError

PARTIAL_SUFFIX = ".partial"


class DuplicateOutputError(WriteError):
    """Another input already produced a different file under the same release name."""

    code = "duplicate-sop-instance"


def os_cause(exc: OSError) -> Cause:
    """What an operating-system error says about a write: no space (disk, quota or file size
    limit), no permission, or other I/O."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return Cause.NO_SPACE
    if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        return Cause.PERMISSION
    return Cause.IO_ERROR


def stage(data: bytes, target: Path, mode: int = 0o666, into: Path | None = None, *, sync: bool = True) -> Path:
    """Write `data` to a fresh ``.partial`` file, fsync it, and return its path: named
    ``<random>.partial`` in the folder `into` (created owner-only if missing), or hidden beside
    `target` when `into` is None. `mode` is filtered by the umask. With `sync` False the caller
    must `sync_file` the staged file before it promotes it."""
    if into is None:
        staged = target.with_name(f".{target.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}")
    else:
        staged = into / f"{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
    try:
        if into is None:
            target.parent.mkdir(parents=True, exist_ok=True)
        elif not into.is_dir():
            make_private_dir(into)
        descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise WriteError(f"cannot stage an output ({type(exc).__name__})", cause=os_cause(exc)) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
    except BaseException as exc:  # a full disk, or an interruption: no partial file stays behind
        discard(staged)
        if isinstance(exc, OSError):
            raise WriteError(f"cannot stage an output ({type(exc).__name__})", cause=os_cause(exc)) from None
        raise
    return staged


def sync_file(staged: Path) -> None:
    """fsync a file staged with ``sync=False``: its data survive a crash once this returns."""
    try:
        descriptor = os.open(staged, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise WriteError(f"cannot stage an output ({type(exc).__name__})", cause=os_cause(exc)) from None


def promote(staged: Path, target: Path, *, sync_directory: bool = True) -> None:
    """Give the staged file its final name without replacing anything; the staged name is
    gone afterwards, whatever happens. The target's folders are created as needed. The new
    name is made durable by an fsync of its folder, unless `sync_directory` is False: then the
    caller must call `sync_directories` before it records the file as published."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
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
        if sync_directory:
            _fsync_directory(target.parent)
    except OSError as exc:
        raise WriteError(f"cannot promote an output ({type(exc).__name__})", cause=os_cause(exc)) from None
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


def sync_directories(directories: set[Path]) -> None:
    """fsync each folder once: the names `promote(..., sync_directory=False)` gave in them
    survive a crash afterwards (their data was fsynced by `stage` before they were linked)."""
    for directory in sorted(directories):
        try:
            _fsync_directory(directory)
        except OSError as exc:
            raise WriteError(f"cannot sync a release folder ({type(exc).__name__})", cause=os_cause(exc)) from None


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
        raise WriteError(f"cannot write a record ({type(exc).__name__})", cause=os_cause(exc)) from None


def make_private_dir(directory: Path) -> None:
    """Create `directory` (and parents) readable by its owner only."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


class Beside(StrEnum):
    """What a run keeps beside its release, each named ``<release><suffix>``."""

    MANIFEST = ".manifest.sqlite"
    QUARANTINE = ".quarantine"
    STAGING = ".staging"
    LOCK = ".lock"
    RUN_RECORD = ".run.json"
    AUDIT = ".audit.xml"
    REPORT = ".report"


def beside(release: Path, what: Beside) -> Path:
    """The path of `what` beside the (resolved) release, named after it."""
    resolved = release.resolve()
    return resolved.with_name(resolved.name + what.value)
