"""Reports: a run's manifest or a scan's findings -> report.json and a self-contained report.html.

The JSON is for machines; the HTML is one file (no external resources) for a reviewer:
summary counts, a findings table sortable by rule and severity, quarantine reasons, and
thumbnails of flagged images. Neither holds a source path. The scan census holds values of
the release being reviewed; the HTML shows it in a section marked as values, the JSON keeps
it under a key that says so, and nothing here prints.
"""

from __future__ import annotations

import base64
import html
import io
import json
import sqlite3
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.write import write_atomically

THUMBNAIL_SIZE = 128
MAX_THUMBNAILS = 48
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}


def run_report(manifest: Path, run_record: Path | None = None) -> dict[str, Any]:
    """The report of a run, from its manifest (and run.json when given)."""
    connection = sqlite3.connect(f"file:{manifest}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT run_index, status, output, reason FROM inputs ORDER BY run_index").fetchall()
    finally:
        connection.close()
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
        "run": {k: record[k] for k in ("profile", "options", "key_fingerprint", "started", "ended", "exit_status")
                if k in record},
    }


def scan_report(files: int, dicom_files: int, findings: Iterable[Mapping[str, Any]],
                census: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The report of a scan: counts by rule and severity, findings, and the census (values)."""
    listed = [dict(f) for f in findings]
    by_rule = Counter((str(f["rule"]), str(f["severity"])) for f in listed)
    return {
        "command": "scan",
        "counts": {"files": files, "dicom_files": dicom_files, "findings": len(listed)},
        "by_rule": [{"rule": r, "severity": s, "count": n} for (r, s), n in sorted(by_rule.items())],
        "findings": listed,
        "census_values": {
            "note": "values of the reviewed release, for a reviewer: never for logs",
            "entries": [dict(e) for e in census],
        },
    }


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
    except Exception:
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
    """Write report.json and report.html into `directory`, each atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / "report.json", directory / "report.html"
    write_atomically((json.dumps(report, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8"), json_path)
    write_atomically(render_html(report, thumbnails or {}).encode("utf-8"), html_path)
    return json_path, html_path


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(report: Mapping[str, Any], thumbnails: Mapping[str, str]) -> str:
    """One self-contained page: no script or style is fetched from anywhere."""
    command = str(report.get("command", "report"))
    counts = report.get("counts", {})
    summary = "".join(
        f'<div class="count" data-name="{_e(k)}"><span class="n">{_e(v)}</span><span>{_e(k)}</span></div>'
        for k, v in counts.items()
    )
    findings = sorted(report.get("findings", []),
                      key=lambda f: (SEVERITY_ORDER.get(str(f.get("severity")), 9), str(f.get("rule"))))
    rows = "".join(
        f'<tr class="sev-{_e(f.get("severity"))}"><td>{_e(f.get("severity"))}</td><td>{_e(f.get("rule"))}</td>'
        f'<td>{_e(f.get("file"))}</td><td>{_e(f.get("path"))}</td><td>{_e(f.get("detail", ""))}</td></tr>'
        for f in findings
    )
    reasons = report.get("quarantine_reasons", {})
    reason_rows = "".join(f"<tr><td>{_e(r)}</td><td>{_e(n)}</td></tr>" for r, n in reasons.items())
    images = "".join(
        f'<figure><img alt="flagged image" src="{uri}"><figcaption>{_e(name)}</figcaption></figure>'
        for name, uri in list(thumbnails.items())[:MAX_THUMBNAILS]
    )
    census = report.get("census_values", {}).get("entries", [])
    census_rows = "".join(
        f'<tr class="{"rare" if e.get("rare") else ""}"><td>{_e(e.get("keyword"))}</td>'
        f'<td>{_e(e.get("value"))}</td><td>{_e(e.get("files"))}</td></tr>'
        for e in census
    )
    run = report.get("run", {})
    run_rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in run.items())
    return _PAGE.format(
        title=_e(f"deid-pipeline {command} report"), summary=summary, rows=rows,
        findings=len(findings), reasons=reason_rows or '<tr><td colspan="2">none</td></tr>',
        images=images or "<p>none</p>", census=census_rows or '<tr><td colspan="3">none</td></tr>',
        run=run_rows or '<tr><td colspan="2">-</td></tr>',
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
.counts {{ display: flex; gap: 1em; flex-wrap: wrap; }}
.count {{ border: 1px solid #ccc; border-radius: 6px; padding: .6em 1em; min-width: 7em; }}
.count .n {{ display: block; font-size: 1.8em; font-weight: bold; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ddd; padding: .3em .6em; text-align: left; }}
th {{ background: #f4f4f4; cursor: pointer; }}
tr.sev-high td:first-child {{ color: #b00; font-weight: bold; }}
tr.rare td {{ background: #fff3cd; }}
figure {{ display: inline-block; margin: .5em; }}
.values {{ border-left: 4px solid #b00; padding-left: 1em; }}
</style></head>
<body>
<h1>{title}</h1>
<h2>Summary</h2><div class="counts" id="counts">{summary}</div>
<h2>Findings ({findings})</h2>
<table id="findings"><thead><tr><th data-col="0">severity</th><th data-col="1">rule</th><th data-col="2">file</th>
<th data-col="3">where</th><th data-col="4">kind</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Quarantine reasons</h2><table><tr><th>reason</th><th>files</th></tr>{reasons}</table>
<h2>Flagged images</h2><div>{images}</div>
<h2>Run</h2><table>{run}</table>
<section class="values"><h2>Census: values of the release (for review only)</h2>
<table><tr><th>attribute</th><th>value</th><th>files</th></tr>{census}</table></section>
<script>
document.querySelectorAll('#findings th').forEach(function (th) {{
  th.addEventListener('click', function () {{
    var col = +th.dataset.col, body = document.querySelector('#findings tbody');
    var rows = Array.from(body.rows), asc = th.dataset.asc !== '1';
    rows.sort(function (a, b) {{
      var x = a.cells[col].textContent, y = b.cells[col].textContent;
      return asc ? x.localeCompare(y) : y.localeCompare(x);
    }});
    rows.forEach(function (r) {{ body.appendChild(r); }});
    th.dataset.asc = asc ? '1' : '0';
  }});
}});
</script>
</body></html>
"""
