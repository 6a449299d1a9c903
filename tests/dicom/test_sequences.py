"""The fast sequence decoding (pipeline/dicom/sequences.py) makes of a sequence what pydicom's
`ds[tag]` makes of it, item for item (every attribute an item records, every element as stored,
sequences within read the same way in turn), on every file in pydicom's wheel, the sample archive
and a bench corpus; what it does not read pydicom decodes."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from pipeline.dicom.sequences import decoded
from tests.dicom.test_reader import PYDICOM_FILES, SAMPLE_FILES, _corpus

_Decode = Callable[[Dataset, int], Any]


def _pydicom(ds: Dataset, tag: int) -> Any:
    return ds[tag]


def _state(ds: Dataset) -> dict[str, Any]:
    """Everything a dataset records but its elements (compared apart) and the file it was read
    from (the same bytes, a buffer of each reading)."""
    return {name: value for name, value in vars(ds).items() if name not in ("_dict", "buffer")}


def _element(elem: DataElement | RawDataElement) -> tuple[Any, ...]:
    if isinstance(elem, RawDataElement):
        return ("raw", tuple(elem))
    value = None if elem.VR == "SQ" else elem.value
    return ("decoded", elem.tag, elem.VR, value, elem.file_tell, elem.is_undefined_length,
            elem.private_creator, elem.validation_mode)


def _decode_all(ds: Dataset, decode: _Decode) -> int:
    """Every sequence of `ds` decoded by `decode`, depth first; how many were."""
    count = 0
    for tag in list(ds._dict):
        if ds._dict[tag].VR != "SQ":
            continue
        elem = decode(ds, tag)
        count += 1
        for item in elem.value:
            count += _decode_all(item, decode)
    return count


def _assert_same(ours: Dataset, theirs: Dataset) -> None:
    assert _state(ours) == _state(theirs)
    assert list(ours._dict) == list(theirs._dict)
    for tag, elem in theirs._dict.items():
        mine = ours._dict[tag]
        assert _element(mine) == _element(elem), tag
        if isinstance(elem, DataElement) and elem.VR == "SQ":
            assert type(mine.value) is type(elem.value)
            assert getattr(mine.value, "is_undefined_length", None) == getattr(elem.value, "is_undefined_length", None)
            assert len(mine.value) == len(elem.value)
            for item, other in zip(mine.value, elem.value, strict=True):
                _assert_same(item, other)


def _compare(path: Path) -> int:
    """How many sequences the file holds (asserting both decodings agree on each)."""
    data = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ours, theirs = pydicom.dcmread(io.BytesIO(data)), pydicom.dcmread(io.BytesIO(data))
        except Exception:
            return 0  # pydicom cannot read it at all: nothing to decode
        try:
            expected = _decode_all(theirs, _pydicom)
        except Exception:
            with pytest.raises(Exception):  # noqa: B017 - what pydicom cannot decode fails here too
                _decode_all(ours, decoded)
            return 0
        assert _decode_all(ours, decoded) == expected
        _assert_same(ours, theirs)
    return expected


@pytest.mark.parametrize("path", PYDICOM_FILES + SAMPLE_FILES, ids=lambda p: p.name)
def test_sequences_decode_as_pydicom_decodes_them(path: Path) -> None:
    _compare(path)


def test_sequences_of_pydicoms_files_are_decoded_here() -> None:
    assert sum(_compare(path) for path in PYDICOM_FILES) > 100


def test_sequences_of_the_bench_corpus_decode_as_pydicom_decodes_them(tmp_path: Path) -> None:
    assert sum(_compare(path) for path in _corpus(tmp_path)) > 40


def test_a_sequence_read_here_is_not_decoded_by_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = pydicom.dcmread(next(p for p in PYDICOM_FILES if p.name == "CT_small.dcm"))
    tag = next(tag for tag, elem in ds._dict.items() if elem.VR == "SQ")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pydicom decoded it")

    monkeypatch.setattr(pydicom.filereader, "read_sequence_item", refuse)
    assert len(decoded(ds, tag).value) > 0
