"""discover: a lazy walk of the input roots that opens nothing and leaves no root."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.runner.discover import SourceFile, discover, location_key
from pipeline.scrub.keys import Keys


def _tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "one.dcm").write_bytes(b"1")
    (root / "a" / "b" / "two.dcm").write_bytes(b"22")
    (root / "three").write_bytes(b"333")


def test_discovery_is_a_generator(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert inspect.isgenerator(discover([tmp_path]))


def test_every_regular_file_is_found_once_with_its_size_and_a_running_index(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = list(discover([tmp_path]))
    assert sorted((f.path.name, f.size) for f in found) == [("one.dcm", 1), ("three", 3), ("two.dcm", 2)]
    assert [f.index for f in found] == [0, 1, 2]
    assert all(f.mtime_ns > 0 for f in found)


def test_indexes_run_on_across_roots_and_a_file_can_be_a_root(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = list(discover([tmp_path / "a", tmp_path / "three"]))
    assert [f.index for f in found] == [0, 1, 2]
    assert found[-1].path.name == "three"


def test_a_fifo_is_passed_over_without_being_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")  # opening it would block the walk
    (tmp_path / "file.dcm").write_bytes(b"x")
    assert [f.path.name for f in discover([tmp_path])] == ["file.dcm"]


def test_a_symlinked_folder_is_not_entered_even_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.dcm").write_bytes(b"s")
    (root / "link-out").symlink_to(outside, target_is_directory=True)
    (root / "link-in").symlink_to(root / "a", target_is_directory=True)
    names = sorted(f.path.name for f in discover([root]))
    assert names == ["one.dcm", "three", "two.dcm"]


def test_a_symlinked_file_is_taken_only_when_it_resolves_inside_a_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "real.dcm").write_bytes(b"r")
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(b"o")
    (root / "to-outside.dcm").symlink_to(outside)
    (root / "to-inside.dcm").symlink_to(root / "real.dcm")
    (root / "dangling.dcm").symlink_to(tmp_path / "missing.dcm")
    found = list(discover([root]))
    assert sorted(f.path.name for f in found) == ["real.dcm", "real.dcm"]
    assert all(f.path.resolve().is_relative_to(root.resolve()) for f in found)


def test_a_source_file_does_not_show_its_path(tmp_path: Path) -> None:
    source = SourceFile(path=tmp_path / "Smith^John" / "x.dcm", size=1, index=7)
    assert "Smith" not in repr(source)
    assert "index=7" in repr(source)


def test_a_missing_root_is_an_input_error_naming_no_path(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        list(discover([tmp_path / "Smith^John"]))
    assert "Smith" not in str(caught.value)


def test_the_location_key_is_keyed_and_does_not_contain_the_path(tmp_path: Path) -> None:
    path = tmp_path / "Smith^John" / "x.dcm"
    one = location_key(path, Keys(key=b"k" * 32))
    assert one == location_key(path, Keys(key=b"k" * 32))
    assert one != location_key(path, Keys(key=b"j" * 32))
    assert one != location_key(tmp_path / "other.dcm", Keys(key=b"k" * 32))
    assert "Smith" not in one and len(one) == 64
