"""Walking a dataset with the profile: every element at every depth, with what the profile
allows for it (`Visit`); values are read from the stored bytes where they are plain ASCII
(pipeline/verify/strings.py).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.datadict import dictionary_has_tag, dictionary_keyword, dictionary_VR, private_dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from pipeline.verify import reader
from pipeline.verify.iod import IodType, attributes_at
from pipeline.verify.profile import TEXT_VRS, Expect, Profile, default_expectation
from pipeline.verify.strings import BULK_TAGS, strings_of
from pipeline.verify.strings import element_strings as element_strings  # the tests read it from here too

ICON_IMAGE_SEQUENCE, TRAILING_PADDING = 0x00880200, 0xFFFCFFFC


# Speed: pydicom decodes an element into a value object the first time it is read, which cost
# more than every check here. The walk decides on each element's tag and VR while it is still
# raw (a public tag once per profile: `Profile.walked`), and reads a value only when a check or
# the search needs it (`Visit.strings`, pipeline/verify/strings.py); private creators are read
# from their stored bytes here (`_creator`).


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
            cached = self.cached = strings_of(self.parent, self.tag, self.vr, self.stored)
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
