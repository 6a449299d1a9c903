"""The manifest: one SQLite row per input, so a rerun resumes instead of starting over.

Tables (WAL journal; one transaction per batch; only the client process writes):

``inputs``
    one row per input *content* (``source_id``, its SHA-256): run-relative index, status
    (a `Disposition`), release-relative output, reason code, scrub summary (JSON of action
    counts), the settings it was made under, and when.
``locations``
    what lets a rerun skip an unchanged file without reading it: a keyed digest of its
    path (`pipeline.runner.discover.location_key`, never the path), its size and mtime, and the
    content it held.
``runs``
    one row per run: start and end, exit status, counts, and the `Settings` of the release
    (plan digest, key fingerprint, lookup fingerprint).

A `Manifest` is opened under the `Settings` of the run that uses it and owns them from then on:
every row it records or looks up is under those settings. A release is made under one
`Settings`: a run under other settings is refused (`check_settings`) unless it forgets what
was made before (`forget_other_settings`, for ``--force-replan``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import InputError, KeyMaterialError, ProfileError
from pipeline.profile.plan import PixelMode, Plan
from pipeline.runner.outcome import Disposition, Outcome
from pipeline.scrub.keys import Keys

SCHEMA_VERSION = 2
# Columns added since version 1: what the audit message lists of a published file.
_ADDED_IN_2 = ("patient_id", "study_uid", "sop_class")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inputs (
    source_id TEXT PRIMARY KEY,
    run_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    output TEXT,
    reason TEXT,
    summary TEXT NOT NULL,
    plan_digest TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    lookup_fingerprint TEXT NOT NULL,
    updated TEXT NOT NULL,
    patient_id TEXT,
    study_uid TEXT,
    sop_class TEXT
);
CREATE TABLE IF NOT EXISTS locations (
    path_key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    source_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS locations_source ON locations (source_id);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    ended TEXT,
    exit_status INTEGER,
    plan_digest TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    lookup_fingerprint TEXT NOT NULL,
    counts TEXT
);
"""


@dataclass(frozen=True, slots=True)
class Settings:
    """What a release's outputs depend on besides the inputs: the plan and the key."""

    plan_digest: str
    key_fingerprint: str
    lookup_fingerprint: str

    def differences(self, other: Settings) -> tuple[str, ...]:
        """Names of what differs, for a message: never the values."""
        names = []
        if self.plan_digest != other.plan_digest:
            names.append("profile, options or recipes")
        if self.key_fingerprint != other.key_fingerprint:
            names.append("key")
        if self.lookup_fingerprint != other.lookup_fingerprint:
            names.append("lookup table")
        return tuple(names)


@dataclass(frozen=True, slots=True)
class Location:
    """An input's location as the manifest knows it: keyed path digest, size, mtime."""

    key: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Known:
    """What the manifest knows of the content last seen at an unchanged location."""

    status: Disposition
    source_id: str
    output: str | None
    reason: str | None


def plan_digest(plan: Plan) -> str:
    """SHA-256 over the profile, the options, the pixel mode (with ocr, its review bound) and every
    recipe's digest, in layer order."""
    settings: dict[str, object] = {"profile": plan.profile, "options": [o.value for o in plan.options],
                                   "recipes": list(plan.recipes), "pixel_mode": plan.pixel_mode.value}
    if plan.pixel_mode is PixelMode.OCR:
        settings["max_cleaned_fraction"] = plan.max_cleaned_fraction
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lookup_fingerprint(keys: Keys) -> str:
    """A keyed digest of the lookup table (empty table: "none"): detects a changed table
    without recording its contents."""
    if not keys.lookup:
        return "none"
    text = json.dumps(sorted(keys.lookup.items()))
    return keys.derive("lookup-table", text).hex()[:16]


