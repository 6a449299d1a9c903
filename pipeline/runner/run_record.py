"""The run record (``<release>.run.json`` beside the release).

The run record says how a release was made: profile, options, recipe digests, package
versions, the key's fingerprint (never the key), counts by disposition, times and exit
status. It names no file and no value.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from pipeline.errors import InputError
from pipeline.files import Beside, beside, write_atomically

PACKAGES = (
    "deid-pipeline", "pydicom", "deid", "dask", "distributed", "numpy", "pylibjpeg",
    "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle", "tqdm",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a release depends on ("absent" when missing)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything run.json holds: settings and counts, never a path or a value."""

    profile: str
    options: tuple[str, ...]
    recipes: tuple[tuple[str, str], ...]
    plan_digest: str
    key_fingerprint: str
    lookup_fingerprint: str
    executor: str  # "serial", "local-cluster" or "scheduler"
    workers: int
    batch_size: int
    started: str
    ended: str
    exit_status: int
    completed: bool
    processed: dict[str, int]  # this run's outcomes by disposition
    unchanged: dict[str, int]  # inputs a previous run had done, by disposition
    manifest: dict[str, int]  # every row of the manifest by status
    summary: dict[str, int]  # inputs seen, published, quarantined, skipped, duplicates, release files (tally.py)
    packages: dict[str, str] = field(default_factory=package_versions)
    pixel_mode: str = "off"  # how burned-in text was cleaned: off, rules or ocr
    max_cleaned_fraction: float | None = None  # pixel mode ocr: the review bound (verify checks it)


def run_record_path(release: Path) -> Path:
    """Where the run record of `release` lives: ``<release>.run.json`` beside it."""
    return beside(release, Beside.RUN_RECORD)


@dataclass(frozen=True, slots=True)
class RecordedSettings:
    """What a run record says a release was made with: the profile and its options."""

    profile: str
    options: tuple[str, ...]


def read_recorded_settings(path: Path) -> RecordedSettings:
    """The profile and options of the run record at `path`; an unreadable or malformed record
    is an `InputError` (a release must not be verified against a guess)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        profile, options = data["profile"], data["options"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise InputError("the run record beside the release is unreadable") from None
    if not isinstance(profile, str) or not isinstance(options, list) or \
            not all(isinstance(o, str) for o in options):
        raise InputError("the run record beside the release does not hold a profile and a list of options")
    return RecordedSettings(profile, tuple(options))


@dataclass(frozen=True, slots=True)
class RecordedPixels:
    """How a run record says pixels were cleaned: the pixel mode and, with ocr, the bound on
    the share of an image's pixels cleaning may change."""

    mode: str = "off"
    max_cleaned_fraction: float | None = None


def read_recorded_pixels(path: Path) -> RecordedPixels:
    """The pixel settings of the run record at `path` ("off" for a record written before they
    were recorded); a malformed record is an `InputError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        mode, bound = data.get("pixel_mode", "off"), data.get("max_cleaned_fraction")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        raise InputError("the run record beside the release is unreadable") from None
    if mode not in ("off", "rules", "ocr") or not (bound is None or isinstance(bound, (int, float))):
        raise InputError("the run record beside the release holds no valid pixel settings")
    return RecordedPixels(mode, None if bound is None else float(bound))


def write_run_record(path: Path, record: RunRecord) -> None:
    """Write run.json atomically (a rerun replaces it)."""
    text = json.dumps(asdict(record), indent=2, sort_keys=True) + "\n"
    write_atomically(text.encode("utf-8"), path)
