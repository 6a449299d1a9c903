"""Values read and written as stored, without pydicom's decoding, where that changes nothing.

Speed: pydicom decodes an element (~7 us) before the scrub reads or replaces its value, and
encodes it again to write it. For the plainest values, the ones most files carry (UIDs, dates,
times, names and descriptions in ASCII), the strings are the stored bytes themselves, so they
are read and the new value written here (PS3.5 6.2: backslash between values, padded to even
length with a space, UIDs with NUL):

| read here when the stored value is                                        | else          |
|---------------------------------------------------------------------------|---------------|
| stored under the VR it is judged by (or implicit VR), not in a sequence   | pydicom       |
| printable ASCII (PS3.5 6.1.2: the default repertoire, no control codes),  | decodes it    |
|   in a character set that reads those bytes as ASCII (text VRs)           |               |
| even in length, each value without a space before or after it but the one |               |
|   pad: what pydicom would decode and encode again byte for byte           |               |
| a person name not ending in an empty component group ("A^B=")            |               |

So the strings read here are the strings pydicom would give, and bytes written here are the
bytes pydicom would write for the new strings (`pipeline.dicom.values`).
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

# Character sets in which printable ASCII bytes decode to the same characters (PS3.5 6.1: the
# default repertoire is G0 of every one; the ISO 2022 sets need ESC, which is not printable).
_ASCII_DECODING = frozenset({"iso8859", "latin_1", "UTF8", "iso8859_2", "iso8859_3", "iso8859_4", "iso_ir_126",
                             "iso_ir_127", "iso_ir_138", "iso_ir_144", "iso_ir_148", "iso_ir_166"})
_PRINTABLE = bytes(range(0x20, 0x7F))
_SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})  # pydicom does not split these at backslashes
_TEXT = frozenset({"PN", "LO", "SH", "ST", "LT"})  # decoded by the character set
READ_HERE = _TEXT | {"UI", "DA", "TM", "DT", "CS"}
_NUMBER_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "SV": 8, "UV": 8}


def reads_ascii(dataset: Dataset) -> bool:
    """Whether `dataset`'s character set reads (and writes) printable ASCII as ASCII."""
    charset = dataset._read_charset or dataset._character_set  # `original_character_set`, unwrapped
    if isinstance(charset, str):
        return charset in _ASCII_DECODING
    return all(map(_ASCII_DECODING.__contains__, charset))  # each encoding (no generator frame per call)


def stored_values(raw: object, vr: str, dataset: Dataset) -> list[str] | None:
    """The values of an element of `dataset` still stored as read (no value: an empty list), or
    None when pydicom must decode it (see the module's table)."""
    if not isinstance(raw, RawDataElement) or raw.VR not in (None, vr) or vr not in READ_HERE:
        return None
    data = raw.value
    if not isinstance(data, bytes):
        return None
    values = _plain_remembered(data, vr) if len(data) <= _REMEMBERED_LENGTH else _plain_values(data, vr)
    if values is None or (vr in _TEXT and not reads_ascii(dataset)):
        return None
    return list(values)


_REMEMBERED_LENGTH = 64  # short values recur across files (UIDs of a series, dates, names): read once


def _plain_values(data: bytes, vr: str) -> tuple[str, ...] | None:
    """The values of the stored bytes `data` of VR `vr` when they are plain (the module's table;
    the character set apart), else None."""
    if len(data) % 2:
        return None
    pad = b"\x00" if vr == "UI" else b" "
    body = data[:-1] if data.endswith(pad) else data
    if body.translate(None, _PRINTABLE):
        return None
    if not body:
        return ()
    text = body.decode("ascii")
    if text[0] == " " or text[-1] == " ":  # a value with a space before or after it (the first, the last)
        return None
    if vr in _SINGLE_VALUED:
        return (text,)
    if " \\" in text or "\\ " in text:  # ... or one between them
        return None
    if vr == "PN" and (text[-1] == "=" or "=\\" in text):
        return None  # pydicom drops empty trailing component groups (PS3.5 6.2.1.2): "A^B=" reads "A^B"
    return tuple(text.split("\\"))


