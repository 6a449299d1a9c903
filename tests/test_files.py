"""The staging folder a run publishes through (pipeline/files.py `StagingFolder`): an output is
staged as an unnamed file where the file system and ``/proc`` allow it, else as a named
``.partial`` file, and in every way it is staged: its data are fsynced before it gets a release
name, an existing name is never replaced (identical bytes accepted, different ones refused), and
nothing stays in the staging folder, published, refused or failed. A process killed while it holds
a staged file leaves nothing behind when the file was unnamed, a named file the sweep removes
otherwise."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline import files
from pipeline.errors import Cause, WriteError
from pipeline.files import DuplicateOutputError, StagingFolder

# How an output is staged: as the platform allows here (unnamed on this repository's ext4 and on
# tmpfs), or named because the platform, /proc or the file system does not give unnamed files.
WAYS = ("as-allowed", "no-o-tmpfile", "no-proc", "refused-by-file-system", "link-refused")


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Stage the way the parameter names (each test starts with nothing probed)."""
    monkeypatch.setattr(files, "_UNNAMED", {})
    name: str = request.param
    if name == "no-o-tmpfile":
        monkeypatch.setattr(files, "_O_TMPFILE", 0)
    elif name == "no-proc":
        monkeypatch.setattr(files, "_FD_LINKS", "/nonexistent/proc/self/fd")
    elif name == "refused-by-file-system":
        monkeypatch.setattr(os, "open", _refusing(os.open, lambda flags: flags & os.O_TMPFILE == os.O_TMPFILE,
                                                  errno.EOPNOTSUPP))
    elif name == "link-refused":
        monkeypatch.setattr(os, "link", _refusing_link(os.link))
    return name


