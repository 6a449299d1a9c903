"""The VR an attribute is judged by is the dictionary's (pipeline/scrub/vr.py): text attributes that
no recipe names, stored as explicit OB, OW or UN or read in implicit VR, are removed; an action that
reads or replaces a value stored as bytes works on the value the dictionary says it is."""

from __future__ import annotations

import io
import warnings

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.scrub.vr import decided_vr, needs_retyping
from tests.conftest import make_dataset

BASIC = compile_plan("basic")
MODIFIED = compile_plan("basic", ["retain-longitudinal-modified-dates"])

# (tag, dictionary VR, value): text attributes that no recipe names, each holding a canary.
UNNAMED_TEXT = (
    (0x00142006, "PN", b"Vintrosk^Halemar"),  # EvaluatorName
    (0x00140104, "PN", b"Grashenko^Tilvania"),  # SecondaryReviewerName
    (0x00100033, "LO", b"QZXBIRTH 1382-03-07"),  # PatientBirthDateInAlternativeCalendar
    (0x00143099, "LT", b"calibrated by QZXCALIB at Zelvorn"),  # CalibrationNotes
    (0x00140028, "ST", b"QZXMAKER Prendeghast Works"),  # ComponentManufacturer
    (0x00100218, "UT", b"strain notes of QZXSTRAIN "),  # StrainAdditionalInformation
    (0x00082127, "SH", b"QZXVIEW 4471"),  # ViewName
)
CANARIES = (b"Vintrosk", b"Grashenko", b"QZXBIRTH", b"QZXCALIB", b"QZXMAKER", b"QZXSTRAIN", b"QZXVIEW")


def _encode(ds: Dataset, syntax: str) -> bytes:
    ds.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _with_text(stored_vr: str, depth: int) -> Dataset:
    """A dataset holding every UNNAMED_TEXT attribute stored under `stored_vr`, at top level or
    inside `depth` nested items of a kept sequence (Referenced Series > Referenced Instance)."""
    ds = make_dataset()
    holder = ds
    for level in range(depth):
        item = Dataset()
        keyword = "ReferencedSeriesSequence" if level % 2 == 0 else "ReferencedInstanceSequence"
        setattr(holder, keyword, Sequence([item]))
        holder = item
    for tag, _vr, value in UNNAMED_TEXT:
        padded = value if len(value) % 2 == 0 else value + b" "
        holder.add_new(tag, stored_vr, padded)
    return ds


def test_the_attributes_tested_are_named_by_no_recipe() -> None:
    for tag, vr, _value in UNNAMED_TEXT:
        assert BASIC.rule_for(tag) is None
        assert decided_vr(tag, None, "OB") == vr


@pytest.mark.parametrize("stored_vr", ["OB", "OW", "UN"])
@pytest.mark.parametrize("depth", [0, 1, 4])
def test_text_stored_as_bytes_in_explicit_vr_is_removed(stored_vr: str, depth: int, keys: Keys) -> None:
    data = _encode(_with_text(stored_vr, depth), ExplicitVRLittleEndian)
    for canary in CANARIES:
        assert canary in data  # planted, and stored as claimed
    out = scrub_bytes(data, BASIC, keys).data
    for canary in CANARIES:
        assert canary.lower() not in out.lower()


@pytest.mark.parametrize("depth", [0, 4])
def test_text_in_implicit_vr_is_removed(depth: int, keys: Keys) -> None:
    data = _encode(_with_text("OB", depth), ImplicitVRLittleEndian)
    out = scrub_bytes(data, BASIC, keys).data
    for canary in CANARIES:
        assert canary.lower() not in out.lower()


def test_a_dummied_name_stored_as_ob_becomes_a_name_dummy(keys: Keys) -> None:
    ds = make_dataset()
    ds.add_new(0x0040A075, "OB", b"Vintrosk^Halemar")  # Verifying Observer Name: D
    assert BASIC.rule_for(0x0040A075) is not None
    out = pydicom.dcmread(io.BytesIO(scrub_bytes(_encode(ds, ExplicitVRLittleEndian), BASIC, keys).data))
    assert out["VerifyingObserverName"].VR == "PN"
    assert str(out.VerifyingObserverName) == "ANONYMIZED"


def test_a_date_stored_as_ob_is_shifted_as_a_date(keys: Keys) -> None:
    ds = make_dataset()
    del ds.StudyDate
    ds.add_new(0x00080020, "OB", b"20190314")  # StudyDate
    out = pydicom.dcmread(io.BytesIO(scrub_bytes(_encode(ds, ExplicitVRLittleEndian), MODIFIED, keys).data))
    assert out["StudyDate"].VR == "DA"
    assert str(out.StudyDate) not in ("", "20190314")
    assert len(str(out.StudyDate)) == 8 and str(out.StudyDate).isdigit()


def test_a_kept_code_stored_as_ob_is_kept_byte_for_byte(keys: Keys) -> None:
    ds = make_dataset()
    code = Dataset()
    code.add_new(0x00080100, "OB", b"T-D1100 ")  # CodeValue, kept by safe_text.deid
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "Head"
    ds.AnatomicRegionSequence = Sequence([code])
    out = pydicom.dcmread(io.BytesIO(scrub_bytes(_encode(ds, ExplicitVRLittleEndian), BASIC, keys).data))
    assert out.AnatomicRegionSequence[0]["CodeValue"].value == b"T-D1100 "


def test_vr_choices_and_unknown_tags() -> None:
    assert decided_vr(0x7FE00010, None, "OW") == "OW"  # "OB or OW": the stored one
    assert decided_vr(0x7FE00010, None, "UN") == "OB or OW"
    assert decided_vr(0x00091001, None, "PN") == "UN"  # private, creator unknown
    assert decided_vr(0x00191002, "GEMS_ACQU_01", "OB") == "SL"  # private dictionary
    assert decided_vr(0x00080003, None, "LO") == "UN"  # not in the dictionary
    assert needs_retyping("OB", "PN") and needs_retyping("UN", "DA")
    assert not needs_retyping("PN", "PN") and not needs_retyping("OB", "OB") and not needs_retyping("OB", "SQ")



@pytest.mark.parametrize("stored_vr", ["OB", "UN"])
@pytest.mark.parametrize(("option", "sequence"), [("clean-structured-content", "ContentSequence"),
                                                  ("clean-descriptors", "RequestAttributesSequence")])
def test_a_name_stored_as_bytes_inside_a_cleaned_sequence_is_cleaned_away(stored_vr: str, option: str,
                                                                          sequence: str, keys: Keys) -> None:
    """Found by `make fuzz` (kind ob-un-text, verify:original-value-in-bytes): inside a sequence a
    Clean option cleans, an unnamed Person Name is cleaned (C), and C removes the dataset's names;
    a name stored as OB or UN was not read as one, so it cleaned nothing out of itself."""
    ds = make_dataset()
    item = Dataset()
    item.add_new(0x00142006, stored_vr, b"Vintrosk^Halemar")  # EvaluatorName, named by no recipe
    setattr(ds, sequence, Sequence([item]))
    data = _encode(ds, ExplicitVRLittleEndian)
    out = scrub_bytes(data, compile_plan("basic", [option]), keys).data
    assert b"vintrosk" not in out.lower() and b"halemar" not in out.lower()
