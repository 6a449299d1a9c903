"""Verify a whole release, on Dask or in this process: every file with `verify_bytes`, paired
with its original (by the SOP Instance UID remapped under the key) when the originals are given.
The options are the release's (`pipeline.runner.verify_options`), or, when None, each file's
declared ones.

Findings name files by release-relative path, never by a value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import pydicom

from pipeline.files import Beside, beside
from pipeline.runner.cluster import map_batches
from pipeline.runner.run_record import read_recorded_pixels, run_record_path
from pipeline.runner.verify_options import declared_options
from pipeline.scrub.keys import Keys
from pipeline.scrub.uids import remap_uid
from pipeline.verify.checks import verify_bytes
from pipeline.verify.findings import Finding, Severity
from pipeline.verify.pixel_text import text_findings
from pipeline.verify.pixels import PixelBound, says_no_burned_in_text


def _ignore(message: str) -> None:
    del message


class CommandRule(StrEnum):
    """Findings the command makes itself, around verify_bytes."""

    ORIGINAL_NOT_FOUND = "original-not-found"
    UNREADABLE = "file-unreadable"


def release_files(root: Path, skip: Path | None = None) -> Iterator[Path]:
    """Every regular file under `root`, sorted, hidden files and `skip` left out."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and (skip is None or path.resolve() != skip):
            yield path


def sop_instance_uid(path: Path) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"], force=True)
            value = ds.get("SOPInstanceUID")
        except Exception:
            return None
    return str(value).strip("\x00 ") if value else None


def index_originals(inputs: list[Path], keys: Keys | None, as_is: bool = False,
                    release: Path | None = None) -> dict[str, Path]:
    """Output SOP Instance UID -> original file: remapped under `keys`, or as is when None; with
    `as_is`, also by the original UID (files that declare Retain UIDs keep it). Inputs that share a
    SOP Instance UID (one published, the others quarantined as duplicate-sop-instance) are told apart
    by the `release`'s manifest: the one whose content (SHA-256) it recorded as written is paired."""
    index: dict[str, Path] = {}
    for root in inputs:
        candidates = [root] if root.is_file() else list(release_files(root))
        for path in candidates:
            uid = sop_instance_uid(path)
            if uid:
                new = remap_uid(uid, keys) if keys is not None else uid
                if new in index and index[new] != path:
                    written = _written_sources(release)
                    if _sha256(index[new]) in written or _sha256(path) not in written:
                        continue
                index[new] = path
                if as_is and keys is not None:
                    index.setdefault(uid, path)
    return index


@functools.cache
def _written_sources(release: Path | None) -> frozenset[str]:
    """The content digests (manifest ``source_id``) of the inputs the release's manifest records as
    written; empty without a release or a readable manifest."""
    if release is None:
        return frozenset()
    path = beside(release, Beside.MANIFEST)
    if not path.is_file():
        return frozenset()
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            return frozenset(row[0] for row in db.execute("SELECT source_id FROM inputs WHERE status = 'written'"))
    except sqlite3.Error:
        return frozenset()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


VERIFY_BATCH = 64


def pixel_bound(release: Path) -> PixelBound:
    """What verify checks of a release's cleaned pixels, from its run record
    (`pipeline.verify.pixels`): with pixel mode ocr, the run's bound and a re-reading of the
    cleaned places; otherwise (or without a record) the verifier's ceiling only."""
    record = run_record_path(release)
    if not record.is_file():
        return PixelBound()
    pixels = read_recorded_pixels(record)
    if pixels.mode != "ocr":
        return PixelBound()
    return PixelBound(pixels.max_cleaned_fraction, reread=True)


def verify_release(release: Path, options: tuple[str, ...] | None, originals: dict[str, Path] | None,
                   skip: Path | None = None, ocr: bool = False, workers: int | None = 0,
                   scheduler: str | None = None,
                   announce: Callable[[str], None] = _ignore,
                   pixels: PixelBound | None = None) -> tuple[int, list[Finding]]:
    """Verify every file of `release` (on Dask unless `workers` is 0) with `options`, or each with
    the options it declares when None; return (files checked, findings with release-relative files).
    `pixels`: the pixel checks (default: `pixel_bound` of the release's run record)."""
    bound = pixel_bound(release) if pixels is None else pixels

    def batches() -> Iterator[tuple[Any, ...]]:
        paths = list(itertools.islice(files, VERIFY_BATCH))
        while paths:
            pairs = None if originals is None else {p: originals.get(sop_instance_uid(p) or "") for p in paths}
            yield release, tuple(paths), options, originals is not None, pairs, ocr, bound
            paths = list(itertools.islice(files, VERIFY_BATCH))

    files = release_files(release, skip)
    count, findings = 0, []
    for checked, found in map_batches(verify_files, batches(), workers, scheduler,
                                      announce):
        count += checked
        findings.extend(found)
    findings.sort(key=lambda f: (f.file, str(f.rule), f.path))
    return count, findings


def verify_files(release: Path, paths: tuple[Path, ...], options: tuple[str, ...] | None, with_originals: bool,
                 originals: dict[Path, Path | None] | None, ocr: bool,
                 pixels: PixelBound | None = None) -> tuple[int, list[Finding]]:
    """Verify some files of a release (one Dask task); originals: release file -> its original;
    options None: each file's declared ones. Without originals, in a release made with OCR
    (`pixels.reread`), every image that says BurnedInAnnotation NO is read whole by tesseract
    (`text_findings`), as `ocr` reads every image: the claim is checked."""
    findings: list[Finding] = []
    count = 0
    for path in paths:
        count += 1
        relative = path.relative_to(release).as_posix()
        try:
            data = path.read_bytes()
        except OSError:
            findings.append(Finding(CommandRule.UNREADABLE, "file", Severity.HIGH, relative))
            continue
        original: bytes | None = None
        if with_originals:
            source = (originals or {}).get(path)
            if source is None:
                findings.append(Finding(CommandRule.ORIGINAL_NOT_FOUND, "file", Severity.MEDIUM, relative))
            else:
                original = source.read_bytes()
        chosen = options if options is not None else declared_options(data)
        for finding in verify_bytes(data, chosen, original, relative, pixels):
            findings.append(dataclasses.replace(finding, file=relative))
        if ocr or (not with_originals and pixels is not None and pixels.reread and says_no_burned_in_text(data)):
            findings.extend(text_findings(data, relative))
    return count, findings

