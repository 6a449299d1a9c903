"""The leak scorer, on the committed sample archive and on test-local scrubs of it."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from pipeline.cli.main import main
from pipeline.evaluate.score import LEAKS, Category, ScoreReport, redact_path, score

REPO = Path(__file__).resolve().parents[2]
ARCHIVE = REPO / "sample_data" / "archive"
KEY = REPO / "sample_data" / "archive_key.json"
DEPTH_TWO = "RequestAttributesSequence[0].ScheduledProtocolCodeSequence[0].CodeMeaning"
_BLANKED_VRS = {"AE", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UT"}
_CLEAN_PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture(scope="module")
def key() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(KEY.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def raw_report() -> ScoreReport:
    return score(ARCHIVE, KEY)


# ---------------------------------------------------------------- a test-local scrub
def _new_uid(uid: str) -> str:
    return f"2.25.{int.from_bytes(hashlib.sha256(b'test-scrub:' + uid.encode()).digest()[:16], 'big')}"


def _scrub_values(ds: Dataset, mapping: dict[str, str]) -> None:
    """Blank every text, date and time value; remap every generated (2.25) UID consistently."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _scrub_values(item, mapping)
        elif elem.VR == "UI" and str(elem.value).startswith("2.25."):
            elem.value = mapping.setdefault(str(elem.value), _new_uid(str(elem.value)))
        elif elem.VR in _BLANKED_VRS:
            elem.value = ""


def _scrub(src: Path, entry: dict[str, Any], out_dir: Path, mapping: dict[str, str]) -> None:
    ds = pydicom.dcmread(src)
    ds.remove_private_tags()
    for tag in [t for t in ds.keys() if (t >> 16) & 0xFF00 == 0x6000 or t == 0xFFFCFFFC]:
        del ds[tag]  # overlays and the trailing padding
    if "IconImageSequence" in ds:
        del ds.IconImageSequence
    if "EncapsulatedDocument" in ds:
        ds.EncapsulatedDocument = _CLEAN_PDF
        ds.EncapsulatedDocumentLength = len(_CLEAN_PDF)
    boxes = [b for b in entry["burned_in"] if b["plane"] == "pixels"]
    if boxes:
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress(generate_instance_uid=False)
        arr = ds.pixel_array.copy()
        for box in boxes:
            x0, y0, x1, y1 = box["box"]
            frame = arr[box["frame"]] if int(ds.get("NumberOfFrames", 1)) > 1 else arr
            frame[y0:y1, x0:x1] = 0
        ds.PixelData = arr.tobytes()
    _scrub_values(ds, mapping)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.preamble = b"\0" * 128
    pydicom.dcmwrite(out_dir / f"{ds.SOPInstanceUID}.dcm", ds, enforce_file_format=True)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, key: dict[str, Any]) -> tuple[Path, Path, dict[str, str]]:
    """A release scrubbed of every planted value, and its UID mapping CSV."""
    base = tmp_path_factory.mktemp("clean")
    release = base / "release"
    release.mkdir()
    mapping: dict[str, str] = {}
    for rel, entry in key["files"].items():
        if entry["kind"] == "good":
            _scrub(ARCHIVE / rel, entry, release, mapping)
    csv_path = base / "uids.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["original", "new"])
        writer.writerows(sorted(mapping.items()))
    return release, csv_path, mapping


