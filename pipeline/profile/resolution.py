"""One attribute's action in one object: the recipe's rule resolved by the attribute's Type.

PS3.15 E.1.1 resolves the combined codes of Table E.1-1 by the attribute's Type in the
object's IOD (PS3.3), and asks that the de-identified object stay conformant. This module
makes both decisions for the scrubber, at every nesting level where the module tables define
the item (pipeline/profile/iod.py):

| code     | Type 1, 1C | Type 2, 2C | Type 3, or not in the IOD's item  | IOD or item unknown   |
|----------|------------|------------|-----------------------------------|-----------------------|
| Z/D      | D          | Z          | Z (a sequence: D, never 0 items)  | D                     |
| X/Z      | D          | Z          | X                                 | Z                     |
| X/D      | D          | Z          | X                                 | D                     |
| X/Z/D    | D          | Z          | X                                 | D                     |
| X/Z/U*   | U (items   | U (items   | X                                 | U (items kept,        |
|          | kept, UIDs | kept, UIDs |                                   |  UIDs remapped)       |
|          | remapped)  | remapped)  |                                   |                       |

X/Z/U* on Type 2 is U, not Z: the code allows both, and only U keeps the object's references
consistent (an emptied Source Image Sequence leaves a Segmentation whose Referenced Series
Sequence, Type 1C "if the instance references instances", points at nothing; dciodvfy flags it).
Type 1 always resolves to D (a code without D: E.1.1's conformance wins, and a dummy holds no
more of the original than an empty value); Type 2 to Z. The unknown column is the conservative
choice (plan.COMBINED_RESOLUTION): a value that suits most Types and holds nothing original.

Attributes the IOD requires (`conformant`): an action that would remove a Type 1 or 2
attribute the object has, or empty a Type 1 one, is raised to what the Type needs: Type 1 ->
D (a dummy of its VR), Type 2 -> Z (emptied). This covers X rows of Table E.1-1 that an IOD
requires (Requested Procedure ID is Type 2 in the SR Referenced Request Sequence) and
unnamed text, which the default removes (Segment Label, LUT Label, SR Text Value, ...).
A Z on a Type 3 sequence would leave zero items, which PS3.5 7.5.1 forbids: it is X.

`STRUCTURAL` attributes are kept where no recipe names them, also inside a sequence D replaces:
they carry no identity, and a dummy would break the object (an SR Value Type "ANONYMIZED" voids
the whole content tree; a dummy Stack ID breaks the dimension index that points at it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydicom.datadict import tag_for_keyword

from pipeline.profile.iod import AttributeType, IodTable
from pipeline.profile.plan import COMBINED_RESOLUTION, Action, Plan, Rule

# Structural, non-identifying attributes kept where no recipe names them (PS3.3 references).
STRUCTURAL_REASONS: dict[str, str] = {
    "SpecificCharacterSet": "SOP Common C.12.1 / PS3.5 6.1.2.3: how the item's text is read, defined terms (Type 1C)",
    "GraphicData": "SCOORD / Graphic Annotation C.18.6: coordinates, VM by Graphic Type (Type 1)",
    "StackID": "Frame Content Macro C.7.6.16.2.2: a stack's label, a dimension index value (Type 1C)",
    "InStackPositionNumber": "Frame Content Macro: position in the stack, a dimension index value",
    "ValueType": "SR Document Content Macro C.17.3: the item's kind; its conditions decide the rest (Type 1)",
    "RelationshipType": "SR Document Content Macro C.17.3: the tree's structure, enumerated (Type 1)",
    "ContinuityOfContent": "SR Container Macro C.18.8: enumerated SEPARATE/CONTINUOUS (Type 1)",
    "ReferencedContentItemIdentifier": "SR by-reference relationship C.17.3.2.5: item positions (Type 1C)",
    "TemporalRangeType": "TCOORD / Waveform Annotation C.10.10: enumerated range kind (Type 1)",
    "GraphicType": "SCOORD C.18.6: enumerated shape kind (Type 1)",
    "ReferencedWaveformChannels": "Waveform Annotation C.10.10: channel numbers, VM 2-2n (Type 1C)",
    "ReferencedSamplePositions": "Waveform Annotation / TCOORD: sample positions (Type 1C)",
    "ReferencedTimeOffsets": "Waveform Annotation / TCOORD: time offsets (Type 1C)",
    "ReferencedFrameNumber": "Image SOP Instance Reference Macro C.10.9: frame numbers (Type 1C)",
    "ReferencedSegmentNumber": "Segmentation C.8.20: segment numbers (Type 1)",
    "SegmentNumber": "Segment Description Macro C.8.20.2: the segment's number (Type 1)",
    "DimensionIndexPointer": "Multi-frame Dimension Module C.7.6.17: the tag a dimension indexes (Type 1)",
    "FunctionalGroupPointer": "Multi-frame Dimension Module C.7.6.17: the group holding it (Type 1C)",
    "DimensionIndexValues": "Frame Content Macro C.7.6.16.2.2: indexes into the dimensions (Type 1C)",
}
STRUCTURAL: frozenset[int] = frozenset(int(tag_for_keyword(k) or 0) for k in STRUCTURAL_REASONS)
assert 0 not in STRUCTURAL, "every structural keyword is in the data dictionary"

# VRs whose unnamed attributes the scrub removes by default (header.default_action), outside C sequences.
_REMOVED_BY_DEFAULT = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "UR", "AE", "UN"})

_COMBINED = {
    "blank_or_dummy": "Z/D", "remove_or_blank": "X/Z", "remove_or_dummy": "X/D",
    "remove_blank_or_dummy": "X/Z/D", "remove_blank_or_uids": "X/Z/U*",
}


class Basis(StrEnum):
    """Why an attribute gets its action (`profiles show`, the scrub's reasoning)."""

    RECIPE = "recipe"  # the recipe's own single code
    TYPE = "type"  # a combined code resolved by the attribute's Type
    CONSERVATIVE = "conservative"  # a combined code where the IOD or the item is unknown
    DEFAULT = "default"  # no recipe names it: the VR's default (header.default_action)
    STRUCTURAL = "structural"  # kept: STRUCTURAL
    REQUIRED = "required"  # raised to what the Type needs (Type 1: D, Type 2: Z)
    SEQUENCE = "sequence"  # Z on a Type 3 sequence: removed, never left with zero items


@dataclass(frozen=True, slots=True)
class Resolved:
    """An attribute's action and why."""

    action: Action
    basis: Basis


def combined_code(rule: Rule | None) -> str | None:
    """The Table E.1-1 combined code a rule was written with ("X/Z/D"), or None."""
    if rule is None or not rule.written.startswith("func:"):
        return None
    return _COMBINED.get(rule.written[5:])


def by_type(code: str, kind: AttributeType | None, known: bool, is_sequence: bool) -> Resolved:
    """A combined code resolved by Type (table above). `known`: the IOD defines the item, so an
    attribute it does not list (`kind` None) is not part of the object's IOD: treated as Type 3."""
    if not known:
        return Resolved(_conservative(code), Basis.CONSERVATIVE)
    if kind is None or kind is AttributeType.TYPE_3:
        if "X" in code:
            return Resolved(Action.REMOVE, Basis.TYPE)
        return Resolved(Action.DUMMY if is_sequence else Action.BLANK, Basis.TYPE)
    if "U" in code:
        return Resolved(Action.KEEP, Basis.TYPE)  # items kept, their UIDs remapped by their own U rows
    return Resolved(Action.DUMMY if kind.needs_value else Action.BLANK, Basis.TYPE)


def _conservative(code: str) -> Action:
    for name, written in _COMBINED.items():
        if written == code:
            return COMBINED_RESOLUTION[name]
    raise KeyError(code)  # pragma: no cover - _COMBINED and COMBINED_RESOLUTION share their keys


def conformant(action: Action, kind: AttributeType | None, listed: bool, is_sequence: bool) -> Resolved | None:
    """The action raised to what the Type needs, or None when `action` already conforms.

    `listed`: the IOD's item definition is known and names the attribute (`kind` may still be
    None where PS3.3 gives no Type: nothing is then decided)."""
    if kind is None:
        if listed or not is_sequence or action is not Action.BLANK:
            return None
        return Resolved(Action.REMOVE, Basis.SEQUENCE)  # not in the IOD: Type 3 at most
    if kind.needs_value and action in (Action.REMOVE, Action.BLANK):
        return Resolved(Action.DUMMY, Basis.REQUIRED)
    if kind.needs_presence and action is Action.REMOVE:
        return Resolved(Action.BLANK, Basis.REQUIRED)
    if kind is AttributeType.TYPE_3 and is_sequence and action is Action.BLANK:
        return Resolved(Action.REMOVE, Basis.SEQUENCE)
    return None


def describe_resolution(plan: Plan, iod: IodTable | None) -> list[tuple[str, str, str, str, str, str]]:
    """Rows (tag, keyword, dictionary VR, Type, action, why) for the top level of `iod`'s object:
    every attribute a recipe names, then every attribute the IOD requires that no recipe names.
    Without an IOD, combined codes show their conservative choice. Used by `profiles show`."""
    from pydicom.datadict import dictionary_VR, keyword_for_tag

    def vr_of(tag: int) -> str:
        try:
            return str(dictionary_VR(tag))
        except KeyError:
            return "UN"

    listed = iod.types() if iod is not None else None
    rows: list[tuple[str, str, str, str, str, str]] = []

    def add(tag: int, resolved: Resolved, why: str) -> None:
        kind = None if listed is None else listed.get(tag)
        type_text = "?" if listed is None else ("-" if tag not in listed else (kind.value if kind else "?"))
        rows.append((f"({tag >> 16:04X},{tag & 0xFFFF:04X})", keyword_for_tag(tag) or "", vr_of(tag), type_text,
                     resolved.action.value, f"{resolved.basis.value}: {why}"))

    for tag, rule in sorted(plan.exact.items()):
        vr = vr_of(tag)
        kind = None if listed is None else listed.get(tag)
        code = combined_code(rule)
        resolved = by_type(code, kind, listed is not None, vr == "SQ") if code else Resolved(rule.action, Basis.RECIPE)
        why = f"E.1-1 {code or rule.written} ({rule.source})"
        raised = None if listed is None else conformant(resolved.action, kind, tag in listed, vr == "SQ")
        add(tag, raised or resolved, why + (f", {raised.basis.value} by Type" if raised else ""))
    removed_by_default = _REMOVED_BY_DEFAULT | (set() if plan.keeps_dates or plan.shifts_dates else {"DA", "DT"})
    for tag, kind in sorted((listed or {}).items()):
        if tag in plan.exact or kind is None or not kind.needs_presence or vr_of(tag) not in removed_by_default:
            continue
        if tag in STRUCTURAL:
            add(tag, Resolved(Action.KEEP, Basis.STRUCTURAL), STRUCTURAL_REASONS[keyword_for_tag(tag)])
        else:
            add(tag, Resolved(Action.DUMMY if kind.needs_value else Action.BLANK, Basis.DEFAULT),
                "no recipe names it; the VR's default would remove it: the Type decides")
    return rows
