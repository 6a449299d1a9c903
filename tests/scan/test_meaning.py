"""scan judges values by their attribute's meaning and recognises what de-identifiers write
(issue 14, item 5): device and technical text is not searched for names, placeholders and
pseudonyms are not identifiers, and a C attribute the file declares cleaned is low, not medium."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pydicom.data
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.profile.plan import compile_plan
from pipeline.runner.orchestrate import RunConfig, run
from pipeline.scan.meaning import is_free_text, is_placeholder, is_placeholder_date
from pipeline.scan.tree import ScanRule, scan_dataset, scan_tree
from pipeline.scrub.keys import Keys
from pipeline.verify.findings import Severity
from tests.conftest_run import KEY_HEX

BUNDLED = Path(str(pydicom.data.__file__)).parent / "test_files"


def _by_rule(ds: Dataset) -> dict[str, set[tuple[str, Severity]]]:
    found: dict[str, set[tuple[str, Severity]]] = {}
    for finding in scan_dataset(ds, "x.dcm"):
        found.setdefault(str(finding.rule), set()).add((finding.path, finding.severity))
    return found


def test_device_and_technical_text_is_not_searched_for_names() -> None:
    ds = Dataset()
    ds.FilterType = "LARGE BOWTIE"  # SH, no Clean column: an equipment setting
    ds.PlateType = "HIGH RESOLUTION"
    ds.MultiplexGroupLabel = "MEDIAN BEAT"
    ds.ImageComments = "SANCHO PANZA"  # LT, C under Clean Descriptors: free text
    assert is_free_text(0x00204000, "LT") and not is_free_text(0x00181160, "SH")
    assert _by_rule(ds)[ScanRule.NAME_IN_TEXT] == {("ImageComments", Severity.MEDIUM)}


def test_a_name_in_a_c_attribute_the_file_declares_cleaned_is_low() -> None:
    ds = Dataset()
    ds.StudyDescription = "Sancho Panza"
    ds.PatientIdentityRemoved = "YES"
    items = []
    for code in ("113100", "113105"):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", "x"
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    assert _by_rule(ds)[ScanRule.NAME_IN_TEXT] == {("StudyDescription", Severity.LOW)}
    ds.DeidentificationMethodCodeSequence = Sequence(items[:1])  # Basic only: not declared cleaned
    assert _by_rule(ds)[ScanRule.NAME_IN_TEXT] == {("StudyDescription", Severity.MEDIUM)}


@pytest.mark.parametrize("value", ["ANONYMOUS", "ANONYMIZED", "REMOVED", "XXXXXX", "^", "^^", "3f9a2b7c1d4e",
                                   "SUBJ-0a1b2c3d4e5f6a7b", "****", ""])
def test_placeholders_and_pseudonyms_are_not_flagged(value: str) -> None:
    assert is_placeholder(value)
    ds = Dataset()
    ds.PatientName = value
    ds.PatientID = value
    ds.AccessionNumber = value
    ds.OtherPatientIDs = value
    ds.InstitutionName = value
    ds.ImageComments = value
    # the value rules; whether the profile allows OtherPatientIDs at all is conformance's question
    assert [f for f in scan_dataset(ds, "x.dcm") if f.rule != ScanRule.NOT_ALLOWED] == []


@pytest.mark.parametrize("value", ["MRN0012345", "123456789012", "A12345", "DOE^JOHN"])
def test_real_looking_ids_and_names_are_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)
    ds = Dataset()
    ds.PatientName = value
    ds.AccessionNumber = value
    assert {ScanRule.PERSON_NAME, ScanRule.ACCESSION_NUMBER} <= {f.rule for f in scan_dataset(ds, "x.dcm")}


def test_placeholder_dates_are_info_at_most_and_real_dates_are_flagged() -> None:
    assert is_placeholder_date("19000101") and is_placeholder_date("19610101") and is_placeholder_date("XXXX0101")
    assert not is_placeholder_date("19610227")
    ds = Dataset()
    ds.PatientBirthDate = "19000101"
    ds.StudyDate = "20190101"
    assert {(f.path, f.severity) for f in scan_dataset(ds, "x.dcm") if f.rule == ScanRule.DATE} == {
        ("StudyDate", Severity.INFO)}
    ds.StudyDate = "20190314"
    assert {(f.path, f.severity) for f in scan_dataset(ds, "x.dcm") if f.rule == ScanRule.DATE} == {
        ("StudyDate", Severity.HIGH)}


@pytest.mark.parametrize("options", [(), ("clean-descriptors", "retain-longitudinal-modified-dates",
                                          "retain-device-identity", "retain-patient-characteristics")])
def test_scan_of_the_pipelines_release_of_pydicoms_files_has_no_medium_or_high_finding(
        tmp_path: Path, options: tuple[str, ...]) -> None:
    inputs = tmp_path / "in"
    shutil.copytree(BUNDLED, inputs)
    cfg = RunConfig(inputs=(inputs,), release=tmp_path / "release", quiet=True, workers=0)
    run(cfg, compile_plan("basic", list(options)), Keys(key=KEY_HEX.encode("ascii")))
    report = scan_tree(tmp_path / "release")
    assert report.dicom_files > 80
    serious = Counter((str(f.rule), f.path) for f in report.findings if f.severity in (Severity.MEDIUM, Severity.HIGH))
    assert serious == Counter()
