"""verify's own reading of a file's bytes in Explicit VR Little Endian (PS3.5 7.1.2, 7.5; PS3.10 7.1).

verify parses every output itself, from the very bytes that are written, and reads the
sequences of the original it is given. pydicom's reader walks a file through a file object,
one small read and several Python calls per element; the outputs are always written by the
pipeline in one known shape (a 128-byte preamble, ``DICM``, the file meta, then the dataset in
Explicit VR Little Endian or an encapsulated syntax that encodes it so; sequences and items of
defined length; encapsulated Pixel Data of undefined length). This module reads that shape
straight from the bytes with `struct` and builds what pydicom's `dcmread` builds: datasets of
`RawDataElement`s, each with the same VR, length, value bytes and position, left undecoded
(verify decodes them by its own rules, pydicom converting only where verify asks it to). A
sequence stays raw until verify enters it, as in pydicom; `read_sequence` then reads its items
the same way and leaves the dataset as pydicom's `ds[tag]` would (the items, their encodings
and positions, the Pixel Representation each inherits).

Anything outside that shape (another transfer syntax, a VR pydicom would guess at, an
undefined length but encapsulated Pixel Data's, a command, an item tag or a repeated element
among elements, elements out of order, a length past the end) is not read here: the caller
reads it with pydicom, exactly as before. tests/verify/test_reader.py holds every element and
item read here equal to pydicom's reading, at every depth, on pydicom's own test files, the
bench corpus and its outputs.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
from typing import Any

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID

_HEAD = struct.Struct("<HH2sH").unpack_from  # tag group, element, VR, 16-bit length (PS3.5 7.1.2)
_LONG = struct.Struct("<L").unpack_from  # the 32-bit length of the VRs of Table 7.1-1
_ITEM = struct.Struct("<HHL").unpack_from  # an item or delimiter: tag and 32-bit length (PS3.5 7.5)
_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
                  "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UR",
                  "UN", "US", "UT", "UV"})  # PS3.5 Table 6.2-1
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_VR_OF = {vr.encode("ascii"): vr for vr in _VRS}
_EMPTY: dict[str, Any] = {vr: empty_value_for_VR(vr, raw=True) for vr in _VRS}  # pydicom's for a length of 0
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_ITEM_TAG, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_CHARSET = 0x00080005
_CHARSET_TAG = BaseTag(_CHARSET)
_PIXEL_REPRESENTATION = BaseTag(0x00280103)
_IMPLICIT, _BIG, _DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"


class _Unusual(Exception):
    """Outside the shape read here: pydicom reads the file."""


def read_file(data: bytes) -> FileDataset | None:
    """The file `data` as pydicom's `dcmread` reads it, or None when it is not in the shape this
    module reads (the caller then reads it with pydicom)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _read_file(data)
    except (_Unusual, struct.error, UnicodeError, ValueError, KeyError, LookupError):
        return None


def _read_file(data: bytes) -> FileDataset:
    if len(data) < 144 or data[128:132] != b"DICM":
        raise _Unusual
    meta_elements, position = _elements(data, 132, len(data), in_meta=True)
    syntax_element = meta_elements.get(BaseTag(0x00020010))
    if not isinstance(syntax_element, RawDataElement) or syntax_element.value is None:
        raise _Unusual
    if not _read_here(syntax_element.value.decode("ascii").rstrip("\x00 ")):
        raise _Unusual
    elements, _ = _elements(data, position, len(data), in_meta=False)
    # `FileMetaDataset(meta_elements)` and `FileDataset(io.BytesIO(data), Dataset(elements), ...)`
    # as pydicom's `dcmread` leaves them (see `_item`); the meta's elements are all of group 0002
    meta = FileMetaDataset.__new__(FileMetaDataset)
    meta.__dict__.update(_state(_NEW, _dict=meta_elements, _read_implicit=False, _read_little=True,
                                _read_charset=default_encoding))
    ds = FileDataset.__new__(FileDataset)
    ds.__dict__.update(_state(_FILE_NEW, _dict=elements, preamble=data[:128], file_meta=meta,
                              buffer=io.BytesIO(data), fileobj_type=io.BytesIO, filename=None, timestamp=None,
                              _is_implicit_VR=False, _is_little_endian=True, _read_implicit=False,
                              _read_little=True, _read_charset=default_encoding))
    if _CHARSET_TAG in elements:  # pydicom's `dataset._character_set`, which decodes it in place
        ds.set_original_encoding(False, True, ds._character_set)
    return ds


