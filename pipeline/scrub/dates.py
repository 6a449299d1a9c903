"""Retain Longitudinal Temporal Information with Modified Dates (PS3.15 E.3.6): per-patient shift.

PS3.15 Table E.1-1 gives C (modified) for every DA, TM and DT under this option. Every value
of one patient moves by the same `Offset`, a whole number of days plus a number of seconds,
both derived from the key and the patient, so intervals between any two date-times of the
patient survive exactly and no original time of day remains:

| value                          | moved by                                                        |
|--------------------------------|-----------------------------------------------------------------|
| DT                             | the whole offset, at the value's precision; fraction and UTC    |
|                                | offset suffix kept                                              |
| DA paired with a TM (one       | the days, plus one when the time of day plus the seconds        |
| date-time: StudyDate/StudyTime)| crosses midnight (`paired_days`)                                |
| DA alone                       | the days (a date is the start of its day: the seconds never     |
|                                | carry it into the next one)                                     |
| TM (paired or not)             | the seconds, modulo 24 h, at the value's precision              |

A value at reduced precision (HH, HHMM, a date-only DT) is the start of its period, moved and
truncated back to the same precision: two values of the same precision keep their interval
exactly. The seconds are at least one hour and less than a day, so a time of day at any
precision (HH included) never comes out unchanged. Pairs are found in the data dictionary:
the DA keyword with "Date" read as "Time" names its TM (StudyDate/StudyTime,
DateOfSecondaryCapture/TimeOfSecondaryCapture, CalibrationDate/CalibrationTime, ...).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from pydicom._dicom_dict import DicomDictionary
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue

from pipeline.scrub.keys import REMEMBERED, Keys

MAX_SHIFT_DAYS = 3650
SECONDS_PER_DAY = 86400
MIN_SHIFT_SECONDS = 3600  # an HH-only time must move too

_TIME = re.compile(r"(\d{2})(?::?(\d{2})(?::?(\d{2})(\.\d{1,6})?)?)?")
_DATETIME = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?")


@dataclass(frozen=True, slots=True)
class Offset:
    """One patient's shift: `days` (between -MAX_SHIFT_DAYS and -1, into the past) plus `seconds`
    (MIN_SHIFT_SECONDS up to a day less one second)."""

    days: int
    seconds: int

    @property
    def total(self) -> int:
        """The shift in seconds."""
        return self.days * SECONDS_PER_DAY + self.seconds


def date_offset_days(patient: str, keys: Keys) -> int:
    """Return the patient's whole days: between 1 and MAX_SHIFT_DAYS days into the past."""
    digest = keys.derive("date-offset", patient)
    return -(1 + int.from_bytes(digest[:8], "big") % MAX_SHIFT_DAYS)


def time_offset_seconds(patient: str, keys: Keys) -> int:
    """Return the patient's seconds: MIN_SHIFT_SECONDS to SECONDS_PER_DAY - 1, never a whole day."""
    digest = keys.derive("time-offset", patient)
    return MIN_SHIFT_SECONDS + int.from_bytes(digest[:8], "big") % (SECONDS_PER_DAY - MIN_SHIFT_SECONDS)


def patient_offset(patient: str, keys: Keys) -> Offset:
    """The keyed offset of one patient (same key, same patient: the same offset in every file)."""
    return _offset(keys.key, patient)


@functools.lru_cache(maxsize=REMEMBERED)
def _offset(key: bytes, patient: str) -> Offset:
    """Remembered (bounded) by key and patient: a patient's files repeat it."""
    keys = Keys(key=key)
    return Offset(date_offset_days(patient, keys), time_offset_seconds(patient, keys))


_A = TypeVar("_A")
_R = TypeVar("_R")
_REMEMBERED_LENGTH = 64  # longer than any date or time: not remembered (memory stays flat)


def _remembered(function: Callable[[str, _A], _R]) -> Callable[[str, _A], _R]:
    """`function` of a value and an offset (pure), remembered for short values: the files of a
    series repeat their dates and times."""
    cached = functools.lru_cache(maxsize=4096)(function)

    @functools.wraps(function)
    def remembered(value: str, offset: _A) -> _R:
        return cached(value, offset) if len(value) <= _REMEMBERED_LENGTH else function(value, offset)

    return remembered


@dataclass(frozen=True, slots=True)
class _Time:
    seconds: int  # since midnight, at the value's precision
    digits: int  # 2 (HH), 4 (HHMM) or 6 (HHMMSS)
    fraction: str  # "" or ".F" to ".FFFFFF", kept as written


def _parse_time(value: str) -> _Time | None:
    """A TM value (HH, HHMM, HHMMSS, HHMMSS.F-FFFFFF; or ACR-NEMA HH:MM:SS), else None."""
    match = _TIME.fullmatch(value.strip())
    if match is None:
        return None
    hh, mm, ss, fraction = match.groups()
    hours, minutes, seconds = int(hh), int(mm or 0), int(ss or 0)
    if hours > 23 or minutes > 59 or seconds > 60:  # 60: a leap second (PS3.5 6.2)
        return None
    digits = 2 if mm is None else (4 if ss is None else 6)
    return _Time(hours * 3600 + minutes * 60 + seconds, digits, fraction or "")


