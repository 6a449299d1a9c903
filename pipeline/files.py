"""Putting bytes on disk safely: stage, promote, write atomically, owner-only folders.

`stage` writes bytes under a temporary name and fsyncs them: in a staging folder given by
the caller (``<random>.partial``; a run stages in a folder beside its release, so no
unverified file is ever inside the release tree, whatever is killed and when), or else
hidden beside their target (``.<name>.<random>.partial``). `promote` links the staged file
to its final name, which never replaces an existing file: an identical file already there
(a rerun after an interruption) is accepted, a different one is refused
(`DuplicateOutputError`). The staging folder must be on the target's file system.
`write_atomically` stages and replaces, for records a rerun rewrites.

A run's outputs go through a `StagingFolder` instead: each is written to an unnamed file in it
(``O_TMPFILE``: no name to create, to remove, or to leave behind when the process dies), and
`StagingFolder.publish` fsyncs it and only then gives it its release name (``linkat`` of
``/proc/self/fd/N``), under the same no-replace rule. Where the file system or the platform has no
unnamed files, or ``/proc`` is missing, the folder stages named ``<random>.partial`` files, as
`stage` does; `publish` then links and removes the name. An output's whole 4 KiB blocks are
written with ``O_DIRECT`` where the file system takes it (through an aligned buffer of the
folder's, 4 MiB at a time), its last part buffered: the kernel's copy into the page cache, and the
page cache filled with outputs no one reads, cost a worker ~0.3 ms a file of the benchmark's; where
direct writes are refused, everything is written buffered.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pipeline.errors import Cause, WriteError

PARTIAL_SUFFIX = ".partial"
_CHUNK = 1 << 24  # bytes compared at a time
_BLOCK = 4096  # what a direct write's length, offset and memory are aligned to (a logical block divides it)
_DIRECT_CHUNK = 4 << 20  # bytes of an output copied to the aligned buffer and written directly at a time


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


def write_error(step: str, exc: OSError) -> WriteError:
    """The `WriteError` for an operating-system error while an output is at `step` ("stage",
    "promote"): named by the error's class, never its message (which may quote a path), with its
    `os_cause`."""
    return WriteError(f"cannot {step} an output ({type(exc).__name__})", cause=os_cause(exc))


def stage(data: bytes, target: Path, mode: int = 0o666, into: Path | None = None) -> Path:
    """Write `data` to a fresh ``.partial`` file, fsync it, and return its path: named
    ``<random>.partial`` in the folder `into` (created owner-only if missing), or hidden beside
    `target` when `into` is None. `mode` is filtered by the umask."""
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
        raise write_error("stage", exc) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:  # a full disk, or an interruption: no partial file stays behind
        discard(staged)
        if isinstance(exc, OSError):
            raise write_error("stage", exc) from None
        raise
    return staged


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
            _replace_if_absent(staged, target)
        if sync_directory:
            _fsync_directory(target.parent)
    except OSError as exc:
        raise write_error("promote", exc) from None
    finally:
        discard(staged)


@dataclass(frozen=True, slots=True)
class StagedFile:
    """An output written in a staging folder, not yet fsynced: its open descriptor (closed by
    `StagingFolder.publish` or `drop_staged`), and its name there, or None for an unnamed file."""

    descriptor: int
    path: Path | None = None


_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)  # 0: the platform has no unnamed files
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)  # 0: the platform has no direct writes
_FD_LINKS = "/proc/self/fd"  # a descriptor's entry here, followed, is its file: how an unnamed one is linked
# Staging folders (path, device) whose file system links unnamed files: probed once a process.
_UNNAMED: dict[tuple[str, int], bool] = {}


class StagingFolder:
    """A run's staging folder, as a batch stages into it and publishes from it: created
    owner-only when first used, probed once a process for unnamed files (`unnamed`: True when
    they are used). Use as a context manager (it holds a descriptor of ``/proc/self/fd``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.unnamed: bool | None = None  # not known before the first `stage`
        self.direct = _O_DIRECT != 0  # False once the file system refused a direct write
        self._links: int | None = None  # the descriptor of _FD_LINKS, while files are unnamed
        self._aligned: mmap.mmap | None = None  # the buffer direct writes are copied through

    def __enter__(self) -> StagingFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the folder's descriptor and buffer (it can be used again: they are taken anew)."""
        if self._links is not None:
            os.close(self._links)
            self._links, self.unnamed = None, None  # probed again if used again
        if self._aligned is not None:
            self._aligned.close()
            self._aligned = None

    def stage(self, data: bytes, mode: int = 0o666) -> StagedFile:
        """Write `data` to a new file in the folder, unnamed where possible; not fsynced
        (`publish` does it). `mode` is filtered by the umask."""
        direct = self.direct and len(data) >= _BLOCK
        try:
            if self.unnamed is None:
                self.unnamed = self._probe()
            staged = self._open(mode, direct)
            direct = direct and self.direct  # False if this file system refused it just now
        except OSError as exc:
            self.unnamed = None  # probed again with the next file (the folder may be back)
            raise write_error("stage", exc) from None
        try:
            view = memoryview(data)
            if direct:
                view = view[self._write_direct(staged.descriptor, view):]
            while view:
                view = view[os.write(staged.descriptor, view):]
        except BaseException as exc:  # a full disk, or an interruption: no partial file stays behind
            drop_staged(staged)
            if isinstance(exc, OSError):
                raise write_error("stage", exc) from None
            raise
        return staged

    def _open(self, mode: int, direct: bool) -> StagedFile:
        flags = os.O_RDWR | os.O_CLOEXEC | (_O_DIRECT if direct else 0)
        path = None if self.unnamed else self.folder / f"{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        try:
            if path is None:
                return StagedFile(os.open(self.folder, flags | _O_TMPFILE, mode))
            return StagedFile(os.open(path, flags | os.O_CREAT | os.O_EXCL, mode), path)
        except OSError as exc:
            if not direct or exc.errno != errno.EINVAL:
                raise
            if path is not None:  # Linux creates the file before it refuses O_DIRECT (EINVAL): ours (O_EXCL)
                discard(path)
            self.direct = False  # no direct writes on this file system
            return self._open(mode, direct=False)

    def _write_direct(self, descriptor: int, data: memoryview) -> int:
        """Write the whole blocks of `data` directly through the aligned buffer, then turn the
        descriptor's O_DIRECT off; return how many bytes were written (the rest is written
        buffered). A refused direct write stops direct writing here (`direct` False)."""
        if self._aligned is None:
            self._aligned = mmap.mmap(-1, _DIRECT_CHUNK)  # page-aligned
        whole, done = len(data) - len(data) % _BLOCK, 0
        with memoryview(self._aligned) as aligned:
            while done < whole:
                size = min(whole - done, _DIRECT_CHUNK)
                aligned[:size] = data[done:done + size]
                try:
                    written = os.write(descriptor, aligned[:size])
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self.direct = False
                    break
                done += written
                if written < size:  # a short direct write: the rest buffered, from where it stopped
                    break
        fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) & ~_O_DIRECT)
        return done

    def publish(self, staged: StagedFile, target: Path, *, synced: bool = False) -> None:
        """fsync a staged file's data (unless the caller did: `synced`), then give it the name
        `target` without replacing anything: an identical file already there is accepted, a
        different one is refused (`DuplicateOutputError`). The target's folders are created as
        needed; the caller fsyncs them before it records the file as published. The staged file is
        closed, and its staging name removed, whatever happens."""
        try:
            if not synced:
                os.fsync(staged.descriptor)
            try:
                try:
                    self._link(staged, target)
                except FileNotFoundError:  # folders are made by the first file they hold, not checked for each
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self._link(staged, target)
            except FileExistsError:
                if not _same_content(staged.descriptor, target):
                    raise DuplicateOutputError("a different file already has this release name") from None
            except OSError:
                if staged.path is None:
                    raise
                _replace_if_absent(staged.path, target)  # named staging on a file system without hard links
        except OSError as exc:
            raise write_error("promote", exc) from None
        finally:
            drop_staged(staged)

    def _link(self, staged: StagedFile, target: Path) -> None:
        if staged.path is not None:
            os.link(staged.path, target)
        else:  # linkat(/proc/self/fd, "N", target, AT_SYMLINK_FOLLOW); a plain link() of the path gives EXDEV
            os.link(str(staged.descriptor), target, src_dir_fd=self._links, follow_symlinks=True)

    def _probe(self) -> bool:
        """Whether the folder (created owner-only if missing) takes unnamed files that can be
        linked through ``/proc/self/fd``: tried once a process for each folder and file system,
        by linking an empty unnamed file as ``<random>.partial`` and removing it (a crash between
        the two leaves a name the next run's sweep removes)."""
        try:
            device = os.stat(self.folder).st_dev
        except FileNotFoundError:
            make_private_dir(self.folder)
            device = os.stat(self.folder).st_dev
        key = (str(self.folder), device)
        if not _O_TMPFILE or _UNNAMED.get(key) is False:
            return False
        if self._links is None:
            try:
                self._links = os.open(_FD_LINKS, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:  # no /proc
                return False
        if key not in _UNNAMED:
            _UNNAMED[key] = self._try_unnamed()
        return _UNNAMED[key]

    def _try_unnamed(self) -> bool:
        try:
            descriptor = os.open(self.folder, os.O_RDWR | os.O_CLOEXEC | _O_TMPFILE, 0o600)
        except OSError:  # no unnamed files here (EOPNOTSUPP; EISDIR from a kernel without them)
            return False
        probe = self.folder / f"{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        try:
            self._link(StagedFile(descriptor), probe)
            os.unlink(probe)
            return True
        except OSError:  # no link of an unnamed file here
            return False
        finally:
            os.close(descriptor)


def drop_staged(staged: StagedFile) -> None:
    """Close a staged file and remove its staging name if it has one (an unnamed file is gone
    once closed, unless it was linked)."""
    with contextlib.suppress(OSError):
        os.close(staged.descriptor)
    if staged.path is not None:
        discard(staged.path)


def _same_content(descriptor: int, target: Path) -> bool:
    size = os.fstat(descriptor).st_size
    if size != target.stat().st_size:
        return False
    with target.open("rb") as other:
        offset = 0
        while offset < size:
            chunk = os.pread(descriptor, min(size - offset, _CHUNK), offset)
            if not chunk or chunk != other.read(len(chunk)):
                return False
            offset += len(chunk)
    return True


def _replace_if_absent(staged: Path, target: Path) -> None:
    """No hard links on this file system: exclusive create is not available, so a plain
    existence check guards the replace."""
    if target.exists():
        if not _same_bytes(staged, target):
            raise DuplicateOutputError("a different file already has this release name") from None
    else:
        os.replace(staged, target)


def discard(staged: Path) -> None:
    """Remove a staged file if it is still there."""
    with contextlib.suppress(OSError):
        staged.unlink(missing_ok=True)


def _same_bytes(first: Path, second: Path) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    return first.read_bytes() == second.read_bytes()


def sync_directories(directories: set[Path]) -> None:
    """fsync each folder once: the names `promote(..., sync_directory=False)` and
    `StagingFolder.publish` gave in them survive a crash afterwards (their data was fsynced before they
    were linked)."""
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
