"""scrub(dataset, plan, keys) -> ScrubLog: the header side of de-identification. No I/O.

Applies the plan to every attribute at every nesting level, and to the file meta; then
records the profile in PatientIdentityRemoved, DeidentificationMethod(CodeSequence) and
LongitudinalTemporalInformationModified (pipeline/scrub/method.py). The log counts actions and
names attributes by keyword or tag, never by value.

Attributes no recipe names follow `default_action` (one table, pipeline/scrub/decisions.py,
where each attribute's action is decided). Elements kept or removed are never decoded; U, C, Z,
the date shift and the patient's pseudonyms on plain ASCII values read and write the stored bytes
(pipeline/dicom/stored.py); pydicom decodes everything else.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
from collections import Counter
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from pipeline.dicom.datasets import new_file_meta, put_meta_element
from pipeline.dicom.sequences import decoded
from pipeline.dicom.stored import READ_HERE, store, stored_values
from pipeline.errors import Cause, ScrubError
from pipeline.profile.iod import IodTable, iod_for
from pipeline.profile.plan import Action, Plan, Rule
from pipeline.scrub.clean import Identifiers, clean_text
from pipeline.scrub.dates import Offset, original_times, paired_days, patient_offset, shift_da, shift_dt, shift_tm
from pipeline.scrub.decisions import (
    DATE_VRS,
    SHIFTED_VRS,
    TEXT_VRS,
    decide,
    decisions,
)
from pipeline.scrub.keys import Keys
from pipeline.scrub.method import record_method
from pipeline.scrub.pseudonyms import patient_name_pseudonym, patient_pseudonym
from pipeline.scrub.uids import is_registered_uid, remap_uid
from pipeline.scrub.vr import fit_length, needs_retyping, retyped
from pipeline.scrub.wellformed import (
    keepable,
    refuse_broken_encapsulation,
    refuse_malformed,
    refuse_malformed_within,
    refuse_unknown_transfer_syntax,
)

log = logging.getLogger(__name__)

# The actions the element loop tests, as module names: `Action.X` is a look-up through the enum's
# class (~70 ns), and the loop makes several for each element of every file.
_DO_REMOVE, _DO_BLANK, _DO_KEEP, _DO_DUMMY, _DO_UID = Action.REMOVE, Action.BLANK, Action.KEEP, Action.DUMMY, Action.UID
_DO_CLEAN, _DO_SHIFT_DATE = Action.CLEAN, Action.SHIFT_DATE
_DO_PATIENT_ID, _DO_PATIENT_NAME = Action.PATIENT_ID, Action.PATIENT_NAME

BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
MAX_DEPTH = 64

# Action D: a dummy of the attribute's VR. UIDs get a keyed UID instead (see _dummy).
DUMMY_VALUES: dict[str, object] = {
    "AE": "ANONYMIZED", "AS": "000D", "CS": "ANONYMIZED", "DA": "19000101", "DS": "0",
    "DT": "19000101000000", "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED", "PN": "ANONYMIZED",
    "SH": "ANONYMIZED", "ST": "ANONYMIZED", "TM": "000000", "UC": "ANONYMIZED", "UR": "ANONYMIZED",
    "UT": "ANONYMIZED", "FD": 0.0, "FL": 0.0, "SL": 0, "SS": 0, "SV": 0, "UL": 0, "US": 0, "UV": 0,
    "AT": 0, "OB": b"\x00\x00", "OW": b"\x00\x00", "OD": b"\x00" * 8, "OF": b"\x00" * 4,
    "OL": b"\x00" * 4, "OV": b"\x00" * 8, "UN": b"\x00\x00",
}

# File meta attributes kept (MediaStorageSOPInstanceUID follows SOPInstanceUID); the writer
# sets the implementation's own class UID and version name.
META_KEPT = ("FileMetaInformationVersion", "MediaStorageSOPClassUID", "TransferSyntaxUID")


@dataclass(frozen=True, slots=True)
class ScrubLog:
    """What was done to one file: counts by action and attributes touched. Never values."""

    actions: tuple[tuple[str, int], ...]
    touched: tuple[str, ...]
    options: tuple[str, ...]
    dates_shifted: bool
    unparsable_dates: int


@dataclass
class _Context:
    plan: Plan
    keys: Keys
    patient: str
    pseudonym: str
    identifiers: Identifiers | None = None
    iod: IodTable | None = None  # the object's IOD: combined codes and requirements by Type
    offset: Offset | None = None
    times: dict[int, tuple[str, ...]] = field(default_factory=dict)  # DA tag -> its TM's original values
    noted: list[tuple[int, Action]] = field(default_factory=list)  # (tag, action) per element, counted at the end
    touched: set[int] = field(default_factory=set)  # besides the noted ones (the file meta's)
    unparsable_dates: int = 0

    def note(self, tag: int, action: Action) -> None:
        self.noted.append((tag, action))

    def counts(self) -> Counter[Action]:
        return Counter(map(_second, self.noted))  # counted in C: no Python step per element

    def touched_tags(self) -> set[int]:
        """The file meta's, and every noted tag whose action is not K."""
        changed = map(_DO_KEEP.__ne__, map(_second, self.noted))  # Action members are unique by value
        return self.touched | set(itertools.compress(map(_first, self.noted), changed))

    def shift(self) -> Offset:
        if self.offset is None:
            self.offset = patient_offset(self.patient, self.keys)
        return self.offset


