"""Encoding a dataset byte for byte as `pydicom.dcmwrite(..., enforce_file_format=True)` does,
without its per-element cost for elements still as they were read.

Speed: a scrubbed dataset keeps most elements as pydicom read them (`RawDataElement`: tag, VR,
length and the value's bytes, undecoded). pydicom's writer spends ~10 us on each such element (a
buffer, a context manager, a dozen attribute look-ups) to copy its bytes: more than the whole
scrub decides for it. Here an element kept as stored, in the encoding it was read in, is written
as its header and its stored bytes, exactly the bytes pydicom writes for it (PS3.5 7.1: tag, VR,
reserved bytes and a 16- or 32-bit length, or tag and 32-bit length in implicit VR); a decoded
sequence is framed here as pydicom frames it (PS3.5 7.5), its items in the file's encoding (or
made in memory of plain values) written the same way (others by pydicom's `write_dataset`); a
decoded value is encoded by `pipeline.dicom.values.value_bytes`, as pydicom's `write_data_element`
encodes it; what that does not cover (the encapsulated Pixel Data, anything of undefined length,
AT, a VR whose length field cannot hold it) goes through pydicom's own `write_data_element`. The
file meta is encoded as pydicom's `write_file_meta_info` encodes it. Whatever this path does not
cover (a deflated or private transfer syntax, a dataset whose encoding or character set changed,
which pydicom re-encodes whole) returns None: the caller then uses `dcmwrite`.
"""

from __future__ import annotations

import struct

from pydicom import __version_info__
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.tag import ItemDelimiterTag, ItemTag, SequenceDelimiterTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import AMBIGUOUS_VR, EXPLICIT_VR_LENGTH_32
from pydicom.valuerep import VR as VR_

from pipeline.dicom.stored import stored_values
from pipeline.dicom.values import value_bytes

_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
# a VR's two bytes in an explicit VR header, encoded once (pydicom: vr.encode("latin-1"))
_VR_CODES = {str(vr): str(vr).encode("latin-1") for vr in VR_ if len(str(vr)) == 2}
# (implicit VR, explicit VR short, explicit VR long) element headers, by endianness (little: True)
_HEADERS = {little: (struct.Struct(order + "HHL"), struct.Struct(order + "HH2sH"), struct.Struct(order + "HH2sHL"))
            for little, order in ((True, "<"), (False, ">"))}
_AMBIGUOUS = frozenset(str(vr) for vr in AMBIGUOUS_VR)


_TRANSFER_SYNTAX, _MEDIA_CLASS_UID, _MEDIA_INSTANCE_UID = 0x00020010, 0x00020002, 0x00020003
_SOP_CLASS_UID, _SOP_INSTANCE_UID, _CHARACTER_SET = 0x00080016, 0x00080018, 0x00080005


def _uid(ds: Dataset, tag: int) -> object:
    """`ds.get(<keyword>)` of a UI attribute, a plain stored value read as stored (`stored_values`)."""
    stored = ds._dict.get(tag)  # type: ignore[call-overload]
    if stored is None:
        return None
    values = stored_values(stored, "UI", ds)
    if values is not None and len(values) == 1:
        return values[0]
    return ds[tag].value


def encode_file(ds: Dataset) -> bytes | None:
    """`ds` (with its preamble and a complete file meta) encoded as dcmwrite with
    enforce_file_format=True would, or None when this path does not cover it."""
    meta = getattr(ds, "file_meta", None)
    if not isinstance(meta, FileMetaDataset):
        return None
    syntax = meta[_TRANSFER_SYNTAX].value if _TRANSFER_SYNTAX in meta._dict else None
    if not isinstance(syntax, UID) or syntax.is_private or not syntax.is_transfer_syntax:
        return None
    if syntax == DeflatedExplicitVRLittleEndian:
        return None
    encoding = (syntax.is_implicit_VR, syntax.is_little_endian)
    if encoding == (True, False) or tuple(ds.original_encoding) != encoding:
        return None
    if ds.original_character_set != ds._character_set:
        return None
    if any(number >> 16 in (0, 2) for number in map(int, ds._dict) if number < 0x00030000):
        return None
    preamble = getattr(ds, "preamble", None)
    if not preamble or len(preamble) != 128:
        return None
    if _uid(ds, _SOP_CLASS_UID) != _uid(meta, _MEDIA_CLASS_UID) or _uid(ds, _SOP_INSTANCE_UID) != _uid(
            meta, _MEDIA_INSTANCE_UID):
        return None
    meta_bytes = _file_meta(meta)
    if meta_bytes is None:
        return None
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = encoding
    fp.write(preamble)
    fp.write(b"DICM")
    fp.write(meta_bytes)
    if _PIXEL_DATA in ds._dict:
        ds[_PIXEL_DATA].is_undefined_length = syntax.is_compressed  # as dcmwrite does
    _write_dataset(fp, ds, *encoding)
    return bytes(fp.getvalue())


