"""scan_tree judges a release without its originals: raw files are flagged, scrubbed ones are not,
and no finding, log line or printed output carries a value."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.cli import main
from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scan.tree import ScanRule, scan_dataset, scan_path, scan_tree
from pipeline.scrub.keys import Keys
from pipeline.verify.findings import Finding, Severity
from tests.conftest import TEST_KEY, bundled, encode, make_dataset, read

KEY = b"k" * 32
FILES = ("CT_small.dcm", "MR_small.dcm", "test-SR.dcm", "waveform_ecg.dcm", "examples_overlay.dcm")
NAME = "Quixote^Alonso"


def raw_tree(root: Path) -> Path:
    folder = root / "Quixote_Alonso" / "20040119"
    folder.mkdir(parents=True)
    for name in FILES:
        ds = read(bundled(name).read_bytes())
        ds.PatientName = NAME
        ds.private_block(0x0041, "ACME Research", create=True).add_new(0x01, "LO", NAME)
        (folder / name).write_bytes(encode(ds))
    return root


def scrubbed_tree(root: Path, options: tuple[str, ...] = ()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    plan = compile_plan("basic", list(options))
    for name in FILES:
        result = scrub_bytes(bundled(name).read_bytes(), plan, Keys(key=KEY))
        (root / f"{result.dataset.SOPInstanceUID}.dcm").write_bytes(result.data)
    return root


def rules(findings: tuple[Finding, ...] | list[Finding]) -> set[str]:
    return {str(f.rule) for f in findings}


def test_raw_originals_are_flagged_for_names_dates_ids_private_tags_and_paths(tmp_path: Path) -> None:
    report = scan_tree(raw_tree(tmp_path))
    assert report.files == report.dicom_files == len(FILES)
    assert {"person-name", "date-looks-real", "private-tag", "identifying-path", "patient-id-not-pseudonym",
            "other-patient-ids", "accession-number"} <= rules(report.findings)
    assert report.has_high
    ct = "Quixote_Alonso/20040119/CT_small.dcm"
    assert Finding(ScanRule.PERSON_NAME, "PatientName", Severity.HIGH, ct) in report.findings
    assert Finding(ScanRule.PRIVATE_TAG, "(0041,0010)", Severity.MEDIUM, ct, "ACME Research") in report.findings
    assert Finding(ScanRule.DATE, "StudyDate", Severity.HIGH, ct) in report.findings


@pytest.mark.parametrize("options", [(), ("retain-safe-private", "clean-descriptors"),
                                     ("retain-longitudinal-modified-dates",), ("retain-longitudinal-full-dates",),
                                     ("retain-uids", "retain-device-identity", "retain-institution-identity",
                                      "retain-patient-characteristics", "clean-structured-content", "clean-graphics")])
def test_scrubbed_outputs_have_no_high_findings_and_follow_the_profile_they_declare(
        tmp_path: Path, options: tuple[str, ...]) -> None:
    report = scan_tree(scrubbed_tree(tmp_path, options))
    assert report.dicom_files == len(FILES)
    assert [f for f in report.findings if f.severity is Severity.HIGH] == []
    assert [f for f in report.findings if f.rule == ScanRule.NOT_ALLOWED] == []


def test_shifted_dates_are_reported_low_and_unmodified_dates_medium(tmp_path: Path) -> None:
    shifted = scan_tree(scrubbed_tree(tmp_path / "a", ("retain-longitudinal-modified-dates",)))
    full = scan_tree(scrubbed_tree(tmp_path / "b", ("retain-longitudinal-full-dates",)))
    assert {f.severity for f in shifted.findings if f.rule == ScanRule.DATE} == {Severity.LOW}
    assert {f.severity for f in full.findings if f.rule == ScanRule.DATE} == {Severity.MEDIUM}


def test_findings_and_report_repr_hold_no_values(tmp_path: Path) -> None:
    report = scan_tree(raw_tree(tmp_path))
    findings_text = json.dumps([dict(f.as_dict(), file="") for f in report.findings]).lower()
    for value in ("quixote", "alonso", "compressedsamples", "1ct1", "jfk imaging"):
        assert value not in findings_text
    assert "CompressedSamples" not in repr(report)
    assert any(e.value == NAME for e in report.census)  # the census holds values: for the HTML report


def test_census_marks_values_seen_in_one_file_as_rare(tmp_path: Path) -> None:
    report = scan_tree(scrubbed_tree(tmp_path))
    modalities = {e.value: e for e in report.census if e.keyword == "Modality"}
    assert modalities["CT"].files == 1 and modalities["CT"].rare
    removed = {e.value: e.files for e in report.census if e.keyword == "PatientIdentityRemoved"}
    assert removed == {"YES": len(FILES)}


def test_burned_in_annotation_encapsulated_document_and_dicomdir_are_flagged(tmp_path: Path) -> None:
    ds = read(bundled("CT_small.dcm").read_bytes())
    ds.BurnedInAnnotation = "YES"
    ds.EncapsulatedDocument = b"%PDF-1.4 ..."
    (tmp_path / "a.dcm").write_bytes(encode(ds))
    shutil.copy(bundled("DICOMDIR"), tmp_path / "DICOMDIR")
    report = scan_tree(tmp_path)
    assert {"burned-in-annotation", "encapsulated-document", "dicomdir"} <= rules(report.findings)
    assert any(f.rule == ScanRule.PERSON_NAME and f.file == "DICOMDIR" for f in report.findings)


def test_names_in_free_text_are_flagged_but_codes_are_not() -> None:
    ds = Dataset()
    ds.ImageComments = "Seen by Dr Cervantes"
    ds.StudyDescription = "CT Chest With Contrast"
    ds.CodeMeaning = "Miguel Cervantes"  # a code's meaning names things, not patients
    findings = scan_dataset(ds, "x.dcm")
    assert [f.path for f in findings if f.rule == ScanRule.NAME_IN_TEXT] == ["ImageComments"]


def test_pseudonymous_ids_and_dummy_names_pass() -> None:
    ds = Dataset()
    ds.PatientName = "PAT-ABCDEFGHIJKLMNOP^ANONYMIZED"
    ds.PatientID = "PAT-ABCDEFGHIJKLMNOP"
    ds.ReferringPhysicianName = ""
    ds.AccessionNumber = ""
    ds.StudyDate = "19000101"
    assert scan_dataset(ds, "x.dcm") == []


def test_path_parts_that_look_like_names_dates_or_ids_are_flagged() -> None:
    assert [f.detail for f in scan_path("Smith_John/1.2.840.1.dcm")] == ["name-like"]
    assert [f.detail for f in scan_path("DOE^JANE/x.dcm")] == ["name-like"]
    assert [f.detail for f in scan_path("study/2024-01-31/x.dcm")] == ["date"]
    assert [f.detail for f in scan_path("98765432/x.dcm")] == ["long-number"]
    assert scan_path("2.25.1234567890123/2.25.98765432109876.dcm") == []
    assert scan_path("CT_Head/IM000001.dcm") == []


def test_scan_command_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw, clean = raw_tree(tmp_path / "raw"), scrubbed_tree(tmp_path / "clean")
    report = tmp_path / "report.json"
    assert main(["scan", str(raw), "--json", str(report)]) == 1
    out = capsys.readouterr().out
    assert "person-name" in out and "Quixote" not in out and "CompressedSamples" not in out
    data = json.loads(report.read_text())
    assert data["dicom_files"] == len(FILES) and "census" not in data and "warning" not in data
    assert NAME not in report.read_text()  # without --census no value is written
    assert main(["scan", str(clean)]) == 0
    assert main(["scan", str(tmp_path / "missing")]) == 2


# --- not-allowed-by-profile: the profile a file declares, and what it keeps against it ----------


def scrubbed_file(folder: Path, options: tuple[str, ...] = (), **extra: object) -> tuple[Path, Dataset]:
    """make_dataset through the pipeline (so the file declares Basic plus `options`), then the
    `extra` attributes set on it; written to `folder`/a.dcm and read back."""
    folder.mkdir(parents=True, exist_ok=True)
    result = scrub_bytes(encode(make_dataset()), compile_plan("basic", list(options)), Keys(key=TEST_KEY))
    ds = read(result.data)
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    (folder / "a.dcm").write_bytes(encode(ds))
    return folder / "a.dcm", ds


def not_allowed(report_root: Path) -> dict[str, Finding]:
    return {f.path: f for f in scan_tree(report_root).findings if f.rule == ScanRule.NOT_ALLOWED}


def nested_comment() -> Sequence:
    item = Dataset()
    item.CodeValue = "T-D0050"
    item.CodingSchemeDesignator = "SRT"
    item.ImageComments = "kept against the profile"  # X in the Basic Profile, at depth 1
    return Sequence([item])


def test_a_file_declaring_basic_that_keeps_a_removed_attribute_in_a_sequence_is_reported_medium(
        tmp_path: Path) -> None:
    _, ds = scrubbed_file(tmp_path, AnatomicRegionSequence=nested_comment())
    assert str(ds.PatientIdentityRemoved) == "YES"
    assert [str(item.CodeValue) for item in ds.DeidentificationMethodCodeSequence] == ["113100"]
    found = not_allowed(tmp_path)
    assert found == {"AnatomicRegionSequence[0].ImageComments": Finding(
        ScanRule.NOT_ALLOWED, "AnatomicRegionSequence[0].ImageComments", Severity.MEDIUM, "a.dcm",
        "expected X; profile declared")}


def test_the_same_file_declaring_nothing_is_reported_high_with_its_uids(tmp_path: Path) -> None:
    path, ds = scrubbed_file(tmp_path, AnatomicRegionSequence=nested_comment())
    del ds.PatientIdentityRemoved
    del ds.DeidentificationMethodCodeSequence
    path.write_bytes(encode(ds))
    found = not_allowed(tmp_path)
    nested = found["AnatomicRegionSequence[0].ImageComments"]
    assert nested.severity is Severity.HIGH and nested.detail == "expected X; nothing declared"
    # Without a declaration a 2.25 UID may be the original's: every U attribute is reported.
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "file-meta.MediaStorageSOPInstanceUID"):
        assert found[keyword].detail == "expected U; nothing declared" and found[keyword].severity is Severity.HIGH
    assert "SOPClassUID" not in found  # a registered UID is not an identifier


def test_identity_removed_without_a_profile_code_is_judged_as_basic_and_reported_medium(tmp_path: Path) -> None:
    path, ds = scrubbed_file(tmp_path, ImageComments="kept against the profile")
    del ds.DeidentificationMethodCodeSequence
    path.write_bytes(encode(ds))
    found = not_allowed(tmp_path)
    assert list(found) == ["ImageComments"]
    assert found["ImageComments"].severity is Severity.MEDIUM
    assert found["ImageComments"].detail == "expected X; identity removed, no profile code"


DATES = {"StudyDate": "20240131", "AcquisitionDateTime": "20240131101500", "CalibrationDate": "20231201",
         "StudyTime": "101500", "AcquisitionTime": "101510"}


def test_dates_kept_under_a_declared_full_dates_option_are_not_reported(tmp_path: Path) -> None:
    path, ds = scrubbed_file(tmp_path, ("retain-longitudinal-full-dates",), **DATES)
    assert sorted(str(item.CodeValue) for item in ds.DeidentificationMethodCodeSequence) == ["113100", "113106"]
    assert not_allowed(tmp_path) == {}
    # The same dates under a declaration of Basic alone break it (X, Z and D rows and an unnamed date).
    ds.DeidentificationMethodCodeSequence = Sequence(
        [item for item in ds.DeidentificationMethodCodeSequence if item.CodeValue == "113100"])
    path.write_bytes(encode(ds))
    found = not_allowed(tmp_path)
    assert set(DATES) <= set(found)
    assert {f.severity for f in found.values()} == {Severity.MEDIUM}
    assert found["StudyDate"].detail == "expected Z; profile declared"
    assert found["CalibrationDate"].detail == "expected X; profile declared"


def test_dummies_pass_real_looking_values_do_not_and_a_blank_removed_attribute_is_low(tmp_path: Path) -> None:
    scrubbed_file(tmp_path / "dummies", StudyDate="19000101", StudyTime="000000", OperatorsName="ANONYMIZED",
                  ContentTime="000000", AcquisitionDateTime="19000101000000")
    assert not_allowed(tmp_path / "dummies") == {}
    scrubbed_file(tmp_path / "real", StudyTime="101500", OperatorsName="Panza^Sancho", ImageComments="")
    found = not_allowed(tmp_path / "real")
    assert {path: (f.severity, f.detail) for path, f in found.items()} == {
        "StudyTime": (Severity.MEDIUM, "expected Z; profile declared"),
        "OperatorsName": (Severity.MEDIUM, "expected D; profile declared"),
        "ImageComments": (Severity.LOW, "expected X; profile declared"),  # present, but holds nothing
    }


def test_not_allowed_findings_on_raw_originals_hold_no_values(tmp_path: Path) -> None:
    report = scan_tree(raw_tree(tmp_path))
    found = [f for f in report.findings if f.rule == ScanRule.NOT_ALLOWED]
    assert {"PatientBirthDate", "StudyTime", "SOPInstanceUID"} <= {f.path for f in found}
    assert {f.detail.split("; ")[1] for f in found} == {"nothing declared"}
    text = json.dumps([dict(f.as_dict(), file="") for f in found]).lower()  # the file's path is the raw tree's
    leaked = [value for value in ("quixote", "alonso", "2004", "jfk") if value in text]
    assert leaked == []


def test_scan_census_is_opt_in_marked_first_and_owner_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 18: the census of raw values is confidential. With --census the JSON's first line
    after the brace says it may hold identifying values, and the file is created 0600 (even
    where an older, world-readable file stood)."""
    raw = raw_tree(tmp_path / "raw")
    report = tmp_path / "out" / "scan.json"
    report.parent.mkdir()
    report.write_text("{}")
    report.chmod(0o644)
    assert main(["scan", str(raw), "--json", str(report), "--census"]) == 1
    assert "Quixote" not in capsys.readouterr().out  # the terminal still shows no value
    text = report.read_text()
    assert text.splitlines()[1].startswith('  "warning": "CONFIDENTIAL: this report may hold identifying values')
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    data = json.loads(text)
    assert next(iter(data)) == "warning"
    assert any(e["value"] == NAME for e in data["census"]["entries"])
