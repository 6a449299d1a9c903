"""deid-pipeline report: write report.json and report.html for a run, from its manifest.

    deid-pipeline report RELEASE [--manifest FILE] [--out DIR] [--pixel-preview DIR]

`run` writes the same report when it ends.

The manifest and run record are found beside the release, as `run` writes them; the
reports go to RELEASE.report/ unless --out says otherwise. Registered into
`pipeline.cli.EXTRA_COMMANDS` on import.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

from pipeline.cli import EXIT_OK, EXTRA_COMMANDS
from pipeline.errors import InputError
from pipeline.report import MAX_THUMBNAILS, run_report, write_reports


def beside(release: Path, suffix: str) -> Path:
    """A path beside the release named after it (RELEASE.manifest.sqlite, RELEASE.report)."""
    resolved = release.resolve()
    return resolved.with_name(resolved.name + suffix)


def write_run_report(release: Path, manifest: Path, previews: Path | None = None, out: Path | None = None) -> Path:
    """Write the run's report.json and report.html (RELEASE.report/ unless `out`); return the page.
    With `previews`, the page shows the before/after PNGs of the cleaned images found there."""
    report = run_report(manifest, beside(release, ".run.json"))
    images: dict[str, str] = {}
    if previews is not None and previews.is_dir():
        for png in sorted(previews.glob("*.png"))[:MAX_THUMBNAILS]:
            images[f"cleaned {png.stem}"] = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    _, html_path = write_reports(report, out or beside(release, ".report"), images)
    return html_path


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="write report.json and report.html for a run")
    report.add_argument("release", type=Path)
    report.add_argument("--manifest", type=Path, default=None, metavar="FILE")
    report.add_argument("--out", type=Path, default=None, metavar="DIR")
    report.add_argument("--pixel-preview", type=Path, default=None, metavar="DIR",
                        help="the run's --pixel-preview folder: its before/after images go into the page")
    report.set_defaults(handler=_cmd_report)


EXTRA_COMMANDS.append(register)
