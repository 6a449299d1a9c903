"""The key: from a file or the environment, long enough, private, never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.errors import KeyMaterialError
from pipeline.scrub.keys import KEY_FILE_ENV, Keys, load_keys, load_lookup
from tests.conftest import TEST_KEY


def key_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "project.key"
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


def test_key_is_read_from_a_file(tmp_path: Path) -> None:
    keys = load_keys(key_file(tmp_path, TEST_KEY.hex().encode() + b"\n"))
    assert keys.key == TEST_KEY.hex().encode()


def test_key_file_is_found_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path, b"x" * 40)))
    assert load_keys(None).key == b"x" * 40


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(KeyMaterialError, match="no key"):
        load_keys(None)
    with pytest.raises(KeyMaterialError, match="cannot read"):
        load_keys(tmp_path / "absent.key")


def test_short_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="too short"):
        load_keys(key_file(tmp_path, b"short"))


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="readable by other users"):
        load_keys(key_file(tmp_path, b"y" * 40, mode=0o644))


def test_fingerprint_identifies_the_key_without_revealing_it() -> None:
    one, two = Keys(key=TEST_KEY), Keys(key=TEST_KEY[::-1])
    assert one.fingerprint != two.fingerprint and len(one.fingerprint) == 16
    assert TEST_KEY.hex() not in one.fingerprint and TEST_KEY.hex()[:16] != one.fingerprint
    assert "0f1e2d" not in repr(one)


def test_lookup_table_is_read_and_checked(tmp_path: Path) -> None:
    table = tmp_path / "lookup.csv"
    table.write_text("original,research\nMRN1,R-001\nMRN2,R-002\n")
    assert load_lookup(table) == {"MRN1": "R-001", "MRN2": "R-002"}
    table.write_text("original,research\nMRN1\n")
    with pytest.raises(KeyMaterialError, match="line 2"):
        load_lookup(table)
