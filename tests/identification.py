"""Datasets that identify staff and institutions only by code (issue 13, kind 1): Person
Identification Code Sequence and Institution Code Sequence inside the identification sequences
of PS3.15 Table E.1-1 (X, X/D, D, X/Z/D) and of PS3.3 that the table does not name, at top
level and several sequences deep, beside codes that identify nobody."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.conftest import make_dataset

INSTITUTION_CODE, INSTITUTION_MEANING = "ZMC7781", "Zelvorn Memorial Clinic Radiotherapy"
# keyword path of the sequence holding a person -> (staff ID, name as Code Meaning)
PEOPLE: dict[str, tuple[str, str]] = {
    "OperatorIdentificationSequence": ("OPR4471923", "Vintrosk Halemar"),
    "TreatmentSessionBeamSequence.ControlPointDeliverySequence.OverrideSequence.OperatorIdentificationSequence": (
        "OPR9907315", "Grashenko Tilvania"),
    "PerformingPhysicianIdentificationSequence": ("PHY3318842", "Ostrevik Maunder"),
    "PhysiciansOfRecordIdentificationSequence": ("PHY5527190", "Quellbrand Ysolde"),
    "RequestingPhysicianIdentificationSequence": ("PHY6604471", "Tarquenny Wolstan"),
    "ReferencedSeriesSequence.ReferencedInstanceSequence.PersonIdentificationCodeSequence": (
        "STF2290061", "Brannoway Ethelda"),
    "ReferencedSeriesSequence.HumanPerformerCodeSequence": ("STF7781302", "Mirrowdale Cosgrave"),
}
SAFE_CODE = ("T-D1100", "Head", "SRT")  # Anatomic Region: a code that identifies nobody


def code(value: str, meaning: str, scheme: str = "L") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _person(staff_id: str, name: str) -> Dataset:
    """One item of the Person Identification Macro (PS3.3 Table 10-1)."""
    item = Dataset()
    item.PersonIdentificationCodeSequence = Sequence([code(staff_id, name)])
    item.InstitutionCodeSequence = Sequence([code(INSTITUTION_CODE, INSTITUTION_MEANING)])
    return item


def _place(ds: Dataset, path: str, item: Dataset) -> None:
    *outer, last = path.split(".")
    holder = ds
    for keyword in outer:
        if keyword not in holder:
            setattr(holder, keyword, Sequence([Dataset()]))
        holder = getattr(holder, keyword)[0]
    if last.endswith("CodeSequence"):  # the code itself is the item
        setattr(holder, last, Sequence(list(item.PersonIdentificationCodeSequence)))
    else:
        setattr(holder, last, Sequence([item]))


def identified_dataset() -> Dataset:
    """A dataset naming its staff and institution only by code, in every shape of PEOPLE."""
    ds = make_dataset(patient="Quorvelle^Dammitra", patient_id="8812734519")
    for path, (staff_id, name) in PEOPLE.items():
        _place(ds, path, _person(staff_id, name))
    ds.InstitutionCodeSequence = Sequence([code(INSTITUTION_CODE, INSTITUTION_MEANING)])
    ds.AnatomicRegionSequence = Sequence([code(*SAFE_CODE)])
    return ds


def planted_values() -> list[str]:
    """Every staff ID, name part and institution code the dataset holds."""
    values = [INSTITUTION_CODE, "Zelvorn"]
    for staff_id, name in PEOPLE.values():
        values += [staff_id, *name.split()]
    return values
