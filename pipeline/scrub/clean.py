"""PS3.15 action C for text: keep the text, remove what identifies.

`Identifiers.of(dataset)` collects the identifying values one dataset carries anywhere
(every person-name component, IDs, accession number, institution, addresses, phone
numbers, dates in their common spellings); `clean_text` removes each of them from a text,
case-insensitively and in any order of name components, and also removes anything shaped
like a date, a phone number or an e-mail address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from pipeline.scrub.vr import needs_retyping, retyped

REDACTED = "[removed]"
MIN_TOKEN = 2  # single letters (initials) are too common to remove everywhere; "Li" is a name

# Attributes whose values are identifiers wherever they stand (besides every PN value).
IDENTIFYING_KEYWORDS: tuple[str, ...] = (
    "PatientID",
    "OtherPatientIDs",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PersonTelephoneNumbers",
    "PersonAddress",
    "StationName",
    "DeviceSerialNumber",
    "MedicalRecordLocator",
    "AdmissionID",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "PerformedProcedureStepID",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "MilitaryRank",
    "BranchOfService",
    "RegionOfResidence",
    "CountryOfResidence",
    "EthnicGroup",
    "Occupation",
)

_PATTERNS = re.compile(
    r"""
      [\w.+-]+@[\w-]+\.[\w.-]+                                  # e-mail
    | \b(?:19|20)\d{2}[-/.]\d{1,2}[-/.]\d{1,2}\b                # 2024-01-31
    | \b\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})\b               # 31/01/2024, 01.31.24
    | \b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b  # 20240131
    | \b\d{1,2}\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{2,4}\b
    | (?:\+|\b)\d[\d\s().-]{6,}\d\b                             # phone numbers, long IDs
    """,
    re.IGNORECASE | re.VERBOSE,
)


def date_spellings(value: str) -> set[str]:
    """Common spellings of a DA value YYYYMMDD."""
    text = value.strip()
    if len(text) != 8 or not text.isdigit():
        return {text} if text else set()
    y, m, d = text[:4], text[4:6], text[6:]
    return {text, f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{y}.{m}.{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}",
            f"{d}.{m}.{y}", f"{d}-{m}-{y}"}


def _tokens(value: str, is_name: bool = False) -> set[str]:
    """The value whole and its parts; a person name also splits at hyphens and apostrophes
    ("Smith-Jones" leaves neither "Smith" nor "Jones")."""
    parts = {value.strip()}
    parts.update(re.split(r"[\^=\s,\-'.]+" if is_name else r"[\^=\s,]+", value))
    return {p.strip() for p in parts if len(p.strip()) >= MIN_TOKEN}


def _values(value: object) -> Iterable[str]:
    if isinstance(value, (MultiValue, list, tuple)):
        for item in value:
            yield str(item)
    elif value is not None and not isinstance(value, (bytes, Sequence)):
        yield str(value)


@dataclass(frozen=True, slots=True)
class Identifiers:
    """The identifying strings of one dataset, longest first, and one regex over them."""

    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, dataset: Dataset) -> Identifiers:
        found: set[str] = set()
        _collect(dataset, found)
        if not found:
            return cls(None)
        ordered = sorted(found, key=len, reverse=True)
        alternatives = "|".join(re.escape(t) for t in ordered)
        return cls(re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE))


_IDENTIFYING_TAGS: frozenset[int] = frozenset(
    t for t in (tag_for_keyword(k) for k in IDENTIFYING_KEYWORDS) if t is not None
)


def _collect(dataset: Dataset, found: set[str]) -> None:
    """Gather identifiers, decoding only PN values, sequences and the identifying keywords."""
    for tag, raw in list(dataset.items()):  # as stored: raw until decoded
        vr = raw.VR
        if vr in (None, "UN", "OB", "OW"):  # judged by the dictionary VR, never the one claimed (vr.py)
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
        if vr != "SQ" and vr != "PN" and int(tag) not in _IDENTIFYING_TAGS:
            continue
        elem = dataset[tag]
        if needs_retyping(elem.VR, vr):  # a name stored as OB or UN: read as the text it is
            elem = retyped(dataset, elem, vr)
        if elem.VR == "SQ":
            for item in elem.value or ():
                _collect(item, found)
            continue
        for value in _values(elem.value):
            found.update(_tokens(value, is_name=elem.VR == "PN"))
            if elem.VR == "DA":
                found.update(date_spellings(value))


def clean_text(text: str, identifiers: Identifiers) -> str:
    """Return `text` with every identifier of the dataset and every date-, phone- or
    e-mail-shaped run replaced by REDACTED."""
    if identifiers.pattern is not None:
        text = identifiers.pattern.sub(REDACTED, text)
    return _PATTERNS.sub(REDACTED, text)