def _variant(clean: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> Path:
    release = tmp_path / "release"
    shutil.copytree(clean[0], release)
    return release


def _edit(path: Path, change: Any) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def _spellings(key: dict[str, Any]) -> set[str]:
    return {s.lower() for item in key["identifiers"].values() for s in item["spellings"] if len(s) >= 5}


# ---------------------------------------------------------------- the raw archive
def test_raw_archive_recall_is_one(raw_report: ScoreReport, key: dict[str, Any]) -> None:
    in_bytes = [f for f in raw_report.findings if f.category in (
        Category.IDENTIFIERS_IN_BYTES, Category.UIDS_LEFT, Category.DATES_UNSHIFTED, Category.TIMES_KEPT)]
    found_where = {(f.file, f.item): set(f.where.split(";")) for f in in_bytes}
    found = set(found_where)
    in_paths = {(f.file, f.item) for f in raw_report.findings if f.category is Category.IDENTIFIERS_IN_PATHS}
    burned = {(f.file, f.item.split("[")[0]) for f in raw_report.findings
              if f.category is Category.BURNED_IN_NOT_CLEANED}
    total = hit = 0
    for rel, entry in key["files"].items():
        path_leaks = any(p["where"] == "path" for p in entry["plants"])
        display = redact_path(rel) if path_leaks else rel
        for plant in entry["plants"]:
            total += 1
            pair = (display, plant["identifier"])
            if plant["where"] == "path":
                hit += pair in in_paths
            elif plant["where"] in ("pixels", "overlay-6000"):
                hit += (display, plant["where"]) in burned
            elif entry["kind"] == "bad":
                hit += pair in found
            else:
                hit += pair in found and plant["where"] in found_where[pair]
    print(f"recall {hit}/{total}; counts {raw_report.to_json(with_findings=False)}")
    assert hit == total
    assert raw_report.bad_inputs_published == 6
    assert raw_report.burned_in_not_cleaned == sum(len(e.get("burned_in", [])) for e in key["files"].values())
    assert raw_report.total_integrity_failures == 0
    assert raw_report.outputs_unmatched == 0


def test_counts_equal_findings_per_category(raw_report: ScoreReport) -> None:
    data = json.loads(raw_report.to_json())
    for category in Category:
        assert data[category.value] == sum(1 for f in data["findings"] if f["category"] == category.value)
    assert data["total_leaks"] == raw_report.total_leaks == sum(raw_report.count(c) for c in LEAKS)


def test_scorer_output_never_holds_a_planted_value(capsys: pytest.CaptureFixture[str], key: dict[str, Any]) -> None:
    assert main(["score", str(ARCHIVE), "--key", str(KEY)]) == 1
    assert main(["score", str(ARCHIVE), "--key", str(KEY), "--json"]) == 1
    out = capsys.readouterr()
    printed = (out.out + out.err).lower()
    assert "identifiers_in_bytes" in printed
    assert [s for s in _spellings(key) if s in printed] == []


# ---------------------------------------------------------------- scrubbed releases
def test_clean_release_has_no_leak_and_keeps_the_facts(clean: tuple[Path, Path, dict[str, str]]) -> None:
    report = score(clean[0], KEY, retain_patient_characteristics=True)
    assert report.total_leaks == 0, report.findings
    assert report.total_integrity_failures == 0, report.findings
    assert report.times_kept == report.outputs_unmatched == 0
    assert main(["score", str(clean[0]), "--key", str(KEY)]) == 0


def test_one_value_put_back_at_depth_two_is_exactly_one_leak(
    clean: tuple[Path, Path, dict[str, str]], key: dict[str, Any], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rel, entry = next((r, e) for r, e in sorted(key["files"].items())
                      if any(p["where"] == DEPTH_TWO for p in e["plants"]))
    (plant,) = [p for p in entry["plants"] if p["where"] == DEPTH_TWO]
    original = pydicom.dcmread(ARCHIVE / rel)
    value = original.RequestAttributesSequence[0].ScheduledProtocolCodeSequence[0].CodeMeaning
    release = _variant(clean, tmp_path)
    name = f"{clean[2][entry['sop_instance_uid']]}.dcm"

    def put_back(ds: Dataset) -> None:
        ds.RequestAttributesSequence[0].ScheduledProtocolCodeSequence[0].CodeMeaning = value

    _edit(release / name, put_back)
    report = score(release, KEY)
    leaks = [f for f in report.findings if f.category in LEAKS]
    print(f"one leak: {report.to_json(with_findings=False)}")
    assert report.total_leaks == 1
    assert leaks == [type(leaks[0])(Category.IDENTIFIERS_IN_BYTES, name, plant["identifier"], DEPTH_TWO)]
    assert report.total_integrity_failures == 0
    capsys.readouterr()
    assert main(["score", str(release), "--key", str(KEY), "--json"]) == 1
    assert str(value).lower() not in capsys.readouterr().out.lower()


def test_a_time_of_day_left_in_a_datetime_whose_date_moved_is_counted(
    clean: tuple[Path, Path, dict[str, str]], key: dict[str, Any], tmp_path: Path,
) -> None:
    """Modified Dates moves times too (PS3.15 E.3.6): a DT with a shifted date but the original
    time part still carries the time of day, and counts once as a time kept; the same digits
    glued into a longer number (a UID component) do not."""
    entry = next(e for _, e in sorted(key["files"].items())
                 if e["kind"] == "good" and any(p["where"] == "AcquisitionTime" for p in e["plants"]))
    (plant,) = [p for p in entry["plants"] if p["where"] == "AcquisitionTime"]
    time = key["identifiers"][plant["identifier"]]["value"]
    release = _variant(clean, tmp_path)
    name = f"{clean[2][entry['sop_instance_uid']]}.dcm"

    def put_back(ds: Dataset) -> None:
        ds.AcquisitionDateTime = "19990101" + time + ".5+0100"
        ds.ReferencedImageSequence = [Dataset()]
        ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "2.25.1" + "19990101" + time

    _edit(release / name, put_back)
    report = score(release, KEY)
    assert [(f.category, f.file, f.item, f.where) for f in report.findings if f.category is Category.TIMES_KEPT] == [
        (Category.TIMES_KEPT, name, plant["identifier"], "AcquisitionDateTime")]
    assert report.total_leaks == 0


def test_uid_mapping_pairs_files_when_the_signature_is_gone(
    clean: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    release = _variant(clean, tmp_path)
    for path in release.iterdir():
        _edit(path, lambda ds: delattr(ds, "InstanceNumber"))
    unpaired = score(release, KEY)
    assert unpaired.outputs_unmatched == 39
    must_quarantine = [e for e in json.loads(KEY.read_text())["files"].values() if e["expect"] == "quarantine"]
    assert unpaired.inputs_missing == 39 - len(must_quarantine)  # documents need not be published
    paired = score(release, KEY, clean[1])
    assert paired.outputs_unmatched == paired.total_integrity_failures == paired.total_leaks == 0


def test_patient_characteristics_count_only_when_retained(
    clean: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    release = _variant(clean, tmp_path)
    for path in release.iterdir():
        _edit(path, lambda ds: delattr(ds, "PatientAge"))
    assert score(release, KEY).facts_lost == 0
    retained = score(release, KEY, retain_patient_characteristics=True)
    assert retained.facts_lost == 39
    assert {f.item for f in retained.findings} == {"PatientAge"}


def test_broken_grouping_references_and_facts_are_reported(
    clean: tuple[Path, Path, dict[str, str]], key: dict[str, Any], tmp_path: Path
) -> None:
    release = _variant(clean, tmp_path)
    new = clean[2]
    entries = key["files"]
    ct = sorted(r for r, e in entries.items() if e["iod"] == "CT Image Storage" and e["patient"] == "P1")
    rt = next(r for r, e in entries.items() if e["iod"] == "RT Structure Set Storage" and e["patient"] == "P1")
    mr = next(r for r, e in entries.items() if e["iod"] == "MR Image Storage")

    def other_study(ds: Dataset) -> None:
        ds.StudyInstanceUID = "2.25.1"

    def wrong_reference(ds: Dataset) -> None:
        ds.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0].ReferencedSOPInstanceUID = "2.25.2"

    _edit(release / f"{new[entries[ct[1]]['sop_instance_uid']]}.dcm", other_study)
    _edit(release / f"{new[entries[rt]['sop_instance_uid']]}.dcm", wrong_reference)
    _edit(release / f"{new[entries[mr]['sop_instance_uid']]}.dcm", lambda ds: delattr(ds, "PixelSpacing"))
    report = score(release, KEY)
    assert (report.grouping_broken, report.references_broken, report.facts_lost) == (1, 1, 1)
    assert report.total_leaks == 0
    assert main(["score", str(release), "--key", str(KEY)]) == 3


def test_published_bad_inputs_and_leftover_private_tags_are_leaks(
    clean: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    release = _variant(clean, tmp_path)
    shutil.copytree(ARCHIVE / "bad", release / "bad")
    any_file = next(p for p in sorted(release.iterdir()) if p.is_file())

    def private(ds: Dataset) -> None:
        ds.add_new(0x00290010, "LO", "SOMEONE")
        ds.add_new(0x00291001, "LO", "x")

    _edit(any_file, private)
    report = score(release, KEY)
    assert report.bad_inputs_published == 6
    assert report.private_tags_left == 2
    assert report.identifiers_in_bytes > 0


@pytest.mark.parametrize("options", [
    ("--option", "clean-descriptors"),
    ("--option", "clean-descriptors", "--option", "clean-structured-content", "--option",
     "retain-longitudinal-modified-dates"),
])
def test_a_release_made_with_clean_options_has_no_leak(tmp_path: Path, options: tuple[str, ...]) -> None:
    """The archive through the real command line with the Clean options (which keep and clean text
    instead of removing it): the scorer finds no leak. With clean-descriptors, 33 patient names in
    Scheduled Protocol Code Sequence's CodeMeaning were published before they were cleaned too."""
    key_file = tmp_path / "key"
    key_file.write_text("ab" * 32 + "\n")
    key_file.chmod(0o600)
    release, mapping = tmp_path / "release", tmp_path / "mapping"
    status = main(["run", str(ARCHIVE), "--output", str(release), "--key-file", str(key_file), "--workers", "0",
                   "--quiet", "--mapping-dir", str(mapping), *options])
    assert status == 1  # the PDFs and bad inputs are quarantined
    report = score(release, KEY, mapping / "uid_mapping.csv")
    assert report.files_scanned > 20
    assert report.total_leaks == 0, report.to_json(with_findings=False)
