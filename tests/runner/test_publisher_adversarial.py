"""Adversarial tests of the two-thread publisher (pipeline/runner/publisher.py): orders forced
with Events, delays shuffled into stage, fsync and link, errors injected at the os level, and a
watchdog that turns a deadlocked turn into a failure instead of a hung test run."""

from __future__ import annotations

import concurrent.futures
import errno
import os
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline import files
from pipeline.errors import Cause, WriteError
from pipeline.files import DuplicateOutputError, StagingFolder
from pipeline.runner import process
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import WorkerConfig, process_batch, process_one
from pipeline.runner.publisher import Publisher
from tests.conftest_run import release_files
from tests.runner.test_publisher import BASIC, KEYS, _inputs

WATCHDOG = 20.0  # seconds before a turn that never comes is called a deadlock (never reached when correct)


class _Turn(threading.Condition):
    """The publisher's turn, with hooks: `on_wait` runs in each wait (it may raise), and
    `abort` makes every wait raise, to end threads a deadlock holds."""

    def __init__(self) -> None:
        super().__init__()
        self.abort = False
        self.on_wait: Callable[[], None] = lambda: None

    def wait(self, timeout: float | None = None) -> bool:
        if self.abort:
            raise RuntimeError("watchdog: the turn never came")
        self.on_wait()
        return super().wait(timeout if timeout is not None else 0.05)


def _with_turn(publisher: Publisher[int]) -> _Turn:
    turn = _Turn()
    publisher._turn = turn
    return turn


def _drain(publisher: Publisher[int]) -> list[tuple[int, BaseException | None]]:
    """Every result, or a failure (after unblocking the threads) if some job never finishes."""
    futures = [future for _, _, future in publisher._pending]
    _, not_done = concurrent.futures.wait(futures, timeout=WATCHDOG)
    if not_done:
        turn = publisher._turn
        assert isinstance(turn, _Turn)
        with turn:
            turn.abort = True
            turn.notify_all()
        concurrent.futures.wait(futures, timeout=WATCHDOG)
        pytest.fail(f"deadlock: {len(not_done)} jobs never got their turn")
    return list(publisher.drain())


