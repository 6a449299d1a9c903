"""verify_bytes checks real scrubbed files (pydicom's bundled files plus planted identifiers)
independently of the scrubber: clean outputs pass, every value put back is caught."""

from __future__ import annotations

import io
import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.cli import main
from pipeline.errors import ProfileError
from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.dates import patient_offset
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.findings import Finding, Severity, VerifyRule
from tests.conftest import RECIPES, bundled, encode, read

KEY = b"k" * 32
NAME = "Quixote^Alonso"
PATIENT_ID = "MRN7654321"
INSTITUTION = "Barataria General Infirmary"
BIRTH_DATE = "19610203"
CREATOR = "ACME Research"
FILES = ("CT_small.dcm", "MR_small.dcm", "test-SR.dcm", "waveform_ecg.dcm", "examples_overlay.dcm")
OPTION_SETS: tuple[tuple[str, ...], ...] = (
    (),
    ("retain-safe-private",),
    ("retain-uids", "retain-device-identity", "retain-institution-identity", "retain-patient-characteristics"),
    ("retain-longitudinal-full-dates", "clean-graphics"),
    ("retain-longitudinal-modified-dates", "clean-descriptors", "clean-structured-content"),
)


def planted(name: str = "CT_small.dcm") -> bytes:
    """A bundled file with identifiers planted: a name at depth 2, a private block holding the
    name, and trailing padding holding the name."""
    ds = read(bundled(name).read_bytes())
    ds.PatientName = NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.InstitutionName = INSTITUTION
    ds.ReferringPhysicianName = "Panza^Sancho"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "X1", "99LOCAL", "head"
    code.ContentCreatorName = NAME  # PN at depth 2
    code.ImageComments = f"seen by Quixote at Barataria on 03/02/1961, {PATIENT_ID}"
    reference = Dataset()
    reference.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    reference.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.99.1"
    reference.ProcedureCodeSequence = Sequence([code])
    ds.ReferencedInstanceSequence = Sequence([reference])
    block = ds.private_block(0x0041, CREATOR, create=True)
    block.add_new(0x01, "LO", NAME)
    ds.DataSetTrailingPadding = NAME.encode("ascii") + b"\x00\x00"
    return encode(ds)


def scrub(data: bytes, options: tuple[str, ...] = ()) -> bytes:
    return scrub_bytes(data, compile_plan("basic", list(options)), Keys(key=KEY)).data


def rules(findings: list[Finding]) -> set[str]:
    return {str(f.rule) for f in findings}


def mutate(output: bytes, change: Callable[[Dataset], None]) -> bytes:
    ds = read(output)
    change(ds)
    return encode(ds)


# --- clean outputs pass --------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_scrubbed_planted_file_has_no_findings_under_basic(name: str) -> None:
    original = planted(name)
    assert verify_bytes(scrub(original), (), original, "release/2.25.1/2.25.2.dcm") == []


@pytest.mark.parametrize("options", OPTION_SETS)
def test_scrubbed_planted_file_has_no_findings_for_option_sets(options: tuple[str, ...]) -> None:
    original = planted()
    assert verify_bytes(scrub(original, options), options, original) == []


def test_scrubbed_file_passes_without_its_original() -> None:
    assert verify_bytes(scrub(planted("MR_small.dcm")), ()) == []


def test_options_may_be_given_in_any_order() -> None:
    options = ("clean-descriptors", "retain-uids")
    output = scrub(planted(), options)
    assert verify_bytes(output, options) == verify_bytes(output, tuple(reversed(options))) == []


# --- values put back are caught --------------------------------------------------------------


def test_name_put_back_in_a_nested_sequence_is_caught() -> None:
    original = planted()

    def put_back(ds: Dataset) -> None:
        ds.ReferencedInstanceSequence[0].ProcedureCodeSequence[0].ImageComments = f"for {NAME}"

    findings = verify_bytes(mutate(scrub(original), put_back), (), original)
    assert Finding(VerifyRule.ATTRIBUTE_NOT_ALLOWED, "ReferencedInstanceSequence[0].ProcedureCodeSequence[0]."
                   "ImageComments", Severity.HIGH) in findings
    assert any(f.rule == VerifyRule.ORIGINAL_VALUE_IN_BYTES and f.detail == "person-name" for f in findings)


