"""OCR in verify and scan: the raw archive's images with drawn text are flagged (recall printed
against the answer key); a release cleaned with --clean-pixels ocr shows no text to verify."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.verify.pixel_text import RULE, text_findings
from tests.conftest import REPO, TEST_KEY

SCRIPT = Path(sys.executable).parent / "deid-pipeline"
ARCHIVE = REPO / "sample_data" / "archive"
KEY = json.loads((REPO / "sample_data" / "archive_key.json").read_text())


def drawn_in_pixels() -> dict[str, set[int]]:
    """Good files whose pixel data (not an overlay) carries drawn text -> frames with text."""
    return {rel: {box["frame"] for box in entry["burned_in"] if box["plane"] == "pixels"}
            for rel, entry in KEY["files"].items()
            if entry["kind"] == "good" and any(b["plane"] == "pixels" for b in entry.get("burned_in", []))}


def test_ocr_flags_every_raw_image_with_drawn_text_and_no_other() -> None:
    expected = drawn_in_pixels()
    good = [rel for rel, entry in KEY["files"].items() if entry["kind"] == "good"]
    flagged = {rel: {int(f.path.split()[1].rstrip("]")) for f in text_findings(ARCHIVE / rel, rel)} for rel in good}
    found = [rel for rel in expected if expected[rel] <= flagged[rel]]
    false = [rel for rel in good if rel not in expected and flagged[rel]]
    print(f"\nOCR detection recall on the archive's burned-in images: {len(found)}/{len(expected)} "
          f"(every frame with text); false alarms on {len(false)}/{len(good) - len(expected)} images without text")
    assert len(expected) >= 9
    assert found == list(expected)
    assert false == []


def test_scan_with_ocr_reports_text_in_pixels_and_verify_with_ocr_passes_a_cleaned_release(tmp_path: Path) -> None:
    scanned = subprocess.run([str(SCRIPT), "scan", str(ARCHIVE), "--ocr", "--json", str(tmp_path / "scan.json")],
                             capture_output=True, text=True, check=False)
    assert scanned.returncode == 1
    rules = [f for f in json.loads((tmp_path / "scan.json").read_text())["findings"] if f["rule"] == RULE]
    assert {f["file"] for f in rules} == set(drawn_in_pixels())
    key = tmp_path / "k.key"
    key.write_text(TEST_KEY.hex())
    key.chmod(0o600)
    release = tmp_path / "release"
    run = subprocess.run([str(SCRIPT), "run", str(ARCHIVE), "--output", str(release), "--key-file", str(key),
                          "--workers", "0", "--quiet", "--clean-pixels", "ocr"], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 1, run.stderr  # bad inputs and PDFs are quarantined
    verified = subprocess.run([str(SCRIPT), "verify", str(release), "--option", "clean-pixel-data", "--ocr"],
                              capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "0 with findings" in verified.stdout
    assert "Dask: local-cluster" in verified.stderr  # verified on a local cluster, like run


def test_verify_on_dask_reports_what_a_serial_verify_reports(tmp_path: Path) -> None:
    release = tmp_path / "release"
    for rel in sorted(KEY["files"])[:6]:
        if KEY["files"][rel]["kind"] == "good":
            (release / rel).parent.mkdir(parents=True, exist_ok=True)
            (release / rel).write_bytes((ARCHIVE / rel).read_bytes())  # raw files: many findings
    outputs = []
    for workers in ("0", "2"):
        done = subprocess.run([str(SCRIPT), "verify", str(release), "--workers", workers, "--json",
                               str(tmp_path / f"v{workers}.json")], capture_output=True, text=True, check=False)
        assert done.returncode == 1
        outputs.append(json.loads((tmp_path / f"v{workers}.json").read_text())["findings"])
    assert outputs[0] == outputs[1] and len(outputs[0]) > 20