_first, _second = operator.itemgetter(0), operator.itemgetter(1)


def _tag_text(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def scrub(ds: Dataset, plan: Plan, keys: Keys) -> ScrubLog:
    """De-identify `ds` in place by `plan` under `keys` and return what was done."""
    original_id = _text(ds, _PATIENT_ID, "PatientID").strip()
    patient = _patient_basis(ds)
    ctx = _Context(plan=plan, keys=keys, patient=patient,
                   pseudonym=patient_pseudonym(original_id or patient, keys),
                   iod=iod_for(_text(ds, _SOP_CLASS_UID, "SOPClassUID").strip("\x00 ")))
    # C needs the identifiers the dataset carries anywhere, read before anything changes.
    ctx.identifiers = Identifiers.of(ds) if plan.cleans_text else None
    _scrub_dataset(ds, ctx, (), in_clean_sequence=False, replacing=False)
    _scrub_file_meta(ds, ctx)
    record_method(ds, plan)
    for tag, rule in plan.additions:
        ds[tag] = DataElement(tag, _dictionary_vr(tag), rule.value)
    if hasattr(ds, "preamble") and ds.preamble is not None:
        ds.preamble = b"\x00" * 128
    return ScrubLog(
        actions=tuple(sorted((action.value, count) for action, count in ctx.counts().items())),
        touched=tuple(sorted(set(map(_name, ctx.touched_tags())))),
        options=tuple(o.value for o in plan.options),
        dates_shifted=plan.shifts_dates,
        unparsable_dates=ctx.unparsable_dates,
    )


@functools.lru_cache(maxsize=8192)
def _name(tag: int) -> str:
    """An attribute's keyword, or its tag as (gggg,eeee) when it has none: never its value."""
    return keyword_for_tag(tag) or _tag_text(BaseTag(tag))


_PATIENT_ID, _SOP_CLASS_UID = 0x00100020, 0x00080016
_PATIENT_BASES = ((_PATIENT_ID, "PatientID"), (0x00100010, "PatientName"), (0x0020000D, "StudyInstanceUID"))


def _text(ds: Dataset, tag: int, keyword: str) -> str:
    """`str(ds.get(keyword, "") or "")`, read from the stored bytes when they are plain
    (`stored_values`: one value or none), else as pydicom decodes it."""
    stored = ds._dict.get(tag)  # type: ignore[call-overload]
    if stored is None:
        return ""
    values = stored_values(stored, _dictionary_vr(tag), ds)
    if values is not None and len(values) <= 1:
        return values[0] if values else ""
    return str(ds.get(keyword, "") or "")


def _patient_basis(ds: Dataset) -> str:
    """The original patient a file belongs to: PatientID, else PatientName, else the study."""
    for tag, keyword in _PATIENT_BASES:
        value = _text(ds, tag, keyword).strip()
        if value:
            return f"{keyword}:{value}"
    return "unknown"


def _scrub_dataset(ds: Dataset, ctx: _Context, path: tuple[int, ...], in_clean_sequence: bool,
                   replacing: bool) -> None:
    """Apply the plan to one dataset, found at `path` (the tags of the sequences above it).
    Elements are decided on their tag and the dictionary VR while still raw, so what is removed
    or kept as is is never decoded (the hot path)."""
    depth = len(path)
    types = ctx.iod.item_types(path) if ctx.iod is not None else None
    if depth > MAX_DEPTH:
        raise ScrubError(f"sequences nested deeper than {MAX_DEPTH} levels", cause=Cause.NESTING)
    plan = ctx.plan
    elements = list(ds.items())  # as stored: raw until decoded, so a look costs no decoding
    numbers = [int(tag) for tag, _ in elements]  # compared as ints, in C (pydicom's BaseTag compares in Python)
    groups = {number >> 16 for number in numbers}
    creators: dict[tuple[int, int], str] = {}
    if any(group & 1 for group in groups):
        for number, (tag, _) in zip(numbers, elements, strict=True):
            if number >> 16 & 1 and 0x0010 <= number & 0xFFFF <= 0x00FF:
                creators[(number >> 16, number & 0xFFFF)] = _creator(ds, tag)
    kept_blocks: set[tuple[int, int]] = set()
    outer_times, ctx.times = ctx.times, (original_times(ds._dict) if plan.shifts_dates else {})
    removed_groups = _removed_repeating_groups(groups, plan)
    decided_here = decisions(plan, ctx.iod, path, in_clean_sequence, replacing)
    note = ctx.noted.append  # ctx.note, without a method call per element
    for number, (tag, raw) in zip(numbers, elements, strict=True):
        refuse_malformed(raw)
        group, element = number >> 16, number & 0xFFFF
        is_private = group % 2 == 1
        if element == 0x0000 or (is_private and element < 0x0010) or group in removed_groups:
            note((number, _DO_REMOVE))
            del ds[tag]
            continue
        if is_private and element <= 0x00FF:
            continue  # private creators: decided once their blocks are
        creator = creators.get((group, element >> 8)) if is_private else None
        key = (number, creator, raw.VR)
        decided = decided_here.get(key)
        if decided is None:
            decided = decided_here[key] = decide(number, creator, raw.VR, plan, types, in_clean_sequence, replacing)
        rule, vr, action = decided
        if action is _DO_REMOVE:
            note((number, action))
            if raw.VR == "SQ":
                refuse_malformed_within(decoded(ds, tag))
            del ds[tag]
            continue
        if action is _DO_KEEP and vr != "SQ" and not is_private:
            if not keepable(raw, vr):  # e.g. a length that ran over the elements after it
                note((number, _DO_DUMMY))
                ds[tag] = DataElement(tag, vr, DUMMY_VALUES[vr])
                continue
            note((number, action))
            continue
        if action in _READ_AS_STORED and vr in READ_HERE and not is_private and isinstance(raw, RawDataElement):
            values = stored_values(raw, vr, ds)
            if values is not None:  # plain ASCII: read and written as stored (pipeline/dicom/stored.py)
                _apply_stored(ds, raw, vr, values, action, rule, ctx)
                continue
        elem = decoded(ds, tag)
        if action is not _DO_KEEP and action is not _DO_BLANK and needs_retyping(elem.VR, vr):
            elem = retyped(ds, elem, vr)
            ds[tag] = elem
        _apply(ds, elem, action, rule, ctx, path, in_clean_sequence, replacing)
        if is_private and tag in ds:
            kept_blocks.add((group, element >> 8))
    for (group, block) in creators:
        if (group, block) not in kept_blocks:
            note(((group << 16) | block, _DO_REMOVE))
            del ds[(group << 16) | block]
    ctx.times = outer_times


def _creator(ds: Dataset, tag: BaseTag) -> str:
    """A private creator's name (PS3.5 7.8.1: LO), `str(ds[tag].value or "").strip()`, read
    from the stored bytes when they are plain (`stored_values`: one value or none)."""
    values = stored_values(ds._dict[tag], "LO", ds)
    if values is not None and len(values) <= 1:
        return values[0].strip() if values else ""
    return str(ds[tag].value or "").strip()


@functools.lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _removed_repeating_groups(present: set[int], plan: Plan) -> set[int]:
    """Overlay (60xx) and curve (50xx) groups whose data the plan removes go whole: an
    overlay's rows, origin, label and description mean nothing without its bitmap. C on
    the data removes it too: bitmaps cannot be shown clean (pipeline/scrub/header.py, _clean)."""
    removed: set[int] = set()
    for group in present:
        if not (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E):
            continue
        rule = plan.rule_for((group << 16) | 0x3000)  # OverlayData, or any element of a curve
        if rule is not None and rule.action in (Action.REMOVE, Action.CLEAN) and group % 2 == 0:
            removed.add(group)
    return removed


def _apply(
    ds: Dataset,
    elem: DataElement,
    action: Action,
    rule: Rule | None,
    ctx: _Context,
    path: tuple[int, ...],
    in_clean_sequence: bool,
    replacing: bool,
) -> None:
    ctx.note(int(elem.tag), action)
    vr = elem.VR
    if vr == "SQ":
        _apply_sequence(ds, elem, action, ctx, path, in_clean_sequence, replacing)
        return
    if action is Action.REMOVE:
        del ds[elem.tag]
    elif action is Action.BLANK:
        elem.value = None
    elif action is Action.KEEP:
        return
    elif action is Action.DUMMY:
        elem.value = _dummy(elem, ctx)
    elif action is Action.UID:
        elem.value = _map_values(elem.value, lambda v: v if is_registered_uid(v) and rule is None
                                 else remap_uid(v, ctx.keys))
    elif action is Action.CLEAN:
        _clean(ds, elem, ctx)
    elif action is Action.SHIFT_DATE:
        _shift(ds, elem, ctx)
    elif action is Action.PATIENT_ID:
        elem.value = _map_values(elem.value, lambda v: patient_pseudonym(v, ctx.keys))
    elif action is Action.PATIENT_NAME:
        elem.value = patient_name_pseudonym(ctx.pseudonym)
    elif action is Action.REPLACE:
        assert rule is not None
        elem.value = rule.value
    elif action is Action.ADD:
        return
    else:  # pragma: no cover - every Action is handled above
        raise ScrubError(f"no handler for action {action}", cause=Cause.NO_HANDLER)


def _apply_sequence(
    ds: Dataset,
    elem: DataElement,
    action: Action,
    ctx: _Context,
    path: tuple[int, ...],
    in_clean_sequence: bool,
    replacing: bool,
) -> None:
    """Sequences: X removes, Z empties, every other action keeps the items and scrubs them;
    C (and any sequence inside one) cleans unnamed text instead of removing it; D (and any
    sequence inside one) keeps the items' structure but none of their content (`replacing_action`)."""
    if action is Action.REMOVE:
        del ds[elem.tag]
        return
    if action is Action.BLANK:
        refuse_malformed_within(elem)
        elem.value = Sequence()
        return
    clean = in_clean_sequence or action is Action.CLEAN
    dummy = replacing or action is Action.DUMMY
    inner = (*path, int(elem.tag))
    for item in elem.value or ():
        _scrub_dataset(item, ctx, inner, clean, dummy)


def _map_values(value: object, function: object) -> object:
    assert callable(function)
    if isinstance(value, (MultiValue, list)):
        return [function(str(v)) for v in value]
    if value is None or value == "":
        return value
    return function(str(value))


def _dummy(elem: DataElement, ctx: _Context) -> object:
    if elem.VR == "UI":
        return _map_values(elem.value, lambda v: remap_uid(v, ctx.keys)) or remap_uid("", ctx.keys)
    try:
        return DUMMY_VALUES[elem.VR]
    except KeyError:
        raise ScrubError(f"no dummy value for VR {elem.VR} of {elem.keyword or _tag_text(elem.tag)}",
                         cause=Cause.NO_DUMMY) from None


def _clean(ds: Dataset, elem: DataElement, ctx: _Context) -> None:
    """C on a value: text keeps its words minus identifiers; what cannot be read as text
    (binary, dates, UN) is removed, since it cannot be shown clean."""
    if elem.VR in TEXT_VRS:
        identifiers = ctx.identifiers or Identifiers(None)
        vr = elem.VR
        elem.value = _map_values(elem.value, lambda v: fit_length(clean_text(v, identifiers), vr))
    elif elem.VR in BINARY_VRS or elem.VR in DATE_VRS:
        del ds[elem.tag]


def _shift(ds: Dataset, elem: DataElement, ctx: _Context) -> None:
    """Modified Dates (PS3.15 E.3.6): DA, TM and DT move by the patient's offset, a DA with its
    paired TM as one date-time (pipeline/scrub/dates.py); a value that is not a date or time is
    removed (and counted), never kept unshifted."""
    if elem.VR not in SHIFTED_VRS:
        if elem.VR == "UN" or _dictionary_vr(int(elem.tag)) in SHIFTED_VRS:
            del ds[elem.tag]  # a date the file stores under another VR cannot be shifted: removed
        return
    values = list(elem.value) if isinstance(elem.value, (MultiValue, list)) else [elem.value]
    shifted = _shifted(values, elem.VR, int(elem.tag), ctx)
    if shifted is None:
        del ds[elem.tag]
        return
    elem.value = shifted if len(shifted) > 1 else (shifted[0] if shifted else None)


def _shifted(values: list[object], vr: str, tag: int, ctx: _Context) -> list[str] | None:
    """`values` of a DA, TM or DT moved by the patient's offset (empty ones dropped), or None
    (counted) when one is not a date or time."""
    offset = ctx.shift()
    times = ctx.times.get(tag, ()) if vr == "DA" else ()
    shifted: list[str] = []
    for index, value in enumerate(values):
        if value is None or str(value).strip() == "":
            continue
        if vr == "DA":
            time = times[index] if len(times) == len(values) else None
            new = shift_da(str(value), paired_days(offset, time))
        else:
            new = (shift_tm if vr == "TM" else shift_dt)(str(value), offset)
        if new is None:
            ctx.unparsable_dates += 1
            return None
        shifted.append(new)
    return shifted


_READ_AS_STORED = frozenset({Action.UID, Action.SHIFT_DATE, Action.CLEAN, Action.BLANK, Action.PATIENT_ID,
                             Action.PATIENT_NAME})


def _apply_stored(ds: Dataset, raw: RawDataElement, vr: str, values: list[str], action: Action, rule: Rule | None,
                  ctx: _Context) -> None:
    """`_apply` for an element read as stored (`stored_values`: its values as pydicom would
    decode them), the new values stored as the bytes pydicom would write: U, C, Z and the
    date shift and the patient's pseudonyms, the actions most elements get, on the same strings
    with the same functions."""
    tag = int(raw.tag)
    ctx.noted.append((tag, action))  # ctx.note, without a method call per element
    if action is _DO_BLANK:
        store(ds, raw, vr, None)
    elif action is _DO_UID:
        if values:
            store(ds, raw, vr, [v if is_registered_uid(v) and rule is None else remap_uid(v, ctx.keys) for v in values])
    elif action is _DO_CLEAN:
        if vr in TEXT_VRS:
            if values:
                identifiers = ctx.identifiers or Identifiers(None)
                store(ds, raw, vr, [fit_length(clean_text(v, identifiers), vr) for v in values])
        elif vr in DATE_VRS:
            del ds[raw.tag]
    elif action is _DO_PATIENT_ID:
        if values:
            store(ds, raw, vr, [patient_pseudonym(v, ctx.keys) for v in values])
    elif action is _DO_PATIENT_NAME:
        store(ds, raw, vr, [patient_name_pseudonym(ctx.pseudonym)])
    elif action is not _DO_SHIFT_DATE:  # pragma: no cover - every action of _READ_AS_STORED is handled here
        raise ScrubError(f"no handler for action {action}", cause=Cause.NO_HANDLER)
    elif vr not in SHIFTED_VRS:  # as `_shift`: a date stored under another VR is removed, other values kept
        if _dictionary_vr(tag) in SHIFTED_VRS:
            del ds[raw.tag]
    else:
        shifted = _shifted(list(values), vr, tag, ctx)
        if shifted is None:
            del ds[raw.tag]
        else:
            store(ds, raw, vr, shifted)


def _scrub_file_meta(ds: Dataset, ctx: _Context) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for _tag, stored in meta.items():
        refuse_malformed(stored)
    refuse_unknown_transfer_syntax(meta)
    refuse_broken_encapsulation(ds)
    new = new_file_meta({})  # FileMetaDataset()
    for tag in _META_KEPT_TAGS:
        if tag in meta._dict:
            put_meta_element(new, tag, meta._dict[tag])  # as stored: decoded, if at all, where it is written
    if _SOP_INSTANCE_UID in ds._dict:
        put_meta_element(new, _MEDIA_INSTANCE_UID, DataElement(_MEDIA_INSTANCE_UID, "UI", _uid(ds, _SOP_INSTANCE_UID)))
    elif _MEDIA_INSTANCE_UID in meta._dict:
        put_meta_element(new, _MEDIA_INSTANCE_UID, DataElement(_MEDIA_INSTANCE_UID, "UI", UID(remap_uid(
            str(meta[_MEDIA_INSTANCE_UID].value), ctx.keys))))
    for tag in meta.keys():
        if tag not in new._dict:
            ctx.touched.add(int(tag))
    ds.file_meta = new


def _uid(ds: Dataset, tag: int) -> object:
    """`ds[tag].value` of a UI element, read from the stored bytes when they are plain (one value
    or none): a UID, or its text (which a UI element made of it holds as the same UID)."""
    values = stored_values(ds._dict[tag], "UI", ds)  # type: ignore[index]
    if values is not None and len(values) <= 1:
        return values[0] if values else ""
    return ds[tag].value


_META_KEPT_TAGS = tuple(int(Tag(keyword)) for keyword in META_KEPT)
_SOP_INSTANCE_UID, _MEDIA_INSTANCE_UID = 0x00080018, 0x00020003