def test_name_put_back_in_a_private_tag_is_caught() -> None:
    original = planted()

    def put_back(ds: Dataset) -> None:
        ds.private_block(0x0009, "SOMEVENDOR 1", create=True).add_new(0x10, "LO", NAME)

    findings = verify_bytes(mutate(scrub(original), put_back), (), original)
    assert {"private-not-allowed", "original-value-in-bytes"} <= rules(findings)
    assert any(f.path == "(0009,1010)" for f in findings)


def test_name_appended_as_trailing_padding_is_caught() -> None:
    original = planted()
    value = NAME.encode("ascii")
    padding = b"\xfc\xff\xfc\xffOB\x00\x00" + struct.pack("<I", len(value)) + value
    findings = verify_bytes(scrub(original) + padding, (), original)
    assert {"trailing-padding-present", "original-value-in-bytes"} <= rules(findings)


def test_name_in_the_output_path_is_caught() -> None:
    original = planted()
    findings = verify_bytes(scrub(original), (), original, output_path="release/Quixote_Alonso/1.dcm")
    assert findings == [Finding(VerifyRule.VALUE_IN_PATH, "path", Severity.HIGH, detail="person-name")]


def test_original_uid_put_back_is_caught() -> None:
    original = planted()
    uid = read(original).SOPInstanceUID
    findings = verify_bytes(mutate(scrub(original), lambda ds: setattr(ds, "SOPInstanceUID", uid)), (), original)
    assert {"uid-not-remapped", "original-value-in-bytes", "original-value-in-attribute"} <= rules(findings)
    assert Finding(VerifyRule.UID_NOT_REMAPPED, "SOPInstanceUID", Severity.HIGH) in findings


def test_meta_instance_uid_must_follow_the_dataset() -> None:
    ds = read(scrub(planted()))
    ds.file_meta.MediaStorageSOPInstanceUID = "2.25.1"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    assert "meta-uid-mismatch" in rules(verify_bytes(buffer.getvalue(), ()))


def test_two_letter_name_component_put_back_is_caught() -> None:
    ds = read(planted())
    ds.PatientName = "Li^Wei"
    original = encode(ds)

    def put_back(out: Dataset) -> None:
        out.ReferencedInstanceSequence[0].ProcedureCodeSequence[0].CodeMeaning = "head of Li"

    findings = verify_bytes(mutate(scrub(original), put_back), (), original)
    assert [f.path for f in findings if f.rule == VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE] == [
        "ReferencedInstanceSequence[0].ProcedureCodeSequence[0].CodeMeaning"]


def test_latin1_name_put_back_is_caught_in_its_encoding() -> None:
    ds = read(planted())
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    original = encode(ds)

    def put_back(out: Dataset) -> None:
        out.ReferencedInstanceSequence[0].ProcedureCodeSequence[0].CodeMeaning = "Müller"

    assert b"M\xfcller" in mutate(scrub(original), put_back)
    findings = verify_bytes(mutate(scrub(original), put_back), (), original)
    assert any(f.rule == VerifyRule.ORIGINAL_VALUE_IN_BYTES and f.detail == "person-name" for f in findings)


def test_date_not_shifted_is_caught_with_modified_dates() -> None:
    options = ("retain-longitudinal-modified-dates",)
    original = planted()
    study_date = read(original).StudyDate
    output = mutate(scrub(original, options), lambda ds: setattr(ds, "StudyDate", study_date))
    findings = verify_bytes(output, options, original)
    assert Finding(VerifyRule.DATE_NOT_SHIFTED, "StudyDate", Severity.HIGH) in findings


MODIFIED = ("retain-longitudinal-modified-dates",)


