"""verify's own reader (pipeline/verify/reader.py) reads every element as pydicom's `dcmread`
does, at every depth: on pydicom's own test files, the bench corpus and the corpus scrubbed;
anything else is left to pydicom; and verify's findings are the same either way."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify import checks, reader
from pipeline.verify.reader import read_file, read_sequence
from tests.verify.test_checks import CREATOR, FILES, KEY, NAME, PATIENT_ID, mutate, planted, scrub

REPO = Path(__file__).resolve().parents[2]
_ITEM_STATE = ("_parent_encoding", "_read_charset", "_read_implicit", "_read_little", "seq_item_tell", "file_tell",
               "is_undefined_length_sequence_item", "_pixel_rep")


def _new_state() -> dict[str, Any]:
    from pipeline.verify.reader import _NEW

    return _NEW


def _pydicom(data: bytes) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(io.BytesIO(data))
        except Exception:
            return None


def _sequence(ds: Dataset, tag: int) -> list[Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(ds[tag].value)


def _same(mine: Dataset, theirs: Dataset, where: str) -> int:
    """Assert `mine` holds what `theirs` holds, element for element, reading every sequence by
    each side's reader; return how many elements were compared."""
    assert list(mine._dict) == list(theirs._dict), where
    for name in _ITEM_STATE:
        assert getattr(mine, name, None) == getattr(theirs, name, None), (where, name)
    if where != "file":  # an item: every attribute pydicom's reader gives it, and no other
        state, other = dict(vars(mine)), dict(vars(theirs))
        assert state.pop("_dict") is not other.pop("_dict")
        assert state == other, where
        for name, value in state.items():  # nothing shared with another item
            assert not isinstance(value, (dict, list, set)) or value is not _new_state().get(name), (where, name)
    compared = 0
    as_read = dict(theirs._dict)  # before reading a sequence converts Pixel Representation (both sides)
    for tag, stored in list(mine._dict.items()):
        other = as_read[tag]
        compared += 1
        if isinstance(other, RawDataElement) and other.VR == "SQ":
            assert isinstance(stored, RawDataElement) and stored == other, (where, tag)
            read = read_sequence(mine, tag, stored)
            elem = read if read is not None else mine[tag]
            theirs_items = _sequence(theirs, tag)
            converted = theirs[tag]
            assert isinstance(elem, DataElement) and elem.VR == "SQ" and mine[tag] is elem, (where, tag)
            assert (elem.file_tell, elem.is_undefined_length) == (converted.file_tell, converted.is_undefined_length)
            flags = [getattr(value, "is_undefined_length", None) for value in (elem.value, converted.value)]
            assert flags[0] == flags[1], (where, tag)
            assert len(elem.value) == len(theirs_items), (where, tag)
            for index, (item, other_item) in enumerate(zip(elem.value, theirs_items, strict=True)):
                compared += _same(item, other_item, f"{where}/{tag:08X}[{index}]")
            # what reading the sequence decoded in `ds` (its Pixel Representation), and the state it set
            assert [type(e) for e in mine._dict.values()] == [type(e) for e in theirs._dict.values()], where
            assert getattr(mine, "_pixel_rep", None) == getattr(theirs, "_pixel_rep", None), where
        else:
            assert stored == other, (where, tag)
    return compared


def _compare_file(data: bytes) -> int | None:
    """Elements compared, or None when verify's reader leaves the file to pydicom."""
    mine = read_file(data)
    if mine is None:
        return None
    theirs = _pydicom(data)
    assert theirs is not None
    assert mine.preamble == theirs.preamble
    with warnings.catch_warnings():  # pydicom converts a few meta elements as it reads: compare values
        warnings.simplefilter("ignore")
        assert [(t, mine.file_meta[t].value) for t in mine.file_meta.keys()] == [
            (t, theirs.file_meta[t].value) for t in theirs.file_meta.keys()]
    assert mine.file_meta._read_implicit == theirs.file_meta._read_implicit
    for ours, pydicoms in ((mine, theirs), (mine.file_meta, theirs.file_meta)):  # every attribute, and no other
        assert type(ours) is type(pydicoms)
        state, other = dict(vars(ours)), dict(vars(pydicoms))
        for name in ("_dict", "buffer", "file_meta"):  # compared above and below; the buffers hold the same bytes
            state.pop(name, None), other.pop(name, None)
        assert state == other
        for name, value in state.items():  # nothing shared with another dataset
            assert not isinstance(value, (dict, list, set)) or value is not _new_state().get(name), name
    assert mine.buffer.getvalue() == theirs.buffer.getvalue()
    return _same(mine, theirs, "file")


