"""deid-pipeline report: write report.json and report.html for a run, from its manifest.

    deid-pipeline report RELEASE [--manifest FILE] [--quarantine DIR] [--out DIR] [--pixel-preview DIR]

`run` writes the same report when it ends. The terminal (only) also gets the list of inputs
still quarantined, by their path relative to their input root, read from the quarantine
ledger: the operator finds them there; the report files never name them.

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
from pipeline.files import Beside, beside
from pipeline.report.build import write_run_report
from pipeline.runner.ledger import quarantined_inputs
from pipeline.runner.manifest import quarantined_now


def _cmd_report(args: argparse.Namespace) -> int:
    release: Path = args.release
    manifest: Path = args.manifest or beside(release, Beside.MANIFEST)
    if not manifest.is_file():
        raise InputError("no manifest beside the release: run `deid-pipeline run` first or pass --manifest")
    html_path = write_run_report(release, manifest, args.pixel_preview, args.out)
    counts = json.loads(html_path.with_name("report.json").read_text())["counts"]
    print("report: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"wrote {html_path.with_name('report.json')} and {html_path}")
    ledger = (args.quarantine or beside(release, Beside.QUARANTINE)) / "ledger.jsonl"
    listed = quarantined_inputs(ledger, quarantined_now(manifest))
    if listed:
        print("quarantined inputs:")
        for root, path, reason in listed:
            shown = path.encode("utf-8", "backslashreplace").decode("utf-8")
            print(f"  {shown}  {reason}" + (f"  (input #{root})" if root > 1 else ""))
    return EXIT_OK


def register(sub: Subparsers) -> None:
    report = sub.add_parser("report", help="write report.json and report.html for a run")
    report.add_argument("release", type=Path)
    report.add_argument("--manifest", type=Path, default=None, metavar="FILE")
    report.add_argument("--quarantine", type=Path, default=None, metavar="DIR",
                        help="the run's quarantine folder, whose ledger names quarantined inputs "
                        "(default: RELEASE.quarantine)")
    report.add_argument("--out", type=Path, default=None, metavar="DIR")
    report.add_argument("--pixel-preview", type=Path, default=None, metavar="DIR",
                        help="the run's --pixel-preview folder: its before/after images go into the page")
    report.set_defaults(handler=_cmd_report)

