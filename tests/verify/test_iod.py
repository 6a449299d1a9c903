"""The verifier's own reader of the PS3.3 Type table, checked against the standard, the reference
data and the profile's separate reader."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from pipeline.profile.iod import iod_for
from pipeline.verify.iod import IodType, attributes_at, is_known, required_at, type_at
from tests.conftest import REFERENCE, REPO

CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
COMPARED = {CT: "ct-image", ENHANCED_MR: "enhanced-mr-image", COMPREHENSIVE_SR: "comprehensive-sr"}

PATIENT_NAME, OPERATORS_NAME, CONTENT_DATE = 0x00100010, 0x00081070, 0x00080023
SOP_INSTANCE_UID, REFERENCED_IMAGE_SEQUENCE = 0x00080018, 0x00081140
REFERENCED_SOP_CLASS_UID, REFERENCED_SOP_INSTANCE_UID = 0x00081150, 0x00081155
PER_FRAME_FUNCTIONAL_GROUPS, FRAME_CONTENT_SEQUENCE, STACK_ID = 0x52009230, 0x00209111, 0x00209056
TYPE_ORDER = ("1", "1C", "2", "2C", "3")


def _walk_verifier(uid: str, path: tuple[int, ...] = ()) -> dict[tuple[int, ...], str | None]:
    listed = attributes_at(uid, path)
    assert listed is not None
    found: dict[tuple[int, ...], str | None] = {}
    for tag, kind in listed.items():
        found[(*path, tag)] = None if kind is None else str(kind)
        if attributes_at(uid, (*path, tag)) is not None:
            found.update(_walk_verifier(uid, (*path, tag)))
    return found


def _walk_profile(uid: str) -> dict[tuple[int, ...], str | None]:
    table = iod_for(uid)
    assert table is not None
    found: dict[tuple[int, ...], str | None] = {}
    pending: list[tuple[int, ...]] = [()]
    while pending:
        path = pending.pop()
        listed = table.types(path)
        if listed is None:
            continue
        for tag, kind in listed.items():
            found[(*path, tag)] = None if kind is None else str(kind)
            pending.append((*path, tag))
    return found


def _from_reference(iod: str) -> dict[tuple[int, ...], str]:
    """The strictest Type of each path over the IOD's module and functional group macro rows,
    straight from the reference data (PS3.3 2020), without the generator."""
    path = REFERENCE / "ps3.3-iod-attributes-2020.json"
    if not path.exists():
        pytest.skip("../shared/reference is not beside the project")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    modules = {r["module"] for r in data["iod_modules"] if r["iod"] == iod}
    macros = {r["macro"] for r in data["iod_functional_group_macros"] if r["iod"] == iod}
    rows = [(r["path"], r["type"]) for r in data["module_attributes"] if r["module"] in modules]
    for group in ("52009229", "52009230"):
        rows += [([group, *r["path"]], r["type"]) for r in data["macro_attributes"] if r["macro"] in macros]
    expected: dict[tuple[int, ...], str] = {}
    for tags, kind in rows:
        key = tuple(int(t.replace("XX", "00"), 16) for t in tags)
        if kind in TYPE_ORDER and (key not in expected or TYPE_ORDER.index(kind) < TYPE_ORDER.index(expected[key])):
            expected[key] = kind
    return expected


def test_what_a_ct_image_must_keep() -> None:
    assert is_known(CT)
    top = required_at(CT)
    assert top is not None
    assert top[PATIENT_NAME] is IodType.TYPE_2
    assert top[SOP_INSTANCE_UID] is IodType.TYPE_1
    assert top[CONTENT_DATE] is IodType.TYPE_2C
    assert OPERATORS_NAME not in top  # Type 3 in General Series
    assert type_at(CT, (OPERATORS_NAME,)) is IodType.TYPE_3
    assert top[0x60003000] is IodType.TYPE_1  # Overlay Data, all overlay groups under 6000
    assert type_at(CT, (0x60023000,)) is IodType.TYPE_1


def test_required_attributes_inside_sequence_items() -> None:
    items = required_at(CT, (REFERENCED_IMAGE_SEQUENCE,))
    assert items is not None
    assert items[REFERENCED_SOP_CLASS_UID] is IodType.TYPE_1
    assert items[REFERENCED_SOP_INSTANCE_UID] is IodType.TYPE_1
    frame = (PER_FRAME_FUNCTIONAL_GROUPS, FRAME_CONTENT_SEQUENCE)
    assert type_at(ENHANCED_MR, frame) is IodType.TYPE_1
    assert type_at(ENHANCED_MR, (*frame, STACK_ID)) is IodType.TYPE_1C


def test_unknown_is_none_not_optional() -> None:
    assert not is_known("1.2.3.4")
    assert required_at("1.2.3.4") is None
    assert type_at("1.2.3.4", (PATIENT_NAME,)) is None
    assert type_at(CT, (0x00189999,)) is None
    assert type_at(CT, (0x00091010,)) is None
    assert type_at(CT, ()) is None
    assert required_at(CT, (PATIENT_NAME,)) is None  # no sequence
    assert type_at(CT, (0x60213000,)) is None  # odd group


@pytest.mark.parametrize("uid", sorted(COMPARED))
def test_the_two_readers_agree_on_every_attribute(uid: str) -> None:
    by_verifier = _walk_verifier(uid)
    assert len(by_verifier) > 500
    assert _walk_profile(uid) == by_verifier


@pytest.mark.parametrize("uid", sorted(COMPARED))
def test_the_verifier_reads_what_the_reference_says(uid: str) -> None:
    assert _walk_verifier(uid) == _from_reference(COMPARED[uid])


def test_the_verifier_reads_the_table_without_importing_the_profile_code() -> None:
    # Whatever `import pipeline` itself loads, reading the table must add no module of pipeline.profile.
    code = ("import sys, pipeline; before = set(sys.modules); from pipeline.verify.iod import required_at; "
            "assert required_at('1.2.840.10008.5.1.4.1.1.2'); "
            "print(' '.join(sorted(m for m in set(sys.modules) - before if m.startswith('pipeline'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    added = result.stdout.split()
    assert "pipeline.verify.iod" in added
    assert not [m for m in added if m == "pipeline.profile" or m.startswith("pipeline.profile.")]
