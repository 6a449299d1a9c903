"""Retain Longitudinal Temporal Information with Modified Dates (PS3.15 E.3.6): a shifted date
that spells another date of the original.

Every date of one patient moves by the same whole days, so a correct shift may land on a date
the original holds elsewhere: Study Date 19900617 moved 426 days back is 19890417, the day an
Interlock Date Time of the same file names (`make fuzz`, kind times). The search for the
original's dates (pipeline/verify/search.py) would report that value, though it is the shift's
own result and says nothing of the other attribute. As for times (`checks.time_kept`), a
shifted value is judged at its own place: `checks._check` holds it to be a valid date that is
none of its own original's dates. So a date finding is excused only when it lies wholly inside
such a value, moved from an original at the same path, and every such value of the file moved
by the same days (one more past midnight): in the output's bytes, within the value's own bytes;
in the parsed values, at the value's own path. Any other kind of identifier there, a date
anywhere else, and a date in a file whose dates moved by different days are still findings.
"""

from __future__ import annotations

from datetime import date

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.verify.findings import Finding, VerifyRule
from pipeline.verify.original import Kind, Original
from pipeline.verify.profile import Expect
from pipeline.verify.walk import Visit

_DATE_VRS = frozenset({"DA", "DT"})
_IN_BYTES = "bytes@"


def excuse_shifted_dates(findings: list[Finding], output: bytes, ds: Dataset, visits: list[Visit],
                         original: Original) -> list[Finding]:
    """`findings` (of the search for the original's values) without the dates found inside a
    shifted date value moved from its own original (see the module's docstring)."""
    if not any(finding.detail == Kind.DATE.value for finding in findings):
        return findings  # the common case: nothing to excuse, nothing computed
    moved = [visit for visit in visits if _moved(visit, original)]
    if not moved or not _one_shift(moved, original):
        return findings
    paths = {visit.path for visit in moved}
    ranges = _value_ranges(ds, output, moved)
    dates = _date_bytes(original)
    kept: list[Finding] = []
    for finding in findings:
        if finding.detail == Kind.DATE.value:
            if finding.rule is VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE and finding.path in paths:
                continue
            if finding.rule is VerifyRule.ORIGINAL_VALUE_IN_BYTES and _inside(finding.path, output, ranges, dates):
                continue
        kept.append(finding)
    return kept


def _moved(visit: Visit, original: Original) -> bool:
    """A DA or DT the profile shifts, whose every value's date differs from every date its own
    original held at the same path (`checks._check`'s date-not-shifted, passed)."""
    if visit.expect is not Expect.SHIFTED or visit.vr not in _DATE_VRS:
        return False
    before = original.values.get(visit.path)
    values = [value for value in visit.strings if value]
    if not before or not values:
        return False
    old = {value[:8] for value in before}
    return not any(value[:8] in old for value in values)


def _one_shift(moved: list[Visit], original: Original) -> bool:
    """Whether every moved date moved by the same days (one more where a time of day carried it
    past midnight: a DA paired with its TM, a DT), as E.3.6's consistent shift moves them: a
    date that spells another original date is then the shift's result, not a value carried
    over from elsewhere."""
    shifts: set[int] = set()
    for visit in moved:
        before = original.values.get(visit.path) or ()
        for new, old in zip(visit.strings, before, strict=False):
            days = _days(new, old)
            if days is None:
                return False
            shifts.add(days)
    return bool(shifts) and max(shifts) - min(shifts) <= 1


def _days(new: str, old: str) -> int | None:
    """The days from the date `old` starts with to the one `new` starts with, or None."""
    try:
        first = date(int(old[:4]), int(old[4:6]), int(old[6:8]))
        second = date(int(new[:4]), int(new[4:6]), int(new[6:8]))
    except ValueError:
        return None
    return (second - first).days


def _value_ranges(ds: Dataset, output: bytes, moved: list[Visit]) -> list[tuple[int, int]]:
    """Where in `output` the stored value of each visit in `moved` lies, checked against its
    bytes (a position that does not hold them excuses nothing). pydicom counts an element's
    value position in an item from the start of its sequence's value, so the items' origins are
    added up from the top; an item of a sequence read whole with the file counts from the file."""
    origins: dict[int, int] = {}
    _origins(ds, 0, origins)
    ranges: list[tuple[int, int]] = []
    for visit in moved:
        stored = visit.stored
        if not isinstance(stored, RawDataElement) or not isinstance(stored.value, bytes) or not stored.value:
            continue
        value = stored.value
        for origin in dict.fromkeys((origins.get(id(visit.parent)), 0)):
            if origin is None:
                continue
            start = origin + stored.value_tell
            if output[start:start + len(value)] == value:
                ranges.append((start, start + len(value)))
                break
    return ranges


def _origins(ds: Dataset, origin: int, origins: dict[int, int]) -> None:
    origins[id(ds)] = origin
    for elem in ds._dict.values():
        if isinstance(elem, DataElement) and elem.VR == "SQ" and isinstance(elem.value, Sequence):
            tell = elem.file_tell
            if tell is None:
                continue
            for item in elem.value:
                _origins(item, origin + tell, origins)


def _date_bytes(original: Original) -> list[bytes]:
    """The original's dates as the byte search looks for them (lower-cased, in each encoding)."""
    spelled: set[bytes] = set()
    for text, kind in original.identifiers.items():
        if kind is Kind.DATE:
            for encoding in original.encodings:
                try:
                    spelled.add(text.encode(encoding).lower())
                except (UnicodeError, LookupError):
                    continue
    return sorted(spelled, key=len, reverse=True)


def _inside(path: str, output: bytes, ranges: list[tuple[int, int]], dates: list[bytes]) -> bool:
    """Whether a byte finding (``bytes@<position>``) lies wholly inside one of `ranges`: it starts
    there, and the longest of the original's dates that the bytes there spell ends there too."""
    if not path.startswith(_IN_BYTES):
        return False
    position = int(path[len(_IN_BYTES):])
    for start, end in ranges:
        if start <= position < end:
            longest = next((date for date in dates
                            if output[position:position + len(date)].lower() == date), None)
            return longest is not None and position + len(longest) <= end
    return False


__all__ = ["excuse_shifted_dates"]
