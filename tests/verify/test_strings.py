"""verify reads an element's values from its stored bytes where they are plain, as pydicom decodes
them (pipeline/verify/strings.py): text read again from remembered bytes, and an element pydicom
left unread."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pytest

from pipeline.verify import strings as module
from pipeline.verify.profile import load_profile
from pipeline.verify.strings import element_strings, stored_text
from pipeline.verify.walk import walk
from tests.conftest import encode, make_dataset, read


def test_text_read_again_from_remembered_bytes_is_what_pydicom_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The strings of plain ASCII text are remembered by their stored bytes (strings.py's memo): read
    from the memo, every value is what pydicom decodes (multi-valued, padded, empty), the memo
    never grows past its bound, and a long value is read afresh each time."""
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
