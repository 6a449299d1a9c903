"""The background publisher of a batch (pipeline/runner/publisher.py): outputs are staged and
fsynced by two threads at once while the worker goes on, and linked in submission order, each
only after its fsync; each result comes back once and in order, and a file that cannot be
fsynced or linked quarantines its input instead of being reported published."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path, PurePosixPath

import pydicom
import pytest

from pipeline import files
from pipeline.errors import Cause, WriteError
from pipeline.files import DuplicateOutputError, StagingFolder
from pipeline.profile.plan import compile_plan
from pipeline.runner import process
from pipeline.runner import publisher as publisher_module
from pipeline.runner.discover import SourceFile
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import WorkerConfig, process_batch, process_one
from pipeline.runner.publisher import Publisher, release_folders
from pipeline.scrub.keys import Keys
from tests.conftest import bundled
from tests.conftest_run import KEY_HEX, release_files

KEYS = Keys(key=KEY_HEX.encode("ascii"))
BASIC = compile_plan("basic", [])


def test_every_job_is_published_in_order_and_a_refused_link_is_returned_with_its_error(tmp_path: Path) -> None:
    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    (release / "taken.dcm").write_bytes(b"another file")
    with Publisher[int](staging, max_pending=2) as publisher:
        for number in range(6):
            name = "taken.dcm" if number == 3 else f"{number}.dcm"
            publisher.submit(number, f"bytes {number}".encode(), release / name)
        results = publisher.settled() + list(publisher.drain())
    assert [job for job, _ in results] == list(range(6))
    errors = {job: error for job, error in results if error is not None}
    assert list(errors) == [3] and isinstance(errors[3], DuplicateOutputError)
    assert (release / "taken.dcm").read_bytes() == b"another file"
    assert {name: data for name, data in release_files(release).items() if name != "taken.dcm"} == {
        f"{n}.dcm": f"bytes {n}".encode() for n in (0, 1, 2, 4, 5)}
    assert list(staging.iterdir()) == []  # nothing staged stays behind, linked or refused


def test_outputs_waiting_are_bounded_by_count_and_by_bytes_and_a_large_one_still_goes(tmp_path: Path) -> None:
    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    sizes = [300, 300, 300, 2000, 300, 100, 100, 100, 100, 100]
    seen = []
    with Publisher[int](staging, max_pending=4, max_bytes=1000) as publisher:
        for number, size in enumerate(sizes):
            publisher.submit(number, bytes([number]) * size, release / f"{number}.dcm")
            count, waiting = publisher.waiting
            seen.append((count, waiting))
            assert count <= 4 and (waiting <= 1000 or count == 1)
        results = publisher.settled() + list(publisher.drain())
        assert publisher.waiting == (0, 0)
    assert [job for job, error in results if error is None] == list(range(len(sizes)))
    assert {name: len(data) for name, data in release_files(release).items()} == {
        f"{n}.dcm": size for n, size in enumerate(sizes)}
    assert (1, 2000) in seen  # the output larger than the bound waited alone


def test_outputs_are_staged_at_once_and_linked_in_submission_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first two outputs are staged at the same time (they meet at a barrier, which one
    thread could not pass); the first is held back until the second is staged and fsynced, and
    both go to one release name with different bytes: the first submitted is published, the
    second refused as a duplicate, as one thread would have done."""
    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    meet, real_stage = threading.Barrier(2, timeout=10), StagingFolder.stage
    second_staged = threading.Event()

    def stage(folder: StagingFolder, data: bytes, mode: int = 0o666) -> files.StagedFile:
        if data in (b"first", b"second"):
            meet.wait()
        if data == b"first":
            assert second_staged.wait(timeout=10)
        staged = real_stage(folder, data, mode)
        if data == b"second":
            second_staged.set()
        return staged

    monkeypatch.setattr(StagingFolder, "stage", stage)
    with Publisher[str](staging) as publisher:
        for data in (b"first", b"second", b"third"):
            publisher.submit(data.decode(), data, release / ("third.dcm" if data == b"third" else "same.dcm"))
        results = list(publisher.drain())
    assert [job for job, _ in results] == ["first", "second", "third"]
    assert results[0][1] is None and isinstance(results[1][1], DuplicateOutputError) and results[2][1] is None
    assert release_files(release) == {"same.dcm": b"first", "third.dcm": b"third"}
    assert list(staging.iterdir()) == []


def test_an_output_whose_fsync_fails_is_refused_alone_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        if os.pread(descriptor, 3, 0) == b"bad":
            raise OSError(errno.EIO, "I/O error")
        real_fsync(descriptor)

    monkeypatch.setattr(publisher_module.os, "fsync", fsync)
    with Publisher[int](staging) as publisher:
        for number, data in enumerate((b"good 0", b"bad 1", b"good 2")):
            publisher.submit(number, data, release / f"{number}.dcm")
        results = list(publisher.drain())
    error = results[1][1]
    assert isinstance(error, WriteError) and error.cause is Cause.IO_ERROR
    assert results[0][1] is None and results[2][1] is None
    assert release_files(release) == {"0.dcm": b"good 0", "2.dcm": b"good 2"}
    assert list(staging.iterdir()) == []