def _write_dataset(fp: DicomBytesIO, ds: Dataset, implicit: bool, little: bool,
                   parent_encoding: str | list[str] = default_encoding) -> None:
    """pydicom's `write_dataset` for a dataset already in the file's encoding and character set."""
    implicit_header, short_header, long_header = _HEADERS[little]
    character_set = ds[_CHARACTER_SET].value if _CHARACTER_SET in ds._dict else parent_encoding
    encodings: list[str] | None = None  # the character set as Python codecs, once needed
    write = fp.write
    # Sorted as (int, element) pairs: the ints decide (tags are unique), compared in C where
    # pydicom's BaseTag compares in Python.
    for number, elem in sorted(zip(map(int, ds._dict), ds._dict.values(), strict=True)):
        group, element = number >> 16, number & 0xFFFF
        if element == 0 and group > 6:
            continue  # retired group lengths are not written (PS3.5 7.2), as dcmwrite
        if isinstance(elem, RawDataElement) and number != _PIXEL_DATA and elem.length != _UNDEFINED:
            value = elem.value
            vr = elem.VR
            if isinstance(value, bytes):
                if implicit:
                    write(implicit_header.pack(group, element, len(value)))
                    write(value)
                    continue
                if isinstance(vr, str):
                    if vr in _LONG_VRS:
                        write(long_header.pack(group, element, _VR_CODES.get(vr) or vr.encode("latin-1"), 0,
                                               len(value)))
                        write(value)
                        continue
                    if len(vr) == 2 and len(value) <= 0xFFFF:  # a short value: header and value in one write
                        write(short_header.pack(group, element, _VR_CODES.get(vr) or vr.encode("latin-1"),
                                                len(value)) + value)
                        continue
        elif isinstance(elem, DataElement):
            vr = elem.VR
            if vr == "SQ" and not elem.is_buffered:
                _write_sequence(fp, elem, character_set, implicit, little)
                continue
            if encodings is None:
                encodings = convert_encodings(character_set or [default_encoding])
            data = value_bytes(elem, encodings, little) if len(vr) == 2 else None
            if data is not None:
                if implicit:
                    write(implicit_header.pack(group, element, len(data)))
                    write(data)
                    continue
                if vr in _LONG_VRS:
                    write(long_header.pack(group, element, vr.encode("latin-1"), 0, len(data)))
                    write(data)
                    continue
                if len(data) <= 0xFFFF:
                    write(short_header.pack(group, element, vr.encode("latin-1"), len(data)))
                    write(data)
                    continue
        write_data_element(fp, ds.get_item(elem.tag), character_set)


_REQUIRED_META = (0x00020002, 0x00020003, 0x00020010)  # PS3.10 7.1: Type 1, with a value
_META_VERSION, _IMPLEMENTATION_CLASS, _IMPLEMENTATION_VERSION = 0x00020001, 0x00020012, 0x00020013
_META_LONG_HEADER = struct.Struct("<HH2sHL")
_META_SHORT_HEADER = struct.Struct("<HH2sH")


