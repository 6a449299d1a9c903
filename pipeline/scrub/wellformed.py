"""What the scrub can judge: elements as PS3.5 defines them, and kept values that hold only
what their VR can hold.

A byte-level fault in an input (a flipped VR, a length that runs over the elements after it)
does not always stop pydicom: it may read an element under a VR no one defined, or read
the elements that follow into one value. Removing such an element unread, or keeping such a
value as it is, would publish what the scrub never judged. So:

| found                                                     | done                           |
|-----------------------------------------------------------|--------------------------------|
| a VR PS3.5 Table 6.2-1 does not define, at any depth,     | bad-input:unknown-vr           |
|   in removed sequences and the file meta too              |                                |
| a value shorter than its declared length (the file ends)  | bad-input:length-beyond-file   |
| a public attribute stored as SQ that the dictionary gives | bad-input:vr-mismatch          |
|   a value VR, or the reverse (items cannot be judged as   |                                |
|   a value, nor a value as items)                          |                                |
| an undefined length where PS3.5 7.1.1 allows none (only   | bad-input:bad-value-length     |
|   SQ, UN, and Pixel Data in OB or OW, encapsulated (A.4;  |                                |
|   whether the syntax encapsulates: `pipeline.dicom.file`),|                                |
|   read raw or decoded before the scrub reached it; a      |                                |
|   binary number (US SS UL SL FL FD SV UV) whose length is |                                |
|   not a whole number of values                            |                                |
| a transfer syntax PS3.6 does not register (file meta)     | bad-input:unknown-transfer-syntax |
| a value kept as it is (K, or kept by default) holding     | replaced by a dummy of its VR  |
|   characters its VR excludes (PS3.5 6.2: control         |   (`keepable` is False)        |
|   characters, or outside the default repertoire for AE    |                                |
|   AS CS DA DS DT IS TM UI UR), or more values than its    |                                |
|   dictionary VM allows                                    |                                |
"""

from __future__ import annotations

import functools
import re

from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import dictionary_VM, dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID

from pipeline.errors import Cause, InputError

# PS3.5 Table 6.2-1: every VR an element may be stored under (None: implicit VR, read by tag).
KNOWN_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
                       "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
                       "UR", "US", "UT", "UV", None})
UNDEFINED_LENGTH = 0xFFFFFFFF
_UNDEFINED_ALLOWED = frozenset({"SQ", "UN"})  # PS3.5 7.1.1; and OB or OW on Pixel Data (A.4): `_PIXEL_VRS`
_PIXEL_VRS = frozenset({"OB", "OW"})

# Characters a value of the VR cannot hold (PS3.5 6.1.2-6.1.3, 6.2), its padding stripped; bytes
# are read as Latin-1, one character per byte. ESC starts an ISO 2022 escape in the text VRs.
_DEFAULT_ONLY = re.compile(r"[^\x20-\x7e]")
_FORBIDDEN: dict[str, re.Pattern[str]] = {
    **dict.fromkeys(("AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"), _DEFAULT_ONLY),
    **dict.fromkeys(("PN", "LO", "SH", "UC"), re.compile(r"[\x00-\x1a\x1c-\x1f]")),
    **dict.fromkeys(("LT", "ST", "UT"), re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")),
}
_SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})  # a backslash is text there, not a separator
_TRANSFER_SYNTAX, _PIXEL_DATA = 0x00020010, 0x7FE00010
_NUMBER_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "SV": 8, "UV": 8}