@functools.lru_cache(maxsize=64)
def _read_here(syntax: str) -> bool:
    """Whether a file of transfer syntax `syntax` is read here: Explicit VR Little Endian, or an
    encapsulated syntax that encodes its dataset so (PS3.5 A.4), never deflated."""
    uid = UID(syntax)
    return syntax not in (_IMPLICIT, _BIG, _DEFLATED) and uid.is_transfer_syntax and uid.is_little_endian and (
        not uid.is_implicit_VR)


def _encoding(elements: dict[BaseTag, RawDataElement | DataElement], parent: str | list[str]) -> str | list[str]:
    """The character set a dataset's text is read in (PS3.5 6.1.2.5.3): its own, else its parent's."""
    charset = elements.get(_CHARSET_TAG)
    if charset is None:
        return parent
    if not isinstance(charset, RawDataElement):
        raise _Unusual
    with warnings.catch_warnings():  # pydicom's word on an unknown or odd character set: not ours to give
        warnings.simplefilter("ignore")
        return list(convert_encodings(convert_raw_data_element(charset).value))


def _elements(data: bytes, position: int, end: int, *, in_meta: bool,
              item: bool = False) -> tuple[dict[BaseTag, RawDataElement | DataElement], int]:
    """The elements from `position` to `end` (in the meta: while the group is 0002; in an item of
    defined length: to its end), as pydicom's raw elements, and the position after them (in an
    item, pydicom's too: from the start of the sequence's value, not of the file)."""
    elements: dict[BaseTag, RawDataElement | DataElement] = {}
    last = -1
    raw = tuple.__new__  # RawDataElement's fields all given: no named tuple defaults to fill in
    while position < end:
        if end - position < 8:
            raise _Unusual
        group, element, vr_bytes, length = _HEAD(data, position)
        tag = group << 16 | element
        if in_meta and group != 0x0002:
            break
        if group in (0x0000, 0xFFFE) or (group == 0x0002) is not in_meta or tag <= last:
            raise _Unusual  # a command, an item or delimiter among elements, elements out of order
        last = tag
        vr = _VR_OF.get(vr_bytes)
        if vr is None:
            raise _Unusual
        if vr in _LONG_VRS:
            if end - position < 12:
                raise _Unusual
            length = _LONG(data, position + 8)[0]
            position += 12
        else:
            position += 8
        key = BaseTag(tag)
        if length == _UNDEFINED:
            if tag != _PIXEL_DATA or item or vr not in ("OB", "OW"):
                raise _Unusual
            stop = _encapsulated_end(data, position, end)
            elements[key] = raw(RawDataElement, (key, vr, length, data[position:stop], position, False, True,
                                                 True, False))
            position = stop + 8
            continue
        if position + length > end:
            raise _Unusual
        value = data[position:position + length] if length else _EMPTY[vr]
        elements[key] = raw(RawDataElement, (key, vr, length, value, position, False, True, True, False))
        position += length
    return elements, position


def _encapsulated_end(data: bytes, position: int, end: int) -> int:
    """Where the Sequence Delimitation Item of encapsulated Pixel Data starts (PS3.5 A.4): its
    fragments are items of defined length."""
    while True:
        if end - position < 8:
            raise _Unusual
        group, element, length = _ITEM(data, position)
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            if length != 0:
                raise _Unusual
            return position
        if tag != _ITEM_TAG or length == _UNDEFINED or position + 8 + length > end:
            raise _Unusual
        position += 8 + length


def read_sequence(ds: Dataset, tag: int, stored: RawDataElement) -> DataElement | None:
    """The sequence `stored` (a raw SQ element of `ds`, Explicit VR Little Endian, defined
    length) read into items as pydicom's `ds[tag]` reads it, and put in `ds` in its place, as
    pydicom does; None when it is not in the shape read here (then `ds[tag]` reads it)."""
    if stored.VR != "SQ" or stored.is_implicit_VR or not stored.is_little_endian or stored.length == _UNDEFINED:
        return None
    value = stored.value or b""
    charset = ds.original_character_set or ds._character_set or [default_encoding]
    encoding = [charset] if isinstance(charset, str) else list(charset)  # as pydicom's convert_value
    try:
        items = _items(value, stored.value_tell, encoding)
    except (_Unusual, struct.error, UnicodeError, ValueError, KeyError, LookupError):
        return None
    sequence = Sequence(items)
    if stored.length:  # pydicom gives an empty value the VR's empty value, not a sequence it read
        sequence.is_undefined_length = False
    elem = DataElement(stored.tag, "SQ", sequence, stored.value_tell, False, already_converted=True)
    if tag >> 16 & 1:
        ds[tag] = elem  # as pydicom's `ds[tag]` (a private sequence learns its creator)
    else:
        ds._dict[stored.tag] = elem  # what `ds[tag] = elem` does for a public sequence, and then:
        _pixel_representation(ds, items)
    return elem


