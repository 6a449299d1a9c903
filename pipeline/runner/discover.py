"""Input roots -> a lazy stream of `SourceFile`: walks and stats, opens nothing.

Whether a file is DICOM is decided once, by the worker that reads its bytes
(pipeline/runner/process.py); discovery only lists regular files. The walk is a generator over
`os.scandir`, one directory at a time, so an archive of millions of files is never listed
into memory. Symbolic links never lead out of the input roots: a linked directory is not
entered at all, and a linked file is taken only when its resolved path lies inside a root;
a dangling link or a loop of links is passed over.
Sockets, FIFOs and devices are not files and are passed over.

Inputs that are not on this machine (an object store, a DICOMweb server) are listed by
pipeline/runner/source_remote.py into the same `SourceFile` stream, each carrying a
`RemoteObject`: what a worker needs to fetch its bytes itself. The client ships keys, never bytes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pipeline.errors import InputError
from pipeline.scrub.keys import Keys


class RemoteKind(StrEnum):
    """Where a remote input lives, hence how a worker fetches it."""

    FSSPEC = "fsspec"  # an object in a store fsspec reaches (s3://, gs://, ...)
    DICOMWEB = "dicomweb"  # an instance on a DICOMweb server (WADO-RS)


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """An input a worker fetches itself: `url` is the object's fsspec URL, or the DICOMweb base
    URL with `key` the instance's ``StudyUID/SeriesUID/SOPUID``; `name` is where the ledger says
    it is (relative to its input), `root` that input's number on the command line (from 1)."""

    kind: RemoteKind
    url: str = field(repr=False)
    key: str = field(repr=False)
    name: str = field(repr=False)
    root: int = 0


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One input file: where it is (never reported), its size and mtime, and its place in
    the run's stream (`index`, the name files go by in logs and ledgers). A remote input has a
    `remote` object; its `path` is then only its name (never opened) and `mtime_ns` a digest of
    its version (ETag, generation), see `pipeline.runner.source_remote`."""

    path: Path = field(repr=False)
    size: int
    index: int
    mtime_ns: int = 0
    remote: RemoteObject | None = field(default=None, repr=False)


def location_key(path: Path, keys: Keys) -> str:
    """A keyed digest of a file's path: lets a rerun recognise an unchanged file without
    reading it, and cannot be turned back into the path (or guessed from one) without the key.
    A name that is not UTF-8 is keyed by its bytes (behind a NUL, which no path text holds)."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "\x00" + os.fsencode(path).hex()
    return keys.derive("source-path", text).hex()


def source_location_key(src: SourceFile, keys: Keys) -> str:
    """`location_key` of a local input; of a remote one, a keyed digest of its kind, URL and key."""
    if src.remote is None:
        return location_key(src.path, keys)
    remote = src.remote
    return keys.derive("source-object", f"{remote.kind.value}\x00{remote.url}\x00{remote.key}").hex()


def resolve_roots(roots: Iterable[Path]) -> tuple[Path, ...]:
    """The input roots as real, absolute paths; an `InputError` for one that does not exist."""
    resolved: list[Path] = []
    for number, root in enumerate(roots, start=1):
        try:
            real = root.resolve(strict=True)
        except FileNotFoundError:
            raise InputError(f"input #{number} does not exist") from None
        except (OSError, RuntimeError):  # a symbolic-link loop (RuntimeError before Python 3.13)
            raise InputError(f"input #{number} is a symbolic-link loop or cannot be resolved") from None
        resolved.append(real)
    return tuple(resolved)


def is_inside(path: Path, roots: Iterable[Path]) -> bool:
    """True when `path` is one of `roots` or lies below one (both resolved)."""
    return any(path == root or path.is_relative_to(root) for root in roots)


def discover(roots: Iterable[Path]) -> Iterator[SourceFile]:
    """Yield every regular file under `roots`, numbered from 0 in the order found."""
    real_roots = resolve_roots(roots)
    index = 0
    for root in real_roots:
        for path, info in _walk(root, real_roots):
            yield SourceFile(path=path, size=info.st_size, index=index, mtime_ns=info.st_mtime_ns)
            index += 1


def _walk(root: Path, roots: tuple[Path, ...]) -> Iterator[tuple[Path, os.stat_result]]:
    info = root.stat()
    if stat.S_ISREG(info.st_mode):
        yield root, info
        return
    if not stat.S_ISDIR(info.st_mode):
        return
    pending: list[Path] = [root]
    while pending:
        directory = pending.pop()
        subdirectories: list[Path] = []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    found = _regular_file(entry, roots)
                    if found is not None:
                        yield found
                    elif entry.is_dir(follow_symlinks=False):
                        subdirectories.append(Path(entry.path))
        except OSError as exc:
            raise InputError(f"cannot list a folder under an input root ({type(exc).__name__})") from None
        pending.extend(sorted(subdirectories, reverse=True))


def _regular_file(entry: os.DirEntry[str], roots: tuple[Path, ...]) -> tuple[Path, os.stat_result] | None:
    if entry.is_symlink():
        try:
            target = Path(entry.path).resolve(strict=True)
            info = target.stat()
        except (OSError, RuntimeError):
            return None  # a dangling link or a loop of links names no file
        if not is_inside(target, roots):
            return None
        return (target, info) if stat.S_ISREG(info.st_mode) else None
    if entry.is_file(follow_symlinks=False):
        try:
            return Path(entry.path), entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None  # removed since the folder was listed
    return None
