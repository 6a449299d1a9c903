"""The shipped PS3.3 Type table (pipeline/profile/iod_types.json) and the profile's reader of it."""

from __future__ import annotations

import pickle
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from pipeline.profile.iod import AttributeType, IodTable, edition, iod_for
from tests.conftest import REFERENCE, REPO

GENERATOR = REPO / "profiles" / "generate_iod_types.py"
CT = "1.2.840.10008.5.1.4.1.1.2"
CT_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.2.3"  # PS3.4 2026d only; its IOD is the 2020 CT Image IOD
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"

PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020
STUDY_INSTANCE_UID, SOP_INSTANCE_UID = 0x0020000D, 0x00080018
CONTENT_DATE, IMAGE_TYPE, INSTANCE_NUMBER = 0x00080023, 0x00080008, 0x00200013
INSTITUTION_NAME = 0x00080080
REFERENCED_IMAGE_SEQUENCE = 0x00081140
REFERENCED_SOP_CLASS_UID, REFERENCED_SOP_INSTANCE_UID = 0x00081150, 0x00081155
OPERATOR_IDENTIFICATION_SEQUENCE, PERSON_IDENTIFICATION_CODE_SEQUENCE = 0x00081072, 0x00401101
SHARED_FUNCTIONAL_GROUPS, PER_FRAME_FUNCTIONAL_GROUPS = 0x52009229, 0x52009230
FRAME_CONTENT_SEQUENCE, STACK_ID = 0x00209111, 0x00209056
CONTENT_SEQUENCE, RELATIONSHIP_TYPE = 0x0040A730, 0x0040A010


def _table(uid: str) -> IodTable:
    table = iod_for(uid)
    assert table is not None, uid
    return table


def _reference() -> Path:
    if not (REFERENCE / "ps3.3-iod-attributes-2020.json").exists():
        pytest.skip("../shared/reference is not beside the project")
    return REFERENCE