def refuse_broken_encapsulation(ds: Dataset) -> None:
    """Raise `InputError` when encapsulated Pixel Data (PS3.5 A.4: items, the Basic Offset Table
    then the fragments, each of even length) has an odd length or items that do not parse to its
    end. Kept as stored, such a value is published padded to even length, and its last item runs
    into the pad: no reader, verify included, can split it into frames."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta[_TRANSFER_SYNTAX].value if meta is not None and _TRANSFER_SYNTAX in meta._dict else None
    if syntax is None or not _is_encapsulated(str(syntax)) or _PIXEL_DATA not in ds._dict:
        return
    value = ds[_PIXEL_DATA].value
    if not isinstance(value, bytes):
        return
    try:
        if len(value) % 2:
            raise ValueError("odd length")
        for _fragment in generate_fragments(value):
            pass
    except Exception:
        raise InputError("the encapsulated Pixel Data's items do not parse", cause=Cause.BAD_ENCAPSULATION) from None


@functools.lru_cache(maxsize=64)
def _is_encapsulated(syntax: str) -> bool:
    """`UID(syntax).is_encapsulated` (raising what it raises), remembered: a run meets a few syntaxes."""
    return bool(UID(syntax).is_encapsulated)


@functools.lru_cache(maxsize=8192)
def _public_vr(tag: int) -> str | None:
    """The dictionary VR an implicit VR element of a public `tag` is read under, or None."""
    if tag >> 16 & 1:
        return None
    if tag & 0xFFFF == 0:
        return "UL"  # group length (pydicom reads any group's as UL)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def _ambiguous_known(vr: str | None) -> bool:
    """Whether `vr` is one of PS3.6's ambiguous dictionary VRs ("OB or OW", "US or SS"), which
    pydicom gives an implicit VR element it reads by the dictionary (pydicom's SC_rgb_jpeg.dcm,
    implicit under an explicit syntax: its Pixel Data), every alternative a VR PS3.5 defines."""
    return vr is not None and " or " in vr and all(part in KNOWN_VRS for part in vr.split(" or "))


def refuse_malformed(stored: DataElement | RawDataElement) -> None:
    """Raise `InputError` for an element stored under a VR PS3.5 does not define, whose value is
    shorter than its declared length, with an undefined length its VR cannot have, or a binary
    number whose length is not a whole number of values: what it holds cannot be judged (nor
    read by the verifier), and the element is checked even where the scrub removes it unread
    (DESIGN: an unknown VR is an error)."""
    if not isinstance(stored, RawDataElement):
        vr = stored.VR
        dictionary = _public_vr(int(stored.tag))
        if vr not in (None, "UN") and dictionary is not None and (vr == "SQ") != (dictionary == "SQ"):
            raise InputError("an element is stored as a sequence where the dictionary has a value, or the reverse",
                             cause=Cause.VR_MISMATCH)
        if stored.is_undefined_length and not _undefined_allowed(int(stored.tag), vr):
            # decoded before the scrub reached it (the patient's name and ID, the identifiers C
            # reads): pydicom keeps the flag, and would write the new value with an undefined length
            raise InputError("an element has an undefined length its VR cannot have", cause=Cause.BAD_VALUE_LENGTH)
        return
    # still stored as read: what its tag and VR decide is judged once per pair (`_judged`), then its lengths
    size, undefined_allowed = _judged(int(stored.tag), stored.VR)
    value, length = stored.value, stored.length
    if length == UNDEFINED_LENGTH:
        if undefined_allowed is False:
            raise InputError("an element has an undefined length its VR cannot have", cause=Cause.BAD_VALUE_LENGTH)
        return
    if isinstance(value, bytes) and len(value) != length:
        raise InputError("an element declares more bytes than its file holds", cause=Cause.LENGTH_BEYOND_FILE)
    if size and length % size:
        raise InputError("a binary number's length is not a whole number of values", cause=Cause.BAD_VALUE_LENGTH)


@functools.lru_cache(maxsize=8192)
def _judged(tag: int, vr: str | None) -> tuple[int, bool | None]:
    """What `refuse_malformed` decides of a stored element by its tag and VR alone (raising what
    it raises for them): the size of one value of the binary number it is read as (0: not one),
    and whether an undefined length is allowed (None: no VR to read it as, not judged)."""
    dictionary = _public_vr(tag)
    if vr not in (None, "UN") and dictionary is not None and (vr == "SQ") != (dictionary == "SQ"):
        raise InputError("an element is stored as a sequence where the dictionary has a value, or the reverse",
                         cause=Cause.VR_MISMATCH)
    if vr not in KNOWN_VRS and not _ambiguous_known(vr):
        raise InputError("an element has a VR that PS3.5 does not define", cause=Cause.UNKNOWN_VR)
    if vr is None and dictionary is not None and dictionary not in KNOWN_VRS and not _ambiguous_known(dictionary):
        # implicit VR, read by the dictionary: an item or delimiter tag (FFFE,E000/E00D/E0DD, PS3.5 7.5)
        # among the elements has no VR (PS3.6 says "NONE") and no value pydicom can decode
        raise InputError("an item or delimiter tag stands where an element belongs", cause=Cause.UNKNOWN_VR)
    read_as = vr if vr is not None else dictionary  # implicit VR: the dictionary's
    if read_as is None:
        return 0, None
    size = _NUMBER_SIZES.get(read_as)
    return size if size is not None and read_as != "AT" else 0, _undefined_allowed(tag, read_as)


@functools.lru_cache(maxsize=8192)
def _undefined_allowed(tag: int, vr: str | None) -> bool:
    """Whether an element of `tag` stored under `vr` ("OB or OW": implicit VR, by the dictionary)
    may have an undefined length (PS3.5 7.1.1): a sequence (SQ, or UN holding one, 6.2.2), or
    Pixel Data in OB or OW, at any depth (an icon's too), encapsulated (A.4; whether the transfer
    syntax is one that encapsulates is the file's to say, `pipeline.dicom.file`). Any other
    value's end is not its delimiter: read to one, it is not the value the file meant."""
    parts = (vr or "").split(" or ")
    return any(part in _UNDEFINED_ALLOWED for part in parts) or (
        tag == _PIXEL_DATA and any(part in _PIXEL_VRS for part in parts))


def refuse_malformed_within(sequence: DataElement) -> None:
    """`refuse_malformed` on every element of the items of a sequence removed or emptied whole,
    at every depth, without decoding a value other than a sequence's items."""
    for item in sequence.value if isinstance(sequence.value, Sequence) else ():
        for tag, stored in item.items():
            refuse_malformed(stored)
            if stored.VR == "SQ":
                refuse_malformed_within(item[tag])


def refuse_unknown_transfer_syntax(meta: Dataset) -> None:
    """Raise `InputError` when the file meta names a transfer syntax PS3.6 does not register: the
    dataset was read by a guess, and the UID itself would be published unmapped."""
    if _TRANSFER_SYNTAX not in meta._dict:
        return
    uid = str(meta[_TRANSFER_SYNTAX].value or "").strip("\x00 ")
    entry = UID_dictionary.get(uid)
    if entry is None or entry[1] != "Transfer Syntax":
        raise InputError("the file meta names an unknown transfer syntax", cause=Cause.UNKNOWN_TRANSFER_SYNTAX)


@functools.lru_cache(maxsize=8192)
def _max_values(tag: int) -> int | None:
    """The most values the dictionary's VM allows `tag` ("1", "2", "1-3"), or None (unbounded or unknown)."""
    try:
        vm = str(dictionary_VM(tag))
    except KeyError:
        return None
    top = vm.rsplit("-", 1)[-1]
    return int(top) if top.isdigit() else None


def keepable(stored: DataElement | RawDataElement, vr: str) -> bool:
    """Whether the value of a public element may be kept as it is under its VR `vr` (the
    dictionary's): only characters the VR can hold, and no more values than its VM allows."""
    value = stored.value
    if isinstance(value, bytes) and len(value) <= _REMEMBERED_LENGTH:
        return _keepable_bytes(int(stored.tag), vr, value)
    return _keepable(int(stored.tag), vr, value)


_REMEMBERED_LENGTH = 64  # short stored values recur across files (a series, a device): judged once


@functools.lru_cache(maxsize=8192)
def _keepable_bytes(tag: int, vr: str, value: bytes) -> bool:
    return _keepable(tag, vr, value)


def _keepable(tag: int, vr: str, value: object) -> bool:
    if value is None:
        return True
    size = _NUMBER_SIZES.get(vr)
    if size is not None:
        limit = _max_values(tag)
        if limit is None:
            return True
        count = len(value) // size if isinstance(value, bytes) else len(value) if isinstance(
            value, (MultiValue, list)) else 1
        return count <= limit
    forbidden = _FORBIDDEN.get(vr)
    if forbidden is None:
        return True  # binary (OB, OW, ...), UN, SQ: not judged here
    if isinstance(value, bytes):
        text = value.decode("latin-1")
    elif isinstance(value, (MultiValue, list)):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    text = text.rstrip("\x00 ")
    if forbidden.search(text):
        return False
    limit = None if vr in _SINGLE_VALUED else _max_values(tag)
    return limit is None or text.count("\\") < limit
