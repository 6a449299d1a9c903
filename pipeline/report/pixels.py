"""The pixel section of a run's report (issue 15, item 6): what a person checks of a release's
burned-in text in minutes.

From the manifest (one row per input: status, reason and the counts `runner.process.pixel_actions`
recorded) it lists

* how many images were read by OCR (``pixels-ocr``; an image sent to review was read too);
* every cleaned image, by its input number in the run (never a path or a value), with the
  share of its pixels cleaning changed (``pixels-changed-ppm``);
* every image sent to review (quarantined ``pixels-need-review``);

and, when the run wrote previews (``--pixel-preview DIR``), each image's before/after PNG.
The previews show the original text: they stay in their private folder and the page links to
them by a path relative to the report (`preview_links`), never embeds them, so report.json and
report.html hold no pixel of an original; the images show only where the folder is at hand.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REVIEW_REASON = "pixels-need-review"
MAX_LISTED = 1000  # rows per table on the page; report.json lists every image
PREVIEW_NAME = 16  # a preview is named by the first characters of its input's SHA-256 (runner.process)


def pixel_section(rows: Iterable[tuple[str, int, str, str | None, str | None]]) -> dict[str, Any]:
    """The section from manifest rows (source_id, run_index, status, reason, actions JSON)."""
    read = 0
    cleaned: list[dict[str, Any]] = []
    review: list[dict[str, Any]] = []
    for source_id, index, status, reason, summary in rows:
        actions = _actions(summary)
        read += int(actions.get("pixels-ocr", 0) > 0)
        entry: dict[str, Any] = {"input": f"input #{index}", "preview": source_id[:PREVIEW_NAME]}
        if status == "written" and actions.get("pixels-cleaned"):
            cleaned.append({**entry, "changed_share": round(actions.get("pixels-changed-ppm", 0) / 1_000_000, 6),
                            "ocr_lines": actions.get("pixels-ocr-lines", 0)})
        elif status == "quarantined" and reason == REVIEW_REASON:
            review.append(entry)
    shares = [c["changed_share"] for c in cleaned]
    return {"read_by_ocr": read, "cleaned": cleaned, "sent_to_review": review,
            "largest_changed_share": max(shares, default=0.0)}


def _actions(summary: str | None) -> dict[str, int]:
    try:
        value = json.loads(summary or "{}")
    except ValueError:
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int)} if isinstance(value, dict) else {}


def preview_links(section: Mapping[str, Any], previews: Path | None, report_dir: Path) -> dict[str, Any]:
    """The section with each image's preview as a path relative to `report_dir` when the PNG is
    in `previews`, else without one."""
    def linked(entry: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in entry.items() if k != "preview"}
        png = previews / f"{entry['preview']}.png" if previews is not None else None
        if png is not None and png.is_file():
            out["preview"] = Path(os.path.relpath(png.resolve(), report_dir.resolve())).as_posix()
        return out
    return {**section, "cleaned": [linked(e) for e in section.get("cleaned", [])],
            "sent_to_review": [linked(e) for e in section.get("sent_to_review", [])]}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _figure(entry: Mapping[str, Any]) -> str:
    link = entry.get("preview")
    if not link:
        return "<td>-</td>"
    return (f'<td><a href="{_e(link)}"><img class="preview" alt="before and after" src="{_e(link)}" '
            f'loading="lazy" onload="this.dataset.loaded=1"></a></td>')


def render_pixels(section: Mapping[str, Any] | None) -> str:
    """The page's pixel section (empty when the report has none)."""
    if not section:
        return ""
    cleaned = list(section.get("cleaned", []))
    review = list(section.get("sent_to_review", []))
    cleaned_rows = "".join(
        f'<tr><td>{_e(c["input"])}</td><td class="share">{float(c["changed_share"]):.2%}</td>'
        f'<td>{_e(c.get("ocr_lines", 0))}</td>{_figure(c)}</tr>' for c in cleaned[:MAX_LISTED])
    review_rows = "".join(f'<tr><td>{_e(r["input"])}</td>{_figure(r)}</tr>' for r in review[:MAX_LISTED])
    more = [f"<p>... and {n - MAX_LISTED} more in report.json</p>" if n > MAX_LISTED else "" for n in
            (len(cleaned), len(review))]
    figures = (("read by OCR", section.get("read_by_ocr", 0)), ("cleaned", len(cleaned)),
               ("sent to review", len(review)),
               ("largest share changed", f'{float(section.get("largest_changed_share", 0)):.1%}'))
    counts = "".join(f'<div class="count" data-name="{_e(name)}"><span class="n">{_e(value)}</span>'
                     f'<span>{_e(name)}</span></div>' for name, value in figures)
    return f"""<h2>Pixels</h2>
<div class="counts" id="pixel-counts">{counts}</div>
<h3>Cleaned images</h3>
<table id="cleaned"><tr><th>image</th><th>pixels changed</th><th>OCR lines</th><th>before | after</th></tr>
{cleaned_rows or '<tr><td colspan="4">none</td></tr>'}</table>{more[0]}
<h3>Sent to review (pixels-need-review: not published)</h3>
<table id="review"><tr><th>image</th><th>before | what cleaning would do</th></tr>
{review_rows or '<tr><td colspan="2">none</td></tr>'}</table>{more[1]}
"""


__all__ = ["REVIEW_REASON", "pixel_section", "preview_links", "render_pixels"]
