"""manifest: one row per input content, resumable by unchanged location, one settings per release."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import KeyMaterialError, ProfileError
from pipeline.profile.plan import compile_plan
from pipeline.runner.manifest import Location, Manifest, Settings, plan_digest, quarantined_now, settings_of
from pipeline.runner.outcome import Disposition, Outcome
from pipeline.scrub.keys import Keys

SETTINGS = Settings("plan-a", "key-a", "none")


def _written(sid: str, index: int = 0, output: str = "P/1/2/3.dcm") -> Outcome:
    return Outcome(sid, index, Disposition.WRITTEN, output=output, actions=(("U", 3), ("X", 2)))


def test_plan_digest_follows_profile_options_and_recipes_not_the_key() -> None:
    basic = compile_plan("basic", [])
    again = compile_plan("basic", [])
    retain = compile_plan("basic", ["retain-uids"])
    assert plan_digest(basic) == plan_digest(again)
    assert plan_digest(basic) != plan_digest(retain)
    one = settings_of(basic, Keys(key=b"a" * 32))
    other = settings_of(basic, Keys(key=b"b" * 32))
    assert one.plan_digest == other.plan_digest and one.key_fingerprint != other.key_fingerprint
    assert one.differences(other) == ("key",)


def test_a_changed_lookup_table_changes_the_settings_without_recording_it() -> None:
    plain = settings_of(compile_plan("basic", []), Keys(key=b"a" * 32))
    looked = settings_of(compile_plan("basic", []), Keys(key=b"a" * 32, lookup={"MRN1": "R1"}))
    assert plain.differences(looked) == ("lookup table",)
    assert "MRN1" not in looked.lookup_fingerprint


def test_an_unchanged_location_resolves_to_its_status_under_the_same_settings(tmp_path: Path) -> None:
    where = Location("k1", 10, 1000)
    with Manifest(tmp_path / "m.sqlite", SETTINGS) as manifest:
        manifest.record([(_written("s1"), where)])
        assert manifest.status_at(where) is Disposition.WRITTEN
        assert manifest.status_at(Location("k1", 10, 1001)) is None  # touched
        assert manifest.status_at(Location("k1", 11, 1000)) is None  # grown
        assert manifest.status_at(Location("k2", 10, 1000)) is None  # elsewhere
    with Manifest(tmp_path / "m.sqlite", Settings("plan-b", "key-a", "none")) as other:
        assert other.status_at(where) is None


def test_a_row_is_kept_per_content_and_updated_in_place(tmp_path: Path) -> None:
    with Manifest(tmp_path / "m.sqlite", SETTINGS) as manifest:
        manifest.record([(_written("s1"), Location("k1", 1, 1))])
        quarantined = Outcome("s1", 4, Disposition.QUARANTINED, reason="verify:x")
        manifest.record([(quarantined, Location("k2", 1, 1))])
        assert manifest.rows() == [("s1", 4, "quarantined", None, "verify:x")]
        assert manifest.counts() == {"quarantined": 1}


def test_the_manifest_is_in_wal_mode_and_stores_action_counts(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    with Manifest(path, SETTINGS) as manifest:
        manifest.record([(_written("s1"), Location("k1", 1, 1))])
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # while a run writes
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT summary FROM inputs").fetchone()[0] == '{"U": 3, "X": 2}'


def test_a_closed_manifest_leaves_no_wal_files_after_a_read_only_reader(tmp_path: Path) -> None:
    """The report reads the manifest read-only after the run: it left release.manifest.sqlite-wal
    and -shm behind (a read-only connection cannot remove them); closed in rollback-journal mode,
    the manifest keeps its rows and nothing else is left beside it. A new run turns WAL on again."""
    path = tmp_path / "m.sqlite"
    with Manifest(path, SETTINGS) as manifest:
        manifest.record([(_written("s1"), Location("k1", 1, 1)),
                         (Outcome("s2", 2, Disposition.QUARANTINED, reason="verify:x"), Location("k2", 1, 1))])
    assert quarantined_now(path) == {"s2": "verify:x"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.sqlite"]
    with Manifest(path, SETTINGS) as manifest, contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert manifest.counts() == {"written": 1, "quarantined": 1}


def test_runs_record_the_release_settings(tmp_path: Path) -> None:
    with Manifest(tmp_path / "m.sqlite", SETTINGS) as manifest:
        assert manifest.release_settings() is None
        run = manifest.begin_run("2024-01-01T00:00:00+00:00")
        manifest.end_run(run, "2024-01-01T00:01:00+00:00", 0, {"written": 1})
        assert manifest.release_settings() == SETTINGS


def test_forgetting_other_settings_returns_their_published_outputs(tmp_path: Path) -> None:
    old = Settings("plan-old", "key-a", "none")
    with Manifest(tmp_path / "m.sqlite", old) as earlier:
        earlier.record([(_written("s1", output="A/1.dcm"), Location("k1", 1, 1))])
    with Manifest(tmp_path / "m.sqlite", SETTINGS) as manifest:
        manifest.record([(_written("s2", output="B/2.dcm"), Location("k2", 1, 1))])
        assert manifest.forget_other_settings() == ["A/1.dcm"]
        assert [row[0] for row in manifest.rows()] == ["s2"]
    with Manifest(tmp_path / "m.sqlite", old) as earlier:
        assert earlier.status_at(Location("k1", 1, 1)) is None


def test_a_release_made_under_other_settings_is_refused_unless_replanned(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    with Manifest(path, SETTINGS) as manifest:
        manifest.check_settings(force_replan=False)  # a new manifest takes any settings
        manifest.end_run(manifest.begin_run("2024-01-01T00:00:00+00:00"), "2024-01-01T00:01:00+00:00", 0, {})
        manifest.check_settings(force_replan=False)
    other_key = Settings(SETTINGS.plan_digest, "key-b", SETTINGS.lookup_fingerprint)
    with Manifest(path, other_key) as manifest, pytest.raises(KeyMaterialError, match="different key"):
        manifest.check_settings(force_replan=False)
    other_plan = Settings("plan-b", SETTINGS.key_fingerprint, SETTINGS.lookup_fingerprint)
    with Manifest(path, other_plan) as manifest:
        with pytest.raises(ProfileError, match="profile, options or recipes"):
            manifest.check_settings(force_replan=False)
        manifest.check_settings(force_replan=True)


def test_the_row_of_an_input_quarantined_unread_goes_when_its_location_is_read(tmp_path: Path) -> None:
    where = Location("k1", 0, 0)
    unread = Outcome("path-k1", 0, Disposition.QUARANTINED, reason="source-failed:http-503")
    with Manifest(tmp_path / "m.sqlite", SETTINGS) as manifest:
        manifest.record([(unread, where), (Outcome("path-k2", 1, Disposition.QUARANTINED, reason="x"),
                                           Location("k2", 0, 0))])
        manifest.record([(_written("s1"), where)])
        assert [row[0] for row in manifest.rows()] == ["s1", "path-k2"]
        assert manifest.counts() == {"quarantined": 1, "written": 1}
