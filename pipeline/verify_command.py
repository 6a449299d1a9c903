"""The `verify` and `scan` commands: check a release, print counts, write report.json.

    deid-pipeline verify RELEASE [--originals INPUT...] [--option NAME]... [--key-file K] [--json FILE]
    deid-pipeline scan DIR [--json FILE]

`verify` checks every file of a release with `pipeline.verify.verify_bytes`. With originals,
each output is paired with its input through the SOP Instance UID: the original's UID remapped
under the key (or the same UID with Retain UIDs). `scan` judges a release without originals.
Both print counts and release-relative paths only, never a value; `--json` writes the findings
(and, for scan, the census of values, marked as such) to a file. Exit codes: 0 clean, 1
findings (for scan: a HIGH finding), 2 usage, profile or key error.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import pydicom

from pipeline.cli import EXIT_FINDINGS, EXIT_OK, EXTRA_COMMANDS
from pipeline.cluster import map_batches
from pipeline.errors import InputError
from pipeline.findings import Finding, Severity
from pipeline.keys import Keys, load_keys
from pipeline.ocr import require as require_ocr
from pipeline.pixel_text import text_findings
from pipeline.scan import ScanReport, scan_tree
from pipeline.uids import remap_uid
from pipeline.verify import VerifyRule, normalise_options, verify_bytes

MAX_LISTED_FILES = 50


class CommandRule(StrEnum):
    """Findings the command makes itself, around verify_bytes."""

    ORIGINAL_NOT_FOUND = "original-not-found"
    UNREADABLE = "file-unreadable"


def _files(root: Path, skip: Path | None = None) -> Iterator[Path]:
    """Every regular file under `root`, sorted, hidden files and `skip` left out."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and (skip is None or path.resolve() != skip):
            yield path


def _sop_instance_uid(path: Path) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"], force=True)
            value = ds.get("SOPInstanceUID")
        except Exception:
            return None
    return str(value).strip("\x00 ") if value else None


def index_originals(inputs: list[Path], keys: Keys | None) -> dict[str, Path]:
    """Output SOP Instance UID -> original file: remapped under `keys`, or as is when None."""
    index: dict[str, Path] = {}
    for root in inputs:
        candidates = [root] if root.is_file() else list(_files(root))
        for path in candidates:
            uid = _sop_instance_uid(path)
            if uid:
                index[remap_uid(uid, keys) if keys is not None else uid] = path
    return index


VERIFY_BATCH = 64


def verify_release(release: Path, options: tuple[str, ...], originals: dict[str, Path] | None,
                   skip: Path | None = None, ocr: bool = False, workers: int | None = 0,
                   scheduler: str | None = None) -> tuple[int, list[Finding]]:
    """Verify every file of `release` (on Dask unless `workers` is 0); return (files checked,
    findings with release-relative files)."""
    def batches() -> Iterator[tuple[Any, ...]]:
        paths = list(itertools.islice(files, VERIFY_BATCH))
        while paths:
            pairs = None if originals is None else {p: originals.get(_sop_instance_uid(p) or "") for p in paths}
            yield release, tuple(paths), options, originals is not None, pairs, ocr
            paths = list(itertools.islice(files, VERIFY_BATCH))

    files = _files(release, skip)
    count, findings = 0, []
    for checked, found in map_batches(verify_files, batches(), workers, scheduler,
                                      lambda message: print(message, file=sys.stderr)):
        count += checked
        findings.extend(found)
    findings.sort(key=lambda f: (f.file, str(f.rule), f.path))
    return count, findings


def verify_files(release: Path, paths: tuple[Path, ...], options: tuple[str, ...], with_originals: bool,
                 originals: dict[Path, Path | None] | None, ocr: bool) -> tuple[int, list[Finding]]:
    """Verify some files of a release (one Dask task); originals: release file -> its original."""
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
        for finding in verify_bytes(data, options, original, relative):
            findings.append(dataclasses.replace(finding, file=relative))
        if ocr:
            findings.extend(text_findings(path, relative))
    return count, findings


def _table(findings: list[Finding]) -> list[tuple[str, str, int]]:
    counts = Counter((str(f.rule), f.severity) for f in findings)
    return [(rule, severity.value, n) for (rule, severity), n in
            sorted(counts.items(), key=lambda item: (item[0][1].rank, item[0][0]))]


def _print_table(findings: list[Finding]) -> None:
    if not findings:
        return
    print(f"{'rule':<32} {'severity':<8} {'count':>7}")
    for rule, severity, count in _table(findings):
        print(f"{rule:<32} {severity:<8} {count:>7}")