def _refusing(real: Callable[..., int], when: Callable[[int], bool], code: int) -> Callable[..., int]:
    def refused(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if when(flags):
            raise OSError(code, os.strerror(code))
        return real(path, flags, *args, **kwargs)
    return refused


def _refusing_link(real: Callable[..., None]) -> Callable[..., None]:
    def link(src: object, dst: object, **kwargs: object) -> None:
        if kwargs.get("src_dir_fd") is not None:  # an unnamed file, through /proc/self/fd
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real(src, dst, **kwargs)
    return link


def _expect_unnamed(way: str, folder: Path) -> bool:
    return way == "as-allowed" and _allows_unnamed(folder)


def _allows_unnamed(folder: Path) -> bool:
    """This test's own look at whether `folder` takes unnamed files linked through /proc."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(folder, os.O_RDWR | os.O_TMPFILE, 0o600)
    except OSError:
        return False
    try:
        links = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.link(str(descriptor), folder / "probe", src_dir_fd=links, follow_symlinks=True)
        finally:
            os.close(links)
        (folder / "probe").unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)


def _open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int, str]]]:
    """Every fsync and link, in order, as (what, inode, name): the inode fsynced, or the inode
    linked and the name it was given."""
    events: list[tuple[str, int, str]] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(descriptor: int) -> None:
        real_fsync(descriptor)
        events.append(("fsync", os.fstat(descriptor).st_ino, ""))

    def link(src: object, dst: str | Path, **kwargs: object) -> None:
        real_link(src, dst, **kwargs)  # type: ignore[arg-type]
        events.append(("link", os.stat(dst).st_ino, str(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    yield events


def test_an_output_is_fsynced_before_it_is_named_and_the_staging_folder_is_left_empty(
    tmp_path: Path, way: str, synced: list[tuple[str, int, str]]
) -> None:
    staging, release = tmp_path / "release.staging", tmp_path / "release"
    before = _open_descriptors()
    with StagingFolder(staging) as folder:
        staged = folder.stage(b"output bytes")
        assert folder.unnamed is _expect_unnamed(way, staging)
        if folder.unnamed:
            assert staged.path is None and os.readlink(f"/proc/self/fd/{staged.descriptor}").endswith("(deleted)")
            assert list(staging.iterdir()) == []  # nothing with a name, even while staged
        else:
            assert staged.path is not None and staged.path.parent == staging
            assert staged.path.name.endswith(".partial")
        folder.publish(staged, release / "p" / "s" / "x.dcm")
    assert (release / "p" / "s" / "x.dcm").read_bytes() == b"output bytes"
    assert list(staging.iterdir()) == []
    assert _open_descriptors() == before
    target = release / "p" / "s" / "x.dcm"
    named = synced.index(("link", target.stat().st_ino, str(target)))
    assert ("fsync", target.stat().st_ino, "") in synced[:named]  # its data were on disk before its name
    assert [event for event in synced if event[0] == "link" and not event[2].startswith(str(staging))] == [
        synced[named]]  # the probe (once a process) links in the staging folder only


def test_an_identical_file_under_the_name_is_accepted_and_a_different_one_refused(tmp_path: Path, way: str) -> None:
    staging, target = tmp_path / "staging", tmp_path / "release" / "x.dcm"
    before = _open_descriptors()
    with StagingFolder(staging) as folder:
        folder.publish(folder.stage(b"same"), target)
        folder.publish(folder.stage(b"same"), target)
        with pytest.raises(DuplicateOutputError) as caught:
            folder.publish(folder.stage(b"different"), target)
        with pytest.raises(DuplicateOutputError):
            folder.publish(folder.stage(b"samf"), target)  # the same size
    assert caught.value.code == "duplicate-sop-instance"
    assert target.read_bytes() == b"same" and [p.name for p in target.parent.iterdir()] == ["x.dcm"]
    assert list(staging.iterdir()) == []
    assert _open_descriptors() == before


def test_a_write_that_fails_leaves_nothing_staged_and_says_why(
    tmp_path: Path, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = tmp_path / "staging"
    before = _open_descriptors()

    def full(descriptor: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with StagingFolder(staging) as folder:
        monkeypatch.setattr(os, "write", full)
        with pytest.raises(WriteError) as caught:
            folder.stage(b"output bytes")
        monkeypatch.undo()
    assert caught.value.cause is Cause.NO_SPACE
    assert list(staging.iterdir()) == []
    assert _open_descriptors() == before


def test_the_staging_folder_is_made_owner_only_and_made_again_if_it_goes(tmp_path: Path, way: str) -> None:
    staging = tmp_path / "out" / "release.staging"
    with StagingFolder(staging) as folder:
        folder.publish(folder.stage(b"one"), tmp_path / "out" / "release" / "1.dcm")
        assert staging.stat().st_mode & 0o777 == 0o700
        staging.rmdir()
        with pytest.raises(WriteError):
            folder.stage(b"two")  # the folder is gone: this file fails (and is quarantined)
        folder.publish(folder.stage(b"three"), tmp_path / "out" / "release" / "3.dcm")  # made again
    assert (tmp_path / "out" / "release" / "3.dcm").read_bytes() == b"three"


_HOLD = """
import os, sys
from pathlib import Path
from pipeline import files
if sys.argv[2] == "named":
    files._O_TMPFILE = 0
folder = files.StagingFolder(Path(sys.argv[1]))
staged = folder.stage(b"unverified output")
print("named" if staged.path is not None else "unnamed", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("staged_as", ["unnamed", "named"])
def test_a_process_killed_while_it_holds_a_staged_file_leaves_no_name_or_one_the_sweep_removes(
    tmp_path: Path, staged_as: str
) -> None:
    staging = tmp_path / "staging"
    if staged_as == "unnamed" and not _allows_unnamed(staging):
        staged_as = "named"  # this file system gives no unnamed files: the folder falls back, as here
    with subprocess.Popen([sys.executable, "-c", _HOLD, str(staging), staged_as], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as holder:
        assert holder.stdout is not None and holder.stdout.readline().decode().strip() == staged_as
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    left = [p.name for p in staging.iterdir()]
    if staged_as == "unnamed":
        assert left == []
    else:
        assert len(left) == 1 and left[0].endswith(".partial")


@contextlib.contextmanager
def _mounted(kind: str, folder: Path) -> Iterator[Path]:
    """`folder` as a fresh tmpfs or an overlay (over folders of this file system), if this process
    may mount one (root in a container usually may; CI's own disk may be either); else as it is."""
    folder.mkdir()
    if kind == "tmpfs":
        command = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)]
    else:
        layers = {name: folder.with_name(f"{folder.name}.{name}") for name in ("lower", "upper", "work")}
        for layer in layers.values():
            layer.mkdir()
        command = ["mount", "-t", "overlay", "overlay", "-o", ",".join(f"{name}dir={layer}" for name, layer
                                                                       in layers.items()), str(folder)]
    mounted = subprocess.run(command, capture_output=True).returncode == 0
    try:
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("kind", ["tmpfs", "overlay"])
def test_staging_on_a_tmpfs_or_an_overlay_publishes_the_same_way(tmp_path: Path, kind: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_UNNAMED", {})
    with _mounted(kind, tmp_path / "disk") as disk:
        staging, target = disk / "release.staging", disk / "release" / "p" / "x.dcm"
        before = _open_descriptors()
        with StagingFolder(staging) as folder:
            folder.publish(folder.stage(b"same"), target)
            assert folder.unnamed is _allows_unnamed(disk / "look")
            folder.publish(folder.stage(b"same"), target)
            with pytest.raises(DuplicateOutputError):
                folder.publish(folder.stage(b"other"), target)
        assert target.read_bytes() == b"same" and list(staging.iterdir()) == []
        assert _open_descriptors() == before


def _takes_direct_writes(folder: Path) -> bool:
    """This test's own look at whether `folder`'s file system takes an aligned direct write."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(folder / "direct", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    try:
        with mmap.mmap(-1, 4096) as block:
            return os.write(descriptor, block) == 4096
    except OSError:
        return False
    finally:
        os.close(descriptor)
        (folder / "direct").unlink()


@pytest.mark.parametrize("length", [0, 1, 4095, 4096, 4097, 3 * 8192 + 5])
@pytest.mark.parametrize("writes", ["as-allowed", "no-o-direct", "open-refused", "write-refused", "short"])
def test_an_output_is_written_exactly_its_whole_blocks_directly_where_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writes: str, length: int
) -> None:
    """Its whole 4 KiB blocks are written with O_DIRECT, aligned, 8 KiB at a time here (the chunk
    made small), the rest buffered; where the platform has no O_DIRECT, the file system refuses it
    at open or at the first write, or a direct write comes short, the rest is written buffered.
    Whatever the way, the published file holds exactly the output's bytes."""
    monkeypatch.setattr(files, "_DIRECT_CHUNK", 8192)
    data = bytes((i * 7 + i // 251) % 256 for i in range(length))
    direct_writes: list[tuple[int, int]] = []  # (offset, length) of each direct write
    real_open, real_write = os.open, os.write

    def write(descriptor: int, buffer: bytes | memoryview) -> int:
        if fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_DIRECT:
            if writes == "write-refused":
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            direct_writes.append((os.lseek(descriptor, 0, os.SEEK_CUR), len(buffer)))
            if writes == "short" and len(buffer) > 4096:
                return real_write(descriptor, memoryview(buffer)[:4096])
        return real_write(descriptor, buffer)

    monkeypatch.setattr(os, "write", write)
    if writes == "no-o-direct":
        monkeypatch.setattr(files, "_O_DIRECT", 0)
    elif writes == "open-refused":
        monkeypatch.setattr(os, "open", _refusing(real_open, lambda flags: bool(flags & os.O_DIRECT), errno.EINVAL))
    target = tmp_path / "release" / "x.dcm"
    with StagingFolder(tmp_path / "staging") as folder:
        folder.publish(folder.stage(data), target)
        folder.publish(folder.stage(data), target)  # identical: accepted
        direct = folder.direct
    monkeypatch.undo()
    assert target.read_bytes() == data
    if writes == "as-allowed" and _takes_direct_writes(tmp_path / "look"):
        assert direct is True
        whole = length - length % 4096
        assert direct_writes == [(offset, min(8192, whole - offset)) for offset in range(0, whole, 8192)] * 2
    elif writes == "short":
        assert all(offset == 0 for offset, _ in direct_writes)  # the first one came short: the rest buffered
    else:
        assert direct is False or length < 4096
        assert direct_writes == []
