"""Modified Dates (PS3.15 E.3.6): a correctly shifted date that spells another date of the
original is the shift's own result, judged at its place (pipeline/verify/shifted_dates.py); the
same date anywhere else in the output is still found."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.dates import patient_offset
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.findings import VerifyRule
from tests.conftest import encode, make_dataset

MODIFIED = "retain-longitudinal-modified-dates"
PLAN = compile_plan("basic", [MODIFIED])
KEYS = Keys(key=b"k" * 32)
DAY = "20240131"
FILLER = "ZQZQZQZQ"  # a kept Manufacturer as long as a date, no original value


def _moved(day: str) -> str:
    """`day` as the scrub shifts a date of the patient of `make_dataset` (PatientID MRN0001)."""
    days = patient_offset("PatientID:MRN0001", KEYS).days
    return (date(int(day[:4]), int(day[4:6]), int(day[6:])) + timedelta(days=days)).strftime("%Y%m%d")


def _original(where: str) -> bytes:
    """A file whose date `DAY`, shifted, is the date another attribute holds: Study Date's shift is
    the original Series Date (top), or a date in a kept item, one or two sequences down, is
    shifted onto the original Study Date (nested, deeper)."""
    ds = make_dataset()
    del ds.StudyTime  # a date alone moves by whole days
    ds.Manufacturer = FILLER
    if where == "top":
        ds.StudyDate, ds.SeriesDate = DAY, _moved(DAY)
        return encode(ds)
    ds.StudyDate = _moved(DAY)
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
    item.InstanceCreationDate = DAY
    if where == "deeper":
        outer = Dataset()
        outer.SeriesInstanceUID = "1.2.826.0.1.3680043.10.9.8"
        outer.AnatomicRegionSequence = Sequence([item])
        ds.ReferencedSeriesSequence = Sequence([outer])
    else:
        ds.AnatomicRegionSequence = Sequence([item])
    return encode(ds)


@pytest.mark.parametrize("where", ["top", "nested", "deeper"])
def test_a_shifted_date_that_spells_another_original_date_is_not_a_finding(where: str) -> None:
    """Was verify:original-value-in-bytes (`make fuzz`, seed 3819846985, kind times): Study Date
    shifted by the patient's days was the date of the original's Interlock Date Time."""
    data = _original(where)
    output = scrub_bytes(data, PLAN, KEYS).data
    assert output.count(_moved(DAY).encode()) == 1  # the shifted value, at its own place
    assert verify_bytes(output, (MODIFIED,), original=data) == []


@pytest.mark.parametrize("where", ["top", "nested", "deeper"])
def test_the_same_date_elsewhere_in_the_output_is_still_found(where: str) -> None:
    """Only what lies inside the shifted value is excused: the original date written into a kept
    text attribute is found, in the bytes and in the attribute."""
    data = _original(where)
    output = scrub_bytes(data, PLAN, KEYS).data.replace(FILLER.encode(), _moved(DAY).encode())
    rules = {(f.rule, f.path if f.rule is VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE else "", f.detail)
             for f in verify_bytes(output, (MODIFIED,), original=data)}
    assert rules == {(VerifyRule.ORIGINAL_VALUE_IN_BYTES, "", "date"),
                     (VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, "Manufacturer", "date")}


def test_a_date_carried_over_from_another_attribute_is_still_found() -> None:
    """A shifted place holding another original date, in a file whose other dates moved by the
    patient's days, is no shift's result (E.3.6 moves a patient's dates alike): found."""
    ds = make_dataset()
    del ds.StudyTime
    ds.StudyDate, ds.SeriesDate, ds.AcquisitionDate = DAY, "20100101", "20010203"
    data = encode(ds)
    output = scrub_bytes(data, PLAN, KEYS).data
    assert output.count(_moved(DAY).encode()) == 1
    carried = output.replace(_moved(DAY).encode(), b"20010203")  # Study Date := the original Acquisition Date
    rules = {(f.rule, f.path if f.rule is VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE else "", f.detail)
             for f in verify_bytes(carried, (MODIFIED,), original=data)}
    assert rules == {(VerifyRule.ORIGINAL_VALUE_IN_BYTES, "", "date"),
                     (VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, "StudyDate", "date")}
