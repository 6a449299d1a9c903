"""The run's secret: the pseudonymisation key and the optional research-ID lookup table.

The key comes from a file named on the command line or by the DEID_PIPELINE_KEY_FILE
environment variable; it is never written anywhere. Its fingerprint (a keyed digest that
cannot be turned back into the key) identifies it in run records.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import KeyMaterialError

KEY_FILE_ENV = "DEID_PIPELINE_KEY_FILE"
MIN_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Keys:
    """The secret key and the user's lookup table (original PatientID -> research ID)."""

    key: bytes = field(repr=False)
    lookup: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def fingerprint(self) -> str:
        """A digest that names the key in run records without revealing it."""
        return hmac.digest(self.key, b"deid-pipeline key fingerprint", "sha256").hex()[:16]

    def derive(self, purpose: str, value: str) -> bytes:
        """Keyed digest of `value` for one `purpose` (UIDs, patient IDs, date offsets)."""
        return derive(self.key, purpose, value)


def derive(key: bytes, purpose: str, value: str) -> bytes:
    """`Keys.derive` under the key `key` (for what is remembered by key and value)."""
    return hmac.digest(key, purpose.encode("ascii") + b"\x00" + value.encode("utf-8"), "sha256")


REMEMBERED = 4096  # pseudonyms remembered by key and original: a series repeats its UIDs and patient


def key_from_bytes(raw: bytes) -> bytes:
    """Return the key material in a key file's bytes, refusing a short key."""
    key = raw.strip()
    if len(key) < MIN_KEY_BYTES:
        raise KeyMaterialError(f"the key is too short: at least {MIN_KEY_BYTES} bytes are needed")
    return key


def load_keys(key_file: Path | None, lookup_csv: Path | None = None) -> Keys:
    """Read the key from `key_file` or, when None, from the file named by DEID_PIPELINE_KEY_FILE."""
    if key_file is None:
        env = os.environ.get(KEY_FILE_ENV)
        if not env:
            raise KeyMaterialError(f"no key: pass --key-file or set {KEY_FILE_ENV}")
        key_file = Path(env)
    try:
        mode = key_file.stat().st_mode
        raw = key_file.read_bytes()
    except OSError as exc:
        raise KeyMaterialError(f"cannot read the key file ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMaterialError("the key file is readable by other users: chmod 600 it")
    lookup = load_lookup(lookup_csv) if lookup_csv is not None else {}
    return Keys(key=key_from_bytes(raw), lookup=lookup)


def load_lookup(path: Path) -> dict[str, str]:
    """Read a CSV of original PatientID -> research ID (header: original,research)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyMaterialError(f"cannot read the lookup table: {type(exc).__name__}") from None
    if rows and [c.strip().lower() for c in rows[0]] == ["original", "research"]:
        rows = rows[1:]
    lookup: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise KeyMaterialError(f"lookup table line {number}: expected two non-empty columns")
        lookup[row[0].strip()] = row[1].strip()
    return lookup


def fingerprint_of_file(path: Path) -> str:
    """SHA-256 of a file's bytes (recipes, inputs): not for secrets."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
