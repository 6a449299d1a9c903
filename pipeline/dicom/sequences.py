"""`ds[tag]` of a sequence still stored as read: pydicom's decoding of its items, built faster.

Speed: pydicom reads a sequence's items when the sequence is first used, each item through a
file object and a generator (~30 us a sequence). Here the items of a sequence read in explicit
VR little endian are read from its bytes in place (PS3.5 7.5: items of defined or undefined
length, each a dataset of explicit VR elements), into what pydicom builds, object for object:
a `Sequence` of `Dataset`s of `RawDataElement`s (value offsets counted from the sequence's value,
as pydicom counts them), each item's encodings and offsets recorded as pydicom records them,
set in the dataset as pydicom's `Dataset.__getitem__` sets it. Anything else (an item that reads
as implicit VR, a VR pydicom does not know, a length past its item, an element twice, pydicom's
conversion hooks changed) is left to pydicom: `decoded` then returns `ds[tag]`.
"""

from __future__ import annotations

import struct
from collections.abc import MutableSequence
from typing import Any

from pydicom import config
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.hooks import hooks, raw_element_value, raw_element_vr
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.values import convert_string

from pipeline.dicom.datasets import new_item
from pipeline.dicom.reader import VRS, NotReadHere, read_undefined

_ITEM_HEADER = struct.Struct("<HHL").unpack_from  # item tag and 32-bit length (PS3.5 7.5)
_SHORT_HEADER = struct.Struct("<HH2sH").unpack_from
_LONG_LENGTH = struct.Struct("<L").unpack_from
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_CHARACTER_SET = 0x00080005
_new_raw = tuple.__new__  # RawDataElement without its Python-level __new__, every field given

Encodings = str | MutableSequence[str]


def decoded(ds: Dataset, tag: int) -> Any:
    """`ds[tag]`, a sequence still stored as read decoded here (see the module's docstring)."""
    stored = ds._dict.get(tag)  # type: ignore[call-overload]
    if isinstance(stored, RawDataElement):
        if stored.VR == "SQ":
            elem = _sequence_element(ds, stored)
            if elem is not None:
                return elem
    elif isinstance(stored, DataElement):
        return stored  # decoded already: what `ds[tag]` returns
    return ds[tag]


def _sequence_element(ds: Dataset, raw: RawDataElement) -> DataElement | None:
    """What `ds[raw.tag]` makes of `raw` and sets in `ds`, or None (pydicom then decodes it)."""
    value = raw.value
    if (raw.is_implicit_VR or not raw.is_little_endian or not isinstance(value, bytes) or not raw.length
            or raw.length != len(value) or int(raw.tag) == _CHARACTER_SET or config.data_element_callback
            or hooks.raw_element_kwargs or hooks.raw_element_vr is not raw_element_vr
            or hooks.raw_element_value is not raw_element_value):
        return None
    encoding = ds.original_character_set or ds._character_set  # as Dataset.__getitem__
    encodings = encoding or [default_encoding]  # as convert_value and convert_SQ
    if isinstance(encodings, str):
        encodings = [encodings]
    try:
        items = _items(value, encodings, raw.value_tell)
    except NotReadHere:
        return None
    sequence = Sequence(items)
    sequence.is_undefined_length = False
    elem = DataElement(raw.tag, "SQ", sequence, raw.value_tell, False, already_converted=True)
    # pydicom sets it (its __setitem__ sets each item's pixel representation), then sets the
    # items' pixel representation again, to the same values: once is the same dataset.
    ds[raw.tag] = elem
    return elem


def _items(data: bytes, encodings: Encodings, offset: int) -> list[Dataset]:
    """pydicom's `read_sequence` over a sequence's value `data` (which starts at `offset`)."""
    items: list[Dataset] = []
    position, end = 0, len(data)
    while position < end:
        if position + 8 > end:
            raise NotReadHere
        group, element, length = _ITEM_HEADER(data, position)
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            break
        if tag != _ITEM:
            raise NotReadHere
        start = position + 8
        implicit = _reads_implicit(data, start)
        if length == _UNDEFINED:
            elements, after = _elements(data, start, None, implicit, encodings)
        else:
            elements, after = _elements(data, start, start + length, implicit, encodings)
        charset: Encodings = encodings
        if _CHARACTER_SET in elements:
            charset = convert_encodings(convert_raw_data_element(elements[BaseTag(_CHARACTER_SET)]).value)
        items.append(_item(elements, encodings, implicit, charset, length == _UNDEFINED, position + offset))
        position = after
    return items


def _item(elements: dict[BaseTag, Any], encodings: Encodings, implicit: bool, charset: Encodings, undefined: bool,
          tell: int) -> Dataset:
    """`Dataset(elements, parent_encoding=encodings)` with its reading recorded as pydicom's
    `read_sequence_item` records it (`set_original_encoding(implicit, True, charset)`, the item's
    length kind, its offset twice), each attribute written into its __dict__ in pydicom's order
    (`pipeline.dicom.datasets`: not through `Dataset.__setattr__`, ~0.4 us apiece)."""
    item = new_item(elements, encodings)
    state = vars(item)
    state["_read_implicit"] = implicit  # set_original_encoding
    state["_read_little"] = True
    state["_read_charset"] = charset
    state["is_undefined_length_sequence_item"] = undefined
    state["seq_item_tell"] = tell
    state["file_tell"] = tell
    return item


def _reads_implicit(data: bytes, start: int) -> bool:
    """pydicom's test of an item's first element (`_is_implicit_vr` within a sequence): implicit
    VR when the bytes where its VR would stand are not two capital letters."""
    if start + 6 > len(data):
        return False
    return not (0x40 < data[start + 4] < 0x5B and 0x40 < data[start + 5] < 0x5B)


def _elements(data: bytes, position: int, end: int | None, implicit: bool, encodings: Encodings,
              ) -> tuple[dict[BaseTag, Any], int]:
    """An item's elements as pydicom's `read_dataset` reads them (explicit VR), and where the
    item ends: at `end` (defined length) or after its delimitation item (undefined length)."""
    elements: dict[BaseTag, Any] = {}
    size = len(data)
    encoding = encodings
    if implicit:  # only an empty item is read here: no element before its end or delimiter
        if end is None and position + 8 <= size and _ITEM_HEADER(data, position)[:2] == (0xFFFE, 0xE00D):
            return elements, position + 8
        if end == position:
            return elements, position
        raise NotReadHere
    while end is None or position < end:
        if position + 8 > size:
            raise NotReadHere
        group, element, code, length = _SHORT_HEADER(data, position)
        tag = group << 16 | element
        if tag == _ITEM_END:
            if end is not None:
                raise NotReadHere
            return elements, position + 8
        known = VRS.get(code)
        if known is None or tag in elements:
            raise NotReadHere
        vr, long = known
        start = position + 8
        if long:
            if start + 4 > size:
                raise NotReadHere
            (length,) = _LONG_LENGTH(data, start)
            start += 4
        key = BaseTag(tag)
        if length == _UNDEFINED:
            elements[key], position = read_undefined(data, start, key, vr, encoding)
        else:
            position = start + length
            if position > size:
                raise NotReadHere
            value: Any = data[start:position] if length else empty_value_for_VR(vr, raw=True)
            if tag == _CHARACTER_SET:
                encoding = convert_encodings(convert_string(value or b"", True))
            elements[key] = _new_raw(RawDataElement, (key, vr, length, value, start, False, True, True, False))
        if end is not None and position > end:
            raise NotReadHere  # pydicom reads on past the item's end
    return elements, position
