"""For every row of PS3.15 Table E.1-1: an element with that tag, at top level and inside a
nested sequence, comes out with the expected action, for the Basic Profile and each option.

The expectations are computed here from the table itself (its committed copy,
profiles/table-e1-1.json, checked against ../shared/reference by tests/profile/test_plan.py),
not from the recipes, so a wrong recipe, plan or scrubber fails these tests.
"""

from __future__ import annotations

import datetime

import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.profile.options import OPTION_ORDER, Option
from pipeline.profile.plan import compile_plan
from pipeline.scrub.header import scrub
from pipeline.scrub.keys import Keys
from pipeline.verify.iod import IodType, attributes_at
from tests.conftest import make_dataset, reference_rows
from tests.profile.test_plan import OPTION_SETS, expected_code

NEST = 0x00082218  # AnatomicRegionSequence: not a row of the table, so kept and scrubbed inside
TEXT = {"LO", "SH", "ST", "LT", "UT", "UC", "UR", "AE", "PN", "CS"}
BINARY = {"OB", "OW", "UN", "OF", "OD", "OL", "OV"}
SKIPPED_GROUPS = {0x0002}  # file meta: tested on the meta itself (test_scrub.py)

PLANTED: dict[str, object] = {
    "AE": "PLANTEDAE", "AS": "045Y", "CS": "PLANTED", "DA": "20200115", "DS": "1.5",
    "DT": "20200115123000", "IS": "7", "LO": "Planted Value", "LT": "Planted text",
    "PN": "Planted^Person", "SH": "PLANTEDSH", "ST": "Planted text", "TM": "123000",
    "UC": "Planted text", "UI": "1.2.826.0.1.3680043.10.999.1", "UR": "http://planted.invalid/x",
    "UT": "Planted text", "US": 7, "SS": 7, "UL": 7, "SL": 7, "FL": 1.5, "FD": 1.5, "AT": 0x00100010,
    "OB": b"\x01\x02", "OW": b"\x01\x02", "UN": b"\x01\x02", "SV": 7, "UV": 7,
}


def row_vr(row: dict[str, object]) -> str:
    vr = row["vr"]
    if vr is None:
        return "LO"
    text = str(vr)
    return text.split(" or ")[0] if " or " in text else text


def element_for(row: dict[str, object]) -> list[tuple[DataElement, str | None]]:
    """The planted elements that stand for a row (with the private creator they need)."""
    if row["tag_kind"] == "private":
        return [(DataElement(0x00091010, "LO", "Planted private"), "ACME 1.0")]
    if row["tag_kind"] == "repeating_group":
        tag = str(row["tag"])
        if tag.startswith("(50xx"):
            return [(DataElement(0x50000010, "US", 7), None)]
        element = int(tag[6:10], 16)
        vr = "OW" if element == 0x3000 else "LT"
        return [(DataElement(0x60000000 | element, vr, PLANTED[vr]), None)]
    tag = int(str(row["tag_hex"]), 16)
    vr = row_vr(row)
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "T-1"
        item.CodingSchemeDesignator = "SRT"
        return [(DataElement(tag, "SQ", Sequence([item])), None)]
    return [(DataElement(tag, vr, PLANTED[vr]), None)]


def place(ds: Dataset, elem: DataElement, creator: str | None) -> None:
    if creator is not None:
        ds.add_new((elem.tag.group << 16) | 0x0010, "LO", creator)
    ds.add(DataElement(elem.tag, elem.VR, elem.value))


def build(rows: list[dict[str, object]]) -> Dataset:
    ds = make_dataset()
    nested = Dataset()
    for row in rows:
        for elem, creator in element_for(row):
            if elem.tag.group in SKIPPED_GROUPS:
                continue
            for target in (ds, nested):
                if elem.tag not in target or elem.tag in (0x00100010, 0x00100020):
                    place(target, elem, creator)
    ds.add(DataElement(NEST, "SQ", Sequence([nested])))
    return ds


