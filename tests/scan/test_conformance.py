"""read_declaration takes the profile a file declares (PS3.15 E.1.1, CID 7050) and nothing more;
looks_dummy tells dummies from values without the original."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.scan.conformance import Declaration, Declared, read_declaration
from pipeline.verify.checks import looks_dummy


def declaring(removed: str | None, *codes: str) -> Dataset:
    ds = Dataset()
    if removed is not None:
        ds.PatientIdentityRemoved = removed
    items = []
    for code in codes:
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = "DCM"
        items.append(item)
    if items:
        ds.DeidentificationMethodCodeSequence = Sequence(items)
    return ds


def test_the_declared_option_codes_become_verify_option_names() -> None:
    declaration = read_declaration(declaring("YES", "113100", "113106", "113111", "113101"))
    assert declaration == Declaration(Declared.PROFILE, (
        "clean-pixel-data", "retain-longitudinal-full-dates", "retain-safe-private"))


@pytest.mark.parametrize("removed", [None, "NO", ""])
def test_codes_count_only_when_patient_identity_removed_is_yes(removed: str | None) -> None:
    declaration = read_declaration(declaring(removed, "113100", "113106"))
    assert declaration == Declaration(Declared.NOTHING) and not declaration.is_identity_removed


def test_identity_removed_without_the_basic_code_is_its_own_declaration() -> None:
    assert read_declaration(declaring("YES")).declared is Declared.IDENTITY_REMOVED
    assert read_declaration(declaring("YES", "113106")) == Declaration(
        Declared.IDENTITY_REMOVED, ("retain-longitudinal-full-dates",))


def test_unknown_codes_are_ignored_and_contradictory_date_options_cancel() -> None:
    declaration = read_declaration(declaring("YES", "113100", "999999", "113106", "113107", "113110"))
    assert declaration == Declaration(Declared.PROFILE, ("retain-uids",))


def test_dummies_look_like_dummies_and_values_do_not() -> None:
    assert all(looks_dummy(vr, v) for vr, v in [("DA", "19000101"), ("TM", "000000"), ("TM", "00:00:00.000"),
                                                 ("PN", "ANONYMIZED"), ("LO", "REMOVED"), ("SH", "PAT-ABC"),
                                                 ("DS", "70.5"), ("LO", "")])
    assert not any(looks_dummy(vr, v) for vr, v in [("DA", "20240131"), ("TM", "101500"), ("PN", "Panza^Sancho"),
                                                     ("CS", "F"), ("LO", "Mercy Hospital")])
