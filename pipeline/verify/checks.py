"""verify_bytes(output, options, original, output_path) -> findings: an independent check of one
scrubbed file against the profile (PS3.15 Annex E) and, when given, against its original.

Written apart from the scrubber so that a bug in one is caught by the other: this module and
its parts (profile: the recipes read by verify's own small parser; walk: every element with
what the profile allows, judged by the dictionary VR; original: the original's identifiers;
search: the search for them) import none of pipeline.scrub, pipeline.profile, pipeline.dicom
or deid (an import contract in pyproject.toml). Every attribute of the output is resolved by
the standard's rules, and what is present must be allowed:

| action (recipe)                    | allowed in the output                                     |
|------------------------------------|-----------------------------------------------------------|
| REMOVE (X)                         | absent                                                    |
| BLANK (Z)                          | absent or empty                                           |
| func:dummy, combined codes         | absent, empty, or not the original (a dummy without one)  |
| func:uid (U)                       | absent or `2.25.` UIDs, never the original                |
| func:shift_date                    | valid dates and times, never the original date, never the |
|                                    |   original time of day at the same place (`time_kept`)    |
| func:patient_id / patient_name     | never the original                                        |
| KEEP, func:clean                   | anything here; C text is checked by the search below      |
| inside a D, X/D, X/Z/D sequence    | what would be kept or cleaned: replaced, never the        |
|                                    |   original; sequences inside likewise; UIDs by their rule |
| not named: PN LO SH ST LT UT UC    | absent, unless inside a sequence a C rule cleans          |
|   UR AE; UN; DA DT                 |   (dates: kept with full dates, shifted with modified;    |
|                                    |   TM: kept, shifted with modified)                        |
| not named: UI                      | a registered UID or a `2.25.` UID, unless Retain UIDs     |
| private (odd group)                | only what Retain Safe Private keeps (creator + element)   |
| 50xx / 60xx groups                 | absent unless Clean Graphics                              |

The original is given as its bytes, which verify parses itself, or, in the runner, as
`pipeline.verify.before.as_read`'s copy of the dataset the runner parsed (once per input), taken
before the scrub; verify decodes that copy's values itself. The output is always parsed here,
from the very bytes that are written (by verify's own reader, pipeline/verify/reader.py, in the
shape the pipeline writes; by pydicom otherwise).

With the original at hand, every identifying value of the original that the profile does not
keep (names, IDs, dates in common spellings, UIDs, institution, device and address values,
the codes inside a person's or institution's identification, long free-text words) is searched
for in the output's raw bytes (preamble, meta, dataset, padding) and in the output's path;
values shorter than four characters only in the attributes they came from. Findings name rules and places, never values.

With the original at hand, the pixels are compared too (`pipeline.verify.pixels`): changes
only in blanked rectangles, a bounded share, and, when asked, no text left where cleaning was.
"""

from __future__ import annotations

import io
import re
import warnings
from datetime import date

import pydicom
from pydicom._uid_dict import UID_dictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pipeline.verify import reader
from pipeline.verify.conformance import conformance_findings
from pipeline.verify.findings import Finding, Severity, Verdict, VerifyRule
from pipeline.verify.high_bits import high_bits_findings
from pipeline.verify.original import Original, original_identifiers
from pipeline.verify.pixels import PixelBound, PixelRule, pixel_findings
from pipeline.verify.profile import (
    BASIC_PROFILE_CODE,
    FULL_DATES,
    MODIFIED_DATES,
    OPTION_CODES,
    TEXT_VRS,
    Expect,
    Profile,
    load_profile,
    normalise_options,
)
from pipeline.verify.search import search_bytes, search_path, search_values
from pipeline.verify.shifted_dates import excuse_shifted_dates
from pipeline.verify.strings import stored_text
from pipeline.verify.walk import TRAILING_PADDING, Visit, tag_name, walk

_SERIOUS_VRS = TEXT_VRS | {"DA", "DT", "UN", "SQ", "OB", "OW", "UI"}
_META_ALLOWED = frozenset({0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013})
_DUMMY_MARKERS = ("ANONYM", "REMOVED", "DUMMY", "REDACTED", "UNKNOWN")
UID_2_25 = re.compile(r"2\.25\.(?:0|[1-9][0-9]{0,38})")
_TIME = re.compile(r"([01][0-9]|2[0-3])(?:[0-5][0-9](?:([0-5][0-9]|60)(?:\.[0-9]{1,6})?)?)?")  # PS3.5 TM
_UTC_OFFSET = re.compile(r"[+-][0-9]{4}$")


