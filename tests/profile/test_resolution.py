"""Combined codes resolved by the attribute's Type at every depth (PS3.15 E.1.1, issue 14 item 3),
required attributes kept or dummied, and clean within VR length limits."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.profile.iod import AttributeType, iod_for
from pipeline.profile.plan import Action, compile_plan
from pipeline.profile.resolution import by_type, conformant, describe_resolution
from pipeline.scrub.header import scrub
from pipeline.scrub.keys import Keys
from pipeline.scrub.vr import fit_length
from tests.conftest import make_dataset

BASIC = compile_plan("basic")
SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


@pytest.mark.parametrize(("code", "kind", "expected"), [
    ("X/Z", AttributeType.TYPE_1, Action.DUMMY), ("X/Z", AttributeType.TYPE_2, Action.BLANK),
    ("X/Z", AttributeType.TYPE_3, Action.REMOVE), ("Z/D", AttributeType.TYPE_3, Action.BLANK),
    ("X/Z/D", AttributeType.TYPE_1C, Action.DUMMY), ("X/Z/U*", AttributeType.TYPE_1, Action.KEEP),
    ("X/Z/U*", AttributeType.TYPE_3, Action.REMOVE),
    ("X/Z/U*", AttributeType.TYPE_2, Action.KEEP), ("X/D", AttributeType.TYPE_2C, Action.BLANK),
])
def test_a_combined_code_resolves_by_type(code: str, kind: AttributeType, expected: Action) -> None:
    assert by_type(code, kind, known=True, is_sequence=False).action is expected


def test_an_unknown_item_keeps_the_conservative_choice() -> None:
    assert by_type("X/Z", None, known=False, is_sequence=True).action is Action.BLANK
    assert by_type("X/Z/U*", None, known=False, is_sequence=True).action is Action.KEEP
    assert by_type("X/D", None, known=True, is_sequence=False).action is Action.REMOVE  # not in the IOD


def test_a_type_3_sequence_is_never_left_empty() -> None:
    raised = conformant(Action.BLANK, AttributeType.TYPE_3, True, is_sequence=True)
    assert raised is not None and raised.action is Action.REMOVE
    assert conformant(Action.BLANK, AttributeType.TYPE_2, True, is_sequence=True) is None


def test_x_z_resolves_by_type_at_depth(keys: Keys) -> None:
    ds = make_dataset()  # CT: Referenced Image Sequence Type 3 at the top
    ds.ReferencedImageSequence = Sequence([Dataset()])
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.5.1"
    ds.ReferencedImageSequence[0].ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.AcquisitionDate = "20200101"  # X/Z, Type 3 in CT
    scrub(ds, BASIC, keys)
    assert "ReferencedImageSequence" not in ds and "AcquisitionDate" not in ds
    mr = make_dataset()
    mr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR: Type 2 in the shared functional groups: U
    reference = Dataset()
    reference.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.5.1"
    reference.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    group = Dataset()
    group.ReferencedImageSequence = Sequence([reference])
    mr.SharedFunctionalGroupsSequence = Sequence([group])
    scrub(mr, BASIC, keys)
    kept = mr.SharedFunctionalGroupsSequence[0].ReferencedImageSequence[0]
    assert kept.ReferencedSOPInstanceUID.startswith("2.25.")


def test_required_unnamed_text_is_dummied_and_type_2_emptied(keys: Keys) -> None:
    ds = make_dataset()
    ds.SOPClassUID = SEGMENTATION
    segment = Dataset()
    segment.SegmentNumber = 1
    segment.SegmentLabel = "Liver of Quorvelle"  # LO, Type 1, no recipe names it
    segment.SegmentAlgorithmName = "Zelvorn's tool"  # LO, Type 1C
    ds.SegmentSequence = Sequence([segment])
    ds.ContentDescription = "for Dr Zelvorn"  # LO, Type 2
    scrub(ds, BASIC, keys)
    out = ds.SegmentSequence[0]
    assert (out.SegmentLabel, out.SegmentAlgorithmName, out.SegmentNumber) == ("ANONYMIZED", "ANONYMIZED", 1)
    assert "ContentDescription" in ds and ds.ContentDescription in ("", None)


def test_sr_text_is_dummied_under_basic_and_the_tree_keeps_its_kinds(keys: Keys) -> None:
    ds = make_dataset()
    ds.SOPClassUID = COMPREHENSIVE_SR
    text = Dataset()
    text.RelationshipType, text.ValueType, text.TextValue = "CONTAINS", "TEXT", "Seen by Zelvorn"
    container = Dataset()
    container.RelationshipType, container.ValueType, container.ContinuityOfContent = "CONTAINS", "CONTAINER", "SEPARATE"
    container.ContentSequence = Sequence([text])  # nested: the recursive content macro
    ds.ContentSequence = Sequence([container])
    request = Dataset()
    request.RequestedProcedureID = "RP-5510"  # X in Table E.1-1, Type 2 here: emptied
    ds.ReferencedRequestSequence = Sequence([request])
    scrub(ds, BASIC, keys)
    inner = ds.ContentSequence[0].ContentSequence[0]
    assert (inner.ValueType, inner.RelationshipType, inner.TextValue) == ("TEXT", "CONTAINS", "ANONYMIZED")
    assert ds.ReferencedRequestSequence[0].RequestedProcedureID in ("", None)


def test_clean_keeps_vr_length_limits(keys: Keys) -> None:
    assert len(fit_length("a" * 70, "LO")) == 64 and fit_length("short", "LO") == "short"
    assert fit_length("A" * 70 + "=" + "B" * 3, "PN") == "A" * 64 + "=BBB"
    ds = make_dataset(patient="Li^Wu")
    ds.StudyDescription = " ".join(["Li Wu"] * 10)  # 59 characters; each name part becomes [removed]
    scrub(ds, compile_plan("basic", ["clean-descriptors"]), keys)
    assert "Li" not in ds.StudyDescription.split() and len(ds.StudyDescription) <= 64


def test_profiles_show_gives_type_and_reason() -> None:
    rows = describe_resolution(BASIC, iod_for(COMPREHENSIVE_SR))
    by_keyword = {row[1]: row for row in rows}
    assert by_keyword["AcquisitionDate"][4] == "X" and by_keyword["AcquisitionDate"][3] == "-"
    assert by_keyword["ContentDate"][3] == "1" and by_keyword["ContentDate"][4] == "D"
    assert "E.1-1 Z/D" in by_keyword["ContentDate"][5]
    conservative = {row[1]: row for row in describe_resolution(BASIC, None)}
    assert conservative["ContentDate"][4] == "D" and conservative["ContentDate"][5].startswith("conservative")
