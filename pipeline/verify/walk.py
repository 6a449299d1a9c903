"""Walking a dataset with the profile: every element at every depth, with what the profile
allows for it (`Visit`); values are read from the stored bytes where they are plain ASCII.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.datadict import dictionary_has_tag, dictionary_keyword, dictionary_VR, private_dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pipeline.verify import reader
from pipeline.verify.iod import IodType, attributes_at
from pipeline.verify.profile import TEXT_VRS, Expect, Profile, default_expectation

STRING_VRS = TEXT_VRS | {"AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UN"}
BULK_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010, 0x54001010, 0x56000020})
ICON_IMAGE_SEQUENCE, TRAILING_PADDING = 0x00880200, 0xFFFCFFFC


# Speed: pydicom decodes an element into a value object the first time it is read, which cost
# more than every check here. The walk decides on each element's tag and VR while it is still
# raw (a public tag once per profile: `Profile.walked`), and reads a value only when a check or
# the search needs it; ASCII text, numbers in their stored VR, OB/OW bytes and private creators
# are read from the stored bytes exactly as pydicom would give them (anything else goes through
# pydicom).
NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT"})
_SINGLE_VALUED = frozenset({"ST", "LT", "UT", "UR"})
_FAST_TEXT_VRS = (STRING_VRS - {"UN"}) | {"AE", "UC"}


@dataclass(slots=True)
class Visit:
    """One element at one place, with what the profile allows for it; its value is read on demand."""

    path: str
    tag: int
    vr: str
    expect: Expect
    private: bool
    parent: Dataset
    stored: DataElement | RawDataElement  # as the dataset holds it: raw until something decodes it
    cached: tuple[str, ...] | None = None

    @property
    def elem(self) -> DataElement:
        return element_of(self.parent, self.tag, self.stored)

    @property
    def strings(self) -> tuple[str, ...]:
        cached = self.cached
        if cached is None:
            cached = self.cached = _strings_of(self.parent, self.tag, self.vr, self.stored)
        return cached


@functools.lru_cache(maxsize=8192)
def keyword_of(tag: int) -> str:
    """The dictionary keyword of `tag`, or "" (cached: a dictionary look-up per element adds up)."""
    return str(dictionary_keyword(tag)) if dictionary_has_tag(tag) else ""  # as DataElement.keyword


@functools.lru_cache(maxsize=8192)
def tag_name(tag: int) -> str:
    return keyword_of(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@functools.lru_cache(maxsize=8192)
def dictionary_vr(tag: int, creator: str | None = None) -> str | None:
    """The VR the data dictionary (PS3.6; the private dictionary for a known creator) gives
    `tag`: "UN" for a public tag it does not know, None where it gives several or, for a
    private tag, none."""
    try:
        if tag >> 16 & 1:
            vr = str(private_dictionary_VR(tag, creator)) if creator is not None else None
        else:
            vr = str(dictionary_VR(tag))
    except KeyError:
        vr = None if tag >> 16 & 1 else "UN"
    return None if vr is None or " or " in vr else vr


def _vr(ds: Dataset, tag: int, raw: DataElement | RawDataElement, creator: str | None) -> str:
    """The VR an element is judged by: the dictionary's, never the one the file claims (a name
    stored as OB is still a name, PS3.5 7.1.2). Only where the dictionary offers a choice
    ("OB or OW") or has no entry (a private tag of an unknown creator) does the stored VR, as
    pydicom resolves it, say which; that is read without decoding the value where it can."""
    vr = dictionary_vr(tag, creator)
    if vr is not None:
        return vr
    if isinstance(raw, RawDataElement) and raw.VR not in (None, "UN"):
        return str(raw.VR)
    return str(ds[tag].VR)


def is_overlay_data(tag: int) -> bool:
    return (tag >> 16) & 0xFF01 == 0x6000 and tag & 0xFFFF == 0x3000


# Structural attributes that identify no one, kept where no recipe names them and inside replaced
# sequences (verify's own list, PS3.3 references: SR content tree C.17.3, waveform annotation
# C.10.10, frame content and dimensions C.7.6.16-17, segmentation C.8.20). A dummy would break
# the object (an SR Value Type "ANONYMIZED"; a Stack ID the dimension index points at).
STRUCTURAL: frozenset[int] = frozenset({
    0x00080005,  # SpecificCharacterSet: how the item's text is read (PS3.5 6.1.2.3), a defined term
    0x00700022,  # GraphicData
    0x00209056,  # StackID
    0x00209057,  # InStackPositionNumber
    0x0040A040,  # ValueType
    0x0040A010,  # RelationshipType
    0x0040A050,  # ContinuityOfContent
    0x0040DB73,  # ReferencedContentItemIdentifier
    0x0040A130,  # TemporalRangeType
    0x00700023,  # GraphicType
    0x0040A0B0,  # ReferencedWaveformChannels
    0x0040A132,  # ReferencedSamplePositions
    0x0040A138,  # ReferencedTimeOffsets
    0x00081160,  # ReferencedFrameNumbers
    0x0062000B,  # ReferencedSegmentNumber
    0x00620004,  # SegmentNumber
    0x00209165,  # DimensionIndexPointer
    0x00209167,  # FunctionalGroupPointer
    0x00209157,  # DimensionIndexValues
})
_NEEDS_VALUE = frozenset({IodType.TYPE_1, IodType.TYPE_1C})
_NEEDS_PRESENCE = _NEEDS_VALUE | {IodType.TYPE_2, IodType.TYPE_2C}
_ABSENT, _EMPTY, _REPLACED = Expect.ABSENT, Expect.EMPTY, Expect.REPLACED  # `Expect.X` is a look-up on the Enum class


def required_expectation(expect: Expect, kind: IodType | None) -> Expect:
    """What the object's IOD allows on top of the profile (PS3.15 E.1.1: conformance is kept): a
    Type 1 attribute the profile removes or empties may hold a dummy; a Type 2 one it removes
    may stay, empty (PS3.5 7.4)."""
    if kind in _NEEDS_VALUE and (expect is _ABSENT or expect is _EMPTY):
        return _REPLACED
    if kind in _NEEDS_PRESENCE and expect is _ABSENT:
        return _EMPTY
    return expect


def replaced_expectation(expect: Expect, vr: str, tag: int = 0) -> Expect:
    """What is allowed inside a sequence the profile replaces (D, and combined codes that may
    be D): the value of a sequence is its items, so none of their original content may stay
    (PS3.15 Table E.1-1a, D). What would be kept or cleaned must be replaced; sequences inside
    are entered the same way; UIDs keep their own rule (a keyed or retained UID)."""
    if vr in ("SQ", "UI") or expect not in (Expect.KEEP, Expect.CLEAN) or tag in STRUCTURAL:
        return expect
    return Expect.REPLACED


def walk(ds: Dataset, profile: Profile, prefix: str = "", in_clean: bool = False, removed: bool = False,
          masks: list[tuple[int, int]] | None = None, replaced: bool = False, sop_class: str | None = None,
          tags: tuple[int, ...] = ()) -> Iterator[Visit]:
    """Every element of `ds` at every depth, with what the profile allows for it. With `masks`
    (the output), sequences that must be absent are not entered and the byte ranges of bulk
    values are recorded; without (the original), everything is entered and what lies in a
    removed sequence counts as removed; what lies in a replaced one, as replaced. With
    `sop_class`, what the object's IOD requires at `tags` (the sequences above `ds`) may stay
    (`required_expectation`). The whole walk is done before the first visit is given (the
    visits are listed in order, without a generator per item)."""
    visits: list[Visit] = []
    _walk(visits, ds, profile, prefix, in_clean, removed, masks, replaced, sop_class, tags)
    return iter(visits)


_IN_CLEAN = 1 << 32  # `Profile.walked`'s key of a tag inside a cleaned sequence: the tag with this bit


def _walk(visits: list[Visit], ds: Dataset, profile: Profile, prefix: str, in_clean: bool, removed: bool,
          masks: list[tuple[int, int]] | None, replaced: bool, sop_class: str | None, tags: tuple[int, ...]) -> None:
    listed = attributes_at(sop_class, tags) if sop_class else None
    elements = sorted(zip(map(int, ds.keys()), ds.values(), strict=True))  # (tag, element); tags are unique
    creators: dict[tuple[int, int], str] = {}  # each creator comes before its block's elements (sorted)
    kept_blocks: set[tuple[int, int]] = set()
    creator_visits: list[Visit] = []
    decided, clean_bit = profile.walked, _IN_CLEAN if in_clean else 0
    add = visits.append
    absent, empty = Expect.ABSENT, Expect.EMPTY
    for tag, stored in elements:
        is_private = tag & 0x10000 != 0  # an odd group
        if is_private:
            group, element = tag >> 16, tag & 0xFFFF
            path = prefix + tag_name(tag)
            if 0x10 <= element <= 0xFF:
                creators[(group, element)] = _creator(ds, tag, stored)
                creator_visits.append(Visit(path, tag, "LO", absent, True, ds, stored))
                continue
            creator = creators.get((group, element >> 8)) if element > 0xFF else None
            vr = _vr(ds, tag, stored, creator)
            graphics = False
            rule = profile.rule_for(tag, creator) if creator is not None else None
            expect = Expect.KEEP if rule is not None and rule.expect is Expect.KEEP else absent
            if expect is Expect.KEEP:
                kept_blocks.add((group, element >> 8))
        else:
            known = decided.get(tag | clean_bit)
            if known is None:
                known = _public(tag, profile, in_clean, _vr(ds, tag, stored, None))
                if dictionary_vr(tag) is not None:  # decided by the tag alone: the same in every file
                    decided[tag | clean_bit] = known
            name, vr, expect, graphics = known
            path = prefix + name
            if masks is not None and (tag in BULK_TAGS or tag & 0xFF01FFFF == 0x60003000):  # or overlay data
                tell = getattr(stored, "value_tell", None)
                if isinstance(tell, int) and stored.value is not None:
                    masks.append((tell, tell + len(stored.value)))
        if removed:
            expect = absent
        else:
            if replaced:
                expect = replaced_expectation(expect, vr, tag)
            if (expect is absent or expect is empty) and listed is not None and not graphics:  # else unchanged
                kind = listed.get(tag)  # `listed_tag(tag)`: the tag itself outside the overlay groups
                if kind is not None:
                    expect = required_expectation(expect, kind)
        add(Visit(path, tag, vr, expect, is_private, ds, stored))
        if vr == "SQ" and (masks is None or (expect is not absent and expect is not empty)):
            inner_removed = removed or expect is absent or expect is empty
            inner_clean = in_clean or expect is Expect.CLEAN
            inner_replaced = replaced or expect is Expect.REPLACED
            for index, item in enumerate(element_of(ds, tag, stored).value or ()):
                _walk(visits, item, profile, f"{path}[{index}].", inner_clean, inner_removed, masks,
                      inner_replaced, sop_class, (*tags, tag))
    for visit in creator_visits:
        keep = (visit.tag >> 16, visit.tag & 0xFFFF) in kept_blocks and not removed
        visit.expect = Expect.KEEP if keep else Expect.ABSENT
        visit.vr = "LO" if _plain_creator(visit.stored) else str(ds[visit.tag].VR)
        add(visit)


def element_of(ds: Dataset, tag: int, stored: DataElement | RawDataElement) -> DataElement:
    """The element `ds` holds at `tag` as pydicom gives it (`stored` as it was listed; a sequence
    or any value already decoded is used as it is; a raw sequence is read by verify's reader,
    pipeline/verify/reader.py, where it can; any other raw one is decoded by `ds`)."""
    if isinstance(stored, DataElement):
        return stored if stored.VR == "SQ" else ds[tag]
    held = ds.get_item(tag) if stored.VR == "SQ" else None  # read since `stored` was listed?
    if isinstance(held, DataElement):
        return held
    if isinstance(held, RawDataElement):
        read = reader.read_sequence(ds, tag, held)
        if read is not None:
            return read
    return ds[tag]


def _plain_creator(stored: DataElement | RawDataElement) -> bool:
    """Whether a private creator is stored raw as one plain ASCII LO value (in implicit VR,
    pydicom gives every private creator LO), readable without pydicom."""
    value = stored.value
    return (isinstance(stored, RawDataElement) and stored.VR in ("LO", None) and isinstance(value, bytes)
            and value.isascii() and b"\\" not in value and b"\x1b" not in value)


def _creator(ds: Dataset, tag: int, stored: DataElement | RawDataElement) -> str:
    """The private creator's name, stripped, as pydicom's value gives it."""
    if _plain_creator(stored) and isinstance(stored.value, bytes):
        return stored.value.decode("ascii").rstrip("\x00 ").strip()
    return str(ds[tag].value or "").strip()


def _public(tag: int, profile: Profile, in_clean: bool, vr: str) -> tuple[str, str, Expect, bool]:
    """(name, VR, expectation, whether overlay or curve) of a public element judged by `vr`,
    before the sequences around it (removed, replaced) and the IOD are taken into account."""
    group = tag >> 16
    graphics = 0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E
    if tag == ICON_IMAGE_SEQUENCE or (graphics and not profile.has("clean-graphics")):
        return tag_name(tag), vr, Expect.ABSENT, graphics
    rule = profile.rule_for(tag, None)
    if rule is not None:
        expect = rule.expect
    else:
        expect = Expect.KEEP if tag in STRUCTURAL else default_expectation(vr, profile, in_clean)
    if in_clean and expect is Expect.KEEP and vr in TEXT_VRS:
        expect = Expect.CLEAN  # inside a cleaned sequence, safe-listed text too (PS3.15 E.3.5, E.3.6)
    return tag_name(tag), vr, expect, graphics


# Speed: the strings of plain ASCII text of a VR that holds several values depend on its stored
# bytes alone, and a study's values recur in its files as an output's recur in its original: each
# is read from its bytes once (remembered while short; the memo is emptied when full).
_SPLIT_TEXT: dict[bytes, tuple[str, ...]] = {}
_SPLIT_TEXT_SIZE = 8192
_SPLIT_TEXT_BYTES = 128


def _strings_of(ds: Dataset, tag: int, vr: str, stored: DataElement | RawDataElement) -> tuple[str, ...]:
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


