"""Reports: a run's manifest or a scan's findings -> report.json and a self-contained report.html.

The JSON is for machines; the HTML is one file (no external resources) for a reviewer:
summary counts, a findings table sortable by rule and severity, quarantine reasons,
thumbnails of a scan's flagged images, and a run's pixel section (images read by OCR, each
cleaned image with its changed share and before/after preview, those sent to review:
`pipeline.report.pixels`). Neither holds a source path. The scan census holds values of
the release being reviewed, so it is opt-in (``scan --census``); a report that holds it says so
first (the JSON's first key, the page's first line: `CENSUS_WARNING`), its files are written
owner-only (0600), and nothing here prints.
"""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import is_codec_failure
from pipeline.files import Beside, beside, write_atomically
from pipeline.report.html import render_html
from pipeline.report.pixels import pixel_section, preview_links

THUMBNAIL_SIZE = 128
CENSUS_WARNING = ("CONFIDENTIAL: this report may hold identifying values (its census lists values seen in "
                  "the scanned files); keep it owner-only and do not share it")
PRIVATE_MODE = 0o600  # a report with values: owner-only


def holds_values(report: Mapping[str, Any]) -> bool:
    """Whether `report` carries values of the files it describes (the scan census)."""
    return "census_values" in report


def report_json(report: Mapping[str, Any]) -> str:
    """The report as JSON: keys sorted at every level, except that the warning of a report
    holding values comes first."""
    def ordered(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): ordered(value[k]) for k in sorted(value, key=lambda k: (k != "warning", str(k)))}
        if isinstance(value, (list, tuple)):
            return [ordered(v) for v in value]
        return value
    return json.dumps(ordered(report), indent=2, default=str) + "\n"


def run_report(manifest: Path, run_record: Path | None = None) -> dict[str, Any]:
    """The report of a run, from its manifest (and run.json when given)."""
    connection = sqlite3.connect(f"file:{manifest}?mode=ro", uri=True)
    try:
        table = connection.execute(
            "SELECT run_index, status, output, reason, source_id, summary FROM inputs ORDER BY run_index").fetchall()
    finally:
        connection.close()
    rows = [(index, status, output, reason) for index, status, output, reason, _, _ in table]
    counts = Counter(str(status) for _, status, _, _ in rows)
    reasons = Counter(str(reason) for _, status, _, reason in rows if status != "written" and reason)
    findings = [
        {"file": f"input #{index}", "path": "file", "rule": str(reason), "severity": "high" if status == "quarantined"
         else "info", "detail": str(status)}
        for index, status, _, reason in rows if status != "written"
    ]
    record: dict[str, Any] = json.loads(run_record.read_text()) if run_record and run_record.exists() else {}
    return {
        "command": "run",
        "counts": dict(sorted(counts.items())),
        "quarantine_reasons": dict(reasons.most_common()),
        "findings": findings,
        "run": {k: record[k] for k in ("profile", "options", "pixel_mode", "max_cleaned_fraction", "key_fingerprint",
                                       "started", "ended", "exit_status") if k in record},
        "pixels": pixel_section((str(sid), int(index), str(status), reason, summary)
                                for index, status, _, reason, sid, summary in table),
    }


def scan_report(files: int, dicom_files: int, findings: Iterable[Mapping[str, Any]],
                census: Iterable[Mapping[str, Any]] | None = None,
                sampled: Sequence[str] | None = None) -> dict[str, Any]:
    """The report of a scan: counts by rule and severity, findings, when given the instances a
    ``--sample`` checked (by key: release-relative path or UIDs) and the census (values: the report
    then opens with `CENSUS_WARNING`)."""
    listed = [dict(f) for f in findings]
    by_rule = Counter((str(f["rule"]), str(f["severity"])) for f in listed)
    report: dict[str, Any] = {} if census is None else {"warning": CENSUS_WARNING}
    report.update({
        "command": "scan",
        "counts": {"files": files, "dicom_files": dicom_files, "findings": len(listed)},
        "by_rule": [{"rule": r, "severity": s, "count": n} for (r, s), n in sorted(by_rule.items())],
        "findings": listed,
    })
    if sampled is not None:
        report["sampled"] = list(sampled)
    if census is not None:
        report["census_values"] = {
            "note": "values of the reviewed release, for a reviewer: never for logs",
            "entries": [dict(e) for e in census],
        }
    return report


def thumbnail(path: Path) -> str | None:
    """A small PNG of an image file's middle frame as a data: URI, or None if it has none."""
    import pydicom
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            if "PixelData" not in ds:
                return None
            frames = int(ds.get("NumberOfFrames") or 1)
            array = ds.pixel_array
    except BaseException as exc:
        if not is_codec_failure(exc):
            raise
        return None
    if frames > 1:
        array = array[frames // 2]
    if array.ndim == 3 and array.shape[-1] not in (3, 4):
        array = array[0]
    values = array.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = ((values - low) / (high - low) * 255.0) if high > low else np.zeros_like(values)
    image = Image.fromarray(scaled.astype(np.uint8))
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def write_reports(report: Mapping[str, Any], directory: Path,
                  thumbnails: Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """Write report.json and report.html into `directory`, each atomically; owner-only when
    the report holds values."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / "report.json", directory / "report.html"
    mode = PRIVATE_MODE if holds_values(report) else 0o666
    write_atomically(report_json(report).encode("utf-8"), json_path, mode)
    write_atomically(render_html(report, thumbnails or {}).encode("utf-8"), html_path, mode)
    return json_path, html_path








def write_run_report(release: Path, manifest: Path, previews: Path | None = None, out: Path | None = None) -> Path:
    """Write the run's report.json and report.html (RELEASE.report/ unless `out`); return the page.
    With `previews`, the page shows the before/after PNGs of the cleaned images and of those
    sent to review, linked from the private preview folder by relative path, never copied in
    (`pipeline.report.pixels`)."""
    report = run_report(manifest, beside(release, Beside.RUN_RECORD))
    folder = out or beside(release, Beside.REPORT)
    report["pixels"] = preview_links(report["pixels"], previews, folder)
    _, html_path = write_reports(report, folder)
    return html_path

