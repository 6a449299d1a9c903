"""The PS3.15 actions done to one element (X, Z, K, D, U, C, the date shift of Modified Dates, the
patient's pseudonyms, a recipe's replacement): `apply` to a decoded element, `apply_stored` to
the values of one read as stored.

The walk (pipeline/scrub/header.py) decides each element's action and enters sequences; the
action is done here. U, C, Z, the date shift and the patient's pseudonyms on plain ASCII values
read and write the stored bytes (`READ_AS_STORED`, pipeline/dicom/stored.py); pydicom decodes
everything else.
"""

from __future__ import annotations

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from pipeline.dicom.dictionary import dictionary_vr
from pipeline.dicom.stored import store
from pipeline.errors import Cause, ScrubError
from pipeline.profile.plan import Action, Rule
from pipeline.scrub.clean import Identifiers, clean_text
from pipeline.scrub.context import ScrubContext
from pipeline.scrub.dates import paired_days, shift_da, shift_dt, shift_tm
from pipeline.scrub.decisions import DATE_VRS, SHIFTED_VRS, TEXT_VRS
from pipeline.scrub.pseudonyms import patient_name_pseudonym, patient_pseudonym
from pipeline.scrub.uids import is_registered_uid, remap_uid
from pipeline.scrub.vr import fit_length

# The actions `apply_stored` tests, as module names: `Action.X` is a look-up through the enum's
# class (~70 ns), and it runs for most elements of every file.
_DO_BLANK, _DO_UID, _DO_CLEAN, _DO_SHIFT_DATE = Action.BLANK, Action.UID, Action.CLEAN, Action.SHIFT_DATE
_DO_PATIENT_ID, _DO_PATIENT_NAME = Action.PATIENT_ID, Action.PATIENT_NAME

BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})

# Action D: a dummy of the attribute's VR. UIDs get a keyed UID instead (see _dummy).
DUMMY_VALUES: dict[str, object] = {
    "AE": "ANONYMIZED", "AS": "000D", "CS": "ANONYMIZED", "DA": "19000101", "DS": "0",
    "DT": "19000101000000", "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED", "PN": "ANONYMIZED",
    "SH": "ANONYMIZED", "ST": "ANONYMIZED", "TM": "000000", "UC": "ANONYMIZED", "UR": "ANONYMIZED",
    "UT": "ANONYMIZED", "FD": 0.0, "FL": 0.0, "SL": 0, "SS": 0, "SV": 0, "UL": 0, "US": 0, "UV": 0,
    "AT": 0, "OB": b"\x00\x00", "OW": b"\x00\x00", "OD": b"\x00" * 8, "OF": b"\x00" * 4,
    "OL": b"\x00" * 4, "OV": b"\x00" * 8, "UN": b"\x00\x00",
}


def tag_text(tag: BaseTag) -> str:
    """A tag as (gggg,eeee), to name an attribute that has no keyword."""
    return f"({tag.group:04X},{tag.element:04X})"


def apply(ds: Dataset, elem: DataElement, action: Action, rule: Rule | None, ctx: ScrubContext) -> None:
    """Do `action` to a decoded element that is not a sequence (the walk enters those)."""
    ctx.note(int(elem.tag), action)
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


def _map_values(value: object, function: object) -> object:
    assert callable(function)
    if isinstance(value, (MultiValue, list)):
        return [function(str(v)) for v in value]
    if value is None or value == "":
        return value
    return function(str(value))


def _dummy(elem: DataElement, ctx: ScrubContext) -> object:
    if elem.VR == "UI":
        return _map_values(elem.value, lambda v: remap_uid(v, ctx.keys)) or remap_uid("", ctx.keys)
    try:
        return DUMMY_VALUES[elem.VR]
    except KeyError:
        raise ScrubError(f"no dummy value for VR {elem.VR} of {elem.keyword or tag_text(elem.tag)}",
                         cause=Cause.NO_DUMMY) from None


def _clean(ds: Dataset, elem: DataElement, ctx: ScrubContext) -> None:
    """C on a value: text keeps its words minus identifiers; what cannot be read as text
    (binary, dates, UN) is removed, since it cannot be shown clean."""
    if elem.VR in TEXT_VRS:
        identifiers = ctx.identifiers or Identifiers(None)
        vr = elem.VR
        elem.value = _map_values(elem.value, lambda v: fit_length(clean_text(v, identifiers), vr))
    elif elem.VR in BINARY_VRS or elem.VR in DATE_VRS:
        del ds[elem.tag]


def _shift(ds: Dataset, elem: DataElement, ctx: ScrubContext) -> None:
    """Modified Dates (PS3.15 E.3.6): DA, TM and DT move by the patient's offset, a DA with its
    paired TM as one date-time (pipeline/scrub/dates.py); a value that is not a date or time is
    removed (and counted), never kept unshifted."""
    if elem.VR not in SHIFTED_VRS:
        if elem.VR == "UN" or dictionary_vr(int(elem.tag)) in SHIFTED_VRS:
            del ds[elem.tag]  # a date the file stores under another VR cannot be shifted: removed
        return
    values = list(elem.value) if isinstance(elem.value, (MultiValue, list)) else [elem.value]
    shifted = _shifted(values, elem.VR, int(elem.tag), ctx)
    if shifted is None:
        del ds[elem.tag]
        return
    elem.value = shifted if len(shifted) > 1 else (shifted[0] if shifted else None)


def _shifted(values: list[object], vr: str, tag: int, ctx: ScrubContext) -> list[str] | None:
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


READ_AS_STORED = frozenset({Action.UID, Action.SHIFT_DATE, Action.CLEAN, Action.BLANK, Action.PATIENT_ID,
                            Action.PATIENT_NAME})


def apply_stored(ds: Dataset, raw: RawDataElement, vr: str, values: list[str], action: Action, rule: Rule | None,
                 ctx: ScrubContext) -> None:
    """`apply` for an element read as stored (`stored_values`: its values as pydicom would
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
    elif action is not _DO_SHIFT_DATE:  # pragma: no cover - every action of READ_AS_STORED is handled here
        raise ScrubError(f"no handler for action {action}", cause=Cause.NO_HANDLER)
    elif vr not in SHIFTED_VRS:  # as `_shift`: a date stored under another VR is removed, other values kept
        if dictionary_vr(tag) in SHIFTED_VRS:
            del ds[raw.tag]
    else:
        shifted = _shifted(list(values), vr, tag, ctx)
        if shifted is None:
            del ds[raw.tag]
        else:
            store(ds, raw, vr, shifted)