def _timed(study_time: str = "101500", series_time: str = "113000") -> bytes:
    """The planted CT with times of day at the top level, in a DT, and in a sequence item."""
    ds = read(planted())
    ds.StudyTime, ds.SeriesTime = study_time, series_time
    ds.AcquisitionDateTime = "20040119072731.25+0100"
    ds.ReferencedInstanceSequence[0].ProcedureCodeSequence[0].ContrastBolusStartTime = "0915"
    return encode(ds)


def test_a_clean_output_with_modified_times_passes() -> None:
    original = _timed()
    findings = verify_bytes(scrub(original, MODIFIED), MODIFIED, original)
    assert not {"time-not-modified", "date-not-shifted", "date-invalid"} & rules(findings), findings


@pytest.mark.parametrize(("where", "put_back"), [
    ("StudyTime", lambda ds: setattr(ds, "StudyTime", "101500")),
    ("StudyTime", lambda ds: setattr(ds, "StudyTime", "10:15:00.000")),  # another spelling, same time
    ("AcquisitionDateTime", lambda ds: setattr(ds, "AcquisitionDateTime", ds.AcquisitionDateTime[:8] + "072731")),
    ("ReferencedInstanceSequence[0].ProcedureCodeSequence[0].ContrastBolusStartTime",
     lambda ds: setattr(ds.ReferencedInstanceSequence[0].ProcedureCodeSequence[0], "ContrastBolusStartTime", "0915")),
])
def test_an_original_time_of_day_planted_back_is_caught(where: str, put_back: Callable[[Dataset], None]) -> None:
    """PS3.15 E.3.6 (Table E.1-1: C for TM and DT): with the original at hand, an original time
    of day at its own place in an otherwise clean output is `time-not-modified`; the date of the
    DT stays shifted, so only the time rule can see it."""
    original = _timed()
    output = mutate(scrub(original, MODIFIED), put_back)
    findings = verify_bytes(output, MODIFIED, original)
    assert Finding(VerifyRule.TIME_NOT_MODIFIED, where, Severity.HIGH) in findings
    assert [f.path for f in findings if f.rule == VerifyRule.TIME_NOT_MODIFIED] == [where]


def test_a_shifted_time_that_spells_another_original_time_is_no_finding() -> None:
    """One patient's times are close: with SeriesTime exactly the patient's shift after StudyTime,
    the correctly shifted StudyTime spells the original SeriesTime. Compared place by place, that
    is no finding; a midnight original kept (000000: a dummy's spelling) is none either."""
    seconds = patient_offset(f"PatientID:{PATIENT_ID}", Keys(key=KEY)).seconds
    later = 10 * 3600 + seconds
    series_time = f"{later // 3600 % 24:02d}{later // 60 % 60:02d}{later % 60:02d}"
    original = _timed("100000", series_time)
    output = scrub(original, MODIFIED)
    assert read(output).StudyTime == series_time  # the coincidence is real
    assert "time-not-modified" not in rules(verify_bytes(output, MODIFIED, original))
    midnight = _timed("000000")
    kept = mutate(scrub(midnight, MODIFIED), lambda ds: setattr(ds, "StudyTime", "000000"))
    assert "time-not-modified" not in rules(verify_bytes(kept, MODIFIED, midnight))


def test_a_time_that_is_not_a_time_is_invalid_with_modified_dates() -> None:
    original = _timed()
    output = mutate(scrub(original, MODIFIED), lambda ds: setattr(ds, "StudyTime", "2561"))
    assert Finding(VerifyRule.DATE_INVALID, "StudyTime", Severity.MEDIUM) in verify_bytes(output, MODIFIED, original)


def test_blanked_attribute_with_a_value_is_caught_even_without_original() -> None:
    output = mutate(scrub(planted()), lambda ds: setattr(ds, "AccessionNumber", "A1"))
    assert Finding(VerifyRule.VALUE_NOT_BLANK, "AccessionNumber", Severity.HIGH) in verify_bytes(output, ())


