"""``deid-pipeline scan DIR``: judge a release someone else made, without originals.

Prints counts only, never a value; ``--json`` writes the findings, ``--report`` report.json and
report.html. The census of the values seen in the tree is confidential and opt-in: with
``--census`` those files also hold it, open with a line saying they may hold identifying values
(`pipeline.report.build.CENSUS_WARNING`) and are created owner-only. Exit 0 unless a HIGH finding.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pipeline.cli.common import EXIT_FINDINGS, EXIT_OK, Subparsers, print_table, table, write_json
from pipeline.errors import InputError
from pipeline.files import write_atomically
from pipeline.pixels.ocr import require as require_ocr
from pipeline.report.build import CENSUS_WARNING, PRIVATE_MODE, report_json, scan_report, thumbnail, write_reports
from pipeline.runner.verify_release import release_files
from pipeline.scan.tree import ScanReport, scan_tree
from pipeline.verify.pixel_text import text_findings


def _cmd_scan(args: argparse.Namespace) -> int:
    root: Path = args.directory
    if not root.is_dir():
        raise InputError("the directory to scan does not exist")
    report = scan_tree(root)
    if args.ocr:
        require_ocr()
        pixel_findings = [f for path in release_files(root, None)
                          for f in text_findings(path, path.relative_to(root).as_posix())]
        report = dataclasses.replace(report, findings=report.findings + tuple(pixel_findings))
    print(f"scanned {report.files} file(s), {report.dicom_files} DICOM; {len(report.findings)} finding(s)")
    print_table(list(report.findings))
    if args.json is not None:
        content: dict[str, object] = {
            "command": "scan", "files": report.files, "dicom_files": report.dicom_files,
            "counts": [{"rule": r, "severity": s, "count": n} for r, s, n in table(list(report.findings))],
            "findings": [f.as_dict() for f in report.findings],
        }
        if not args.census:
            write_json(args.json, content)
        else:
            content["warning"] = CENSUS_WARNING
            content["census"] = {"note": "holds values of the release: for the HTML report, not for logs",
                                 "entries": _census(report)}
            args.json.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(report_json(content).encode("utf-8"), args.json, PRIVATE_MODE)
    if args.report is not None:
        _write_scan_report(root, report, args.report, args.census)
    return EXIT_FINDINGS if report.has_high else EXIT_OK


def _census(report: ScanReport) -> list[dict[str, object]]:
    return [{"keyword": e.keyword, "value": e.value, "files": e.files, "rare": e.rare} for e in report.census]


def _write_scan_report(root: Path, report: ScanReport, directory: Path, census: bool) -> None:
    """report.json and report.html, with thumbnails of the images flagged for their pixels (and
    the census when asked: then owner-only)."""
    flagged = sorted({f.file for f in report.findings if f.rule in _PIXEL_RULES})
    thumbnails = {name: uri for name in flagged if (uri := thumbnail(root / name)) is not None}
    content = scan_report(report.files, report.dicom_files, [f.as_dict() for f in report.findings],
                          _census(report) if census else None)
    json_path, html_path = write_reports(content, directory, thumbnails)
    print(f"wrote {json_path} and {html_path}")


_PIXEL_RULES = frozenset({"burned-in-annotation", "text-in-pixels"})



def register(sub: Subparsers) -> None:
    scan = sub.add_parser("scan", help="look for identifying data in a published release")
    scan.add_argument("directory", type=Path)
    scan.add_argument("--json", type=Path, default=None, metavar="FILE", help="write report.json here")
    scan.add_argument("--ocr", action="store_true",
                      help="also read every image with tesseract and flag images whose pixels carry text")
    scan.add_argument("--report", type=Path, default=None, metavar="DIR",
                      help="write report.json and report.html (with thumbnails of flagged images) here")
    scan.add_argument("--census", action="store_true",
                      help="also write the census of values seen (identifying: the files are made owner-only)")
    scan.set_defaults(handler=_cmd_scan)