def _read(data: bytes) -> Dataset | None:
    """`data` read by verify's own reader (pipeline/verify/reader.py), or by pydicom when it is
    not in the shape that reader reads; None when neither can."""
    own = reader.read_file(data)
    if own is not None:
        return own
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            try:
                return pydicom.dcmread(io.BytesIO(data))
            except InvalidDicomError:
                return pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception:
            return None


def looks_dummy(vr: str, value: str) -> bool:
    """Whether `value` could be a PS3.15 dummy of its VR, judged without the original: empty,
    a `2.25.` UID, a date no later than 1900, a zero time, marked text (ANONYMIZED, PAT-...);
    numbers and bytes pass (only the original can tell them). verify and scan share it."""
    upper = value.strip().upper()
    if not upper:
        return True
    if vr == "UI":
        return UID_2_25.fullmatch(upper) is not None
    if vr in ("DA", "DT"):
        return upper[:4].isdigit() and upper[:4] <= "1900"
    if vr == "TM":
        return set(upper.replace(":", "").replace(".", "")) <= {"0"}
    if vr in TEXT_VRS or vr == "CS":
        return any(marker in upper for marker in _DUMMY_MARKERS) or upper.startswith("PAT-")
    return True  # numbers and bytes: only the original can tell a dummy from a value


def _valid_date(text: str) -> bool:
    if len(text) < 8 or not text[:8].isdigit():
        return False
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return True


def time_of_day(vr: str, value: str) -> str:
    """The time of day a TM value, or the time part of a DT value, spells, to the second at most:
    digits only (ACR-NEMA colons dropped), without fraction or UTC offset; "" when there is none
    (a date-only DT)."""
    text = value.strip().replace(":", "")
    if vr == "DT":
        text = _UTC_OFFSET.sub("", text)[8:]
    return text.split(".", 1)[0]


def time_kept(vr: str, values: tuple[str, ...], before: tuple[str, ...]) -> bool:
    """Retain Longitudinal Temporal Information with Modified Dates (PS3.15 E.3.6; Table E.1-1 gives
    C for every TM and DT): whether an original time of day survives in the output.

    The comparison is attribute for attribute and value for value: the value at the same position
    of the same attribute path in the original, never the set of every original time. A search of
    the whole file for the original's times would flag coincidences a correct shift produces: six
    digits occur in UIDs and numbers, and one patient's times are minutes apart, so a shifted
    SeriesTime may well spell the original StudyTime, or the next value of a multi-valued
    attribute. At its own place a modified value equals its original only if it was not moved
    (a shift of whole days). An original of zeros (000000, the PS3.15 dummy of a TM; a DT at
    midnight) is not judged: it tells no time of day, and a dummy put in its place looks the same.
    """
    for new, old in zip(values, before, strict=False):
        kept = time_of_day(vr, old)
        if kept and kept.strip("0") and time_of_day(vr, new) == kept:
            return True
    return False


# Speed: `Expect.X` is a look-up on the Enum class (tens of ns in Python 3.11, a dozen of them in
# every `_check`); `_check` runs for every element not kept, and reads the members from here.
_ABSENT, _EMPTY, _KEEP, _CLEAN, _REPLACED = Expect.ABSENT, Expect.EMPTY, Expect.KEEP, Expect.CLEAN, Expect.REPLACED
_UID, _NEW_UID, _SHIFTED, _PSEUDONYM = Expect.UID, Expect.STANDARD_OR_NEW_UID, Expect.SHIFTED, Expect.PSEUDONYM
_HIGH, _MEDIUM = Severity.HIGH, Severity.MEDIUM


