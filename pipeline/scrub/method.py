"""The record of de-identification (PS3.15 E.1.1): PatientIdentityRemoved YES, the method
(DeidentificationMethod and its CID 7050 codes in DeidentificationMethodCodeSequence, one per
option) and LongitudinalTemporalInformationModified.

Speed: these elements are the same for every file of a run, so in a dataset read in a known
encoding whose character set reads ASCII as ASCII they are encoded once per plan and encoding
and added as stored elements (`pipeline.dicom.stored.raw_elements`: the bytes pydicom writes);
elsewhere, or where the file already holds one of them, they are set through pydicom.
"""

from __future__ import annotations

import functools

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.dicom.stored import raw_elements, reads_ascii
from pipeline.profile.options import BASIC_PROFILE_CODE, OPTION_CODES, Option
from pipeline.profile.plan import Plan
from pipeline.version import __version__

_CODE_VALUE, _CODING_SCHEME, _CODE_MEANING = 0x00080100, 0x00080102, 0x00080104
_IDENTITY_REMOVED, _METHOD, _METHOD_CODES = 0x00120062, 0x00120063, 0x00120064
_TEMPORAL_INFORMATION = 0x00280303


def record_method(ds: Dataset, plan: Plan) -> None:
    """PS3.15 E.1.1: say that identity was removed, and how (CID 7050)."""
    implicit, little = ds.original_encoding
    if implicit is not None and little is not None and reads_ascii(ds) and not any(
            tag in ds._dict for tag in (_IDENTITY_REMOVED, _METHOD, _METHOD_CODES, _TEMPORAL_INFORMATION)):
        for raw in _method_elements(plan.profile, plan.options, _temporal(plan), implicit, little):
            ds._dict[raw.tag] = raw  # new public elements, stored as pydicom would write them
        return
    _set(ds, _IDENTITY_REMOVED, "CS", "YES")
    _set(ds, _METHOD, "LO", f"deid-pipeline {__version__} PS3.15 {plan.profile} profile")
    items = []
    for value, meaning in [BASIC_PROFILE_CODE] + [OPTION_CODES[o] for o in plan.options]:
        item = Dataset()
        item.add(DataElement(_CODE_VALUE, "SH", value))
        item.add(DataElement(_CODING_SCHEME, "SH", "DCM"))
        item.add(DataElement(_CODE_MEANING, "LO", meaning))
        items.append(item)
    _set(ds, _METHOD_CODES, "SQ", Sequence(items))
    _set(ds, _TEMPORAL_INFORMATION, "CS", _temporal(plan))


def _temporal(plan: Plan) -> str:
    if plan.shifts_dates:
        return "MODIFIED"
    return "UNMODIFIED" if plan.keeps_dates else "REMOVED"


@functools.lru_cache(maxsize=64)
def _method_elements(profile: str, options: tuple[Option, ...], temporal: str, implicit: bool,
                     little: bool) -> tuple[RawDataElement, ...]:
    """The method record's elements (as `record_method` sets them) encoded once per plan and
    encoding."""
    codes = [BASIC_PROFILE_CODE] + [OPTION_CODES[o] for o in options]
    items = tuple(((_CODE_VALUE, "SH", value), (_CODING_SCHEME, "SH", "DCM"), (_CODE_MEANING, "LO", meaning))
                  for value, meaning in codes)
    return raw_elements(((_IDENTITY_REMOVED, "CS", "YES"),
                         (_METHOD, "LO", f"deid-pipeline {__version__} PS3.15 {profile} profile"),
                         (_METHOD_CODES, items), (_TEMPORAL_INFORMATION, "CS", temporal)), implicit, little)


def _set(ds: Dataset, tag: int, vr: str, value: object) -> None:
    """`ds.<keyword> = value` without the keyword look-up: an element already there keeps its
    element (and its VR and length encoding) and takes the value, as pydicom's setattr does."""
    if tag in ds._dict:
        ds[tag].value = value
    else:
        ds.add(DataElement(tag, vr, value))