def by_type(code: str, listed: dict[int, IodType | None] | None, tag: int, vr: str) -> str:
    """PS3.15 E.1.1, read here from the verifier's own reader of the PS3.3 table: a combined code
    resolves by the attribute's Type in the object's IOD (1: D, 2: Z, 3 or not in the IOD: X), and
    what the IOD requires is never removed (1: D, 2: Z). None for `listed`: the item is unknown."""
    if listed is None or (tag in listed and listed[tag] is None) or tag >> 16 in (0x5000, 0x6000):
        return code
    kind = listed.get(tag)
    if "/" in code:
        if kind in (IodType.TYPE_1, IodType.TYPE_1C):
            return "X/Z/U*" if "U" in code else "D"
        if kind in (IodType.TYPE_2, IodType.TYPE_2C):
            return "X/Z/U*" if "U" in code else "Z"
        return "X" if "X" in code else ("D" if vr == "SQ" else "Z")
    if kind in (IodType.TYPE_1, IodType.TYPE_1C) and code in ("X", "Z"):
        return "D"
    if kind in (IodType.TYPE_2, IodType.TYPE_2C) and code == "X":
        return "Z"
    if kind in (None, IodType.TYPE_3) and code == "Z" and vr == "SQ":
        return "X"
    return code


def check(where: str, row: dict[str, object], code: str, column: str, original: DataElement,
          out: Dataset, sop_class: str) -> None:
    tag = original.tag
    if column != "retain_safe_private":
        path = () if where == "top" else (NEST,)
        code = by_type(code, attributes_at(sop_class, path), int(tag), original.VR)
    label = (where, row["tag"], code, column)
    present = tag in out
    value = out[tag].value if present else None
    vr = original.VR
    if column == "retain_longitudinal_modified_dates":
        if vr in ("DA", "DT"):
            assert present and value != original.value, label
            datetime.datetime.strptime(str(value)[:8], "%Y%m%d")
        elif vr == "TM":  # times of day are modified too (Table E.1-1: C)
            assert present and value != original.value, label
            datetime.datetime.strptime(str(value)[:6], "%H%M%S")
        else:
            assert present and value == original.value, label  # Timezone Offset From UTC: kept
        return
    if tag in (0x00100010, 0x00100020) and column == "basic_profile":
        assert present and value and str(value) != str(original.value), label
        return
    if column == "retain_safe_private" or code == "X":
        assert not present, label
        return
    if code in ("Z", "X/Z"):
        assert present and (value in (None, "", b"") or (vr == "SQ" and len(value) == 0)), label
        return
    if code == "K":
        assert present and value == original.value, label
        return
    if code == "U":
        assert present and str(value).startswith("2.25.") and value != original.value, label
        return
    if code in ("D", "Z/D", "X/D", "X/Z/D"):
        assert present, label
        if vr == "SQ":
            assert len(value) == 1, label
        elif vr == "UI":
            assert str(value).startswith("2.25."), label
        else:
            assert value not in (None, "", b"") and value != original.value, label
        return
    if code == "X/Z/U*":
        assert present and len(value) == 1, label
        return
    if code == "C":
        # Overlay and curve groups cannot be shown clean yet, so C removes them (scrub.py).
        if vr in BINARY or row["tag_kind"] == "repeating_group":
            assert not present, label
        else:
            assert present, label
        return
    raise AssertionError(f"no expectation for {code}")


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "+".join(x.value for x in o) or "basic")
def test_every_row_at_top_level_and_nested(options: tuple[Option, ...], keys: Keys) -> None:
    rows = [r for r in reference_rows() if not str(r["tag"]).startswith("(0002")]
    plan = compile_plan("basic", [o.value for o in options])
    ds = build(rows)
    originals = {int(e.tag): DataElement(e.tag, e.VR, e.value) for e in ds}
    sop_class = str(ds.SOPClassUID)
    scrub(ds, plan, keys)
    nested_out = ds[NEST].value[0]
    checked = 0
    for row in rows:
        code, column = expected_code(row, options)
        for elem, _ in element_for(row):
            original = originals.get(int(elem.tag), elem)
            if original.tag in (0x00100010, 0x00100020):
                original = elem  # the factory's own name and ID were replaced by the planted ones
            check("top", row, code, column, original, ds, sop_class)
            check("nested", row, code, column, elem, nested_out, sop_class)
            checked += 1
    assert checked >= 650
    assert ds.PatientIdentityRemoved == "YES"


def test_every_option_is_covered_by_an_option_set() -> None:
    covered = {o for options in OPTION_SETS for o in options}
    assert covered == set(OPTION_ORDER)
