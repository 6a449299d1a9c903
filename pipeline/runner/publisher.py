"""Publishing verified outputs in the background: stage, fsync, then link into the release.

A worker hands each verified output's bytes to background threads, which write them to an
unnamed file in the staging folder (`pipeline.files.StagingFolder`; a named ``.partial`` file
where the file system has none), fsync its data and only then link it under its release name
(`pipeline.files.StagingFolder.publish`), and the worker goes on with the next file meanwhile: the disk's
write-back overlaps the next file's scrub and verify instead of stalling the worker (4 ms a file on
the benchmark's disk against 0.4 ms without the fsync), and only these threads work in the staging
folder (a worker creating the next staged name while a thread removed the last one contended for
the folder's lock). The promise is the one a synchronous fsync gave, unchanged: a name in the
release always points at data already on disk, so a crash at any moment leaves no published file
whose bytes may be lost; the batch's outcomes go back to the client (which records them as
published) only after every link and the folders on the way to it were synced
(`release_folders`, `process.process_batch`).

`THREADS` threads stage and fsync outputs at once, and each links its output only after every
output submitted before it was linked or refused, so the outputs of a batch get their names in
submission order (of two different outputs under one release name, the first submitted is
published, the other refused as a duplicate, however the threads ran). An fsync waits for the file
system's journal to commit and for the disk: one thread at a time made every file wait for its own
commit (one publisher thread was busy 93% of a one-worker run, 59% of it in fsync, py-spy), while
the fsyncs of several threads share one commit, and their direct writes reach the disk together.

At most `MAX_PENDING` outputs, and at most `MAX_PENDING_BYTES` of them (one always may), wait for
the threads (memory stays flat): `submit` waits for the oldest beyond that. The queue is deep
enough that the worker seldom waits for the threads: they need the GIL back after each write and
fsync, which the working thread gives up only every switch interval (with 4 places the worker
spent ~9% of its time waiting in `submit`, py-spy of a one-worker run). Each result comes back
once, in submission order, from `settled` or `drain`:
the job given to `submit` and the exception that stopped it (a `WriteError` such as a full disk
or a different file under the same name, `DuplicateOutputError`), or None when it is published.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Generic, TypeVar

from pipeline.files import StagedFile, StagingFolder, drop_staged, write_error

Job = TypeVar("Job")
MAX_PENDING = 16
THREADS = 2  # outputs staged and fsynced at once
MAX_PENDING_BYTES = 64 << 20  # of outputs waiting; one larger output may still wait alone


def publish_now(staging: StagingFolder, data: bytes, target: Path) -> None:
    """Stage `data` in `staging`, fsync it and link it to `target` (the folders on the way to
    it are synced by the caller, `release_folders`)."""
    staging.publish(staging.stage(data), target)


def release_folders(release: Path, names: Iterable[PurePosixPath]) -> set[Path]:
    """The folders to fsync before files published under `names` are recorded: each one's
    folder and every folder above it up to `release`, which hold the names on the way to it
    (some may have been created for it, by this worker or another)."""
    folders = {release}
    for name in names:
        folder = release.joinpath(*name.parts[:-1])
        while folder not in folders:
            folders.add(folder)
            folder = folder.parent
    return folders


class Publisher(Generic[Job]):
    """`threads` background threads that stage and fsync outputs, and link them in submission
    order, in the staging folder given (each thread with its own `StagingFolder`: buffers and
    descriptors are not shared). Use as a context manager; `drain` before leaving it, or the
    results not taken are lost (never the files: the threads finish what they were given)."""

    def __init__(self, staging: Path, max_pending: int = MAX_PENDING, max_bytes: int = MAX_PENDING_BYTES,
                 threads: int = THREADS) -> None:
        self._staging = staging
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="publish")
        self._folders: list[StagingFolder] = []  # every thread's, closed on leaving
        self._local = threading.local()
        self._turn = threading.Condition()  # a job links when `_linked` reaches its number
        self._numbers = itertools.count()
        self._linked = 0  # every job numbered below it linked or refused
        self._finished: set[int] = set()  # jobs done, out of turn or in it, not yet passed by `_linked`
        self._pending: collections.deque[tuple[Job, int, concurrent.futures.Future[None]]] = collections.deque()
        self._done: list[tuple[Job, BaseException | None]] = []
        self._max_pending, self._max_bytes, self._bytes = max_pending, max_bytes, 0

    def __enter__(self) -> Publisher[Job]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)
        for folder in self._folders:
            folder.close()

    def submit(self, job: Job, data: bytes, target: Path) -> None:
        """Queue `data` for publication as `target`; wait for the oldest beyond `max_pending`
        outputs or `max_bytes` of them."""
        future = self._pool.submit(self._publish, next(self._numbers), data, target)
        self._pending.append((job, len(data), future))
        self._bytes += len(data)
        while len(self._pending) > self._max_pending or (self._bytes > self._max_bytes and len(self._pending) > 1):
            self._take_oldest()

    @property
    def waiting(self) -> tuple[int, int]:
        """(outputs, bytes of them) submitted whose result was not taken yet."""
        return len(self._pending), self._bytes

    def settled(self) -> list[tuple[Job, BaseException | None]]:
        """The results that are in (without waiting), oldest first, each given once."""
        while self._pending and self._pending[0][2].done():
            self._take_oldest()
        done, self._done = self._done, []
        return done

    def drain(self) -> Iterator[tuple[Job, BaseException | None]]:
        """Every result still to come, waiting for each, oldest first."""
        while self._pending:
            self._take_oldest()
        done, self._done = self._done, []
        yield from done

    def _take_oldest(self) -> None:
        job, size, future = self._pending.popleft()
        self._bytes -= size
        self._done.append((job, future.exception()))

    def _folder(self) -> StagingFolder:
        """This thread's staging folder."""
        folder: StagingFolder | None = getattr(self._local, "folder", None)
        if folder is None:
            folder = self._local.folder = StagingFolder(self._staging)
            with self._turn:
                self._folders.append(folder)
        return folder

    def _publish(self, number: int, data: bytes, target: Path) -> None:
        """Stage and fsync `data` (at once with the other threads), then, in its turn (`number`,
        from 0 in submission order), link it as `target` (`StagingFolder.publish`)."""
        staged: StagedFile | BaseException | None = None
        try:
            folder = self._folder()
            staged = _stage_synced(folder, data)
            with self._turn:
                while self._linked != number:
                    self._turn.wait()
            if isinstance(staged, BaseException):
                raise staged
            linking: StagedFile = staged
            staged = None  # `publish` closes it, whatever happens
            folder.publish(linking, target, synced=True)
        finally:
            if isinstance(staged, StagedFile):  # stopped before its turn (an exception in the wait)
                drop_staged(staged)
            with self._turn:  # done, in its turn or not: the turn passes over it once it comes
                self._finished.add(number)
                while self._linked in self._finished:
                    self._finished.remove(self._linked)
                    self._linked += 1
                self._turn.notify_all()


def _stage_synced(folder: StagingFolder, data: bytes) -> StagedFile | BaseException:
    """`data` staged in `folder` and fsynced, or the error that stopped it (nothing staged stays)."""
    try:
        staged = folder.stage(data)  # a WriteError: what it staged is dropped
    except BaseException as exc:
        return exc
    try:
        os.fsync(staged.descriptor)
    except BaseException as exc:
        drop_staged(staged)
        return write_error("stage", exc) if isinstance(exc, OSError) else exc
    return staged
