"""verify's own reading of the original (pipeline/verify/original.py, search.py): the codes inside
a person's or institution's identification are identifiers (issue 13, kind 1); values shorter
than four characters are searched only in their own attributes, so a true Modality equal to a
component of the accession number is no finding (kind 8). Each fault is planted into an
otherwise clean scrubbed file."""

from __future__ import annotations

import copy
from collections.abc import Callable

from pydicom.dataset import Dataset

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.findings import Finding, VerifyRule
from pipeline.verify.original import Kind, identification_of
from tests.conftest import TEST_KEY, encode, make_dataset, read
from tests.identification import INSTITUTION_CODE, PEOPLE, identified_dataset

DEEP = "TreatmentSessionBeamSequence[0].ControlPointDeliverySequence[0].OverrideSequence[0]."


def _scrub(original: bytes) -> bytes:
    return scrub_bytes(original, compile_plan("basic"), Keys(key=TEST_KEY)).data


def _planted(original: bytes, change: Callable[[Dataset], None]) -> list[Finding]:
    ds = read(_scrub(original))
    change(ds)
    return verify_bytes(encode(ds), (), original, "release/x.dcm")


def _at(findings: list[Finding], rule: VerifyRule) -> dict[str, str]:
    return {f.path: f.detail for f in findings if f.rule == rule}


def test_the_clean_output_of_code_only_identification_passes() -> None:
    original = encode(identified_dataset())
    assert verify_bytes(_scrub(original), (), original, "release/x.dcm") == []


def test_a_staff_id_left_in_a_replaced_code_is_caught_at_any_depth() -> None:
    original = encode(identified_dataset())
    deep = next(k for k in PEOPLE if k.endswith("OverrideSequence.OperatorIdentificationSequence"))
    for prefix, key in (("", "OperatorIdentificationSequence"), (DEEP, deep)):
        staff_id = PEOPLE[key][0]

        def put_back(out: Dataset, prefix: str = prefix, staff_id: str = staff_id) -> None:
            if not prefix:  # Type 3 in a CT: X/D removed it; put back the replaced copy from the deep item
                deep_holder = out.TreatmentSessionBeamSequence[0].ControlPointDeliverySequence[0].OverrideSequence[0]
                out.OperatorIdentificationSequence = copy.deepcopy(deep_holder.OperatorIdentificationSequence)
            holder = out
            for part in prefix.split(".")[:-1]:
                holder = getattr(holder, part.split("[")[0])[0]
            holder.OperatorIdentificationSequence[0].PersonIdentificationCodeSequence[0].CodeValue = staff_id

        findings = _planted(original, put_back)
        path = f"{prefix}OperatorIdentificationSequence[0].PersonIdentificationCodeSequence[0].CodeValue"
        assert path in _at(findings, VerifyRule.VALUE_NOT_REPLACED)
        assert _at(findings, VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE)[path] == Kind.ID.value
        assert Kind.ID.value in _at(findings, VerifyRule.ORIGINAL_VALUE_IN_BYTES).values()


def test_a_name_from_a_code_meaning_is_caught_in_a_kept_attribute() -> None:
    original = encode(identified_dataset())
    for _staff_id, name in PEOPLE.values():

        def put_back(out: Dataset, name: str = name) -> None:
            out.AnatomicRegionSequence[0].CodeMeaning = f"head, seen by {name}"

        findings = _planted(original, put_back)
        assert _at(findings, VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE) == {
            "AnatomicRegionSequence[0].CodeMeaning": Kind.PERSON_NAME.value}, name


def test_a_staff_id_of_a_removed_sequence_or_the_institution_code_is_caught_anywhere() -> None:
    original = encode(identified_dataset())
    for value in (PEOPLE["PerformingPhysicianIdentificationSequence"][0], INSTITUTION_CODE):

        def put_back(out: Dataset, value: str = value) -> None:
            out.AnatomicRegionSequence[0].CodeValue = value

        findings = _planted(original, put_back)
        assert _at(findings, VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE) == {
            "AnatomicRegionSequence[0].CodeValue": Kind.ID.value}


def test_codes_outside_identification_are_not_identifiers() -> None:
    assert identification_of("AnatomicRegionSequence[0].CodeValue") is None
    assert identification_of("OperatorIdentificationSequence[0].InstitutionCodeSequence[0].CodeValue") is (
        Kind.INSTITUTION)
    assert identification_of("ReferencedSeriesSequence[0].HumanPerformerCodeSequence[0].CodeMeaning") is (
        Kind.PERSON_NAME)


# --- kind 8: short values --------------------------------------------------------------------------


def _ultrasound() -> bytes:
    ds = make_dataset()
    ds.Modality = "US"
    del ds.PixelData  # the header is the point; no pixel rule applies
    ds.AccessionNumber = ["US", "A7781234"]  # a real file's accession with a two-letter component
    ds.StudyID = "US"
    return encode(ds)


def test_a_true_modality_equal_to_an_accession_component_is_not_a_finding() -> None:
    original = _ultrasound()
    output = _scrub(original)
    assert read(output).Modality == "US"
    assert verify_bytes(output, (), original, "release/x.dcm") == []


def test_the_accession_number_is_still_caught() -> None:
    original = _ultrasound()

    def long_part(out: Dataset) -> None:
        out.Manufacturer = "Acme A7781234"

    assert _at(_planted(original, long_part), VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE) == {
        "Manufacturer": Kind.ID.value}

    def short_part(out: Dataset) -> None:
        out.AccessionNumber = "US"

    findings = _planted(original, short_part)
    assert _at(findings, VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE) == {"AccessionNumber": Kind.ID.value}
    assert "AccessionNumber" in _at(findings, VerifyRule.VALUE_NOT_BLANK)
