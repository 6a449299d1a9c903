"""pydicom's datasets made without `Dataset.__setattr__` per attribute: the same objects.

Speed: pydicom's `Dataset.__init__` records a dozen attributes, each set through
`Dataset.__setattr__` (~0.4 us apiece: it first asks whether the name is a DICOM keyword);
`FileDataset.__init__` adds a dozen more. Reading a file makes a `FileDataset`, its
`FileMetaDataset` and a `Dataset` per sequence item, and the scrub a new `FileMetaDataset`. Here
each is made from what pydicom's constructor records (`vars` of one it made with the same kind of
arguments, taken once): the same attributes in the same order, each table (`dict`) a copy of
its own, the ones given here set (tests/dicom/test_reader.py and test_sequences.py compare every
attribute with pydicom's own reading). Where the constructor records anything but plain values
(None, bools, ints, strings, bytes, classes, tables of those) or the arguments are not what this
module covers (a file meta element outside group 0002), pydicom's constructor makes it. A file
meta element is stored (`put_meta_element`) as `FileMetaDataset.__setitem__` stores it, without
its checks per call where they decide nothing.
"""

from __future__ import annotations

import functools
import io
from collections.abc import MutableSequence
from typing import Any, TypeVar

from pydicom import config
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.tag import BaseTag

_D = TypeVar("_D", bound=Dataset)
_PLAIN = (type(None), bool, int, str, bytes, type)
_Blank = tuple[dict[str, Any], tuple[str, ...]]  # the attributes recorded, and those that are tables


def new_item(elements: dict[BaseTag, Any], parent_encoding: str | MutableSequence[str]) -> Dataset:
    """`Dataset(elements, parent_encoding=parent_encoding)`."""
    blank = _blank_item(config._use_future)
    if blank is None:
        return Dataset(elements, parent_encoding=parent_encoding)
    return _made(Dataset, blank, {"_parent_encoding": parent_encoding, "_dict": elements})


def new_file_meta(elements: dict[BaseTag, Any]) -> FileMetaDataset:
    """`FileMetaDataset(elements)` (which refuses an element outside group 0002: pydicom's then)."""
    blank = _blank_file_meta(config._use_future)
    if blank is None or not all(int(tag) >> 16 == 2 for tag in elements):
        return FileMetaDataset(elements)
    return _made(FileMetaDataset, blank, {"_dict": elements})


def new_file_dataset(buffer: io.BytesIO, elements: dict[BaseTag, Any], preamble: bytes | None,
                     file_meta: FileMetaDataset, implicit: bool, little: bool) -> FileDataset:
    """`FileDataset(buffer, elements, preamble, file_meta, implicit, little)` of a file read from
    an in-memory buffer (one without a name: pydicom records no file name nor time then)."""
    blank = _blank_file_dataset(config._use_future, implicit, little)
    if blank is None or type(buffer) is not io.BytesIO or getattr(buffer, "name", None) or getattr(
            buffer, "filename", None):
        return FileDataset(buffer, elements, preamble, file_meta, implicit, little)
    return _made(FileDataset, blank, {"_dict": elements, "preamble": preamble, "file_meta": file_meta,
                                      "buffer": buffer})


def put_meta_element(ds: Dataset, tag: int, elem: DataElement | RawDataElement) -> None:
    """`ds[tag] = elem`. An element of group 0002 under its own tag that is not a sequence is
    stored in the table as pydicom's `__setitem__` (FileMetaDataset's too) stores it, without its
    checks per call, which decide nothing for it (group 0002 is not private, holds no pixel
    data); anything else goes through them."""
    key = elem.tag
    if (type(key) is BaseTag and key >> 16 == 2 and int(key) == tag and elem.VR != "SQ"
            and isinstance(elem, (DataElement, RawDataElement))):
        ds._dict[key] = elem
    else:
        ds[tag] = elem


def _made(kind: type[_D], blank: _Blank, given: dict[str, Any]) -> _D:
    state, tables = blank
    made = dict(state)
    for name in tables:
        made[name] = dict(state[name])
    made.update(given)  # each name already recorded (`_blank`): its place in the order is kept
    dataset = kind.__new__(kind)
    object.__setattr__(dataset, "__dict__", made)
    return dataset


def _blank(made: Dataset, given: tuple[str, ...]) -> _Blank | None:
    """What `made` records, and which of its values are tables (copied for each new one), or None
    when a value other than the `given` ones is not plain, or a `given` one is not recorded."""
    state = dict(vars(made))
    if not all(name in state for name in given):
        return None
    tables = []
    for name, value in state.items():
        if name in given or type(value) in _PLAIN:
            continue
        if type(value) is dict and all(type(v) in _PLAIN for v in value.values()):
            tables.append(name)
            continue
        return None
    return state, tuple(tables)


@functools.cache
def _blank_item(use_future: bool) -> _Blank | None:
    return _blank(Dataset({}), ("_parent_encoding", "_dict"))


@functools.cache
def _blank_file_meta(use_future: bool) -> _Blank | None:
    return _blank(FileMetaDataset({}), ("_dict",))


@functools.cache
def _blank_file_dataset(use_future: bool, implicit: bool, little: bool) -> _Blank | None:
    made = FileDataset(io.BytesIO(b""), {}, b"", FileMetaDataset(), implicit, little)
    return _blank(made, ("_dict", "preamble", "file_meta", "buffer"))