def _pixel_representation(ds: Dataset, items: list[Dataset]) -> None:
    """pydicom's `Dataset._set_pixel_representation` for a sequence just read (as `ds[tag]`
    does): `ds` and each item learn the nearest Pixel Representation, which pydicom uses to
    resolve a US or SS element's VR; `ds`'s own is decoded, as there."""
    pixel_rep: Any = None
    own = ds._dict.get(_PIXEL_REPRESENTATION)
    if isinstance(own, DataElement):  # decoded already: what `ds[tag]` gives
        pixel_rep = own.value
    elif own is not None:
        pixel_rep = ds[_PIXEL_REPRESENTATION].value  # decoded, in place, as pydicom does
    elif "_pixel_rep" in ds.__dict__:
        pixel_rep = ds.__dict__["_pixel_rep"]
    if pixel_rep is not None:
        ds.__dict__["_pixel_rep"] = int(b"\x01" in pixel_rep) if isinstance(pixel_rep, bytes) else pixel_rep
    inherited = "_pixel_rep" in ds.__dict__
    for item in items:
        own = item._dict.get(_PIXEL_REPRESENTATION)
        if own is not None:
            value = own.value
            if value is not None:
                item.__dict__["_pixel_rep"] = int(b"\x01" in value) if isinstance(value, bytes) else value
            elif inherited:
                item.__dict__["_pixel_rep"] = ds.__dict__["_pixel_rep"]
        elif inherited:
            item.__dict__["_pixel_rep"] = ds.__dict__["_pixel_rep"]


# Speed: `Dataset.__init__` and the attributes pydicom's reader sets on an item go one by one
# through `Dataset.__setattr__` (a dozen Python calls an item). An item is given the state a new
# Dataset has (`_NEW`, its containers fresh) with the reading's attributes, in one update;
# tests/verify/test_reader.py holds every attribute equal to pydicom's item's.
_NEW: dict[str, Any] = dict(vars(Dataset()))
_FRESH = tuple(name for name, value in _NEW.items() if isinstance(value, (dict, list, set)) and name != "_dict")
_FILE_NEW: dict[str, Any] = dict(vars(FileDataset(io.BytesIO(), Dataset(), None, FileMetaDataset(), False, True)))


def _state(template: dict[str, Any], **given: Any) -> dict[str, Any]:
    """A new dataset's state: `template`'s, its containers fresh, with what is `given`."""
    state = dict(template)
    for name in _FRESH:
        state[name] = template[name].copy()
    state.update(given)
    return state


def _item(elements: dict[BaseTag, RawDataElement | DataElement], encoding: list[str], tell: int) -> Dataset:
    """An item as pydicom's `read_sequence_item` makes it (`Dataset(elements, parent_encoding=...)`,
    `set_original_encoding`, the item's positions)."""
    state = _state(_NEW, _dict=elements, _parent_encoding=encoding, _read_implicit=False, _read_little=True,
                   _read_charset=_encoding(elements, encoding), is_undefined_length_sequence_item=False,
                   seq_item_tell=tell, file_tell=tell)
    item = Dataset.__new__(Dataset)
    item.__dict__.update(state)
    return item


def _items(value: bytes, offset: int, encoding: list[str]) -> list[Dataset]:
    """The items of a sequence's value (PS3.5 7.5.1), each of defined length."""
    items: list[Dataset] = []
    position, end = 0, len(value)
    while position < end:
        if end - position < 8:
            raise _Unusual
        group, element, length = _ITEM(value, position)
        if group << 16 | element != _ITEM_TAG or length == _UNDEFINED or position + 8 + length > end:
            raise _Unusual
        elements, _ = _elements(value, position + 8, position + 8 + length, in_meta=False, item=True)
        items.append(_item(elements, encoding, position + offset))
        position += 8 + length
    return items


__all__ = ["read_file", "read_sequence"]
