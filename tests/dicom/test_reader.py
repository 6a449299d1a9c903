"""The fast reader (pipeline/dicom/reader.py) builds what pydicom's dcmread builds, element for
element (tag, VR, length, value bytes, offset, flags; file meta, preamble, encodings; every
sequence once read, item by item), on every file in pydicom's wheel, the sample archive and a
bench corpus; what it does not read it leaves to pydicom (None)."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data.data_manager import DATA_ROOT
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from pipeline.dicom.file import read_dataset
from pipeline.dicom.reader import read_part10
from tests.conftest import REPO

PYDICOM_FILES = sorted((Path(DATA_ROOT) / "test_files").rglob("*.dcm"))
SAMPLE_FILES = sorted((REPO / "sample_data").rglob("*.dcm"))


def _corpus(root: Path) -> list[Path]:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from corpus import ensure_corpus, list_files
    finally:
        sys.path.remove(str(REPO / "bench"))
    return list_files(ensure_corpus(40, seed=11, root=root).path)


def _dataset_state(ds: Dataset) -> dict[str, Any]:
    """What a dataset records besides its elements (compared apart), its file meta (the same) and
    the buffer it was read from (the same bytes, a buffer of each reading): every attribute, in
    the order it was recorded."""
    state = {name: getattr(ds, name, None) for name in ("_character_set", "preamble", "fileobj_type", "filename",
                                                        "timestamp")}
    state["type"] = type(ds)
    state["attributes"] = [(name, value) for name, value in vars(ds).items()
                           if name not in ("_dict", "file_meta", "buffer")]
    return state


def _element_state(elem: DataElement | RawDataElement) -> tuple[Any, ...]:
    if isinstance(elem, RawDataElement):
        return ("raw", tuple(elem))  # every field: tag, VR, length, value, offset, flags
    value = elem.value if elem.VR != "SQ" else None
    return ("decoded", elem.tag, elem.VR, value, elem.file_tell, elem.is_undefined_length, elem.private_creator)


def _assert_same(ours: Dataset, theirs: Dataset) -> None:
    """Every element equal, in the same order; then every sequence read (by pydicom, on both) and
    its items compared the same way."""
    assert _dataset_state(ours) == _dataset_state(theirs)
    assert list(ours._dict) == list(theirs._dict)
    for tag in theirs._dict:
        assert _element_state(ours._dict[tag]) == _element_state(theirs._dict[tag]), tag
    for tag in list(theirs._dict):
        elem = theirs._dict[tag]
        if elem.VR != "SQ":
            continue
        mine, reference = ours[tag], theirs[tag]
        assert (mine.file_tell, mine.is_undefined_length) == (reference.file_tell, reference.is_undefined_length)
        assert len(mine.value) == len(reference.value)
        for item, other in zip(mine.value, reference.value, strict=True):
            _assert_same(item, other)


def _compare(path: Path) -> bool:
    """Whether the fast reader read `path` (asserting it reads what pydicom reads)."""
    data = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = read_part10(data)
        if ours is None:
            return False
        theirs = pydicom.dcmread(io.BytesIO(data), force=False)
        assert ours.file_meta is not None
        _assert_same(ours.file_meta, theirs.file_meta)
        _assert_same(ours, theirs)
    return True


@pytest.mark.parametrize("path", PYDICOM_FILES + SAMPLE_FILES, ids=lambda p: p.name)
def test_the_fast_reader_reads_what_pydicom_reads(path: Path) -> None:
    _compare(path)


def test_the_fast_reader_reads_pydicoms_explicit_little_endian_files() -> None:
    read = [path.name for path in PYDICOM_FILES if _compare(path)]
    assert {"CT_small.dcm", "JPEG2000.dcm", "JPEG2000-embedded-sequence-delimiter.dcm", "MR_small_RLE.dcm",
            "reportsi.dcm", "test-SR.dcm", "waveform_ecg.dcm"} <= set(read)
    assert len(read) > 30


def test_the_fast_reader_reads_the_bench_corpus_as_pydicom(tmp_path: Path) -> None:
    paths = _corpus(tmp_path)
    assert all(_compare(path) for path in paths)  # the corpus is explicit VR little endian throughout


@pytest.mark.parametrize("name", ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm"])
def test_other_encodings_are_left_to_pydicom(name: str) -> None:
    assert read_part10((Path(DATA_ROOT) / "test_files" / name).read_bytes()) is None


def _file(body: bytes) -> bytes:
    syntax = b"1.2.840.10008.1.2.1\x00"
    meta = b"\x02\x00\x10\x00UI" + len(syntax).to_bytes(2, "little") + syntax
    return b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + len(meta).to_bytes(4, "little") + meta + body


@pytest.mark.parametrize("body", [
    b"",  # no dataset
    b"\x08\x00\x16\x00UI\x04\x001.2\x00\x01",  # bytes after the last element
    b"\x08\x00\x16\x00UI\x08\x001.2\x00",  # a value past the end of the file
    b"\x08\x00\x16\x00XX\x04\x001.2\x00",  # a VR pydicom does not know
    b"\x08\x00\x16\x00UI\x04\x001.2\x00\x08\x00\x16\x00UI\x04\x001.3\x00",  # a tag twice
    b"\x00\x00\x00\x00UL\x04\x00\x00\x00\x00\x00",  # a command set
    b"\x10\x00\x10\x00PN\xff\xff\xff\xffAB",  # an undefined length on a PN
])
def test_what_is_not_plain_is_left_to_pydicom(body: bytes) -> None:
    assert read_part10(_file(body)) is None


def test_read_dataset_reads_a_plain_file_with_the_fast_reader() -> None:
    data = _file(b"\x08\x00\x16\x00UI\x04\x001.2\x00\x08\x00\x18\x00UI\x04\x001.3\x00")
    ds = read_dataset(data)
    assert type(ds.buffer) is io.BytesIO and ds.buffer.tell() == 0  # pydicom's read leaves it at the end
    theirs = pydicom.dcmread(io.BytesIO(data))
    _assert_same(ds.file_meta, theirs.file_meta)
    _assert_same(ds, theirs)


def test_a_file_meta_out_of_tag_order_is_read_as_pydicom_reads_it() -> None:
    """pydicom decodes the file meta's first element by tag (`Dataset.elements` is sorted), not
    the first in the file: with the elements out of order, the same one is decoded here."""
    syntax = b"1.2.840.10008.1.2.1\x00"
    meta = (b"\x02\x00\x10\x00UI" + len(syntax).to_bytes(2, "little") + syntax
            + b"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00\x00\x01")  # (0002,0001) after (0002,0010)
    data = b"\x00" * 128 + b"DICM" + meta + b"\x08\x00\x16\x00UI\x04\x001.2\x00"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = read_part10(data)
        theirs = pydicom.dcmread(io.BytesIO(data), force=False)
    assert ours is not None and ours.file_meta is not None
    _assert_same(ours.file_meta, theirs.file_meta)
    _assert_same(ours, theirs)
