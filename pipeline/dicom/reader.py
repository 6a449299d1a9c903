"""pydicom's `dcmread` of a PS3.10 file in explicit VR little endian, the same dataset built faster.

Speed: pydicom reads each element header through a file object (two reads, a tell and a
generator step per element); here the headers are unpacked in place from the file's bytes
(PS3.5 7.1.2: tag, VR, a 16-bit length or two reserved bytes and a 32-bit length). What is built
is what `pydicom.dcmread(io.BytesIO(data))` builds, object for object: a `FileDataset` of
`RawDataElement`s in file order (tag, VR, length, value bytes, value offset, encoding flags), its
`FileMetaDataset` the same way, the same encodings recorded, and the elements pydicom decodes
while it reads (the first of the file meta, its group length, the transfer syntax, the Specific
Character Set) decoded by pydicom. A sequence or value of undefined length is read by pydicom's
own functions from where it starts (as `data_element_generator` reads it).

| read here                                                  | else (`read_part10` returns None) |
|------------------------------------------------------------|-----------------------------------|
| preamble, ``DICM``, a file meta of explicit VR elements     | pydicom reads the whole file      |
|   then no command set (group 0000)                          |   (the caller's `dcmread`)        |
| a transfer syntax read as explicit VR little endian (not    |                                   |
|   implicit, big endian, deflated or private; none: pydicom) |                                   |
| every element's VR one pydicom knows, each header and value |                                   |
|   whole within the file, no tag twice, no item delimiter    |                                   |
| undefined lengths only on SQ, OB and OW                     |                                   |
"""

from __future__ import annotations

import io
import struct
from collections.abc import MutableSequence
from typing import Any

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import FileDataset
from pydicom.filereader import ENCODED_VR, read_sequence
from pydicom.fileutil import read_undefined_length_value
from pydicom.tag import BaseTag, SequenceDelimiterTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    PrivateTransferSyntaxes,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32
from pydicom.values import convert_string

from pipeline.dicom.datasets import new_file_dataset, new_file_meta

_SHORT_HEADER = struct.Struct("<HH2sH").unpack_from  # tag, VR, 16-bit length (PS3.5 7.1.2)
_LONG_LENGTH = struct.Struct("<L").unpack_from  # the 32-bit length after two reserved bytes
_UNDEFINED = 0xFFFFFFFF
_CHARACTER_SET, _GROUP_LENGTH, _TRANSFER_SYNTAX = 0x00080005, 0x00020000, 0x00020010
_ITEM_DELIMITER = 0xFFFEE00D
# VR field bytes -> (VR, whether its length is 32-bit): the VRs pydicom decodes (its ENCODED_VR)
VRS: dict[bytes, tuple[str, bool]] = {
    code: (code.decode("ascii"), code.decode("ascii") in EXPLICIT_VR_LENGTH_32)
    for code in ENCODED_VR if len(code) == 2}
_UNDEFINED_READ = frozenset({"SQ", "OB", "OW"})  # undefined length read here (by pydicom's functions)


# RawDataElement(...) without its Python-level __new__: the same named tuple, every field given
_new_raw = tuple.__new__


class NotReadHere(Exception):
    """Not read here as pydicom reads it (a file, or a sequence in `pipeline.dicom.sequences`):
    pydicom reads it."""


def read_part10(data: bytes) -> FileDataset | None:
    """`pydicom.dcmread(io.BytesIO(data))` for a file in explicit VR little endian (see the
    module's table), or None when pydicom must read it itself."""
    try:
        return _read(data)
    except Exception:  # NotReadHere, or anything pydicom may raise too: pydicom reads it and decides
        return None


