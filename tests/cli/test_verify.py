"""`deid-pipeline verify --originals` checks pixels (issue 15, item 5), with the bound from the run
record; and a run with ``--clean-pixels ocr`` over pydicom's own test files changes no CT or MR
pixel, publishes no image half changed, and names a specific reason for every refusal."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pydicom.data

from pipeline.verify.pixel_text import RULE as TEXT_RULE
from pipeline.verify.pixels import CEILING, PixelRule, compare
from tests.conftest import REPO, TEST_KEY, read
from tests.verify.test_pixels import frames_of, with_frames

SCRIPT = Path(sys.executable).parent / "deid-pipeline"
ARCHIVE = REPO / "sample_data" / "archive"
CT_MR = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.2.1",
         "1.2.840.10008.5.1.4.1.1.4.1"}


def _key(folder: Path) -> Path:
    key = folder / "k.key"
    key.write_text(TEST_KEY.hex())
    key.chmod(0o600)
    return key


def _run(inputs: Path, release: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), "run", str(inputs), "--output", str(release), "--key-file", str(key),
                           "--workers", "0", "--quiet", "--clean-pixels", "ocr"],
                          capture_output=True, text=True, check=False)


def _verify(release: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    out = release.with_name("verify.json")
    done = subprocess.run([str(SCRIPT), "verify", str(release), "--workers", "0", "--json", str(out), *extra],
                          capture_output=True, text=True, check=False)
    return done, json.loads(out.read_text())


def test_verify_with_originals_compares_pixels_and_finds_a_rectangle_drawn_in_the_anatomy(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for source in sorted(ARCHIVE.rglob("*_US1.dcm"))[:2]:
        shutil.copyfile(source, inputs / source.name)
    key = _key(tmp_path)
    release = tmp_path / "release"
    assert _run(inputs, release, key).returncode == 0
    record = json.loads(release.with_name("release.run.json").read_text())
    assert (record["pixel_mode"], record["max_cleaned_fraction"]) == ("ocr", 0.25)
    originals = ("--originals", str(inputs), "--key-file", str(key))
    done, report = _verify(release, *originals)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pixels: compared with the originals" in done.stdout and "at most 25.0% changed" in done.stdout
    assert "re-read by OCR" in done.stdout
    first = sorted(release.rglob("*.dcm"))[0]
    frames = frames_of(read(first.read_bytes()))
    rows, cols = frames.shape[1:3]
    frames[:, rows // 2:rows // 2 + 10, cols // 2:cols // 2 + 10] = 200  # a grey square over the anatomy
    planted = with_frames(first.read_bytes(), frames)
    first.unlink()
    first.write_bytes(planted)
    done, report = _verify(release, *originals)
    assert done.returncode == 1
    flagged = {(f["file"], f["rule"]) for f in report["findings"]}  # type: ignore[attr-defined]
    assert flagged == {(first.relative_to(release).as_posix(), PixelRule.OUTSIDE_CLEANED.value)}
    second = sorted(release.rglob("*.dcm"))[1]  # put back its original pixels, text and all, still saying NO
    after = frames_of(read(second.read_bytes()))
    before = min((frames_of(read(p.read_bytes())) for p in inputs.iterdir()),
                 key=lambda b: compare(after, b)[0].changed)
    uncleaned = with_frames(second.read_bytes(), before)
    second.unlink()
    second.write_bytes(uncleaned)
    done, report = _verify(release)  # no originals: nothing to compare, the images are read whole
    assert "read whole by OCR" in done.stdout and done.returncode == 1
    flagged = {(f["file"], f["rule"]) for f in report["findings"]}  # type: ignore[attr-defined]
    assert flagged == {(second.relative_to(release).as_posix(), TEXT_RULE)}


def test_a_run_with_ocr_over_pydicoms_test_files_changes_no_ct_or_mr_and_names_every_refusal(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = [Path(p) for p in pydicom.data.get_testdata_files("*.dcm")]
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in names:
        shutil.copyfile(path, inputs / path.name)
    release = tmp_path / "release"
    done = _run(inputs, release, _key(tmp_path))
    assert done.returncode == 1, done.stderr  # broken files are quarantined
    print("\n" + done.stdout)
    connection = sqlite3.connect(release.with_name("release.manifest.sqlite"))
    rows = connection.execute("SELECT status, reason, summary, sop_class FROM inputs").fetchall()
    connection.close()
    published = [(json.loads(summary), sop) for status, _, summary, sop in rows if status == "written"]
    shares = [actions.get("pixels-changed-ppm", 0) / 1e6 for actions, _ in published]
    print(f"{len(published)} published, {sum(s > 0 for s in shares)} cleaned, largest share {max(shares):.1%}")
    assert len(published) >= 40 and max(shares) < CEILING
    assert all(not actions.get("pixels-cleaned") for actions, sop in published if sop in CT_MR)
    assert sum(sop in CT_MR for _, sop in published) >= 5  # MR_small variants share one SOP Instance UID
    reasons = sorted({str(reason) for status, reason, _, _ in rows if status == "quarantined"})
    print("refused:", ", ".join(reasons))
    assert "pixels-need-review" in reasons
    assert all(reason and not reason.startswith("unexpected") and reason != "None" for reason in reasons)
    stored = set()
    for path in inputs.iterdir():
        try:
            stored.add(bytes(read(path.read_bytes()).PixelData))
        except Exception:
            continue  # broken inputs
    ct_mr = [read(dcm.read_bytes()) for dcm in release.rglob("*.dcm")]
    ct_mr = [ds for ds in ct_mr if "PixelData" in ds and str(ds.SOPClassUID) in CT_MR]
    assert len(ct_mr) >= 5 and all(bytes(ds.PixelData) in stored for ds in ct_mr)  # byte for byte an input's


def test_verify_pairs_each_output_with_the_input_published_when_inputs_share_a_sop_instance_uid(
        tmp_path: Path) -> None:
    """rtdose.dcm (15 frames) and rtdose_1frame.dcm share their SOP Instance UID: one is published, the
    other quarantined as duplicate-sop-instance. verify --originals compares the output with the input
    the manifest recorded as written, whichever name sorts first, not with the refused one."""
    key = _key(tmp_path)
    for order, names in enumerate((("a.dcm", "b.dcm"), ("b.dcm", "a.dcm"))):
        inputs = tmp_path / f"in{order}"
        inputs.mkdir()
        for name, source in zip(names, ("rtdose.dcm", "rtdose_1frame.dcm"), strict=True):
            shutil.copyfile(pydicom.data.get_testdata_file(source), inputs / name)
        release = tmp_path / f"release{order}"
        assert _run(inputs, release, key).returncode == 1  # the other input is quarantined
        done, report = _verify(release, "--originals", str(inputs), "--key-file", str(key))
        assert done.returncode == 0, done.stdout + done.stderr
        assert report["findings"] == [], report["findings"]
