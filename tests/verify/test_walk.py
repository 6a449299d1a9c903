"""verify's walk judges every element by the dictionary VR of its tag, never by the VR the file
claims (issue 13, kind 2): a name stored as explicit OB or UN is a name, and is found both as an
attribute the profile does not allow and, with the original, as the original's name."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.findings import Severity, VerifyRule
from pipeline.verify.profile import load_profile
from pipeline.verify.walk import dictionary_vr, element_strings, walk
from tests.conftest import TEST_KEY, encode, make_dataset, read

EVALUATOR, REVIEWER, COMMENT = 0x00142006, 0x00140104, 0x0022112C  # PN, PN, LT: no recipe names them


def _original(stored_vr: str) -> bytes:
    ds = make_dataset(patient="Quorvelle^Dammitra")
    ds.add_new(EVALUATOR, stored_vr, b"Vintrosk^Halemar")
    ds.add_new(REVIEWER, stored_vr, b"Grashenko^Tilvania ")
    ds.add_new(COMMENT, stored_vr, b"calculated by Grashenko at Zelvorn")
    return encode(ds)


def test_the_walk_reads_the_dictionary_vr() -> None:
    ds = read(_original("OB"))
    assert ds[EVALUATOR].VR == "OB"  # as the file claims
    visits = {v.tag: v for v in walk(ds, load_profile(()))}
    assert (visits[EVALUATOR].vr, visits[COMMENT].vr) == ("PN", "LT")
    assert visits[EVALUATOR].strings == ("Vintrosk^Halemar",)
    assert dictionary_vr(0x7FE00010) is None and dictionary_vr(0x00080003) == "UN"


@pytest.mark.parametrize("stored_vr", ["OB", "OW", "UN"])
@pytest.mark.parametrize("inside", [False, True])
def test_a_name_stored_as_bytes_put_into_a_clean_output_is_caught(stored_vr: str, inside: bool) -> None:
    original = _original(stored_vr)
    output = read(scrub_bytes(original, compile_plan("basic"), Keys(key=TEST_KEY)).data)
    holder = output
    if inside:  # a kept sequence: its items are judged by the same rules
        holder = Dataset()
        output.ReferencedSeriesSequence = Sequence([holder])
    holder.add_new(EVALUATOR, stored_vr, b"Vintrosk^Halemar")
    findings = verify_bytes(encode(output), (), original, "release/x.dcm")
    path = ("ReferencedSeriesSequence[0]." if inside else "") + "EvaluatorName"
    assert any(f.rule == VerifyRule.ATTRIBUTE_NOT_ALLOWED and f.path == path and f.severity is Severity.HIGH
               for f in findings)
    assert any(f.rule == VerifyRule.ORIGINAL_VALUE_IN_BYTES and f.detail == "person-name" for f in findings)


def test_the_clean_output_passes() -> None:
    original = _original("OB")
    output = scrub_bytes(original, compile_plan("basic"), Keys(key=TEST_KEY)).data
    assert verify_bytes(output, (), original, "release/x.dcm") == []


def test_a_value_in_another_stored_vr_reads_as_pydicom_decodes_it() -> None:
    """A private element the dictionary gives one VR (SS, OB) stored in another, explicit one
    (DS, LO) is judged by the dictionary's VR but read, from its bytes, as pydicom decodes the
    stored VR: the same strings as the decoded element, without decoding it."""
    ds = make_dataset()
    ds.add_new(0x00430010, "LO", "GEMS_PARM_01")
    ds.add_new(0x00431002, "DS", b"1.5 \\-2.25")
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291010, "LO", b"SCANNER X OPERATOR Quorvelle^Tam\\ second ")
    parsed = read(encode(ds))
    visits = {v.tag: v for v in walk(parsed, load_profile(("retain-safe-private",)))}
    assert (visits[0x00431002].vr, visits[0x00291010].vr) == ("SS", "OB")
    strings = {tag: visits[tag].strings for tag in (0x00431002, 0x00291010)}
    assert strings == {0x00431002: ("1.5", "-2.25"), 0x00291010: ("SCANNER X OPERATOR Quorvelle^Tam", "second")}
    assert all(type(parsed.get_item(tag)).__name__ == "RawDataElement" for tag in strings)  # not decoded
    assert strings == {tag: element_strings(parsed[tag]) for tag in strings}  # as pydicom decodes them
