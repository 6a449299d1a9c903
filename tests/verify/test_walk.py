"""verify's walk judges every element by the dictionary VR of its tag, never by the VR the file
claims (issue 13, kind 2): a name stored as explicit OB or UN is a name, and is found both as an
attribute the profile does not allow and, with the original, as the original's name."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
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


def test_text_read_again_from_remembered_bytes_is_what_pydicom_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The strings of plain ASCII text are remembered by their stored bytes (walk.py's memo): read
    from the memo, every value is what pydicom decodes (multi-valued, padded, empty), the memo
    never grows past its bound, and a long value is read afresh each time."""
    from pipeline.verify import walk as module

    ds = make_dataset(patient="Quorvelle^Dammitra")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "AXIAL "]
    ds.StudyDescription = " HEAD \\ NECK "  # LO holds several values: split at the backslash
    ds.ImageComments = " HEAD \\ NECK "  # the same bytes in an LT, which holds one value: the backslash is text
    ds.InstitutionName = ""
    ds.OperatorsName = "\\"
    ds.ReferringPhysicianName = "Vintrosk^Halemar" * 10  # longer than what the memo keeps
    data = encode(ds)
    monkeypatch.setattr(module, "_SPLIT_TEXT", {})
    profile = load_profile(())

    def strings() -> dict[int, tuple[str, ...]]:  # a fresh parse each time: the same bytes in new objects
        return {v.tag: v.strings for v in walk(read(data), profile) if v.vr != "SQ"}

    reads = [strings(), strings()]
    assert reads[1][0x00080008] is reads[0][0x00080008]  # the second read came from the memo
    monkeypatch.setattr(module, "_SPLIT_TEXT_SIZE", 4)  # a memo that fills while read: emptied, never past 4
    module._SPLIT_TEXT.clear()
    for _ in range(2):
        reads.append(strings())
        assert len(module._SPLIT_TEXT) <= 4
    decoded = read(data)
    assert all(found == {tag: element_strings(decoded[tag]) for tag in reads[0]} for found in reads)
    assert reads[0][0x00080008] == ("ORIGINAL", "PRIMARY", "", "AXIAL")
    assert reads[0][0x00081030] == ("HEAD", "NECK") and reads[0][0x00204000] == ("HEAD \\ NECK",)
    assert reads[0][0x00080080] == () and reads[0][0x00081070] == ()
    assert all(len(value) <= module._SPLIT_TEXT_BYTES for value in module._SPLIT_TEXT)


def test_stored_text_reads_a_deferred_element_as_pydicom_does(tmp_path: Path) -> None:
    """`stored_text` reads the stored bytes where it can; an element pydicom left unread (a deferred
    read: no value yet) is read by pydicom, as `ds.get` would."""
    from pipeline.verify.walk import stored_text

    path = tmp_path / "deferred.dcm"
    path.write_bytes(encode(make_dataset()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        deferred = pydicom.dcmread(path, defer_size=8)
        whole = pydicom.dcmread(path)
    assert deferred.get_item(0x00080016, keep_deferred=True).value is None  # not read yet
    for tag, keyword in ((0x00080016, "SOPClassUID"), (0x0020000D, "StudyInstanceUID"), (0x00100010, "PatientName"),
                         (0x00100020, "PatientID"), (0x00080018, "SOPInstanceUID"), (0x00081030, "StudyDescription")):
        assert stored_text(deferred, tag, keyword) == str(whole.get(keyword, "") or "")