@pytest.fixture(params=["unnamed", "named"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Unnamed staging (O_TMPFILE, where the file system has it) and the named fallback."""
    monkeypatch.setattr(files, "_UNNAMED", {})
    if request.param == "named":
        monkeypatch.setattr(files, "_O_TMPFILE", 0)
    yield str(request.param)


def _open_descriptors() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def _kinds(results: list[tuple[int, BaseException | None]]) -> list[tuple[int, str]]:
    out = []
    for job, error in results:
        kind = "ok" if error is None else type(error).__name__
        if isinstance(error, WriteError):
            kind += f":{error.cause}"
        out.append((job, kind))
    return out


# -- many jobs, delays shuffled, against a one-thread reference ------------------------------

def _jobs(seed: int) -> list[tuple[bytes, str]]:
    """Outputs under few names: different bytes under one name, identical re-publications, some
    that cannot be fsynced ("EIO") or linked ("NOLINK"), sizes across the 4 KiB blocks."""
    rng = random.Random(seed)
    jobs = []
    for number in range(40):
        name = f"n{rng.randrange(8)}.dcm"
        body = rng.choice([b"A", b"B", b"C"]) * rng.choice([7, 4096, 4097, 8192, 12289])
        tag = rng.choices([b"ok", b"EIO", b"NOLINK"], weights=[8, 1, 1])[0]
        if tag != b"ok":
            body = tag + b"-%d-" % number + body
        jobs.append((body, name))
    return jobs


def _inject(monkeypatch: pytest.MonkeyPatch, delays: bool) -> None:
    """fsync fails with EIO for data starting "EIO", link into the release fails with EIO for data
    starting "NOLINK" (for a named file too: no replace fallback for EIO of a link... the fallback
    replaces only if the name is absent, so the link is refused by refusing os.replace as well);
    each call is delayed by an amount fixed by the data (so which thread finishes first is shuffled,
    the same way in every run)."""
    real_fsync, real_link, real_replace, real_write = os.fsync, os.link, os.replace, os.write
    fsynced: set[int] = set()  # inodes whose data were fsynced

    def pause(data: bytes, salt: int) -> None:
        if delays:
            time.sleep(random.Random(zlib.crc32(data[:64]) + salt).choice([0, 0, 0.0005, 0.002]))

    def head(descriptor: int) -> bytes:
        return os.pread(descriptor, 64, 0)

    def fsync(descriptor: int) -> None:
        data = head(descriptor)
        pause(data, 1)
        if data.startswith(b"EIO"):
            raise OSError(errno.EIO, "I/O error")
        real_fsync(descriptor)
        fsynced.add(os.fstat(descriptor).st_ino)

    def link(source: str | Path, target: str | Path, **kwargs: object) -> None:
        if kwargs.get("src_dir_fd") is not None:
            data, inode = head(int(source)), os.fstat(int(source)).st_ino
        else:
            data, inode = Path(source).read_bytes()[:64], Path(source).stat().st_ino
        if Path(target).parent.name != "staging":  # not the probe for unnamed files: a release name
            assert inode in fsynced, "a name was given to data not fsynced"
        pause(data, 2)
        if data.startswith(b"NOLINK"):
            raise OSError(errno.EIO, "I/O error")
        real_link(source, target, **kwargs)  # type: ignore[arg-type]

    def replace(source: str | Path, target: str | Path) -> None:
        if Path(source).read_bytes().startswith(b"NOLINK"):
            raise OSError(errno.EIO, "I/O error")
        real_replace(source, target)

    def write(descriptor: int, data: bytes | memoryview) -> int:
        pause(bytes(data[:64]), 3)
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "write", write)


def _run(tmp_path: Path, label: str, jobs: list[tuple[bytes, str]], threads: int,
         max_pending: int = 16) -> tuple[list[tuple[int, str]], dict[str, bytes], Path]:
    staging, release = tmp_path / label / "staging", tmp_path / label / "release"
    release.mkdir(parents=True)
    with Publisher[int](staging, threads=threads, max_pending=max_pending) as publisher:
        _with_turn(publisher)
        settled = []
        for number, (data, name) in enumerate(jobs):
            publisher.submit(number, data, release / name)
            settled += publisher.settled()
        results = settled + _drain(publisher)
    return _kinds(results), release_files(release), staging


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_jobs_with_shuffled_delays_give_what_one_thread_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, seed: int
) -> None:
    jobs = _jobs(seed)
    _inject(monkeypatch, delays=False)
    reference, reference_files, _ = _run(tmp_path, "one", jobs, threads=1)
    _inject(monkeypatch, delays=True)
    before = _open_descriptors()
    for threads, max_pending in ((2, 16), (2, 1), (4, 3)):
        kinds, published, staging = _run(tmp_path, f"t{threads}-{max_pending}", jobs, threads, max_pending)
        assert kinds == reference
        assert published == reference_files
        assert list(staging.iterdir()) == []
    assert _open_descriptors() <= before  # every staged file and every thread's folder closed
    # the reference itself is what the rules say: per name, the first output that could be
    # published is, later different bytes are duplicates, identical ones accepted
    first: dict[str, bytes] = {}
    for (data, name), (_, kind) in zip(jobs, reference, strict=True):
        if data.startswith(b"EIO"):
            assert kind == f"WriteError:{Cause.IO_ERROR}"
        elif data.startswith(b"NOLINK"):
            assert kind == f"WriteError:{Cause.IO_ERROR}" or kind.startswith("DuplicateOutputError")
        elif name not in first or first[name] == data:
            first.setdefault(name, data)
            assert kind == "ok"
        else:
            assert kind.startswith("DuplicateOutputError")
    assert reference_files == first


# -- a failure in the job that holds the turn while the others wait --------------------------

def _waiting(turn: _Turn, count: int) -> threading.Event:
    """Set once `count` distinct threads are waiting for the turn."""
    waiters: set[int] = set()
    ready = threading.Event()

    def on_wait() -> None:
        waiters.add(threading.get_ident())
        if len(waiters) >= count:
            ready.set()

    turn.on_wait = on_wait
    return ready


@pytest.mark.parametrize("failure", ["ENOSPC", "EIO-fsync", "KeyboardInterrupt"])
def test_the_job_holding_the_turn_fails_while_the_others_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, failure: str
) -> None:
    """Job 0 is held in its stage until the other threads wait for the turn behind it, then it
    fails: only it is refused, the others are published, nothing stays staged."""
    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    real_stage, real_fsync = StagingFolder.stage, os.fsync
    ready: threading.Event | None = None

    def stage(folder: StagingFolder, data: bytes, mode: int = 0o666) -> files.StagedFile:
        if data.startswith(b"first") and ready is not None:
            assert ready.wait(timeout=WATCHDOG)
            if failure == "ENOSPC":
                raise WriteError("cannot stage an output (OSError)", cause=Cause.NO_SPACE)
            if failure == "KeyboardInterrupt":
                raise KeyboardInterrupt
        return real_stage(folder, data, mode)

    def fsync(descriptor: int) -> None:
        if failure == "EIO-fsync" and os.pread(descriptor, 5, 0) == b"first":
            raise OSError(errno.EIO, "I/O error")
        real_fsync(descriptor)

    monkeypatch.setattr(StagingFolder, "stage", stage)
    monkeypatch.setattr(os, "fsync", fsync)
    before = _open_descriptors()
    with Publisher[int](staging, threads=3) as publisher:
        ready = _waiting(_with_turn(publisher), 2)
        for number, data in enumerate((b"first" * 2000, b"second" * 2000, b"third", b"fourth")):
            publisher.submit(number, data, release / ("same.dcm" if number < 2 else f"{number}.dcm"))
        results = _drain(publisher)
    assert [job for job, _ in results] == [0, 1, 2, 3]
    error = results[0][1]
    if failure == "KeyboardInterrupt":
        assert isinstance(error, KeyboardInterrupt)
    else:
        assert isinstance(error, WriteError)
        assert error.cause is (Cause.NO_SPACE if failure == "ENOSPC" else Cause.IO_ERROR)
    assert all(error is None for _, error in results[1:])
    assert release_files(release) == {"same.dcm": b"second" * 2000, "2.dcm": b"third", "3.dcm": b"fourth"}
    assert list(staging.iterdir()) == []
    assert _open_descriptors() <= before


# -- ENOSPC on the direct write of one job among many ----------------------------------------

def test_no_space_on_one_direct_write_refuses_that_output_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    real_write = os.write
    direct_writes: list[int] = []

    def write(descriptor: int, data: bytes | memoryview) -> int:
        is_direct = bool(fcntl_flags(descriptor) & files._O_DIRECT) if files._O_DIRECT else len(data) % 4096 == 0
        if is_direct:
            direct_writes.append(len(data))
            if bytes(data[:5]) == b"full!":
                del data  # as the C call's argument is gone: a frame holding it keeps the aligned buffer exported
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", write)
    outputs = [(b"full!" if n == 7 else bytes([65 + n])) * (4096 * 3 + n) for n in range(16)]
    before = _open_descriptors()
    with Publisher[int](staging, max_pending=4) as publisher:
        _with_turn(publisher)
        for number, data in enumerate(outputs):
            publisher.submit(number, data, release / f"{number}.dcm")
        results = _drain(publisher)
    assert direct_writes  # the direct path was taken (or, without O_DIRECT, whole blocks were)
    assert [job for job, _ in results] == list(range(16))
    error = results[7][1]
    assert isinstance(error, WriteError) and error.cause is Cause.NO_SPACE
    assert [job for job, error in results if error is not None] == [7]
    assert release_files(release) == {f"{n}.dcm": data for n, data in enumerate(outputs) if n != 7}
    assert list(staging.iterdir()) == []
    assert _open_descriptors() <= before


def fcntl_flags(descriptor: int) -> int:
    import fcntl
    return fcntl.fcntl(descriptor, fcntl.F_GETFL)


# -- an exception raised inside the turn wait --------------------------------------------------

def test_an_exception_in_the_turn_wait_refuses_that_output_alone_and_keeps_the_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Job 1 waits for its turn behind job 0 (held in its stage) and its wait raises: job 1 is
    refused with that error and leaves nothing staged; job 0 still links first, and job 2 (a
    different file under job 0's name) is refused as the duplicate, not published before it."""
    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    real_stage = StagingFolder.stage
    raised = threading.Event()

    def stage(folder: StagingFolder, data: bytes, mode: int = 0o666) -> files.StagedFile:
        if data.startswith(b"first"):
            assert raised.wait(timeout=WATCHDOG)
        return real_stage(folder, data, mode)

    monkeypatch.setattr(StagingFolder, "stage", stage)
    before = _open_descriptors()
    with Publisher[int](staging, threads=2) as publisher:
        turn = _with_turn(publisher)

        def on_wait() -> None:
            if not raised.is_set():
                raised.set()
                raise RuntimeError("interrupted while waiting for the turn")

        turn.on_wait = on_wait
        publisher.submit(0, b"first" * 1000, release / "same.dcm")
        publisher.submit(1, b"second" * 1000, release / "other.dcm")
        publisher.submit(2, b"third" * 1000, release / "same.dcm")
        results = _drain(publisher)
    assert [job for job, _ in results] == [0, 1, 2]
    assert results[0][1] is None
    assert isinstance(results[1][1], RuntimeError)
    assert isinstance(results[2][1], DuplicateOutputError)
    assert release_files(release) == {"same.dcm": b"first" * 1000}
    assert list(staging.iterdir()) == []
    assert _open_descriptors() <= before


# -- duplicates and identical re-publications, the later one staged first ---------------------

def test_duplicates_and_identical_republications_interleaved_follow_submission_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Each earlier output under "same.dcm" is held until the next one is staged and fsynced, so
    the later ones are always ready first; the first submitted wins, identical bytes are
    accepted, different ones refused."""
    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    bodies = [b"A" * 5000, b"B" * 5000, b"A" * 5000, b"B" * 5000, b"A" * 5000, b"C" * 7]
    staged_events = [threading.Event() for _ in bodies]
    real_stage = StagingFolder.stage
    numbering = iter(range(len(bodies)))
    by_data: dict[int, int] = {}
    lock = threading.Lock()

    def stage(folder: StagingFolder, data: bytes, mode: int = 0o666) -> files.StagedFile:
        with lock:
            number = next(numbering)  # the threads take jobs in submission order
        by_data[id(data)] = number
        if number + 1 < len(bodies) and number % 2 == 0:
            assert staged_events[number + 1].wait(timeout=WATCHDOG)
        staged = real_stage(folder, data, mode)
        staged_events[number].set()
        return staged

    monkeypatch.setattr(StagingFolder, "stage", stage)
    with Publisher[int](staging, threads=2) as publisher:
        _with_turn(publisher)
        for number, body in enumerate(bodies):
            publisher.submit(number, body, release / "same.dcm")
        results = _drain(publisher)
    assert [job for job, _ in results] == list(range(len(bodies)))
    kinds = [error is None or (isinstance(error, DuplicateOutputError) and "dup") for _, error in results]
    assert kinds == [True, "dup", True, "dup", True, "dup"]
    assert release_files(release) == {"same.dcm": b"A" * 5000}
    assert list(staging.iterdir()) == []


# -- leaving the context manager ---------------------------------------------------------------

def test_leaving_waits_for_every_job_and_closes_every_threads_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Leaving without draining, and leaving on an exception: every job still finishes (its file
    is published) and every thread's folder is closed."""
    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    before = _open_descriptors()
    held = threading.Event()
    real_stage = StagingFolder.stage

    def stage(folder: StagingFolder, data: bytes, mode: int = 0o666) -> files.StagedFile:
        if data.startswith(b"held"):
            threading.Timer(0.01, held.set).start()
            assert held.wait(timeout=WATCHDOG)
        return real_stage(folder, data, mode)

    monkeypatch.setattr(StagingFolder, "stage", stage)
    with pytest.raises(ValueError, match="the worker failed"), Publisher[int](staging) as publisher:
        for number in range(6):
            publisher.submit(number, (b"held" if number == 0 else b"x%d" % number) * 3000,
                             release / f"{number}.dcm")
        raise ValueError("the worker failed")
    assert len(release_files(release)) == 6
    assert publisher._folders and all(f._links is None and f._aligned is None for f in publisher._folders)
    assert list(staging.iterdir()) == []
    assert _open_descriptors() <= before


# -- process_batch end to end with one output's link refused ------------------------------------

def test_a_batch_with_one_link_refused_quarantines_that_input_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    sources = _inputs(tmp_path / "in")
    alone = WorkerConfig(tmp_path / "alone" / "release", tmp_path / "alone" / "quarantine")
    expected = [process_one(src, BASIC, KEYS, alone) for src in sources]
    refused_name = expected[1].output
    assert refused_name
    real_link, real_replace = os.link, os.replace

    def refuse(target: str | Path) -> None:
        if str(target).endswith(refused_name):
            raise PermissionError(errno.EPERM, "Operation not permitted")

    def link(source: str | Path, target: str | Path, **kwargs: object) -> None:
        refuse(target)
        real_link(source, target, **kwargs)  # type: ignore[arg-type]

    def replace(source: str | Path, target: str | Path) -> None:
        refuse(target)
        real_replace(source, target)

    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "replace", replace)
    synced: list[Path] = []
    monkeypatch.setattr(process, "sync_directories", lambda folders: synced.extend(sorted(folders)))
    cfg = WorkerConfig(tmp_path / "batch" / "release", tmp_path / "batch" / "quarantine")
    outcomes = process_batch(sources * 2, BASIC, KEYS, cfg)  # each input twice: identical re-publications
    dispositions = [o.disposition for o in outcomes]
    assert dispositions == [Disposition.WRITTEN, Disposition.QUARANTINED, Disposition.WRITTEN] * 2
    assert outcomes[1].reason == outcomes[4].reason == f"write-failed:{Cause.PERMISSION.value}"
    assert (cfg.quarantine / f"{outcomes[1].source_id}.dcm").read_bytes() == sources[1].path.read_bytes()
    published = release_files(cfg.release)
    assert refused_name not in published
    alone_files = release_files(alone.release)
    assert published == {name: data for name, data in alone_files.items() if name != refused_name}
    assert list(cfg.staging_dir.iterdir()) == []


# -- a file system that refuses direct writes, named fallback ------------------------------------

def test_a_refused_direct_open_in_the_named_fallback_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux creates the file of an ``open(O_CREAT | O_DIRECT)`` before it finds that the file
    system has no direct I/O and fails with EINVAL (the check is in do_dentry_open, after the
    create: tmpfs before 6.6, some FUSE file systems). The folder then stages buffered; the name
    the refused open created must not stay behind."""
    monkeypatch.setattr(files, "_UNNAMED", {})
    monkeypatch.setattr(files, "_O_TMPFILE", 0)
    if not files._O_DIRECT:
        pytest.skip("no O_DIRECT on this platform")
    real_open = os.open

    def open_(path: str | Path, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        if flags & files._O_DIRECT and flags & os.O_CREAT:
            os.close(real_open(path, flags & ~files._O_DIRECT, mode))  # created, then refused
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_)
    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    with Publisher[int](staging) as publisher:
        _with_turn(publisher)
        for number in range(4):
            publisher.submit(number, bytes([number]) * 9000, release / f"{number}.dcm")
        results = _drain(publisher)
    assert all(error is None for _, error in results)
    assert len(release_files(release)) == 4
    assert list(staging.iterdir()) == []
