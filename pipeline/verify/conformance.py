"""Conformance relative to the original (PS3.15 E.1.1: the de-identified object stays conformant).

De-identification must not make an object break its IOD (PS3.3) or its VRs (PS3.5) where the
original did not. With the verifier's own reading of the PS3.3 table (pipeline/verify/iod.py),
the output and its original are walked side by side, item by item (the scrub keeps items in
place), and only new problems are reported:

| rule                        | the original                       | the output                        |
|-----------------------------|------------------------------------|-----------------------------------|
| required-attribute-missing  | has a Type 1/1C/2/2C attribute     | lacks it                          |
| required-value-emptied      | has a Type 1/1C attribute's value  | holds it empty                    |
| sequence-emptied            | has items in a sequence that is    | holds it with zero items          |
|                             | not Type 2/2C (PS3.5 7.5.1)        |                                   |
| value-too-long              | no value of the attribute too long | a value past its VR's limit       |
|                             |                                    | (PS3.5 Table 6.2-1)               |

Overlay and curve groups (60xx, 50xx) are left out: the profile removes such a module whole,
which the IOD allows (the modules are optional). Private attributes have no IOD Type.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from pipeline.verify.findings import Finding, Severity, VerifyRule
from pipeline.verify.iod import IodType, attributes_at
from pipeline.verify.strings import ascii_strings, element_strings, stored_text
from pipeline.verify.walk import dictionary_vr, element_of, tag_name

# PS3.5 Table 6.2-1: the most characters one value of a VR may hold (PN: per component group).
MAX_LENGTHS: dict[str, int] = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
                               "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64}
_NEEDS_VALUE = frozenset({IodType.TYPE_1, IodType.TYPE_1C})
_MAY_BE_EMPTY = frozenset({IodType.TYPE_2, IodType.TYPE_2C})


def too_long(vr: str, values: tuple[str, ...]) -> bool:
    """Whether a value is past its VR's length limit (PS3.5 Table 6.2-1)."""
    limit = MAX_LENGTHS.get(vr)
    if limit is None:
        return False
    parts = [group for value in values for group in value.split("=")] if vr == "PN" else list(values)
    return max(map(len, parts), default=0) > limit


def _strings(ds: Dataset, tag: int, vr: str, stored: DataElement | RawDataElement) -> tuple[str, ...]:
    if isinstance(stored, RawDataElement) and vr == stored.VR:
        fast = ascii_strings(vr, stored.value)
        if fast is not None:
            return fast
    try:
        return element_strings(ds[tag])
    except Exception:  # a value pydicom cannot decode: no length to judge
        return ()


# Speed: whether a raw element holds a value is read from its stored bytes where pydicom's
# decoding could neither fail nor give an empty value; anything else is decoded as before.
_BYTES_VRS = frozenset({"OB", "OW"})
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
                       "UR", "UT"})
_NUMBER_SIZES = {vr: struct.calcsize("=" + code) for vr, code in (
    ("US", "H"), ("SS", "h"), ("UL", "L"), ("SL", "l"), ("FL", "f"), ("FD", "d"), ("SV", "q"), ("UV", "Q"),
    ("AT", "L"))}
_BLANK = b" \x00"


def _has_stored_value(vr: str | None, value: bytes | None) -> bool | None:
    """Whether pydicom would decode a raw element stored as `vr` and `value` to a value, or None
    when only decoding can tell."""
    if value is None or vr is None:
        return None
    if len(value) == 0:
        return False
    if vr in _TEXT_VRS:
        return True if value.strip(_BLANK) else None
    if vr in _BYTES_VRS:
        return True
    size = _NUMBER_SIZES.get(vr)
    return True if size is not None and len(value) % size == 0 else None


def _has_value(ds: Dataset, tag: int, stored: DataElement | RawDataElement) -> bool:
    if isinstance(stored, RawDataElement):
        fast = _has_stored_value(stored.VR, stored.value)
        if fast is not None:
            return fast
        elem = ds[tag]
    else:
        elem = stored  # decoded already: what `ds[tag]` gives (pydicom replaces only a raw element)
    if elem.VR == "SQ":
        return len(elem.value or ()) > 0
    return elem.value not in (None, "", b"") and not (isinstance(elem.value, list) and not elem.value)