def _format_time(seconds: int, digits: int) -> str:
    hours, rest = divmod(seconds % SECONDS_PER_DAY, 3600)
    return f"{hours:02d}{rest // 60:02d}{rest % 60:02d}"[:digits]


@_remembered
def shift_tm(value: str, offset: Offset) -> str | None:
    """Move one TM value by the offset's seconds, modulo a day, at its own precision; None if it
    is not a time (a range, text)."""
    time = _parse_time(value)
    if time is None:
        return None
    unit = 60 ** ((6 - time.digits) // 2)  # 3600 for HH, 60 for HHMM, 1 for HHMMSS
    moved = (time.seconds + offset.seconds) // unit * unit
    return _format_time(moved, time.digits) + time.fraction


def paired_days(offset: Offset, time: str | None) -> int:
    """The days a DA moves when `time` is its paired TM's original value: the offset's days,
    plus one when the time of day plus the offset's seconds crosses midnight. A missing or
    unreadable time leaves the date alone (the days only)."""
    parsed = None if time is None else _parse_time(time)
    if parsed is None:
        return offset.days
    return offset.days + (parsed.seconds + offset.seconds) // SECONDS_PER_DAY


@_remembered
def shift_da(value: str, days: int) -> str | None:
    """Shift one DA value (YYYYMMDD, or the ACR-NEMA YYYY.MM.DD) by whole days; None if it is not a date."""
    text = value.strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        return (day + timedelta(days=days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None


@_remembered
def shift_dt(value: str, offset: Offset) -> str | None:
    """Move one DT value (YYYYMMDD[HH[MM[SS[.F]]]][&ZZXX]) by the whole offset at its own
    precision, keeping the fraction and the UTC offset suffix; None if it is not such a value
    (a year or month alone included: no day to move)."""
    match = _DATETIME.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hh, mm, ss, fraction, suffix = match.groups()
    if fraction and ss is None:
        return None
    parts = [hh, mm, ss]
    present = sum(1 for p in parts if p is not None)
    if any(p is None for p in parts[:present]) or (int(ss or 0) > 60):
        return None
    leap = 1 if ss == "60" else 0  # a leap second: 59 plus one
    try:
        start = datetime(int(year), int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0) - leap)
        moved = start + timedelta(seconds=offset.total + leap)
    except (ValueError, OverflowError):
        return None
    unit = 60 ** (3 - present) if present else SECONDS_PER_DAY
    if present:
        seconds = moved.hour * 3600 + moved.minute * 60 + moved.second
        moved = moved - timedelta(seconds=seconds % unit)
    text = moved.strftime("%Y%m%d%H%M%S")[:8 + 2 * present]
    return text + (fraction or "") + (suffix or "")


_Stored = DataElement | RawDataElement


@functools.cache
def date_time_pairs() -> dict[int, int]:
    """DA tag -> TM tag, for every dictionary DA whose keyword with one "Date" read as "Time"
    names a TM (PS3.6): the pairs that together are one date-time."""
    by_keyword = {entry[4]: tag for tag, entry in DicomDictionary.items()}
    pairs: dict[int, int] = {}
    for tag, (vr, _vm, _name, _retired, keyword) in DicomDictionary.items():
        if vr != "DA":
            continue
        for match in re.finditer("Date", keyword):
            partner = keyword[:match.start()] + "Time" + keyword[match.end():]
            time_tag = by_keyword.get(partner)
            if time_tag is not None and DicomDictionary[time_tag][0] == "TM":
                pairs[tag] = time_tag
                break
    return pairs


def original_times(elements: Mapping[Any, _Stored] | Iterable[tuple[int, _Stored]]) -> dict[int, tuple[str, ...]]:
    """DA tag -> the values of its paired TM, for the pairs present in one dataset's elements,
    read before anything in that dataset changes (a TM may come before its DA)."""
    stored = elements if isinstance(elements, dict) else dict(elements)  # a dataset's own dict: read as it is
    pairs = date_time_pairs()
    found: dict[int, tuple[str, ...]] = {}
    for tag in stored.keys() & _paired_dates():  # a set operation in C: most elements are no paired date
        time_tag = pairs[int(tag)]
        if time_tag in stored:
            found[int(tag)] = _values(stored[time_tag].value)
    return found


@functools.cache
def _paired_dates() -> frozenset[int]:
    return frozenset(date_time_pairs())


def _values(value: object) -> tuple[str, ...]:
    if isinstance(value, bytes):
        value = value.decode("latin-1").split("\\")
    if isinstance(value, (MultiValue, list, tuple)):
        return tuple(str(v).strip(" \x00") for v in value)
    return () if value is None else (str(value).strip(" \x00"),)


__all__ = ["MAX_SHIFT_DAYS", "MIN_SHIFT_SECONDS", "SECONDS_PER_DAY", "Offset", "date_offset_days", "date_time_pairs",
           "original_times", "paired_days", "patient_offset", "shift_da", "shift_dt", "shift_tm",
           "time_offset_seconds"]