def _read(data: bytes) -> FileDataset:
    if len(data) < 138 or data[128:132] != b"DICM":
        raise NotReadHere
    preamble = data[:128]
    meta_elements, end = _elements(data, 132, only_group=2)
    # pydicom reads the meta into a Dataset and makes a FileMetaDataset of it: they share the
    # elements' dict, and the first is dropped, so only the second is made here.
    file_meta = new_file_meta(meta_elements)  # FileMetaDataset(meta_elements)
    file_meta.set_original_encoding(is_implicit_vr=False, is_little_endian=True, character_encoding=default_encoding)
    file_meta[min(file_meta._dict)]  # pydicom decodes the first element by tag (its implicit VR test)
    if _GROUP_LENGTH in file_meta._dict:
        file_meta[_GROUP_LENGTH]  # ... and reads the group length
    if end >= len(data) or data[end:end + 2] == b"\x00\x00":
        raise NotReadHere  # no dataset, or a command set: pydicom
    # file_meta.get("TransferSyntaxUID"), by tag
    syntax = file_meta[_TRANSFER_SYNTAX].value if _TRANSFER_SYNTAX in file_meta._dict else None
    if syntax is None or syntax in (ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian) \
            or syntax in PrivateTransferSyntaxes:
        raise NotReadHere
    elements, end = _elements(data, end, only_group=None)
    if end != len(data):
        raise NotReadHere
    # pydicom reads the dataset into a Dataset and makes a FileDataset of it: they share the
    # elements' dict, and the first is dropped, so only the second is made here (the encodings it
    # records come from that dict: its Specific Character Set, decoded there).
    ds = new_file_dataset(io.BytesIO(data), elements, preamble, file_meta, False, True)  # FileDataset(...)
    ds.set_original_encoding(False, True, ds._character_set)
    return ds


def _elements(data: bytes, position: int, only_group: int | None) -> tuple[dict[BaseTag, Any], int]:
    """The elements from `position` as pydicom's `data_element_generator` yields them (explicit
    VR little endian), keyed by tag in file order, and where they end: with `only_group`, at the
    first element of another group (the file meta: PS3.10 7.1), else at the end of the file."""
    elements: dict[BaseTag, Any] = {}
    end_of_file = len(data)
    encoding: str | MutableSequence[str] = default_encoding
    first = True
    while position + 8 <= end_of_file:
        group, element, code, length = _SHORT_HEADER(data, position)
        if only_group is not None and group != only_group:
            break
        known = VRS.get(code)
        if known is None:
            raise NotReadHere  # implicit VR (pydicom's first-element test), or a VR pydicom guesses at
        first = False
        vr, long = known
        start = position + 8
        if long:
            if start + 4 > end_of_file:
                raise NotReadHere
            (length,) = _LONG_LENGTH(data, start)
            start += 4
        tag = group << 16 | element
        if tag == _ITEM_DELIMITER or tag in elements:
            raise NotReadHere
        if length == _UNDEFINED:
            stored, position = read_undefined(data, start, tag, vr, encoding)
            elements[BaseTag(tag)] = stored
            continue
        position = start + length
        if position > end_of_file:
            raise NotReadHere
        value: Any = data[start:position] if length else empty_value_for_VR(vr, raw=True)
        if tag == _CHARACTER_SET:
            encoding = convert_encodings(convert_string(value or b"", True))
        key = BaseTag(tag)
        elements[key] = _new_raw(RawDataElement, (key, vr, length, value, start, False, True, True, False))
    if first or (only_group is None and position != end_of_file):
        raise NotReadHere
    return elements, position


def read_undefined(data: bytes, start: int, tag: int, vr: str, encoding: str | MutableSequence[str],
                   ) -> tuple[DataElement | RawDataElement, int]:
    """An element of undefined length whose value starts at `start` in `data` (the file's bytes,
    or a sequence's value), read by pydicom's functions as `data_element_generator` reads it
    there (PS3.5 7.5.2, A.4): a sequence whole, else the value up to its delimiter; and where it
    ends. `NotReadHere` for a VR that cannot have an undefined length or what pydicom refuses."""
    if vr not in _UNDEFINED_READ:
        raise NotReadHere
    fp = io.BytesIO(data)  # what pydicom is given (`pipeline.dicom.file`, `convert_SQ`): it reads from there
    fp.seek(start)
    try:
        if vr == "SQ":
            sequence = read_sequence(fp, False, True, _UNDEFINED, encoding)
            stored: DataElement | RawDataElement = DataElement(BaseTag(tag), vr, sequence, start,
                                                               is_undefined_length=True)
        else:
            value = read_undefined_length_value(fp, True, SequenceDelimiterTag, None)
            stored = RawDataElement(BaseTag(tag), vr, _UNDEFINED, value, start, False, True)
    except Exception:
        raise NotReadHere from None
    return stored, fp.tell()