def _check(visit: Visit, original: Original | None) -> list[Finding]:
    vr, expect, path = visit.vr, visit.expect, visit.path
    serious = _HIGH if vr in _SERIOUS_VRS else _MEDIUM
    if expect is _ABSENT:
        rule = VerifyRule.PRIVATE_NOT_ALLOWED if visit.private else VerifyRule.ATTRIBUTE_NOT_ALLOWED
        return [Finding(rule, path, Severity.HIGH if visit.private else serious)]
    if vr == "SQ":
        if expect is _EMPTY and len(visit.elem.value or ()) > 0:
            return [Finding(VerifyRule.VALUE_NOT_BLANK, path, Severity.HIGH)]
        return []
    if expect in (_KEEP, _CLEAN):
        return []  # any value: C text is checked by the search for the original's values
    values = visit.strings
    before = original.values.get(path) if original is not None else None
    if expect is _EMPTY and values:
        return [Finding(VerifyRule.VALUE_NOT_BLANK, path, serious)]
    if expect is _REPLACED and values:
        if before and values == before and not all(looks_dummy(vr, v) for v in values):
            return [Finding(VerifyRule.VALUE_NOT_REPLACED, path, Severity.HIGH)]
        if not before and not all(looks_dummy(vr, v) for v in values):
            return [Finding(VerifyRule.VALUE_NOT_DUMMY, path, Severity.MEDIUM)]
    if expect is _UID:
        remapped = all(UID_2_25.fullmatch(v) is not None for v in values if v)
        if not remapped or (before and set(values) & set(before)):
            return [Finding(VerifyRule.UID_NOT_REMAPPED, path, Severity.HIGH)]
    if expect is _NEW_UID:
        for value in values:
            new = UID_2_25.fullmatch(value) is not None and not (before and value in before)
            if value and not new and value not in UID_dictionary:
                return [Finding(VerifyRule.UID_NOT_REMAPPED, path, Severity.HIGH)]
    if expect is _SHIFTED and vr in ("DA", "DT"):
        if not all(_valid_date(v) for v in values if v):
            return [Finding(VerifyRule.DATE_INVALID, path, Severity.MEDIUM)]
        old = {v[:8] for v in before or ()}
        if any(v[:8] in old for v in values if v):
            return [Finding(VerifyRule.DATE_NOT_SHIFTED, path, Severity.HIGH)]
    if expect is _SHIFTED and vr in ("TM", "DT") and before and time_kept(vr, values, before):
        return [Finding(VerifyRule.TIME_NOT_MODIFIED, path, Severity.HIGH)]
    if expect is _SHIFTED and vr == "TM" and not all(_TIME.fullmatch(v) for v in values if v):
        return [Finding(VerifyRule.DATE_INVALID, path, Severity.MEDIUM)]
    if expect is _PSEUDONYM and before and values and values == before:
        return [Finding(VerifyRule.VALUE_NOT_REPLACED, path, Severity.HIGH)]
    return []


def _check_literal(visit: Visit, profile: Profile) -> list[Finding]:
    rule = profile.rule_for(visit.tag, None)
    literal = rule.literal if rule is not None else None
    if visit.vr != "SQ" and "\\".join(visit.strings) != (literal or ""):
        return [Finding(VerifyRule.LITERAL_MISMATCH, visit.path, Severity.LOW)]
    return []


def _check_record(ds: Dataset, profile: Profile) -> list[Finding]:
    """PS3.15 E.1.1: Patient Identity Removed, the method codes, the temporal flag."""
    findings: list[Finding] = []
    if stored_text(ds, 0x00120062, "PatientIdentityRemoved").strip().upper() != "YES":
        findings.append(Finding(VerifyRule.IDENTITY_REMOVED_MISSING, "PatientIdentityRemoved", Severity.MEDIUM))
    expected = sorted([BASIC_PROFILE_CODE] + [OPTION_CODES[o] for o in profile.options])
    held = ds._dict.get(0x00120064)  # type: ignore[call-overload]  # read by the walk already, as a rule
    items = (held.value if isinstance(held, DataElement) else ds.get("DeidentificationMethodCodeSequence")) or []
    codes = sorted(stored_text(item, 0x00080100, "CodeValue") for item in items)
    schemes = {stored_text(item, 0x00080102, "CodingSchemeDesignator") for item in items}
    if codes != expected or (items and schemes != {"DCM"}):
        findings.append(Finding(VerifyRule.METHOD_CODES_MISMATCH, "DeidentificationMethodCodeSequence", Severity.LOW))
    flag = stored_text(ds, 0x00280303, "LongitudinalTemporalInformationModified").strip().upper()
    if profile.has(FULL_DATES):
        allowed = {"UNMODIFIED"}
    elif profile.has(MODIFIED_DATES):
        allowed = {"MODIFIED"}
    else:
        allowed = {"REMOVED", ""}
    if flag not in allowed:
        findings.append(Finding(VerifyRule.TEMPORAL_FLAG_MISMATCH, "LongitudinalTemporalInformationModified",
                                Severity.LOW))
    return findings


def _check_meta(ds: Dataset) -> list[Finding]:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return []
    findings = [Finding(VerifyRule.META_NOT_ALLOWED, tag_name(int(tag)),
                        Severity.HIGH if meta[tag].VR in TEXT_VRS else Severity.MEDIUM)
                for tag in meta.keys() if int(tag) not in _META_ALLOWED]
    stored = stored_text(meta, 0x00020003, "MediaStorageSOPInstanceUID").strip("\x00 ")
    if stored != stored_text(ds, 0x00080018, "SOPInstanceUID").strip("\x00 "):
        findings.append(Finding(VerifyRule.META_UID_MISMATCH, "MediaStorageSOPInstanceUID", Severity.MEDIUM))
    return findings


