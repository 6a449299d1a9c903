"""report.html: one self-contained page (no script or style fetched from anywhere) for a reviewer:
summary counts, findings sortable by rule and severity, quarantine reasons, thumbnails and, when
the report holds it, the census of values, announced by the page's first line."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from pipeline.report.pixels import render_pixels

MAX_THUMBNAILS = 48
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}


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
    census = ""
    if "census_values" in report:
        census_rows = "".join(
            f'<tr class="{"rare" if e.get("rare") else ""}"><td>{_e(e.get("keyword"))}</td>'
            f'<td>{_e(e.get("value"))}</td><td>{_e(e.get("files"))}</td></tr>'
            for e in report["census_values"].get("entries", [])
        )
        census = _CENSUS.format(rows=census_rows or '<tr><td colspan="3">none</td></tr>')
    warning = report.get("warning")
    banner = f'<p class="warning" id="warning">{_e(warning)}</p>\n' if warning else ""
    run = report.get("run", {})
    run_rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in run.items())
    pixels = render_pixels(report.get("pixels"))
    return _PAGE.format(pixels=pixels,
        title=_e(f"deid-pipeline {command} report"), summary=summary, rows=rows,
        findings=len(findings), reasons=reason_rows or '<tr><td colspan="2">none</td></tr>',
        images="" if command == "run" else f'<h2>Flagged images</h2><div>{images or "<p>none</p>"}</div>\n',
        census=census, banner=banner,
        run=run_rows or '<tr><td colspan="2">-</td></tr>',
    )


_CENSUS = """<section class="values"><h2>Census: values of the release (for review only)</h2>
<table><tr><th>attribute</th><th>value</th><th>files</th></tr>{rows}</table></section>
"""

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
img.preview {{ max-width: 360px; max-height: 180px; image-rendering: pixelated; }}
td.share {{ text-align: right; }}
.values {{ border-left: 4px solid #b00; padding-left: 1em; }}
.warning {{ background: #b00; color: #fff; font-weight: bold; padding: .6em 1em; margin: 0 0 1em; }}
</style></head>
<body>
{banner}<h1>{title}</h1>
<h2>Summary</h2><div class="counts" id="counts">{summary}</div>
<h2>Findings ({findings})</h2>
<table id="findings"><thead><tr><th data-col="0">severity</th><th data-col="1">rule</th><th data-col="2">file</th>
<th data-col="3">where</th><th data-col="4">kind</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Quarantine reasons</h2><table><tr><th>reason</th><th>files</th></tr>{reasons}</table>
{pixels}{images}<h2>Run</h2><table>{run}</table>
{census}<script>
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