def _file_meta(meta: FileMetaDataset) -> bytes | None:
    """The File Meta Information as pydicom's `write_file_meta_info(..., enforce_standard=True)`
    writes it (PS3.10 7.1: explicit VR little endian, the group length first, the version
    b"\\x00\\x01" when missing or empty, pydicom's implementation class UID and version name when
    missing), or None when it is not that simple (an element outside group 0002, a missing
    required element, a value this path does not encode): dcmwrite then decides."""
    elements: dict[int, DataElement] = {}
    stored: dict[int, tuple[str, bytes]] = {}  # non-empty values pydicom would write as stored
    for tag, raw in meta._dict.items():
        number = int(tag)
        if number >> 16 != 2:
            return None
        plain = _as_stored(raw, meta)
        if plain is None:  # decoded (an empty value too), as the rules below judge it
            elements[number] = meta[tag]
        else:
            stored[number] = plain
    version = elements.get(_META_VERSION)
    if _META_VERSION not in stored and (version is None or version.is_empty):
        elements[_META_VERSION] = DataElement(_META_VERSION, "OB", b"\x00\x01")
    implementation = elements.get(_IMPLEMENTATION_CLASS)
    if _IMPLEMENTATION_CLASS not in stored and (implementation is None or implementation.is_empty):
        elements[_IMPLEMENTATION_CLASS] = DataElement(_IMPLEMENTATION_CLASS, "UI", PYDICOM_IMPLEMENTATION_UID)
    if _IMPLEMENTATION_VERSION not in elements and _IMPLEMENTATION_VERSION not in stored:
        elements[_IMPLEMENTATION_VERSION] = DataElement(_IMPLEMENTATION_VERSION, "SH",
                                                        f"PYDICOM {'.'.join(__version_info__)}")
    for number in _REQUIRED_META:
        found = elements.get(number)
        if number not in stored and (found is None or found.is_empty):
            return None
    body: list[bytes] = []
    for number in sorted([*elements, *stored]):
        if number == 0x00020000:
            continue
        plain = stored.get(number)
        data: bytes | None
        if plain is not None:
            vr, data = plain
        else:
            vr = elements[number].VR
            data = value_bytes(elements[number], [default_encoding], True) if isinstance(vr, str) and len(
                vr) == 2 else None
        if data is None:
            return None
        group, element = number >> 16, number & 0xFFFF
        if vr in _LONG_VRS:
            body.append(_META_LONG_HEADER.pack(group, element, vr.encode("latin-1"), 0, len(data)))
        elif len(data) <= 0xFFFF:
            body.append(_META_SHORT_HEADER.pack(group, element, vr.encode("latin-1"), len(data)))
        else:
            return None
        body.append(data)
    encoded = b"".join(body)
    return _META_SHORT_HEADER.pack(2, 0, b"UL", 4) + struct.pack("<L", len(encoded)) + encoded


def _as_stored(raw: object, meta: FileMetaDataset) -> tuple[str, bytes] | None:
    """(VR, stored bytes) of a file meta element still stored as read with a value whose bytes
    pydicom would write again unchanged (`stored_values`; OB bytes of even length, PS3.5 7.1.2),
    else None."""
    if not isinstance(raw, RawDataElement) or not isinstance(raw.VR, str) or not isinstance(raw.value, bytes):
        return None
    vr, data = raw.VR, raw.value
    if vr == "OB":
        return (vr, data) if data and len(data) % 2 == 0 else None
    return (vr, data) if stored_values(raw, vr, meta) else None  # a value pydicom reads, not empty


def _in_file_encoding(item: Dataset, implicit: bool, little: bool) -> bool:
    """Whether pydicom's `write_dataset` would write `item` element by element as it stands:
    read in the file's encoding and character set, or made in memory (no encoding of its own)
    of decoded values only, none a sequence or of an ambiguous VR (pydicom corrects those first;
    its character set is then the item's SpecificCharacterSet or its parent's, here too)."""
    encoding = tuple(item.original_encoding)
    if encoding == (implicit, little):
        return bool(item.original_character_set == _character_set(item))
    return encoding == (None, None) and all(
        isinstance(elem, DataElement) and isinstance(elem.VR, str) and len(elem.VR) == 2
        and elem.VR not in _AMBIGUOUS and elem.VR != "SQ" for elem in item._dict.values())


def _character_set(ds: Dataset) -> str | list[str]:
    """`ds._character_set`: its Specific Character Set's encodings, else its parent's (pydicom
    raises and catches a KeyError to find it has none: an item seldom has one)."""
    if _CHARACTER_SET not in ds._dict:
        return ds._parent_encoding
    return ds._character_set


def _write_sequence(fp: DicomBytesIO, elem: DataElement, character_set: str | list[str], implicit: bool,
                    little: bool) -> None:
    """pydicom's `write_data_element` + `write_sequence` for a decoded sequence (PS3.5 7.5): each
    item in the file's encoding written here, any other by pydicom's `write_dataset`."""
    encodings = convert_encodings(character_set or [default_encoding])
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
    if not elem.is_empty:
        for item in elem.value:
            buffer.write_tag(ItemTag)
            length_location = buffer.tell()
            buffer.write_UL(_UNDEFINED)
            if _in_file_encoding(item, implicit, little):
                _write_dataset(buffer, item, implicit, little, encodings)
            else:
                write_dataset(buffer, item, parent_encoding=encodings)
            if getattr(item, "is_undefined_length_sequence_item", False):
                buffer.write_tag(ItemDelimiterTag)
                buffer.write_UL(0)
            else:
                location = buffer.tell()
                buffer.seek(length_location)
                buffer.write_UL(location - length_location - 4)
                buffer.seek(location)
    undefined = elem.is_undefined_length
    fp.write_tag(elem.tag)
    if not implicit:
        fp.write(b"SQ")
        fp.write_US(0)
    fp.write_UL(_UNDEFINED if undefined else buffer.tell())
    fp.write(buffer.getvalue())
    if undefined:
        fp.write_tag(SequenceDelimiterTag)
        fp.write_UL(0)
