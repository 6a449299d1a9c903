"""scrub(dataset, plan, keys) -> ScrubLog: the header side of de-identification. No I/O.

Applies the plan to every attribute at every nesting level, and to the file meta; then
records the profile in PatientIdentityRemoved, DeidentificationMethod(CodeSequence) and
LongitudinalTemporalInformationModified (pipeline/scrub/method.py). The log counts actions and
names attributes by keyword or tag, never by value.

Attributes no recipe names follow `default_action` (one table, pipeline/scrub/decisions.py,
where each attribute's action is decided). Elements kept or removed are never decoded; every
other action is done by pipeline/scrub/actions.py, on the stored bytes where they are plain
ASCII, and sequences are entered here, their items scrubbed by the same walk.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from pipeline.dicom.datasets import new_file_meta, put_meta_element
from pipeline.dicom.dictionary import dictionary_vr
from pipeline.dicom.sequences import decoded
from pipeline.dicom.stored import READ_HERE, stored_values
from pipeline.errors import Cause, ScrubError
from pipeline.profile.iod import iod_for
from pipeline.profile.plan import Action, Plan
from pipeline.scrub.actions import DUMMY_VALUES, READ_AS_STORED, apply, apply_stored, tag_text
from pipeline.scrub.clean import Identifiers
from pipeline.scrub.context import ScrubContext
from pipeline.scrub.dates import original_times
from pipeline.scrub.decisions import decide, decisions
from pipeline.scrub.keys import Keys
from pipeline.scrub.method import record_method
from pipeline.scrub.pseudonyms import patient_pseudonym
from pipeline.scrub.uids import remap_uid
from pipeline.scrub.vr import needs_retyping, retyped
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
_DO_REMOVE, _DO_BLANK, _DO_KEEP, _DO_DUMMY = Action.REMOVE, Action.BLANK, Action.KEEP, Action.DUMMY

MAX_DEPTH = 64

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


def scrub(ds: Dataset, plan: Plan, keys: Keys) -> ScrubLog:
    """De-identify `ds` in place by `plan` under `keys` and return what was done."""
    original_id = _text(ds, _PATIENT_ID, "PatientID").strip()
    patient = _patient_basis(ds)
    ctx = ScrubContext(plan=plan, keys=keys, patient=patient,
                       pseudonym=patient_pseudonym(original_id or patient, keys),
                       iod=iod_for(_text(ds, _SOP_CLASS_UID, "SOPClassUID").strip("\x00 ")))
    # C needs the identifiers the dataset carries anywhere, read before anything changes.
    ctx.identifiers = Identifiers.of(ds) if plan.cleans_text else None
    _scrub_dataset(ds, ctx, (), in_clean_sequence=False, replacing=False)
    _scrub_file_meta(ds, ctx)
    record_method(ds, plan)
    for tag, rule in plan.additions:
        ds[tag] = DataElement(tag, dictionary_vr(tag), rule.value)
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
    return keyword_for_tag(tag) or tag_text(BaseTag(tag))


_PATIENT_ID, _SOP_CLASS_UID = 0x00100020, 0x00080016
_PATIENT_BASES = ((_PATIENT_ID, "PatientID"), (0x00100010, "PatientName"), (0x0020000D, "StudyInstanceUID"))


def _text(ds: Dataset, tag: int, keyword: str) -> str:
    """`str(ds.get(keyword, "") or "")`, read from the stored bytes when they are plain
    (`stored_values`: one value or none), else as pydicom decodes it."""
    stored = ds._dict.get(tag)  # type: ignore[call-overload]
    if stored is None:
        return ""
    values = stored_values(stored, dictionary_vr(tag), ds)
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


def _scrub_dataset(ds: Dataset, ctx: ScrubContext, path: tuple[int, ...], in_clean_sequence: bool,
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
        if action in READ_AS_STORED and vr in READ_HERE and not is_private and isinstance(raw, RawDataElement):
            values = stored_values(raw, vr, ds)
            if values is not None:  # plain ASCII: read and written as stored (pipeline/dicom/stored.py)
                apply_stored(ds, raw, vr, values, action, rule, ctx)
                continue
        elem = decoded(ds, tag)
        if action is not _DO_KEEP and action is not _DO_BLANK and needs_retyping(elem.VR, vr):
            elem = retyped(ds, elem, vr)
            ds[tag] = elem
        if elem.VR == "SQ":
            _apply_sequence(ds, elem, action, ctx, path, in_clean_sequence, replacing)
        else:
            apply(ds, elem, action, rule, ctx)
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


def _removed_repeating_groups(present: set[int], plan: Plan) -> set[int]:
    """Overlay (60xx) and curve (50xx) groups whose data the plan removes go whole: an
    overlay's rows, origin, label and description mean nothing without its bitmap. C on
    the data removes it too: bitmaps cannot be shown clean (pipeline/scrub/actions.py, _clean)."""
    removed: set[int] = set()
    for group in present:
        if not (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E):
            continue
        rule = plan.rule_for((group << 16) | 0x3000)  # OverlayData, or any element of a curve
        if rule is not None and rule.action in (Action.REMOVE, Action.CLEAN) and group % 2 == 0:
            removed.add(group)
    return removed


def _apply_sequence(
    ds: Dataset,
    elem: DataElement,
    action: Action,
    ctx: ScrubContext,
    path: tuple[int, ...],
    in_clean_sequence: bool,
    replacing: bool,
) -> None:
    """Sequences: X removes, Z empties, every other action keeps the items and scrubs them;
    C (and any sequence inside one) cleans unnamed text instead of removing it; D (and any
    sequence inside one) keeps the items' structure but none of their content (`replacing_action`)."""
    ctx.note(int(elem.tag), action)
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


def _scrub_file_meta(ds: Dataset, ctx: ScrubContext) -> None:
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