def verify_bytes(
    output: bytes,
    options: tuple[str, ...],
    original: bytes | Dataset | None = None,
    output_path: str | None = None,
    pixels: PixelBound | None = None,
) -> list[Finding]:
    """Check one scrubbed DICOM file; return the findings (empty when it passes). See
    `verify_file` for the parameters; the runner publishes on `verify_file`'s `Verdict`."""
    return list(verify_file(output, options, original, output_path, pixels).findings)


def verify_file(
    output: bytes,
    options: tuple[str, ...],
    original: bytes | Dataset | None = None,
    output_path: str | None = None,
    pixels: PixelBound | None = None,
) -> Verdict:
    """Check one scrubbed DICOM file (PS3.15 E.1, Table E.1-1); return the `Verdict`: the
    findings, how many elements were checked and whether the original was searched for.

    Parameters
    ----------
    output
        The scrubbed file's bytes, exactly as written.
    options
        The PS3.15 options applied (kebab case); unknown names raise `ProfileError`.
    original
        The input file's bytes, or the input as read (`pipeline.verify.before.as_read`: a copy
        of the dataset the runner parsed, taken before the scrub; verify decodes its values
        itself): enables the search for its identifying values.
    output_path
        Where the output is (best relative to the release root): searched for the same values.
    pixels
        With the original: the bound on the share of pixels cleaning may change, and whether
        to re-read the cleaned places with tesseract (`pipeline.verify.pixels`; None: the
        verifier's ceiling, no re-reading). The pixels are compared whenever the original is given.
    """
    profile = load_profile(tuple(options))
    findings: list[Finding] = []
    if len(output) < 132 or output[128:132] != b"DICM" or any(output[:128]):
        findings.append(Finding(VerifyRule.PREAMBLE_NOT_ZERO, "preamble", Severity.HIGH))
    before: Original | None = None
    original_ds: Dataset | None = None
    if original is not None:
        try:
            original_ds = original if isinstance(original, Dataset) else _read(original)
            with warnings.catch_warnings():  # values decode lazily: pydicom's warnings (an unknown
                warnings.simplefilter("ignore")  # escape sequence, read as Latin-1) are no failure
                before = original_identifiers(original_ds, profile) if original_ds is not None else None
        except Exception:  # without its identifiers the output cannot be cleared: say so
            before = None
        if before is None:
            findings.append(Finding(VerifyRule.ORIGINAL_UNREADABLE, "original", Severity.MEDIUM))
    masks: list[tuple[int, int]] = []
    visits: list[Visit] = []
    ds = _read(output)
    try:
        if ds is None:
            raise ValueError("unreadable")
        meta = getattr(ds, "file_meta", None)
        sop_class = stored_text(ds, 0x00080016, "SOPClassUID").strip("\x00 ") or None
        visits = (list(walk(meta, profile, masks=masks)) if meta is not None else []) + list(
            walk(ds, profile, masks=masks, sop_class=sop_class))
        findings += _check_meta(ds)
        keep, clean = Expect.KEEP, Expect.CLEAN
        for visit in visits:
            if visit.tag == TRAILING_PADDING:
                findings.append(Finding(VerifyRule.TRAILING_PADDING, visit.path, Severity.HIGH))
            elif visit.expect is keep or visit.expect is clean:
                continue  # `_check` allows any value here (C text: the search for the original's values)
            elif visit.expect is Expect.LITERAL:
                findings += _check_literal(visit, profile)
            else:
                findings += _check(visit, before)
        findings += _check_record(ds, profile)
        findings += high_bits_findings(ds)
        if original_ds is not None:
            findings += conformance_findings(original_ds, ds)
    except Exception:  # a broken output is a finding, never a crash of the run
        findings.append(Finding(VerifyRule.OUTPUT_UNREADABLE, "file", Severity.HIGH))
    if ds is not None and original_ds is not None:
        try:
            findings += pixel_findings(ds, original_ds, pixels)
        except Exception:  # tesseract failed, a codec broke: not compared is not passed
            findings.append(Finding(PixelRule.NOT_COMPARED, "PixelData", Severity.MEDIUM, detail="check failed"))
    if before is not None:
        found = search_bytes(output, before, masks) + search_values(visits, before)
        findings += excuse_shifted_dates(found, output, ds, visits, before) if ds is not None else found
        if output_path:
            findings += search_path(output_path, before)
    return Verdict(tuple(findings), len(visits), before is not None)


__all__ = ["OPTION_CODES", "PixelBound", "Verdict", "VerifyRule", "load_profile", "looks_dummy", "normalise_options",
           "verify_bytes", "verify_file"]
