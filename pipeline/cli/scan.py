"""``deid-pipeline scan SOURCE``: judge a release someone else made, without originals.

SOURCE is a folder, an fsspec URL (``s3://bucket/prefix``, ``file://...``) or a DICOMweb server
(``dicomweb+https://host/prefix``, with ``--study UID`` and ``--query KEY=VALUE`` filters); the
instances stream one at a time to the same checks (pipeline/runner/sources.py says how each is
listed, and how its credentials are found: never on the command line). ``--sample N`` checks the
first N instances in listing order, and the reports list them by key.

Prints counts only, never a value; ``--json`` writes the findings, ``--report`` report.json and
report.html. The census of the values seen in the tree is confidential and opt-in: with
``--census`` those files also hold it, open with a line saying they may hold identifying values
(`pipeline.report.build.CENSUS_WARNING`) and are created owner-only. Exit 0 unless a HIGH finding.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from pipeline.cli.common import EXIT_FINDINGS, EXIT_OK, Subparsers, print_table, table, write_json
from pipeline.errors import InputError
from pipeline.files import write_atomically
from pipeline.pixels.ocr import require as require_ocr
from pipeline.report.build import CENSUS_WARNING, PRIVATE_MODE, report_json, scan_report, thumbnail, write_reports
from pipeline.runner.sources import Instance, Source, SourceKind, iter_instances, parse_source
from pipeline.scan.tree import ScanReport, scan_instances
from pipeline.verify.findings import Finding
from pipeline.verify.pixel_text import text_findings


def _cmd_scan(args: argparse.Namespace) -> int:
    source = parse_source(args.source, tuple(args.study), tuple(query_pair(q) for q in args.query))
    if args.ocr:
        require_ocr()
    sampled: list[str] = []
    pixel_findings: list[Finding] = []

    def stream() -> Iterator[tuple[str, bytes]]:
        instance: Instance
        for instance in iter_instances(source, args.sample):
            sampled.append(instance.key)
            if args.ocr:
                pixel_findings.extend(text_findings(instance.data, instance.key))
            yield instance.key, instance.data

    report = scan_instances(stream())
    report = dataclasses.replace(report, findings=report.findings + tuple(pixel_findings))
    listed = sampled if args.sample is not None else None
    print(f"scanned {report.files} file(s), {report.dicom_files} DICOM; {len(report.findings)} finding(s)")
    if listed is not None:
        print(f"sampled the first {len(listed)} instance(s) in listing order (listed by key in --json and --report)")
    print_table(list(report.findings))
    if args.json is not None:
        content: dict[str, object] = {
            "command": "scan", "files": report.files, "dicom_files": report.dicom_files,
            "counts": [{"rule": r, "severity": s, "count": n} for r, s, n in table(list(report.findings))],
            "findings": [f.as_dict() for f in report.findings],
        }
        if listed is not None:
            content["sampled"] = listed
        if not args.census:
            write_json(args.json, content)
        else:
            content["warning"] = CENSUS_WARNING
            content["census"] = {"note": "holds values of the release: for the HTML report, not for logs",
                                 "entries": _census(report)}
            args.json.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(report_json(content).encode("utf-8"), args.json, PRIVATE_MODE)
    if args.report is not None:
        _write_scan_report(source, report, args.report, args.census, listed)
    return EXIT_FINDINGS if report.has_high else EXIT_OK


def query_pair(text: str) -> tuple[str, str]:
    """KEY=VALUE of --query as (KEY, VALUE)."""
    key, equals, value = text.partition("=")
    if not key or not equals:
        raise InputError("--query takes KEY=VALUE (a QIDO-RS attribute keyword or tag, and the value to match)")
    return key, value


def _census(report: ScanReport) -> list[dict[str, object]]:
    return [{"keyword": e.keyword, "value": e.value, "files": e.files, "rare": e.rare} for e in report.census]


def _write_scan_report(source: Source, report: ScanReport, directory: Path, census: bool,
                       sampled: list[str] | None) -> None:
    """report.json and report.html, with thumbnails of the images flagged for their pixels when
    the source is a folder (and the census when asked: then owner-only)."""
    flagged = sorted({f.file for f in report.findings if f.rule in _PIXEL_RULES})
    root = Path(source.location)
    thumbnails = ({name: uri for name in flagged if (uri := thumbnail(root / name)) is not None}
                  if source.kind is SourceKind.FOLDER else {})
    content = scan_report(report.files, report.dicom_files, [f.as_dict() for f in report.findings],
                          _census(report) if census else None, sampled)
    json_path, html_path = write_reports(content, directory, thumbnails)
    print(f"wrote {json_path} and {html_path}")


_PIXEL_RULES = frozenset({"burned-in-annotation", "text-in-pixels"})


def register(sub: Subparsers) -> None:
    scan = sub.add_parser("scan", help="look for identifying data in a published release (folder, bucket, DICOMweb)")
    scan.add_argument("source", metavar="SOURCE",
                      help="a folder, an fsspec URL (s3://bucket/prefix, file://...) or a DICOMweb server "
                      "(dicomweb+https://host/prefix); credentials from the environment, never here")
    scan.add_argument("--sample", type=int, default=None, metavar="N",
                      help="check only the first N instances in listing order (the reports list them)")
    scan.add_argument("--study", action="append", default=[], metavar="UID",
                      help="DICOMweb: scan this study only (repeatable)")
    scan.add_argument("--query", action="append", default=[], metavar="KEY=VALUE",
                      help="DICOMweb: a QIDO-RS filter, e.g. Modality=CT (repeatable)")
    scan.add_argument("--json", type=Path, default=None, metavar="FILE", help="write report.json here")
    scan.add_argument("--ocr", action="store_true",
                      help="also read every image with tesseract and flag images whose pixels carry text")
    scan.add_argument("--report", type=Path, default=None, metavar="DIR",
                      help="write report.json and report.html (with thumbnails of flagged images) here")
    scan.add_argument("--census", action="store_true",
                      help="also write the census of values seen (identifying: the files are made owner-only)")
    scan.set_defaults(handler=_cmd_scan)
