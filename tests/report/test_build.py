"""report.json and report.html for a run and for a scan, opened in headless Chromium."""

from __future__ import annotations

import json
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.report.build import CENSUS_WARNING, scan_report, write_reports
from pipeline.report.html import render_html
from tests.conftest import REPO, TEST_KEY, encode
from tests.pixels.test_review import huge_text_image

SCRIPT = Path(sys.executable).parent / "deid-pipeline"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "chromium is installed by `make install` (system-deps)"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120, check=False)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def run_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("run")
    key = base / "k.key"
    key.write_text(TEST_KEY.hex())
    key.chmod(0o600)
    release = base / "release"
    result = subprocess.run(
        [str(SCRIPT), "run", str(REPO / "sample_data" / "archive"), "--output", str(release),
         "--key-file", str(key), "--workers", "0", "--quiet"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return release


def test_run_report_counts_what_the_manifest_holds(run_release: Path) -> None:
    result = subprocess.run([str(SCRIPT), "report", str(run_release)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    folder = run_release.with_name("release.report")
    report = json.loads((folder / "report.json").read_text())
    published = sum(1 for _ in run_release.rglob("*.dcm"))
    assert report["counts"]["written"] == published > 0
    inputs = [p for p in (REPO / "sample_data" / "archive").rglob("*") if p.is_file()]
    assert sum(report["counts"].values()) == len(inputs)
    assert report["quarantine_reasons"]
    page = (folder / "report.html").read_text()
    assert "archive" not in page and "BRANNOCKE" not in page.upper()  # no source path, no name


def test_report_page_opens_in_chromium_and_shows_the_counts(run_release: Path, tmp_path: Path) -> None:
    subprocess.run([str(SCRIPT), "report", str(run_release), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    page = tmp_path / "report.html"
    report = json.loads((tmp_path / "report.json").read_text())
    dom = chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for name, count in report["counts"].items():
        assert f'data-name="{name}"><span class="n">{count}</span>' in dom.stdout
    shot = tmp_path / "report.png"
    taken = chromium("--window-size=1200,900", f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0, taken.stderr[-2000:]
    width, height = png_size(shot)
    print(f"screenshot of the run report: {shot} ({width}x{height})")
    assert (width, height) == (1200, 900) and shot.stat().st_size > 10_000


class _FirstText(HTMLParser):
    """The first text a reader sees in a page's body."""

    def __init__(self) -> None:
        super().__init__()
        self.in_body, self.first = False, ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.in_body = self.in_body or tag == "body"

    def handle_data(self, data: str) -> None:
        if self.in_body and not self.first and data.strip():
            self.first = data.strip()


def first_visible_line(page: str) -> str:
    parser = _FirstText()
    parser.feed(page)
    return parser.first


def test_scan_report_has_sortable_findings_thumbnails_and_marked_values(tmp_path: Path) -> None:
    result = subprocess.run([str(SCRIPT), "scan", str(REPO / "sample_data" / "archive"), "--report", str(tmp_path),
                             "--census"], capture_output=True, text=True, check=False)
    assert result.returncode == 1  # the raw archive has HIGH findings
    text = (tmp_path / "report.json").read_text()
    assert text.splitlines()[1].startswith('  "warning": "CONFIDENTIAL: this report may hold identifying values')
    report = json.loads(text)
    assert report["counts"]["findings"] == len(report["findings"]) > 0
    assert "values" in report["census_values"]["note"]
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page  # images flagged by BurnedInAnnotation YES
    assert "Census: values of the release" in page
    for written in ("report.json", "report.html"):
        assert stat.S_IMODE((tmp_path / written).stat().st_mode) == 0o600  # values: owner-only
    clicked = chromium("--dump-dom", "--virtual-time-budget=2000", (tmp_path / "report.html").as_uri())
    assert clicked.returncode == 0 and "<table id=\"findings\">" in clicked.stdout
    assert first_visible_line(clicked.stdout).startswith("CONFIDENTIAL: this report may hold identifying values")
    for value in ("QUILLERBY", "BRANNOCKE", "VELLACORT"):
        assert value not in result.stdout  # the census never goes to the terminal


def test_a_scan_report_without_the_census_holds_no_value_and_no_warning(tmp_path: Path) -> None:
    census = [{"keyword": "PatientName", "value": "QUILLERBY^ANSEL", "files": 1, "rare": True}]
    findings = [{"rule": "person-name", "severity": "high", "file": "a.dcm", "path": "PatientName"}]
    json_path, html_path = write_reports(scan_report(1, 1, findings), tmp_path / "plain")
    for path in (json_path, html_path):
        assert "QUILLERBY" not in path.read_text() and "identifying values" not in path.read_text()
    assert "census_values" not in json.loads(json_path.read_text()) and "Census" not in html_path.read_text()
    assert first_visible_line(html_path.read_text()) == "deid-pipeline scan report"
    json_path, html_path = write_reports(scan_report(1, 1, findings, census), tmp_path / "census")
    assert "QUILLERBY" in json_path.read_text() and "QUILLERBY" in html_path.read_text()
    assert next(iter(json.loads(json_path.read_text()))) == "warning"
    assert first_visible_line(html_path.read_text()) == CENSUS_WARNING
    assert {stat.S_IMODE(p.stat().st_mode) for p in (json_path, html_path)} == {0o600}


def test_html_escapes_what_it_shows(tmp_path: Path) -> None:
    report = scan_report(1, 1, [{"rule": "person-name", "severity": "high", "file": "<script>x</script>",
                                 "path": "PatientName"}], [])
    page = render_html(report, {})
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    json_path, html_path = write_reports(report, tmp_path)
    assert json_path.exists() and html_path.exists() and not list(tmp_path.glob(".*partial"))


def test_pixel_preview_pairs_go_beside_the_release_and_the_report_links_them(tmp_path: Path) -> None:
    """Issue 15, item 6: the run's report lists every cleaned image with its changed share and
    before/after preview, and the images sent to review; the previews stay in their private
    folder (the page links to them, relative to itself, and Chromium loads them from there)."""
    archive = REPO / "sample_data" / "archive"
    inputs = tmp_path / "in"
    for source in sorted(archive.rglob("*_US*.dcm"))[:2]:
        target = inputs / source.relative_to(archive)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (inputs / "review.dcm").write_bytes(encode(huge_text_image()))  # text over most of it: sent to review
    key = tmp_path / "k.key"
    key.write_text(TEST_KEY.hex())
    key.chmod(0o600)
    release, previews = tmp_path / "release", tmp_path / "previews"
    result = subprocess.run(
        [str(SCRIPT), "run", str(inputs), "--output", str(release), "--key-file", str(key), "--workers", "0",
         "--quiet", "--clean-pixels", "ocr", "--pixel-preview", str(previews)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # the review image is quarantined
    assert "pixels: 3 image(s) read by OCR, 2 cleaned" in result.stdout
    assert "1 sent to review (pixels-need-review)" in result.stdout
    pngs = sorted(previews.glob("*.png"))
    assert len(pngs) == 3 and (previews.stat().st_mode & 0o077) == 0  # owner-only: the "before" half is PHI
    assert not list(release.rglob("*.png"))
    width, height = png_size(pngs[0])
    assert width > height  # before and after, side by side
    folder = release.with_name("release.report")
    report = json.loads((folder / "report.json").read_text())
    pixels = report["pixels"]
    assert pixels["read_by_ocr"] == 3 and len(pixels["cleaned"]) == 2 and len(pixels["sent_to_review"]) == 1
    for entry in pixels["cleaned"]:
        assert 0 < entry["changed_share"] < 0.25 and entry["input"].startswith("input #")
    linked = [e["preview"] for e in pixels["cleaned"] + pixels["sent_to_review"]]
    assert sorted((folder / link).resolve() for link in linked) == [p.resolve() for p in pngs]
    page = (folder / "report.html").read_text()
    assert "data:image/png;base64," not in page and "archive" not in page and "QUILLERBY" not in page.upper()
    dom = chromium("--dump-dom", "--virtual-time-budget=5000",
                   (folder / "report.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('data-loaded="1"') == 3  # each preview loaded from the private folder
    assert '<div class="count" data-name="read by OCR"><span class="n">3</span>' in dom.stdout
    shot = tmp_path / "pixels.png"
    taken = chromium("--window-size=1200,1600", "--virtual-time-budget=5000", f"--screenshot={shot}",
                     (folder / "report.html").as_uri())
    assert taken.returncode == 0 and png_size(shot) == (1200, 1600)
    print(f"screenshot of the report's pixel section: {shot}")