def test_file_meta_and_preamble_are_checked() -> None:
    def add_meta(ds: Dataset) -> None:
        ds.file_meta.SourceApplicationEntityTitle = "SCANNER01"

    output = bytearray(mutate(scrub(planted()), add_meta))
    output[:4] = b"TIFF"
    found = rules(verify_bytes(bytes(output), ()))
    assert {"meta-not-allowed", "preamble-not-zero"} <= found


def test_record_of_the_method_must_match_the_options() -> None:
    output = scrub(planted())
    found = rules(verify_bytes(output, ("retain-longitudinal-full-dates",)))
    assert {"method-codes-mismatch", "temporal-flag-mismatch"} <= found
    stripped = mutate(output, lambda ds: delattr(ds, "PatientIdentityRemoved"))
    assert "identity-removed-missing" in rules(verify_bytes(stripped, ()))


def test_raw_original_yields_many_findings_and_none_holds_a_value() -> None:
    original = planted()
    findings = verify_bytes(original, (), original, "in/Quixote/1.dcm")
    assert len(findings) > 50
    assert {"original-value-in-bytes", "attribute-not-allowed", "private-not-allowed", "uid-not-remapped",
            "identity-removed-missing", "trailing-padding-present", "value-in-path"} <= rules(findings)
    text = json.dumps([f.as_dict() for f in findings]).lower()
    for value in ("quixote", "alonso", PATIENT_ID.lower(), "barataria", BIRTH_DATE, "panza"):
        assert value not in text


def test_unreadable_output_is_a_finding_not_a_crash() -> None:
    findings = verify_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 10, ())
    assert "output-unreadable" in rules(findings)


def test_unknown_option_is_a_profile_error() -> None:
    with pytest.raises(ProfileError):
        verify_bytes(scrub(planted()), ("retain-everything",))


def test_verify_reads_the_recipe_text_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for recipe in RECIPES.glob("*.deid"):
        shutil.copy(recipe, tmp_path / recipe.name)
    with (tmp_path / "basic.deid").open("a") as handle:
        handle.write("REMOVE (0008,0070)\n")  # a later line: Manufacturer is no longer kept
    output = scrub(planted())
    monkeypatch.setenv("DEID_PIPELINE_PROFILES", str(tmp_path))
    # Manufacturer is Type 2 in the CT Image IOD: the removal the recipe asks for is an emptying (E.1.1)
    assert Finding(VerifyRule.VALUE_NOT_BLANK, "Manufacturer", Severity.HIGH) in verify_bytes(output, ())


# --- gaps of the scrubber that verify catches (reported, not fixed here) ----------------------


def test_cleaned_description_keeps_no_two_letter_name_component() -> None:
    ds = read(planted())
    ds.PatientName = "Li^Wei"
    ds.StudyDescription = "CT head for Li Wei"
    original = encode(ds)
    options = ("clean-descriptors",)
    assert verify_bytes(scrub(original, options), options, original) == []


def test_cleaned_description_keeps_no_part_of_a_hyphenated_name() -> None:
    ds = read(planted())
    ds.PatientName = "Smith-Jones^Mary"
    ds.StudyDescription = "follow-up of Mrs Jones"
    original = encode(ds)
    options = ("clean-descriptors",)
    assert verify_bytes(scrub(original, options), options, original) == []


# --- the verify command ------------------------------------------------------------------------


def _release(tmp_path: Path) -> tuple[Path, Path, Path]:
    originals, release = tmp_path / "in" / "Quixote_Alonso", tmp_path / "release"
    originals.mkdir(parents=True)
    release.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        data = planted(name)
        (originals / name).write_bytes(data)
        output = scrub(data)
        (release / f"{read(output).SOPInstanceUID}.dcm").write_bytes(output)
    key = tmp_path / "key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    return originals, release, key


