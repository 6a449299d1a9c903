"""Sequences the profile replaces (D, X/D, X/Z/D; PS3.15 Table E.1-1a) keep their items'
structure and none of their content: staff IDs, names and institutions inside identification
sequences are gone at every depth, while codes elsewhere stay (issue 13, kind 1)."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.profile.plan import Action, compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.decisions import replacing_action
from pipeline.scrub.keys import Keys
from pipeline.scrub.uids import remap_uid
from tests.conftest import encode, make_dataset
from tests.identification import INSTITUTION_CODE, SAFE_CODE, code, identified_dataset, planted_values

BASIC = compile_plan("basic")


def _scrubbed(ds: Dataset, keys: Keys, options: tuple[str, ...] = ()) -> tuple[bytes, Dataset]:
    data = scrub_bytes(encode(ds), compile_plan("basic", options), keys).data
    return data, pydicom.dcmread(io.BytesIO(data))


def test_no_staff_id_name_or_institution_survives_at_any_depth(keys: Keys) -> None:
    data, _ = _scrubbed(identified_dataset(), keys)
    for value in planted_values():
        assert value.lower().encode() not in data.lower()


def test_replaced_identification_keeps_its_structure(keys: Keys) -> None:
    _, out = _scrubbed(identified_dataset(), keys)
    deep = (out.TreatmentSessionBeamSequence[0].ControlPointDeliverySequence[0].OverrideSequence[0]
            .OperatorIdentificationSequence[0])
    # At the top of a CT both are Type 3: X/D and X/Z/D resolve to X. The CT IOD does not define the
    # deep item (an RT record's): the conservative D replaces.
    assert "OperatorIdentificationSequence" not in out and "InstitutionCodeSequence" not in out
    for operator in (deep,):
        person = operator.PersonIdentificationCodeSequence[0]
        assert (person.CodeValue, person.CodingSchemeDesignator, person.CodeMeaning) == ("ANONYMIZED",) * 3
        assert operator.InstitutionCodeSequence[0].CodeValue == "ANONYMIZED"
    assert out.RequestingPhysicianIdentificationSequence[0].PersonIdentificationCodeSequence[0].CodeValue == (
        "ANONYMIZED")  # no row of Table E.1-1: pipeline/recipes/identification.deid
    assert out.ReferencedSeriesSequence[0].HumanPerformerCodeSequence[0].CodeMeaning == "ANONYMIZED"
    assert "PerformingPhysicianIdentificationSequence" not in out  # X


def test_codes_that_identify_nobody_are_kept(keys: Keys) -> None:
    _, out = _scrubbed(identified_dataset(), keys)
    region = out.AnatomicRegionSequence[0]
    assert (region.CodeValue, region.CodeMeaning, region.CodingSchemeDesignator) == SAFE_CODE


def test_retain_institution_identity_keeps_the_institution_code(keys: Keys) -> None:
    _, out = _scrubbed(identified_dataset(), keys, ("retain-institution-identity",))
    assert out.InstitutionCodeSequence[0].CodeValue == INSTITUTION_CODE


def _report() -> Dataset:
    ds = make_dataset()
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "CODE"
    item.ConceptNameCodeSequence = Sequence([code("121071", "Finding", "DCM")])
    item.ConceptCodeSequence = Sequence([code(*SAFE_CODE)])
    ds.ContentSequence = Sequence([item])  # Table E.1-1: D; Clean Structured Content: C
    return ds


def test_content_sequence_is_replaced_unless_structured_content_is_cleaned(keys: Keys) -> None:
    _, basic = _scrubbed(_report(), keys)
    item = basic.ContentSequence[0]  # the item's kind and relationship are structural: kept
    assert (item.ValueType, item.RelationshipType) == ("CODE", "CONTAINS")
    assert item.ConceptCodeSequence[0].CodeValue == "ANONYMIZED"
    _, cleaned = _scrubbed(_report(), keys, ("clean-structured-content",))
    item = cleaned.ContentSequence[0]
    assert (item.ValueType, item.ConceptCodeSequence[0].CodeValue) == ("CODE", SAFE_CODE[0])


def test_uids_inside_a_replaced_sequence_follow_their_own_rule(keys: Keys) -> None:
    ds = make_dataset()
    step = Dataset()
    step.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step
    step.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.9.77"
    ds.ReferencedPerformedProcedureStepSequence = Sequence([step])  # X/Z/D
    ds.SOPClassUID = "1.2.826.0.1.3680043.10.2.777"  # an IOD the table does not know: X/Z/D is D (conservative)
    _, out = _scrubbed(ds, keys)
    item = out.ReferencedPerformedProcedureStepSequence[0]
    assert item.ReferencedSOPClassUID == "1.2.840.10008.3.1.2.3.3"
    assert item.ReferencedSOPInstanceUID == remap_uid("1.2.826.0.1.3680043.10.9.77", keys)
    _, kept = _scrubbed(ds, keys, ("retain-uids",))
    assert kept.ReferencedPerformedProcedureStepSequence[0].ReferencedSOPInstanceUID == step.ReferencedSOPInstanceUID


@pytest.mark.parametrize(("action", "vr", "expected"), [
    (Action.KEEP, "SH", Action.DUMMY), (Action.CLEAN, "LO", Action.DUMMY), (Action.KEEP, "US", Action.DUMMY),
    (Action.KEEP, "SQ", Action.KEEP), (Action.KEEP, "UI", Action.KEEP), (Action.UID, "UI", Action.UID),
    (Action.REMOVE, "PN", Action.REMOVE), (Action.BLANK, "LO", Action.BLANK),
    (Action.SHIFT_DATE, "DA", Action.SHIFT_DATE),
])
def test_inside_a_replaced_sequence_nothing_is_kept(action: Action, vr: str, expected: Action) -> None:
    assert replacing_action(action, vr) is expected


def test_an_items_character_set_is_kept_inside_a_replaced_sequence(keys: Keys) -> None:
    """Specific Character Set in an item says how the item's text is read (PS3.5 6.1.2.3): a
    dummy ("ANONYMIZED") is no defined term and made pydicom warn on every read of the output
    (found by the session's breaker of issue 16). The item's values are still replaced."""
    ds = make_dataset()
    item = Dataset()
    item.SpecificCharacterSet = "ISO_IR 100"
    item.CodeValue = "QJX123"
    item.CodeMeaning = "QJXNAME"
    ds.RequestingPhysicianIdentificationSequence = Sequence([item])  # D (identification.deid)
    out = pydicom.dcmread(io.BytesIO(scrub_bytes(encode(ds), compile_plan("basic"), keys).data))
    (replaced,) = out.RequestingPhysicianIdentificationSequence
    assert replaced.SpecificCharacterSet == "ISO_IR 100"
    assert "QJX" not in f"{replaced.CodeValue} {replaced.CodeMeaning}"
