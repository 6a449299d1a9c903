"""Retain Longitudinal Temporal Information with Modified Dates: per-patient date shifting.

Every DA and DT value of one patient moves by the same whole number of days, derived from
the key and the patient, so intervals between studies survive. Times of day are kept.
"""

from __future__ import annotations

from datetime import date, timedelta

from pipeline.scrub.keys import Keys

MAX_SHIFT_DAYS = 3650


def date_offset_days(patient: str, keys: Keys) -> int:
    """Return the patient's shift: between 1 and MAX_SHIFT_DAYS days into the past."""
    digest = keys.derive("date-offset", patient)
    return -(1 + int.from_bytes(digest[:8], "big") % MAX_SHIFT_DAYS)


def shift_da(value: str, days: int) -> str | None:
    """Shift one DA value (YYYYMMDD, or the ACR-NEMA YYYY.MM.DD); None if it is not a date."""
    text = value.strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        return (day + timedelta(days=days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of one DT value, keeping time of day, fraction and UTC offset."""
    text = value.strip()
    if len(text) < 8:
        return None
    shifted = shift_da(text[:8], days)
    return None if shifted is None else shifted + text[8:]