@pytest.mark.parametrize("unnamed", [True, False])
def test_every_output_is_fsynced_before_its_name_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    """The order of the calls, per file (by inode): its fsync, then the link that names it."""
    monkeypatch.setattr(files, "_UNNAMED", {})
    if not unnamed:
        monkeypatch.setattr(files, "_O_TMPFILE", 0)
    events: list[tuple[str, int]] = []
    lock, real_fsync, real_link = threading.Lock(), os.fsync, os.link

    def fsync(descriptor: int) -> None:
        real_fsync(descriptor)
        with lock:
            events.append(("fsync", os.fstat(descriptor).st_ino))

    def link(source: str | Path, target: str | Path, **kwargs: object) -> None:
        real_link(source, target, **kwargs)  # type: ignore[arg-type]
        if Path(target).parent == release:  # not the probe for unnamed files, in the staging folder
            with lock:
                events.append(("link", os.stat(target).st_ino))

    staging, release = tmp_path / "staging", tmp_path / "release"
    release.mkdir()
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    with Publisher[int](staging) as publisher:
        for number in range(12):
            time.sleep(0.001 * (number % 3))
            publisher.submit(number, bytes([number]) * (5000 + 4096 * number), release / f"{number}.dcm")
        assert all(error is None for _, error in publisher.drain())
    linked = [inode for kind, inode in events if kind == "link"]
    assert len(linked) == 12 and linked == [(release / f"{n}.dcm").stat().st_ino for n in range(12)]
    for inode in linked:
        assert events.index(("fsync", inode)) < events.index(("link", inode))


def _inputs(folder: Path) -> list[SourceFile]:
    folder.mkdir(parents=True)
    sources = []
    for index, name in enumerate(("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")):
        path = folder / f"{index}.dcm"
        path.write_bytes(bundled(name).read_bytes())
        sources.append(SourceFile(path, path.stat().st_size, index))
    return sources


def test_a_batch_publishes_what_one_file_at_a_time_publishes_and_quarantines_an_output_it_cannot_link(
    tmp_path: Path,
) -> None:
    sources = _inputs(tmp_path / "in")
    alone = WorkerConfig(tmp_path / "alone" / "release", tmp_path / "alone" / "quarantine")
    expected = [process_one(src, BASIC, KEYS, alone) for src in sources]
    assert [o.disposition for o in expected] == [Disposition.WRITTEN] * 3

    cfg = WorkerConfig(tmp_path / "batch" / "release", tmp_path / "batch" / "quarantine")
    taken = cfg.release / str(expected[1].output)
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"a different file under the second output's name")
    outcomes = process_batch(sources, BASIC, KEYS, cfg)

    assert [o.disposition for o in outcomes] == [Disposition.WRITTEN, Disposition.QUARANTINED, Disposition.WRITTEN]
    assert outcomes[1].reason == "duplicate-sop-instance"
    assert (cfg.quarantine / f"{outcomes[1].source_id}.dcm").read_bytes() == sources[1].path.read_bytes()
    published = release_files(cfg.release)
    for outcome in (outcomes[0], outcomes[2]):
        assert published[str(outcome.output)] == release_files(alone.release)[str(outcome.output)]
        pydicom.dcmread(cfg.release / str(outcome.output))
    assert list(cfg.staging_dir.iterdir()) == []


def test_the_folders_synced_for_a_name_are_every_folder_from_it_up_to_the_release(tmp_path: Path) -> None:
    release = tmp_path / "release"
    names = [PurePosixPath("p/st/se/1.dcm"), PurePosixPath("p/st/se/2.dcm"), PurePosixPath("p/st2/se/3.dcm"),
             PurePosixPath("top.dcm")]
    assert release_folders(release, names) == {release, release / "p", release / "p" / "st",
                                               release / "p" / "st" / "se", release / "p" / "st2",
                                               release / "p" / "st2" / "se"}
    assert release_folders(release, []) == {release}


@pytest.mark.parametrize("unnamed", [True, False])
def test_a_batch_returns_only_after_its_outputs_and_every_folder_above_them_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    """Unnamed staging where the file system allows it, and named (no O_TMPFILE): each output's
    data are fsynced before its name exists; the batch syncs the folders on the way to every name
    before it returns its outcomes; nothing stays in the staging folder."""
    monkeypatch.setattr(files, "_UNNAMED", {})
    if not unnamed:
        monkeypatch.setattr(files, "_O_TMPFILE", 0)
    synced: list[Path] = []
    monkeypatch.setattr(process, "sync_directories", lambda folders: synced.extend(sorted(folders)))
    sources = _inputs(tmp_path / "in")
    cfg = WorkerConfig(tmp_path / "release", tmp_path / "quarantine")
    outcomes = process_batch(sources, BASIC, KEYS, cfg)
    assert [o.disposition for o in outcomes] == [Disposition.WRITTEN] * 3
    outputs = [cfg.release / str(o.output) for o in outcomes]
    assert all(path.is_file() for path in outputs)
    assert set(synced) == release_folders(cfg.release, [PurePosixPath(str(o.output)) for o in outcomes])
    assert {path.parent for path in outputs} | {cfg.release} <= set(synced)
    assert list(cfg.staging_dir.iterdir()) == []
