"""``deid-pipeline scan DIR``: judge a release someone else made, without originals.

Prints counts only, never a value; ``--json`` writes the findings and the census of values
(marked as such); ``--report`` writes report.json and report.html. Exit 0 unless a HIGH finding.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pipeline.cli.common import EXIT_FINDINGS, EXIT_OK, Subparsers, print_table, table, write_json
from pipeline.errors import InputError
from pipeline.pixels.ocr import require as require_ocr
from pipeline.report.build import scan_report, thumbnail, write_reports
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
        write_json(args.json, {
            "command": "scan", "files": report.files, "dicom_files": report.dicom_files,
            "counts": [{"rule": r, "severity": s, "count": n} for r, s, n in table(list(report.findings))],
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
    flagged = sorted({f.file for f in report.findings if f.rule in _PIXEL_RULES})
    thumbnails = {name: uri for name in flagged if (uri := thumbnail(root / name)) is not None}
    content = scan_report(
        report.files, report.dicom_files, [f.as_dict() for f in report.findings],
        [{"keyword": e.keyword, "value": e.value, "files": e.files, "rare": e.rare} for e in report.census],
    )
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
    scan.set_defaults(handler=_cmd_scan)