def test_shipped_table_is_what_the_generator_makes_from_the_reference(tmp_path: Path) -> None:
    out = tmp_path / "iod_types.json"
    result = subprocess.run([sys.executable, str(GENERATOR), "--reference", str(_reference()), "--out", str(out)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    shipped = resources.files("pipeline.profile").joinpath("iod_types.json").read_bytes()
    assert out.read_bytes() == shipped
    assert len(shipped) < 2_000_000


def test_generator_check_fails_on_a_stale_table(tmp_path: Path) -> None:
    stale = tmp_path / "iod_types.json"
    shipped = resources.files("pipeline.profile").joinpath("iod_types.json").read_text(encoding="utf-8")
    stale.write_text(shipped.replace('"00100010":"2"', '"00100010":"3"', 1), encoding="utf-8")
    assert stale.read_text(encoding="utf-8") != shipped
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--reference", str(_reference()), "--out", str(stale), "--check"],
        capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "stale" in result.stderr


def test_ct_image_types_match_ps3_3() -> None:
    ct = _table(CT)
    assert ct.iod == "ct-image"
    assert ct.type_of((PATIENT_NAME,)) is AttributeType.TYPE_2  # Patient Module
    assert ct.type_of((PATIENT_ID,)) is AttributeType.TYPE_2
    assert ct.type_of((STUDY_INSTANCE_UID,)) is AttributeType.TYPE_1  # General Study Module
    assert ct.type_of((SOP_INSTANCE_UID,)) is AttributeType.TYPE_1  # SOP Common Module
    assert ct.type_of((CONTENT_DATE,)) is AttributeType.TYPE_2C  # General Image Module
    assert ct.type_of((INSTITUTION_NAME,)) is AttributeType.TYPE_3  # General Equipment Module


def test_an_attribute_in_two_modules_takes_the_stricter_type() -> None:
    ct = _table(CT)
    # Image Type: 3 in General Image, 1 in CT Image; Instance Number: 2 in General Image, 3 in SOP Common.
    assert ct.type_of((IMAGE_TYPE,)) is AttributeType.TYPE_1
    assert ct.type_of((INSTANCE_NUMBER,)) is AttributeType.TYPE_2
    # Enhanced MR has no General Image Module: the Multi-frame Functional Groups Module makes both Type 1.
    mr = _table(ENHANCED_MR)
    assert mr.type_of((INSTANCE_NUMBER,)) is AttributeType.TYPE_1
    assert mr.type_of((CONTENT_DATE,)) is AttributeType.TYPE_1


def test_sequence_items_resolve_through_their_macros() -> None:
    ct = _table(CT)
    # General Image: Referenced Image Sequence (3), items by the Image SOP Instance Reference Macro.
    assert ct.type_of((REFERENCED_IMAGE_SEQUENCE,)) is AttributeType.TYPE_3
    assert ct.type_of((REFERENCED_IMAGE_SEQUENCE, REFERENCED_SOP_INSTANCE_UID)) is AttributeType.TYPE_1
    assert ct.type_of((REFERENCED_IMAGE_SEQUENCE, REFERENCED_SOP_CLASS_UID)) is AttributeType.TYPE_1
    # The README's example: Table E.1-1's X/D for (0008,1072) resolves to X in a CT Image.
    assert ct.type_of((OPERATOR_IDENTIFICATION_SEQUENCE,)) is AttributeType.TYPE_3
    assert ct.type_of((OPERATOR_IDENTIFICATION_SEQUENCE, PERSON_IDENTIFICATION_CODE_SEQUENCE)) is AttributeType.TYPE_1
    items = ct.types((REFERENCED_IMAGE_SEQUENCE,))
    assert items is not None
    assert items[REFERENCED_SOP_INSTANCE_UID] is AttributeType.TYPE_1
    assert PATIENT_NAME not in items


def test_functional_group_macros_sit_in_both_functional_groups_sequences() -> None:
    mr = _table(ENHANCED_MR)
    assert mr.type_of((SHARED_FUNCTIONAL_GROUPS,)) is AttributeType.TYPE_1
    assert mr.type_of((PER_FRAME_FUNCTIONAL_GROUPS,)) is AttributeType.TYPE_1C
    assert mr.type_of((PER_FRAME_FUNCTIONAL_GROUPS, FRAME_CONTENT_SEQUENCE)) is AttributeType.TYPE_1
    assert mr.type_of((PER_FRAME_FUNCTIONAL_GROUPS, FRAME_CONTENT_SEQUENCE, STACK_ID)) is AttributeType.TYPE_1C
    assert mr.type_of((SHARED_FUNCTIONAL_GROUPS, FRAME_CONTENT_SEQUENCE, STACK_ID)) is AttributeType.TYPE_1C
    assert mr.type_of((STACK_ID,)) is None  # not a top-level attribute of the IOD
    assert _table(CT).type_of((PER_FRAME_FUNCTIONAL_GROUPS,)) is None  # CT Image has no functional groups


def test_every_overlay_group_reads_as_one() -> None:
    ct = _table(CT)  # Overlay Plane Module: Overlay Data (60xx,3000) Type 1
    assert ct.type_of((0x60003000,)) is AttributeType.TYPE_1
    assert ct.type_of((0x601E3000,)) is AttributeType.TYPE_1
    assert ct.type_of((0x60013000,)) is None  # odd group: private
    assert ct.type_of((0x60203000,)) is None  # beyond the repeating groups


def test_unknown_sop_class_iod_and_tags_are_none_not_optional() -> None:
    assert iod_for("1.2.3.4") is None
    assert iod_for("") is None
    ct = _table(CT)
    assert ct.type_of((0x00091010,)) is None  # private
    assert ct.type_of((0x00189999,)) is None  # not in the IOD
    assert ct.type_of(()) is None
    assert ct.type_of((PATIENT_NAME, PATIENT_NAME)) is None  # Patient's Name is no sequence
    assert ct.types((PATIENT_NAME,)) is None
    assert ct.types((0x00189999,)) is None


def test_nesting_deeper_than_ps3_3_lists_is_unknown() -> None:
    sr = _table(COMPREHENSIVE_SR)
    assert sr.type_of((CONTENT_SEQUENCE,)) is AttributeType.TYPE_1C
    assert sr.type_of((CONTENT_SEQUENCE, RELATIONSHIP_TYPE)) is AttributeType.TYPE_1
    # The 2020 tables stop the SR content tree's recursion after one level.
    assert sr.type_of((CONTENT_SEQUENCE, CONTENT_SEQUENCE)) is None


def test_a_sop_class_from_ps3_4_2026d_uses_its_2020_iod() -> None:
    table = _table(CT_FOR_PROCESSING)
    assert table.iod == "ct-image"
    assert table.types() == _table(CT).types()


def test_combined_code_resolution_follows_the_type() -> None:
    ct = _table(CT)
    resolved = {}
    for tag in (PATIENT_ID, INSTITUTION_NAME, STUDY_INSTANCE_UID):
        kind = ct.type_of((tag,))
        assert kind is not None
        resolved[tag] = "D" if kind.needs_value else "Z" if kind.needs_presence else "X"
    # PS3.15 E.1.1: Type 1 -> D, Type 2 -> Z, Type 3 -> X.
    assert resolved == {PATIENT_ID: "Z", INSTITUTION_NAME: "X", STUDY_INSTANCE_UID: "D"}
    assert [t.needs_value for t in AttributeType] == [True, True, False, False, False]
    assert [t.needs_presence for t in AttributeType] == [True, True, True, True, False]


def test_a_table_pickles_as_its_sop_class_and_reads_the_same_in_a_new_process() -> None:
    ct = _table(CT)
    data = pickle.dumps(ct)
    assert len(data) < 200
    assert b"ct-image" not in data  # only the UID travels; the worker reads its own shipped file
    assert pickle.loads(data) == ct
    code = ("import pickle, sys; t = pickle.loads(sys.stdin.buffer.read()); "
            "print(t.iod, t.type_of((0x00081140, 0x00081155)))")
    result = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True, cwd=REPO)
    assert result.stdout.decode().split() == ["ct-image", "1"]


def test_edition_names_the_ps3_3_source() -> None:
    assert edition().startswith("2020")