def settings_of(plan: Plan, keys: Keys) -> Settings:
    return Settings(plan_digest(plan), keys.fingerprint, lookup_fingerprint(keys))


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Manifest:
    """The SQLite manifest of one release, as seen by a run under `settings`. Use as a context
    manager."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.settings = settings
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, 1, SCHEMA_VERSION):
                raise InputError(f"the manifest has schema version {version}; this version reads {SCHEMA_VERSION}")
            self._db.executescript(_SCHEMA)
            if version == 1:  # a release made before the audit message: its rows lack what it lists
                for column in _ADDED_IN_2:
                    self._db.execute(f"ALTER TABLE inputs ADD COLUMN {column} TEXT")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise InputError(f"cannot open the manifest ({type(exc).__name__})") from None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the manifest, left in rollback-journal mode: a reader after the run (the report's
        read-only connection) then makes no ``-wal`` and ``-shm`` files that, read-only, it could not
        remove (the next run turns WAL on again). Another connection still open keeps WAL on."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA journal_mode=DELETE")  # checkpoints, then removes the WAL
        self._db.close()

    # --- the release's settings ---------------------------------------------------------

    def release_settings(self) -> Settings | None:
        """The settings of the latest run, or None for a new manifest."""
        row = self._db.execute(
            "SELECT plan_digest, key_fingerprint, lookup_fingerprint FROM runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else Settings(*row)

    def check_settings(self, force_replan: bool) -> None:
        """Refuse (`KeyMaterialError` when only the key or lookup table changed, else
        `ProfileError`) a release whose latest run had other settings, unless `force_replan`."""
        made_with = self.release_settings()
        if made_with is None or made_with == self.settings or force_replan:
            return
        changed = self.settings.differences(made_with)
        message = (f"the release was made with a different {' and '.join(changed)}: rerun with the same settings, "
                   "or pass --force-replan to remove its outputs and redo every input")
        if set(changed) <= {"key", "lookup table"}:
            raise KeyMaterialError(message)
        raise ProfileError(message)

    def stale_outputs(self) -> list[str]:
        """The outputs published under other settings (what `forget_other_settings` would drop)."""
        return [row[0] for row in self._db.execute(
            "SELECT output FROM inputs WHERE status = ? AND output IS NOT NULL AND NOT "
            "(plan_digest = ? AND key_fingerprint = ? AND lookup_fingerprint = ?)",
            (Disposition.WRITTEN.value, *self._settings_row()))]

    def forget_other_settings(self) -> list[str]:
        """Drop every row made under other settings; return the outputs they had published,
        which the caller removes from the release."""
        where = "NOT (plan_digest = ? AND key_fingerprint = ? AND lookup_fingerprint = ?)"
        params = self._settings_row()
        outputs = [row[0] for row in self._db.execute(
            f"SELECT output FROM inputs WHERE status = ? AND output IS NOT NULL AND {where}",
            (Disposition.WRITTEN.value, *params),
        )]
        with self._transaction():
            self._db.execute(
                f"DELETE FROM locations WHERE source_id IN (SELECT source_id FROM inputs WHERE {where})", params
            )
            self._db.execute(f"DELETE FROM inputs WHERE {where}", params)
        return outputs

    # --- runs ---------------------------------------------------------------------------

    def begin_run(self, started: str) -> int:
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO runs (started, plan_digest, key_fingerprint, lookup_fingerprint) VALUES (?, ?, ?, ?)",
                (started, *self._settings_row()),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def end_run(self, run_id: int, ended: str, exit_status: int, counts: dict[str, int]) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET ended = ?, exit_status = ?, counts = ? WHERE run_id = ?",
                (ended, exit_status, json.dumps(counts, sort_keys=True), run_id),
            )

    # --- inputs -------------------------------------------------------------------------

    def status_at(self, location: Location) -> Disposition | None:
        """The status of the content last seen at an unchanged location under these
        settings, or None when the file must be (re)read."""
        known = self.known_at(location)
        return None if known is None else known.status

    def known_at(self, location: Location) -> Known | None:
        """What is known of the content last seen at an unchanged location under these
        settings, or None when the file must be (re)read."""
        row = self._db.execute(
            "SELECT i.status, i.source_id, i.output, i.reason FROM locations l JOIN inputs i "
            "ON i.source_id = l.source_id WHERE l.path_key = ? AND l.size = ? AND l.mtime_ns = ? "
            "AND i.plan_digest = ? AND i.key_fingerprint = ? AND i.lookup_fingerprint = ?",
            (location.key, location.size, location.mtime_ns, *self._settings_row()),
        ).fetchone()
        return None if row is None else Known(Disposition(row[0]), *row[1:])

    def first_seen(self, key: str) -> bool:
        """True the first time this connection is given `key` (a `tally.seen_key`): kept in a
        temporary SQLite table rather than a Python set, so a run of millions of inputs stays flat."""
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY) WITHOUT ROWID")
        return self._db.execute("INSERT OR IGNORE INTO temp.seen (key) VALUES (?)", (key,)).rowcount == 1

    def record(self, results: Iterable[tuple[Outcome, Location]]) -> None:
        """Store a batch of outcomes, with where each input was found, in one transaction."""
        now = utc_now()
        with self._transaction():
            for outcome, location in results:
                self._db.execute(
                    "INSERT INTO inputs (source_id, run_index, status, output, reason, summary, plan_digest, "
                    "key_fingerprint, lookup_fingerprint, updated, patient_id, study_uid, sop_class) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (source_id) DO UPDATE SET run_index = excluded.run_index, "
                    "status = excluded.status, output = excluded.output, reason = excluded.reason, "
                    "summary = excluded.summary, plan_digest = excluded.plan_digest, "
                    "key_fingerprint = excluded.key_fingerprint, lookup_fingerprint = excluded.lookup_fingerprint, "
                    "updated = excluded.updated, patient_id = excluded.patient_id, "
                    "study_uid = excluded.study_uid, sop_class = excluded.sop_class",
                    (outcome.source_id, outcome.index, outcome.disposition.value, outcome.output, outcome.reason,
                     json.dumps(dict(outcome.actions), sort_keys=True), *self._settings_row(), now,
                     *(outcome.released or (None, None, None))),
                )
                # An input once quarantined unread (its row named "path-<location key>", process.unread_outcome)
                # and now read: that row described no content and goes, so it is not counted twice.
                self._db.execute(
                    "DELETE FROM inputs WHERE source_id LIKE 'path-%' AND source_id != ? AND source_id = "
                    "(SELECT source_id FROM locations WHERE path_key = ?)", (outcome.source_id, location.key))
                self._db.execute(
                    "INSERT INTO locations (path_key, size, mtime_ns, source_id) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (path_key) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                    "source_id = excluded.source_id",
                    (location.key, location.size, location.mtime_ns, outcome.source_id),
                )

    def counts(self) -> dict[str, int]:
        """Rows by status, over the whole manifest."""
        return {status: count for status, count in self._db.execute(
            "SELECT status, COUNT(*) FROM inputs GROUP BY status ORDER BY status")}

    def rows(self) -> list[tuple[str, int, str, str | None, str | None]]:
        """(source_id, index, status, output, reason) of every input, by index."""
        return list(self._db.execute(
            "SELECT source_id, run_index, status, output, reason FROM inputs ORDER BY run_index, source_id"))

    def released(self) -> Iterator[tuple[str, str, str]]:
        """(PatientID, StudyInstanceUID, SOPClassUID) of every published file under this
        manifest's settings, as written into the release; rows of releases made before the
        manifest recorded them are left out."""
        for row in self._db.execute(
            "SELECT patient_id, study_uid, sop_class FROM inputs WHERE status = ? AND study_uid IS NOT NULL "
            "AND plan_digest = ? AND key_fingerprint = ? AND lookup_fingerprint = ? ORDER BY study_uid",
            (Disposition.WRITTEN.value, *self._settings_row()),
        ):
            yield str(row[0] or ""), str(row[1]), str(row[2] or "")

    def _settings_row(self) -> tuple[str, str, str]:
        return self.settings.plan_digest, self.settings.key_fingerprint, self.settings.lookup_fingerprint

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


def quarantined_now(path: Path) -> dict[str, str]:
    """source_id -> reason code of every content the manifest at `path` holds as quarantined
    and still finds at some location (a file since replaced is not), read-only: for the
    report command."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT i.source_id, i.reason FROM inputs i WHERE i.status = ? AND EXISTS "
                              "(SELECT 1 FROM locations l WHERE l.source_id = i.source_id)",
                              (Disposition.QUARANTINED.value,)).fetchall()
    except sqlite3.Error as exc:
        raise InputError(f"cannot read the manifest ({type(exc).__name__})") from None
    return {str(source): str(reason or "") for source, reason in rows}


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