def test_verify_command_passes_a_clean_release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    originals, release, key = _release(tmp_path)
    report = tmp_path / "report.json"
    code = main(["verify", str(release), "--workers", "0", "--originals", str(originals), "--key-file", str(key),
                 "--json", str(report)])
    assert code == 0
    assert "verified 2 file(s)" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["files"] == 2 and data["with_originals"] and data["findings"] == []


def test_verify_command_reports_a_leak_by_rule_without_values(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    originals, release, key = _release(tmp_path)
    victim = sorted(release.iterdir())[0]

    def put_back(ds: Dataset) -> None:
        ds.ImageComments = NAME

    victim.write_bytes(mutate(victim.read_bytes(), put_back))
    code = main(["verify", str(release), "--workers", "0", "--originals", str(originals), "--key-file", str(key)])
    out = capsys.readouterr().out
    assert code == 1
    assert "original-value-in-bytes" in out and "attribute-not-allowed" in out and victim.name in out
    assert "Quixote" not in out and str(tmp_path) not in out


def test_verify_command_usage_errors_exit_2(tmp_path: Path) -> None:
    _, release, _ = _release(tmp_path)
    assert main(["verify", str(tmp_path / "missing")]) == 2
    assert main(["verify", str(release), "--option", "retain-everything"]) == 2


# --- the raw reading of values (verify reads ASCII text from the stored bytes) ----------------

RAW_READ_FILES = ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtplan.dcm",
                  "test-SR.dcm", "waveform_ecg.dcm", "examples_overlay.dcm")


def _encoded_names(charset: str, name: str) -> bytes:
    ds = read(planted())
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.ReferringPhysicianName = "Ascii^Only"
    ds.StudyDescription = f"{name} seen"
    return encode(ds)


@pytest.mark.parametrize("source", [*RAW_READ_FILES, "latin-1", "iso-2022-jp", "utf-8"])
def test_values_read_raw_equal_pydicoms_decoded_values(source: str) -> None:
    """Every value verify reads from the stored bytes equals what pydicom decodes, at every
    depth, in implicit, explicit and big-endian files and in three character sets."""
    from pipeline.verify.profile import load_profile
    from pipeline.verify.walk import element_strings, walk

    if source == "latin-1":
        data = _encoded_names("ISO_IR 100", "Müller^Jürgen")
    elif source == "iso-2022-jp":
        data = _encoded_names("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎")
    elif source == "utf-8":
        data = _encoded_names("ISO_IR 192", "Wang^XiaoDong=王^小東")
    else:
        data = planted(source) if source != "MR_small_bigendian.dcm" else bundled(source).read_bytes()
    profile = load_profile(())
    raw_walk = {visit.path: visit.strings for visit in walk(read(data), profile)}
    decoded = read(data)
    for elem in decoded.iterall():  # decode everything first
        _ = elem.value
    decoded_walk = {visit.path: element_strings(visit.elem) for visit in walk(decoded, profile)}
    assert raw_walk.keys() == decoded_walk.keys()
    differing = sorted(path for path in raw_walk if raw_walk[path] != decoded_walk[path])
    assert differing == [], differing
    assert len(raw_walk) > 20




@pytest.mark.parametrize(("code", "options"), [("113100", ()), ("113110", ("retain-uids",)), ("REMOVE", ())])
def test_a_free_text_word_the_record_writes_itself_is_not_a_leak(code: str, options: tuple[str, ...]) -> None:
    """Found by `make fuzz` (random datasets, verify:original-value-in-bytes): the original's free
    text held a word equal to a CID 7050 code, or REMOVE; the scrub removed the text, and the record
    it writes holds the code (De-identification Method Code Sequence) or REMOVED (Longitudinal
    Temporal Information Modified): a verify false positive."""
    from tests.conftest import make_dataset

    ds = make_dataset()
    ds.ImageComments = f"reference {code} noted"  # X
    data = encode(ds)
    out = scrub_bytes(data, compile_plan("basic", list(options)), Keys(key=KEY)).data
    assert code.encode() in out  # the record's Code Value
    assert verify_bytes(out, options, original=data) == []
