"""deid-pipeline report: write report.json and report.html for a run, from its manifest.

    deid-pipeline report RELEASE [--manifest FILE] [--out DIR]

The manifest and run record are found beside the release, as `run` writes them; the
reports go to RELEASE.report/ unless --out says otherwise. Registered into
`pipeline.cli.EXTRA_COMMANDS` on import.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli import EXIT_OK, EXTRA_COMMANDS
from pipeline.errors import InputError
from pipeline.report import run_report, write_reports


def beside(release: Path, suffix: str) -> Path:
    """A path beside the release named after it (RELEASE.manifest.sqlite, RELEASE.report)."""
    resolved = release.resolve()
    return resolved.with_name(resolved.name + suffix)


def _cmd_report(args: argparse.Namespace) -> int:
    release: Path = args.release
    manifest: Path = args.manifest or beside(release, ".manifest.sqlite")
    if not manifest.is_file():
        raise InputError("no manifest beside the release: run `deid-pipeline run` first or pass --manifest")
    report = run_report(manifest, beside(release, ".run.json"))
    json_path, html_path = write_reports(report, args.out or beside(release, ".report"))
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items())
    print(f"report: {counts}")
    print(f"wrote {json_path} and {html_path}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="write report.json and report.html for a run")
    report.add_argument("release", type=Path)
    report.add_argument("--manifest", type=Path, default=None, metavar="FILE")
    report.add_argument("--out", type=Path, default=None, metavar="DIR")
    report.set_defaults(handler=_cmd_report)


EXTRA_COMMANDS.append(register)
