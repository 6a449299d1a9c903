"""deid-pipeline report: write report.json and report.html for a run, from its manifest.

    deid-pipeline report RELEASE [--manifest FILE] [--out DIR] [--pixel-preview DIR]

`run` writes the same report when it ends.

The manifest and run record are found beside the release, as `run` writes them; the
reports go to RELEASE.report/ unless --out says otherwise. Registered into
`pipeline.cli.EXTRA_COMMANDS` on import.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.common import EXIT_OK, Subparsers
from pipeline.errors import InputError
from pipeline.report.build import beside, write_run_report


def _cmd_report(args: argparse.Namespace) -> int:
    release: Path = args.release
    manifest: Path = args.manifest or beside(release, ".manifest.sqlite")
    if not manifest.is_file():
        raise InputError("no manifest beside the release: run `deid-pipeline run` first or pass --manifest")
    html_path = write_run_report(release, manifest, args.pixel_preview, args.out)
    counts = json.loads(html_path.with_name("report.json").read_text())["counts"]
    print("report: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"wrote {html_path.with_name('report.json')} and {html_path}")
    return EXIT_OK


def register(sub: Subparsers) -> None:
    report = sub.add_parser("report", help="write report.json and report.html for a run")
    report.add_argument("release", type=Path)
    report.add_argument("--manifest", type=Path, default=None, metavar="FILE")
    report.add_argument("--out", type=Path, default=None, metavar="DIR")
    report.add_argument("--pixel-preview", type=Path, default=None, metavar="DIR",
                        help="the run's --pixel-preview folder: its before/after images go into the page")
    report.set_defaults(handler=_cmd_report)

