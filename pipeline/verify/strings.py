"""An element's values as strings, as verify reads them (`element_strings`): from the stored bytes
where they are plain, exactly as pydicom would give them; through pydicom otherwise.

Speed: pydicom decodes an element into a value object the first time it is read, which cost more
than every check of verify. ASCII text, numbers in their stored VR and OB/OW bytes are read from
the stored bytes exactly as pydicom would give them (anything else goes through pydicom); the
walk (pipeline/verify/walk.py) reads a value only when a check or the search needs it.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pipeline.verify.profile import TEXT_VRS

STRING_VRS = TEXT_VRS | {"AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UN"}
BULK_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010, 0x54001010, 0x56000020})
NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT"})
_SINGLE_VALUED = frozenset({"ST", "LT", "UT", "UR"})
_FAST_TEXT_VRS = (STRING_VRS - {"UN"}) | {"AE", "UC"}



def is_overlay_data(tag: int) -> bool:
    return (tag >> 16) & 0xFF01 == 0x6000 and tag & 0xFFFF == 0x3000


# Speed: the strings of plain ASCII text of a VR that holds several values depend on its stored
# bytes alone, and a study's values recur in its files as an output's recur in its original: each
# is read from its bytes once (remembered while short; the memo is emptied when full).
_SPLIT_TEXT: dict[bytes, tuple[str, ...]] = {}
_SPLIT_TEXT_SIZE = 8192
_SPLIT_TEXT_BYTES = 128


def strings_of(ds: Dataset, tag: int, vr: str, stored: DataElement | RawDataElement) -> tuple[str, ...]:
    """`element_strings` of the element `tag` of `ds`, reading plain ASCII text from the raw bytes."""
    if vr == "SQ" or tag in BULK_TAGS or ((tag >> 16) & 0xFF01 == 0x6000 and tag & 0xFFFF == 0x3000):  # overlay data
        return ()
    if isinstance(stored, RawDataElement):
        value = stored.value
        if vr in _FAST_TEXT_VRS and isinstance(value, bytes):
            single = vr in _SINGLE_VALUED
            if not single:
                known = _SPLIT_TEXT.get(value)
                if known is not None:
                    return known
            if value.isascii() and b"\x1b" not in value:
                text = value.decode("ascii")  # `ascii_strings`, written out: the common case
                out: tuple[str, ...]
                if single or "\\" not in text:
                    text = text.strip(" \x00")
                    out = (text,) if text else ()
                else:
                    out = tuple(part.strip(" \x00") for part in text.split("\\"))
                    out = out if any(out) else ()
                if not single and len(value) <= _SPLIT_TEXT_BYTES:
                    if len(_SPLIT_TEXT) >= _SPLIT_TEXT_SIZE:
                        _SPLIT_TEXT.clear()
                    _SPLIT_TEXT[value] = out
                return out
        fast = ascii_strings(vr, value)
        if fast is None and stored.VR is not None and vr != stored.VR:
            # judged by the dictionary's VR, decoded by pydicom in the explicit one it was stored in
            fast = ascii_strings(stored.VR, stored.value)
        if fast is None and vr == stored.VR and tag not in _LUT_DESCRIPTORS:
            fast = binary_strings(stored)
        if fast is not None:
            return fast
    return element_strings(ds[tag])


# The binary VRs as pydicom decodes them (struct formats); a stored VR is used as it is (no
# ambiguous VR to resolve), except in the LUT descriptors, whose first value pydicom corrects.
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_LUT_DESCRIPTORS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})


def binary_strings(stored: RawDataElement) -> tuple[str, ...] | None:
    """`element_strings` of a raw number (`_NUMBER_FORMATS`) or OB / OW element in its stored VR,
    from its bytes (numbers unpacked as pydicom does; bytes as Latin-1); None when only pydicom
    can tell (another VR, a length that is no multiple of the value's size)."""
    value, vr = stored.value, stored.VR
    if not isinstance(value, bytes):
        return None
    if vr in ("OB", "OW"):
        text = value.decode("latin-1").strip(" \x00")
        return (text,) if text else ()
    code = _NUMBER_FORMATS.get(vr or "")
    if code is None:
        return None
    size = struct.calcsize("=" + code)
    if len(value) % size:
        return None
    order = "<" if stored.is_little_endian else ">"
    return tuple(str(number) for number in struct.unpack(f"{order}{len(value) // size}{code}", value))


_SINGLE_TEXT_VRS = frozenset({"CS", "SH", "LO", "UI"})


def stored_text(ds: Dataset, tag: int, keyword: str) -> str:
    """`str(ds.get(keyword, "") or "")`, read from the stored bytes when the element holds one plain
    ASCII value of a code, short or long string or UID (pydicom strips trailing spaces and NULs
    from those); anything else as pydicom gives it."""
    stored = ds._dict.get(tag)  # type: ignore[call-overload]  # `ds.get_item(tag)` without its BaseTag
    if stored is None:
        return ""
    if isinstance(stored, RawDataElement) and stored.value is None:  # a deferred read: pydicom reads it
        stored = ds.get_item(tag)
    if isinstance(stored, RawDataElement) and stored.VR in _SINGLE_TEXT_VRS:
        value = stored.value
        if isinstance(value, bytes) and value.isascii() and b"\\" not in value and b"\x1b" not in value:
            return value.decode("ascii").rstrip(" \x00")
    return str(ds.get(keyword, "") or "")


def ascii_strings(vr: str, value: bytes | None) -> tuple[str, ...] | None:
    """The stored value of a text element of VR `vr` as `element_strings` gives it, read from
    its bytes when they are plain ASCII (no escape); None when only pydicom can read it."""
    if vr not in _FAST_TEXT_VRS:
        return None
    if value is None:
        return ()
    if isinstance(value, bytes) and value.isascii() and b"\x1b" not in value:
        text = value.decode("ascii")
        if vr in _SINGLE_VALUED or "\\" not in text:
            text = text.strip(" \x00")
            return (text,) if text else ()
        out = tuple(part.strip(" \x00") for part in text.split("\\"))
        return out if any(out) else ()
    return None


def element_strings(elem: DataElement) -> tuple[str, ...]:
    """The element's values as stripped strings (bytes as latin-1); () for sequences and bulk."""
    value = elem.value
    if elem.VR == "SQ" or value is None or int(elem.tag) in BULK_TAGS or is_overlay_data(int(elem.tag)):
        return ()
    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        text = item.decode("latin-1") if isinstance(item, bytes) else str(item)
        out.append(text.strip(" \x00"))
    return tuple(out) if any(out) else ()
def text_values(elem: DataElement) -> list[str]:
    """The element's non-empty values as stripped strings, for judging values without an
    original (scan, conformance): bytes and sequences give none."""
    value = elem.value
    if value is None or elem.VR == "SQ" or isinstance(value, bytes):
        return []
    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    return [s for s in (str(v).strip(" \x00") for v in items) if s]