_plain_remembered = functools.lru_cache(maxsize=8192)(_plain_values)


def number(ds: Dataset, tag: int) -> Any:
    """`ds.get(<keyword>)` for an attribute the dictionary gives VR US: one value still stored
    as read is read from its two bytes, as pydicom would decode it (an int), and left undecoded
    (pydicom writes those bytes again); anything else is pydicom's decoded value."""
    stored = ds._dict.get(tag)  # type: ignore[call-overload]
    if stored is None:
        return None
    if (isinstance(stored, RawDataElement) and stored.VR in (None, "US") and isinstance(stored.value, bytes)
            and len(stored.value) == 2 and _is_us(tag)):
        return int.from_bytes(stored.value, "little" if stored.is_little_endian else "big")
    return ds[tag].value


@functools.lru_cache(maxsize=256)
def _is_us(tag: int) -> bool:
    try:
        return bool(dictionary_VR(tag) == "US")
    except KeyError:
        return False


def as_written(raw: object, vr: str, dataset: Dataset) -> bool:
    """Whether pydicom, decoding the element `raw` of `dataset` (judged under `vr`), would write
    its stored bytes again: binary numbers of whole values, and what `stored_values` reads."""
    if not isinstance(raw, RawDataElement) or raw.VR not in (None, vr):
        return False
    size = _NUMBER_SIZES.get(vr)
    if size is not None:
        return isinstance(raw.value, bytes) and len(raw.value) % size == 0
    return stored_values(raw, vr, dataset) is not None


def store(ds: Dataset, raw: RawDataElement, vr: str, values: list[str] | None) -> None:
    """Replace the element `raw` of `ds` (judged under `vr`) by `values` (None or empty: no
    value): stored as the bytes pydicom's writer gives them when they are ASCII, else set as
    a decoded element for pydicom's writer to encode."""
    text = "\\".join(values or ())
    if not text.isascii():
        ds[raw.tag] = DataElement(raw.tag, vr, values if values and len(values) > 1 else text)
        return
    data = text.encode("ascii")
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    # raw._replace(length=len(data), value=data), without namedtuple's Python-level _replace
    ds._dict[raw.tag] = _new_raw(RawDataElement, (raw.tag, raw.VR, len(data), data, *raw[4:]))


_new_raw = tuple.__new__


# --- new elements of plain ASCII values, encoded once ------------------------------------------

Plain = tuple[int, str, str]  # tag, VR, an ASCII value


def raw_elements(elements: tuple[Plain | tuple[int, tuple[tuple[Plain, ...], ...]], ...], implicit: bool,
                 little: bool) -> tuple[RawDataElement, ...]:
    """`elements` (a plain value, or a sequence's tag and its items of plain values) as stored
    elements in the given encoding: the bytes pydicom writes for them (values padded with a
    space; items and the sequence of defined length, PS3.5 7.5)."""
    order = "<" if little else ">"
    made: list[RawDataElement] = []
    for element in elements:
        tag = element[0]
        if len(element) == 3:
            _, vr, text = element
            assert isinstance(vr, str) and isinstance(text, str)
            value = _plain(text)
        else:
            vr, items = "SQ", element[1]
            assert isinstance(items, tuple)
            value = b"".join(_item(item, implicit, order) for item in items)
        made.append(RawDataElement(BaseTag(tag), None if implicit else vr, len(value), value, 0, implicit, little))
    return tuple(made)


def _plain(text: str) -> bytes:
    data = text.encode("ascii")
    return data + b" " if len(data) % 2 else data


def _item(elements: tuple[Plain, ...], implicit: bool, order: str) -> bytes:
    body = b"".join(_header(tag, vr, len(_plain(text)), implicit, order) + _plain(text)
                    for tag, vr, text in sorted(elements))
    return struct.pack(order + "HHL", 0xFFFE, 0xE000, len(body)) + body


def _header(tag: int, vr: str, length: int, implicit: bool, order: str) -> bytes:
    if implicit:
        return struct.pack(order + "HHL", tag >> 16, tag & 0xFFFF, length)
    return struct.pack(order + "HH2sH", tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)
