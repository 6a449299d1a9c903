"""Publishing verified outputs in the background: stage, fsync, then link into the release.

A worker hands each verified output's bytes to one background thread, which writes them to an
unnamed file in the staging folder (`pipeline.files.StagingFolder`; a named ``.partial`` file
where the file system has none), fsyncs its data and only then links it under its release name
(`pipeline.files.StagingFolder.publish`), and the worker goes on with the next file meanwhile: the disk's
write-back overlaps the next file's scrub and verify instead of stalling the worker (4 ms a file on
the benchmark's disk against 0.4 ms without the fsync), and only this thread works in the staging
folder (a worker creating the next staged name while the thread removed the last one contended for
the folder's lock). The promise is the one a synchronous fsync gave, unchanged: a name in the
release always points at data already on disk, so a crash at any moment leaves no published file
whose bytes may be lost; the batch's outcomes go back to the client (which records them as
published) only after every link and the folders on the way to it were synced
(`release_folders`, `process.process_batch`).

At most `MAX_PENDING` outputs, and at most `MAX_PENDING_BYTES` of them (one always may), wait for
the thread (memory stays flat): `submit` waits for the oldest beyond that. The queue is deep enough
that the worker seldom waits for the thread: the thread needs the GIL back after each write and
fsync, which the working thread gives up only every switch interval (with 4 places the worker spent
~9% of its time waiting in `submit`, py-spy of a one-worker run). Each result comes back once, in
submission order, from `settled` or `drain`:
the job given to `submit` and the exception that stopped it (a `WriteError` such as a full disk
or a different file under the same name, `DuplicateOutputError`), or None when it is published.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Generic, TypeVar

from pipeline.files import StagingFolder

Job = TypeVar("Job")
MAX_PENDING = 16
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
    """One background thread that stages, fsyncs and links outputs in order, in the staging
    folder given. Use as a context manager; `drain` before leaving it, or the results not taken
    are lost (never the files: the thread finishes what it was given)."""

    def __init__(self, staging: Path, max_pending: int = MAX_PENDING, max_bytes: int = MAX_PENDING_BYTES) -> None:
        self._staging = StagingFolder(staging)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish")
        self._pending: collections.deque[tuple[Job, int, concurrent.futures.Future[None]]] = collections.deque()
        self._done: list[tuple[Job, BaseException | None]] = []
        self._max_pending, self._max_bytes, self._bytes = max_pending, max_bytes, 0

    def __enter__(self) -> Publisher[Job]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)
        self._staging.close()

    def submit(self, job: Job, data: bytes, target: Path) -> None:
        """Queue `data` for publication as `target`; wait for the oldest beyond `max_pending`
        outputs or `max_bytes` of them."""
        self._pending.append((job, len(data), self._pool.submit(publish_now, self._staging, data, target)))
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