def _write_json(path: Path, report: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _cmd_verify(args: argparse.Namespace) -> int:
    release: Path = args.release
    if not release.is_dir():
        raise InputError("the release is not a directory")
    options = normalise_options(args.option)
    originals: dict[str, Path] | None = None
    if args.originals:
        keys = None if "retain-uids" in options else load_keys(args.key_file)
        originals = index_originals(args.originals, keys)
    skip = args.json.resolve() if args.json is not None else None
    if args.ocr:
        require_ocr()
    count, findings = verify_release(release, options, originals, skip, args.ocr, args.workers, args.scheduler)
    flagged = sorted({f.file for f in findings})
    print(f"verified {count} file(s) with options: {', '.join(options) or 'none'}; "
          f"{len(flagged)} with findings")
    _print_table(findings)
    withheld = {f.file for f in findings if f.rule == VerifyRule.VALUE_IN_PATH}
    for file in flagged[:MAX_LISTED_FILES]:
        rules = sorted({str(f.rule) for f in findings if f.file == file})
        print(f"  {'<path withheld: it holds an original value>' if file in withheld else file}: {', '.join(rules)}")
    if len(flagged) > MAX_LISTED_FILES:
        print(f"  ... and {len(flagged) - MAX_LISTED_FILES} more (see --json)")
    if args.json is not None:
        _write_json(args.json, {
            "command": "verify", "files": count, "options": list(options), "with_originals": originals is not None,
            "counts": [{"rule": r, "severity": s, "count": n} for r, s, n in _table(findings)],
            "findings": [f.as_dict() for f in findings],
        })
    return EXIT_FINDINGS if findings else EXIT_OK


def _cmd_scan(args: argparse.Namespace) -> int:
    root: Path = args.directory
    if not root.is_dir():
        raise InputError("the directory to scan does not exist")
    report = scan_tree(root)
    if args.ocr:
        require_ocr()
        pixel_findings = [f for path in _files(root, None)
                          for f in text_findings(path, path.relative_to(root).as_posix())]
        report = dataclasses.replace(report, findings=report.findings + tuple(pixel_findings))
    print(f"scanned {report.files} file(s), {report.dicom_files} DICOM; {len(report.findings)} finding(s)")
    _print_table(list(report.findings))
    if args.json is not None:
        _write_json(args.json, {
            "command": "scan", "files": report.files, "dicom_files": report.dicom_files,
            "counts": [{"rule": r, "severity": s, "count": n} for r, s, n in _table(list(report.findings))],
            "findings": [f.as_dict() for f in report.findings],
            "census": {
                "note": "holds values of the release: for the HTML report, not for logs",
                "entries": [{"keyword": e.keyword, "value": e.value, "files": e.files, "rare": e.rare}
                            for e in report.census],
            },
        })
    if args.report is not None:
        _write_scan_report(root, report, args.report)
    return EXIT_FINDINGS if report.has_high else EXIT_OK


def _write_scan_report(root: Path, report: ScanReport, directory: Path) -> None:
    """report.json and report.html, with thumbnails of the images flagged for their pixels."""
    from pipeline.report import scan_report, thumbnail, write_reports

    flagged = sorted({f.file for f in report.findings if f.rule in _PIXEL_RULES})
    thumbnails = {name: uri for name in flagged if (uri := thumbnail(root / name)) is not None}
    content = scan_report(
        report.files, report.dicom_files, [f.as_dict() for f in report.findings],
        [{"keyword": e.keyword, "value": e.value, "files": e.files, "rare": e.rare} for e in report.census],
    )
    json_path, html_path = write_reports(content, directory, thumbnails)
    print(f"wrote {json_path} and {html_path}")


_PIXEL_RULES = frozenset({"burned-in-annotation", "text-in-pixels"})


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `verify` and `scan` subcommands to the CLI."""
    verify = sub.add_parser("verify", help="check a release against the profile (and its originals)")
    verify.add_argument("release", type=Path)
    verify.add_argument("--originals", nargs="+", type=Path, default=[], metavar="INPUT",
                        help="the input files or folders the release was made from")
    verify.add_argument("--option", action="append", default=[], metavar="NAME",
                        help="a PS3.15 option the release was made with (repeatable)")
    verify.add_argument("--key-file", type=Path, default=None,
                        help="the run's key, to pair outputs with originals (default: $DEID_PIPELINE_KEY_FILE)")
    verify.add_argument("--json", type=Path, default=None, metavar="FILE", help="write report.json here")
    verify.add_argument("--workers", type=int, default=None, metavar="N",
                        help="local Dask worker processes (default: one per core; 0: in this process)")
    verify.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="verify on the Dask scheduler at ADDRESS (e.g. tcp://host:8786)")
    verify.add_argument("--ocr", action="store_true",
                        help="also read every image with tesseract: readable text left in pixels is a finding")
    verify.set_defaults(handler=_cmd_verify)

    scan = sub.add_parser("scan", help="look for identifying data in a published release")
    scan.add_argument("directory", type=Path)
    scan.add_argument("--json", type=Path, default=None, metavar="FILE", help="write report.json here")
    scan.add_argument("--ocr", action="store_true",
                      help="also read every image with tesseract and flag images whose pixels carry text")
    scan.add_argument("--report", type=Path, default=None, metavar="DIR",
                      help="write report.json and report.html (with thumbnails of flagged images) here")
    scan.set_defaults(handler=_cmd_scan)


EXTRA_COMMANDS.append(register)
