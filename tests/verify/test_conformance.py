"""verify's conformance check relative to the original (issue 14, pipeline/verify/conformance.py):
each fault is planted into an otherwise clean scrubbed file, and only new problems are flagged."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.conformance import MAX_LENGTHS, _short_ascii, _strings, too_long
from pipeline.verify.findings import Finding, VerifyRule
from tests.conftest import TEST_KEY, bundled, encode, read

CONFORMANCE = {VerifyRule.REQUIRED_ATTRIBUTE_MISSING, VerifyRule.REQUIRED_VALUE_EMPTIED,
               VerifyRule.SEQUENCE_EMPTIED, VerifyRule.VALUE_TOO_LONG}


def _original() -> bytes:
    ds = read(bundled("CT_small.dcm").read_bytes())
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "T-D1100", "SRT", "Head"
    ds.AnatomicRegionSequence = Sequence([region])  # Type 3 in the CT Image IOD, kept by the profile
    return encode(ds)


def _planted(original: bytes, change: Callable[[Dataset], None]) -> list[Finding]:
    ds = read(scrub_bytes(original, compile_plan("basic"), Keys(key=TEST_KEY)).data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of the too-long value this test plants
        change(ds)
        data = encode(ds)
    return [f for f in verify_bytes(data, (), original, "release/x.dcm") if f.rule in CONFORMANCE]


def test_the_clean_output_has_no_conformance_finding() -> None:
    assert _planted(_original(), lambda ds: None) == []


def test_a_removed_type_1_attribute_is_flagged() -> None:
    findings = _planted(_original(), lambda ds: delattr(ds, "ImagePositionPatient"))
    assert [(f.rule, f.path, f.detail) for f in findings] == [
        (VerifyRule.REQUIRED_ATTRIBUTE_MISSING, "ImagePositionPatient", "type-1")]


def test_a_removed_type_2_attribute_is_flagged() -> None:
    findings = _planted(_original(), lambda ds: delattr(ds, "Manufacturer"))
    assert [(f.rule, f.path) for f in findings] == [(VerifyRule.REQUIRED_ATTRIBUTE_MISSING, "Manufacturer")]


def test_an_emptied_type_1_value_is_flagged() -> None:
    def empty(ds: Dataset) -> None:
        ds.ImageType = None
    assert [(f.rule, f.path) for f in _planted(_original(), empty)] == [
        (VerifyRule.REQUIRED_VALUE_EMPTIED, "ImageType")]


def test_a_sequence_left_with_zero_items_is_flagged() -> None:
    def empty(ds: Dataset) -> None:
        ds.AnatomicRegionSequence = Sequence([])
    assert [(f.rule, f.path) for f in _planted(_original(), empty)] == [
        (VerifyRule.SEQUENCE_EMPTIED, "AnatomicRegionSequence")]


def test_a_value_past_its_vr_length_is_flagged_only_when_new() -> None:
    def lengthen(ds: Dataset) -> None:
        ds.Manufacturer = "GE MEDICAL SYSTEMS " * 4  # LO: 64 characters at most
    assert [(f.rule, f.path, f.detail) for f in _planted(_original(), lengthen)] == [
        (VerifyRule.VALUE_TOO_LONG, "Manufacturer", "LO")]
    ds = read(_original())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.Manufacturer = "GE MEDICAL SYSTEMS " * 5
        original = encode(ds)
    assert _planted(original, lengthen) == []  # the input broke the limit already: not new


def test_length_limits_follow_ps3_5() -> None:
    assert too_long("SH", ("A" * 17,)) and not too_long("SH", ("A" * 16,))
    assert not too_long("PN", ("A" * 64 + "=" + "B" * 64,)) and too_long("PN", ("A" * 65,))
    assert not too_long("UT", ("A" * 100000,))


@pytest.mark.parametrize("vr", sorted(MAX_LENGTHS))
def test_a_short_ascii_value_is_never_too_long_and_one_byte_more_is_read(vr: str) -> None:
    limit = MAX_LENGTHS[vr]
    for data in (b"1" * limit, b"1" * (limit - 2) + b"\\1", b"1" * (limit + 1), b"1" * (limit + 2),
                 b"1\\" * (limit // 2 + 1), b"", b"\xc3\xa9" * (limit // 2)):
        raw = RawDataElement(Tag(0x00100010), vr, len(data), data, 0, False, True)
        if _short_ascii(raw, vr):
            assert len(data) <= limit
            assert not too_long(vr, _strings(Dataset(), 0x00100010, vr, raw)), (vr, data)
        elif len(data) > limit and b"\\" not in data:
            assert too_long(vr, _strings(Dataset(), 0x00100010, vr, raw)), (vr, data)
