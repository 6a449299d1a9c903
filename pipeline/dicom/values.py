"""One decoded element's value as the bytes pydicom's `write_data_element` writes for it.

Speed: pydicom writes each decoded element (one the scrub changed, or only read) through a
buffer, a context manager and a dispatch table, ~10 us apiece. `value_bytes` gives the same
bytes for the values a scrubbed dataset holds (PS3.5 6.2, padded to even length as pydicom
pads them: UI with NUL, text with a space, binary with NUL, UN not at all), and None for
anything else (a buffered or undefined-length value, an ambiguous VR, AT, a number list of a
LUT descriptor, a value of an unexpected type): the caller then lets pydicom write it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pydicom.charset import encode_string
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

# pydicom's write_string / write_DA / write_DT / write_TM on str values: joined by backslash,
# encoded as pydicom's default encoding ("iso8859": Latin-1), padded with a space.
_PLAIN_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UR"})
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})  # pydicom's write_text: the character set's encoding
_NUMBER_STRING_VRS = frozenset({"DS", "IS"})
_PADDED_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_LATIN_1 = "latin-1"  # pydicom's default_encoding "iso8859"


_KNOWN_VRS = _PLAIN_STRING_VRS | _TEXT_VRS | _NUMBER_STRING_VRS | _PADDED_BINARY_VRS | set(_NUMBER_FORMATS) | {
    "PN", "UI", "UN"}


def _is_empty(value: object) -> bool:
    """pydicom's `DataElement.is_empty` for a value that is not a sequence: VM 0."""
    if value is None:
        return True
    if isinstance(value, (str, bytes, PersonName)):
        return not value
    return _is_multi(value) and len(value) == 0  # type: ignore[arg-type]


def _is_multi(value: object) -> bool:
    return isinstance(value, (MultiValue, list, tuple))


def _strings(value: object) -> list[str] | None:
    """The value's strings (one for a single value), or None when it is not all str."""
    if isinstance(value, str):
        return [value]
    if _is_multi(value):
        assert isinstance(value, (MultiValue, list, tuple))
        items = list(value)
        return items if items and all(isinstance(v, str) for v in items) else None
    return None


def _padded(data: bytes, pad: bytes) -> bytes:
    return data + pad if len(data) % 2 else data


def value_bytes(elem: DataElement, encodings: Sequence[str], little: bool) -> bytes | None:
    """The encoded value of `elem` (not sequences), or None when pydicom must write it.
    `encodings` are Python codec names (pydicom's `convert_encodings` of the character set)."""
    if elem.is_buffered or elem.is_undefined_length:
        return None
    vr = elem.VR
    value = elem.value
    if _is_empty(value):  # pydicom writes no value for an empty element (DataElement.is_empty)
        return b"" if vr in _KNOWN_VRS else None
    if vr in _PADDED_BINARY_VRS or vr == "UN":
        if not isinstance(value, bytes):
            return None
        return value if vr == "UN" else _padded(value, b"\x00")
    if vr in _NUMBER_FORMATS:
        return _numbers(vr, value, little)
    if vr == "PN":
        names = [value] if isinstance(value, PersonName) else list(value) if _is_multi(value) else None
        if names is None or (len(names) == 1 and _is_multi(value)) or not all(isinstance(n, PersonName) for n in names):
            return None
        return _padded(b"\\".join(n.encode(list(encodings)) for n in names), b" ")
    if vr in _NUMBER_STRING_VRS:
        items = list(value) if _is_multi(value) else [value]
        text = "\\".join(x.original_string if hasattr(x, "original_string") else str(x) for x in items)
        return _padded(text.encode(_LATIN_1), b" ")
    strings = _strings(value)
    if strings is None:
        return None
    if vr in _TEXT_VRS:
        joined = b"\\".join(encode_string(s, list(encodings)) for s in strings)
        return _padded(joined, b" ")
    if vr == "UI":
        return _padded("\\".join(strings).encode(_LATIN_1), b"\x00")
    if vr in _PLAIN_STRING_VRS:
        return _padded("\\".join(strings).encode(_LATIN_1), b" ")
    return None


def _numbers(vr: str, value: object, little: bool) -> bytes | None:
    """pydicom's write_numbers: one number, or a list of them (not the US/SS LUT descriptors'
    mixed form: pydicom writes those itself)."""
    order = "<" if little else ">"
    code = _NUMBER_FORMATS[vr]
    if isinstance(value, (int, float)):
        return struct.pack(order + code, value)
    if isinstance(value, (MultiValue, list)) and vr != "SS":
        items = list(value)
        if not all(isinstance(v, (int, float)) for v in items):
            return None
        return struct.pack(f"{order}{len(items)}{code}", *items)
    return None