def test_every_element_of_pydicoms_test_files_is_read_as_pydicom_reads_it() -> None:
    read, compared = 0, 0
    listed = [Path(name) for name in get_testdata_files()]
    for path in [p for entry in listed for p in (sorted(entry.rglob("*")) if entry.is_dir() else [entry])]:
        if not path.is_file():
            continue
        data = path.read_bytes()
        found = _compare_file(data)
        if found is not None:
            read, compared = read + 1, compared + found
    assert read >= 40 and compared >= 2000  # most of pydicom's Explicit VR Little Endian files


def _corpus(tmp_path: Path) -> list[bytes]:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from corpus import ensure_corpus, list_files
    finally:
        sys.path.remove(str(REPO / "bench"))
    info = ensure_corpus(40, seed=11, root=tmp_path)
    return [path.read_bytes() for path in list_files(info.path)]


def test_the_corpus_and_its_outputs_are_read_as_pydicom_reads_them(tmp_path: Path) -> None:
    plan = compile_plan("basic", ["retain-longitudinal-modified-dates", "retain-patient-characteristics",
                                  "clean-descriptors"])
    inputs = _corpus(tmp_path)
    outputs = [scrub_bytes(data, plan, Keys(key=KEY)).data for data in inputs]
    for data in inputs + outputs:
        assert _compare_file(data) is not None  # the shape the pipeline writes (and the corpus is in)


def _raw(tag: int, vr: str, value: bytes) -> bytes:
    import struct

    if vr in ("OB", "OW", "SQ", "UN", "UT", "UC", "UR"):
        return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


@pytest.mark.parametrize("change", ["implicit", "out-of-order", "truncated", "undefined-sequence", "bad-vr",
                                    "command", "not-dicom"])
def test_what_is_outside_the_shape_is_left_to_pydicom(change: str) -> None:
    meta_body = _raw(0x00020010, "UI", b"1.2.840.10008.1.2.1\x00")
    if change == "implicit":
        meta_body = _raw(0x00020010, "UI", b"1.2.840.10008.1.2\x00")
    meta = _raw(0x00020000, "UL", len(meta_body).to_bytes(4, "little")) + meta_body
    body = {
        "implicit": _raw(0x00100010, "PN", b"DOE^JOHN"),
        "out-of-order": _raw(0x00100020, "LO", b"ID01") + _raw(0x00100010, "PN", b"DOE^JOHN"),
        "truncated": _raw(0x00100010, "PN", b"DOE^JOHN")[:-2],
        "undefined-sequence": _raw(0x00081110, "SQ", b"")[:-4] + b"\xff\xff\xff\xff" + b"\xfe\xff\xdd\xe0\0\0\0\0",
        "bad-vr": _raw(0x00100010, "PN", b"DOE^JOHN").replace(b"PN", b"ZZ"),
        "command": _raw(0x00000002, "UI", b"1.2\x00") + _raw(0x00100010, "PN", b"DOE^JOHN"),
        "not-dicom": b"",
    }[change]
    data = bytes(128) + (b"DICM" if change != "not-dicom" else b"DICK") + meta + body
    assert read_file(data) is None
    ok = bytes(128) + b"DICM" + meta + _raw(0x00100010, "PN", b"DOE^JOHN")
    assert (read_file(ok) is None) == (change == "implicit")


def _put_back(ds: Dataset) -> None:
    """The original's identifiers put back where verify looks: a value, an item at depth 2, a
    private element, the trailing padding."""
    ds.ImageComments = f"{NAME} {PATIENT_ID}"
    item = Dataset()
    item.ContentCreatorName = NAME
    outer = Dataset()
    outer.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.99.1"
    outer.ProcedureCodeSequence = Sequence([item])
    ds.ReferencedInstanceSequence = Sequence([outer])
    ds.private_block(0x0041, CREATOR, create=True).add_new(0x01, "LO", NAME)
    ds.DataSetTrailingPadding = NAME.encode("ascii") + b"\x00\x00"


@pytest.mark.parametrize("name", FILES)
def test_verify_finds_the_same_with_its_reader_as_with_pydicoms(name: str, monkeypatch: Any) -> None:
    """Clean and with the original's identifiers put back: the same findings whichever reads."""
    original = planted(name)
    output = scrub(original)
    assert (read_file(output) is not None) == (name != "waveform_ecg.dcm")  # undefined lengths: pydicom reads it
    for data in (output, mutate(output, _put_back)):
        ours = checks.verify_file(data, (), original, "release/2.25.1/2.25.2.dcm")
        with monkeypatch.context() as patch:
            patch.setattr(reader, "read_file", lambda _data: None)
            patch.setattr(reader, "read_sequence", lambda *_args: None)
            theirs = checks.verify_file(data, (), original, "release/2.25.1/2.25.2.dcm")
        assert ours == theirs
    assert {str(f.rule) for f in ours.findings} >= {"original-value-in-bytes", "original-value-in-attribute"}