def _unchanged(tag: int, stored: DataElement | RawDataElement, out: DataElement | RawDataElement) -> bool:
    """Whether the output stores the element exactly as the original did, in a form `_compare`
    judges from the bytes alone (then it finds the same on both sides: nothing new)."""
    if not (isinstance(stored, RawDataElement) and isinstance(out, RawDataElement)):
        return False
    value = stored.value
    if value is not None and len(value) <= _SHORT:  # a short value: judged once per tag, VR and bytes
        return stored.VR == out.VR and value == out.value and _judged_from_bytes(tag, stored.VR, value)
    vr = dictionary_vr(tag)  # first: no long value of a tag never judged from its bytes (Pixel Data) is compared
    return vr is not None and vr != "SQ" and stored.VR == out.VR and value == out.value and (
        _judged_from_bytes.__wrapped__(tag, stored.VR, value))


_SHORT = 64  # bytes: what `_judged_from_bytes` remembers (8192 at most)


@functools.lru_cache(maxsize=8192)
def _judged_from_bytes(tag: int, stored_vr: str | None, value: bytes | None) -> bool:
    """Whether `_compare` judges the element `tag` stored as `stored_vr` and `value` from its bytes alone."""
    vr = dictionary_vr(tag)
    if vr is None or vr == "SQ" or _has_stored_value(stored_vr, value) is None:
        return False
    return vr not in MAX_LENGTHS or (vr == stored_vr and ascii_strings(vr, value) is not None)


def _compare(original: Dataset, output: Dataset, sop_class: str, tags: tuple[int, ...],
             prefix: str) -> Iterator[Finding]:
    listed = attributes_at(sop_class, tags)
    outputs = dict(zip(map(int, output.keys()), output.values(), strict=True))  # as stored: raw until decoded
    for tag, stored in sorted(zip(map(int, original.keys()), original.values(), strict=True)):
        group = tag >> 16
        if group & 1 or group == 0x0002 or 0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E:
            continue  # private, meta, or an overlay or curve group (50xx, 60xx)
        out = outputs.get(tag)
        if out is not None and _unchanged(tag, stored, out):
            continue
        path = prefix + tag_name(tag)
        kind = None if listed is None else listed.get(tag)  # `listed_tag`: the tag itself outside 60xx
        if out is None:
            if kind is not None and kind not in (IodType.TYPE_3,):
                yield Finding(VerifyRule.REQUIRED_ATTRIBUTE_MISSING, path, Severity.MEDIUM, detail=f"type-{kind}")
            continue
        before_value, after_value = _has_value(original, tag, stored), _has_value(output, tag, out)
        vr = dictionary_vr(tag) or str(output[tag].VR)
        if vr == "SQ":
            if before_value and not after_value and kind not in _MAY_BE_EMPTY and listed is not None:
                yield Finding(VerifyRule.SEQUENCE_EMPTIED, path, Severity.MEDIUM)
            before_items = element_of(original, tag, stored).value or ()
            after_items = element_of(output, tag, out).value or ()
            for index, (old, new) in enumerate(zip(before_items, after_items, strict=False)):
                yield from _compare(old, new, sop_class, (*tags, tag), f"{path}[{index}].")
            continue
        if kind in _NEEDS_VALUE and before_value and not after_value:
            yield Finding(VerifyRule.REQUIRED_VALUE_EMPTIED, path, Severity.MEDIUM, detail=f"type-{kind}")
        if vr in MAX_LENGTHS and not _short_ascii(out, vr) and too_long(vr, _strings(output, tag, vr, out)) and (
                not too_long(vr, _strings(original, tag, vr, original.get_item(tag)))):
            yield Finding(VerifyRule.VALUE_TOO_LONG, path, Severity.MEDIUM, detail=vr)


def _short_ascii(stored: DataElement | RawDataElement, vr: str) -> bool:
    """Whether `stored` holds ASCII bytes, stored under `vr`, no longer than `vr`'s limit: each of
    its values (a part of those bytes) is then within it (`too_long` is False) without reading it."""
    value = stored.value
    return (isinstance(stored, RawDataElement) and vr == stored.VR and isinstance(value, bytes)
            and len(value) <= MAX_LENGTHS[vr] and value.isascii())


def conformance_findings(original: Dataset, output: Dataset) -> list[Finding]:
    """New conformance problems of `output` relative to its `original` (table above). Required
    attributes are judged only where the table knows the IOD and the item; lengths everywhere."""
    sop_class = stored_text(original, 0x00080016, "SOPClassUID").strip("\x00 ")
    return list(_compare(original, output, sop_class, (), ""))


__all__ = ["MAX_LENGTHS", "conformance_findings", "too_long"]
