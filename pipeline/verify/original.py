"""The original's identifying values (names, IDs, dates in their common spellings, UIDs,
institution, device and address values, the codes that identify a person or an institution,
long free-text words) that the profile does not keep, and the spellings a person writes of
the dates and names (pipeline/verify/spellings.py: dates in words and scripts, names joined
without spaces). pipeline/verify/search.py looks for them in an output.
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass, field
from enum import StrEnum

from pydicom._uid_dict import UID_dictionary
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset

from pipeline.verify.profile import BASIC_PROFILE_CODE, OPTION_CODES, Expect, Profile
from pipeline.verify.spellings import date_spellings, fold, name_spellings
from pipeline.verify.strings import NUMBER_VRS, stored_text
from pipeline.verify.transliteration import ascii_spellings
from pipeline.verify.walk import Visit, keyword_of, walk

# What the pipeline writes itself (CID 7050 meanings, ...), never an original's identifier.
_WRITTEN_TEXT = (
    "Basic Application Confidentiality Profile; Clean Pixel Data Option; Clean Recognizable Visual "
    "Features Option; Clean Graphics Option; Clean Structured Content Option; Clean Descriptors Option; "
    "Retain Longitudinal Temporal Information Full Dates Option; Retain Longitudinal Temporal "
    "Information Modified Dates Option; Retain Patient Characteristics Option; Retain Device Identity "
    "Option; Retain UIDs Option; Retain Safe Private Option; Retain Institution Identity Option; "
    "deid-pipeline PS3.15 basic profile ANONYMIZED; "
    # the record's flags (Patient Identity Removed, Longitudinal Temporal Information Modified) and
    # code values (PS3.15 E.1.1): a word of the original's free text that happens to read REMOVE
    # or 113100 is not published by the one the record writes
    "YES REMOVED MODIFIED UNMODIFIED "
    + " ".join([BASIC_PROFILE_CODE, *OPTION_CODES.values()])
)


class Kind(StrEnum):
    """What sort of identifier of the original was seen (a finding's detail)."""

    PERSON_NAME = "person-name"
    ID = "identifier"
    DATE = "date"
    UID = "uid"
    INSTITUTION = "institution-or-address"
    DEVICE = "device"
    FREE_TEXT = "free-text"


_SKIPPED = frozenset({"ANONYMIZED", "ANONYMISED", "ANONYMOUS", "REMOVED", "UNKNOWN", "DUMMY", "REDACTED",
                      "NONE", "PAT", "19000101", "DR", "MR", "MRS", "MS", "MD", "PHD", "JR", "SR", "PROF"})
_PARTICLES = frozenset({"DE", "LA", "DA", "DI", "DU", "LE", "VAN", "VON", "DER", "DEN", "DOS", "DAS", "DEL", "EL"})
_COMMON_WORDS = frozenset({
    "ABDOMEN", "ACQUIRED", "ACQUISITION", "ADDITIONAL", "ANTERIOR", "ARTERIAL", "AXIAL", "BEFORE", "BILATERAL",
    "BRAIN", "CARDIAC", "CENTER", "CENTRE", "CERVICAL", "CHANGE", "CHANGES", "CLINIC", "CLINICAL", "COMMENT",
    "COMMENTS", "COMPARISON", "COMPRESSED", "CONTRAST", "CORONAL", "DELAYED", "DIAGNOSTIC", "DICOM", "DIFFUSION",
    "DOCTOR", "ENHANCED", "EXAMINATION", "FOLLOW", "FRONTAL", "FUNCTION", "GENERAL", "HEALTH", "HISTORY", "HOSPITAL",
    "IMAGES", "IMAGING", "INFERIOR", "INJECTION", "INSTITUTE", "LATERAL", "LOCALIZER", "LUMBAR", "MEDICAL",
    "MEDICINE", "MEMORIAL", "NATIONAL", "NORMAL", "NUCLEAR", "OBLIQUE", "ORIGINAL", "PATIENT", "PELVIS", "PHYSICIAN",
    "POSTERIOR", "PRIMARY", "PROTOCOL", "RADIOLOGY", "REFERENCE", "REFERRING", "REGIONAL", "REPORT", "RESULT",
    "RESULTS", "ROUTINE", "SAGITTAL", "SCREENING", "SECONDARY", "SEQUENCE", "SERIES", "SERVICE", "SERVICES", "SPINE",
    "STANDARD", "STUDY", "SUPERIOR", "SURGERY", "SYSTEMS", "THORACIC", "THORAX", "UNCOMPRESSED", "UNIVERSITY",
    "VASCULAR", "WITHOUT"
})
_ID_KEYWORDS = frozenset({
    "PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "AdmissionID", "MedicalRecordLocator",
    "RequestedProcedureID", "ScheduledProcedureStepID", "PerformedProcedureStepID",
    "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest", "IssuerOfPatientID",
    "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID", "PatientBirthName",
})
_INSTITUTION_KEYWORDS = frozenset({
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "PatientAddress", "PersonAddress",
    "ReferringPhysicianAddress", "PatientTelephoneNumbers", "ReferringPhysicianTelephoneNumbers",
    "PersonTelephoneNumbers", "RegionOfResidence", "CountryOfResidence", "ResponsibleOrganization",
    "PatientMotherBirthName", "MilitaryRank", "BranchOfService", "Occupation",
})
_DEVICE_KEYWORDS = frozenset({"StationName", "DeviceSerialNumber", "DeviceUID", "DetectorID", "GantryID"})
# Sequences that identify a person (PS3.3 Table 10-1 Person Identification Macro and the code
# sequences naming a person) or an institution: the codes inside them are staff IDs, names and
# institutions, though codes elsewhere (procedures, anatomy, units) are not identifying.
_PERSON_SEQUENCES = frozenset({
    "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianIdentificationSequence",
    "PhysiciansOfRecordIdentificationSequence", "PerformingPhysicianIdentificationSequence",
    "PhysiciansReadingStudyIdentificationSequence", "OperatorIdentificationSequence",
    "RequestingPhysicianIdentificationSequence", "ScheduledPerformingPhysicianIdentificationSequence",
    "IntendedRecipientsOfResultsIdentificationSequence", "PersonIdentificationCodeSequence",
    "VerifyingObserverIdentificationCodeSequence", "ContentCreatorIdentificationCodeSequence",
    "HangingProtocolUserIdentificationCodeSequence", "AuthorIdentificationSequence",
    "HumanPerformerCodeSequence", "DocumentingObserverIdentifierCodeSequenceTrial",
})
_INSTITUTION_SEQUENCES = frozenset({"InstitutionCodeSequence"})
_CODE_VALUES = frozenset({"CodeValue", "LongCodeValue", "URNCodeValue"})
_ITEM_INDEX = re.compile(r"\[\d+\]$")
_FREE_TEXT_VRS = frozenset({"ST", "LT", "UT", "LO"})
_MODIFIED_VRS = frozenset({"DA", "DT", "TM"})  # func:shift_date modifies these; other VRs (a UTC offset) stay
WORD = re.compile(r"[^\W_]+")
# What `_collect` reads an identifier from: these VRs, or these keywords in any VR (a time, a
# number, a code string or bytes under no such keyword give it nothing, and are not passed to it).
_COLLECTED_VRS = frozenset({"PN", "DA", "DT", "UI", "AE"}) | _FREE_TEXT_VRS
_COLLECTED_KEYWORDS = _ID_KEYWORDS | _INSTITUTION_KEYWORDS | _DEVICE_KEYWORDS | _CODE_VALUES | {"CodeMeaning"}
LONG = 4  # shorter identifiers would match codes (a true Modality), VR codes and random bytes


@dataclass(frozen=True, slots=True)
class Original:
    values: dict[str, tuple[str, ...]]
    identifiers: dict[str, Kind]  # lower-case text -> kind; LONG characters or more
    encodings: tuple[str, ...]  # Python codecs the values may be written in
    # Shorter identifiers (a two-letter ID component, a short name part) would match codes such
    # as a true Modality: each is searched only in the attributes it came from, as a whole value.
    short: dict[str, tuple[Kind, frozenset[int]]] = field(default_factory=dict)
    # Spellings a person writes in text (pipeline/verify/spellings.py), folded: dates in words,
    # other orders and scripts, names in scripts without spaces; searched in parsed text only.
    spelled: dict[str, Kind] = field(default_factory=dict)


def _encodings(ds: Dataset) -> tuple[str, ...]:
    names = ["utf-8", "latin-1"]
    with contextlib.suppress(Exception):  # an unknown character set: the defaults still apply
        names += convert_encodings(ds.get("SpecificCharacterSet") or "ISO_IR 6")
    return tuple(dict.fromkeys(names))


def _date_spellings(value: str) -> set[str]:
    text = value.strip().replace(".", "")[:8]
    if len(text) != 8 or not text.isdigit() or text == "19000101":
        return set()
    y, m, d = text[:4], text[4:6], text[6:]
    return {text, f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{y}.{m}.{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}.{m}.{y}"}


_CLEANED_KINDS = frozenset({Kind.FREE_TEXT, Kind.DEVICE, Kind.INSTITUTION})  # C's descriptors may keep them
_PRIORITY = {kind: rank for rank, kind in enumerate(Kind)}  # PERSON_NAME strongest, FREE_TEXT weakest


class _Found:
    """The identifiers collected so far: text -> kind (the strongest seen), and the tags of
    the attributes each came from."""

    def __init__(self) -> None:
        self.kinds: dict[str, Kind] = {}
        self.origins: dict[str, set[int]] = {}  # of the short keys only (`LONG`): only they need them
        self.spelled: dict[str, Kind] = {}
        self.dates: set[str] = set()  # DA and DT values, spelled once each at the end
        self.tag = 0

    def add(self, text: str, kind: Kind) -> None:
        key = text.strip().lower()
        if not key:
            return
        if not key.isascii():  # "müller" is also typed "mueller" and "muller" (verify/transliteration.py)
            for spelled in ascii_spellings(key):
                self._add(spelled, kind)
        self._add(key, kind)

    def _add(self, key: str, kind: Kind) -> None:
        known = self.kinds.get(key)
        if known is None or _PRIORITY[kind] < _PRIORITY[known]:
            self.kinds[key] = kind
        if len(key) < LONG:
            origins = self.origins.get(key)
            if origins is None:
                self.origins[key] = {self.tag}
            else:
                origins.add(self.tag)


@functools.lru_cache(maxsize=4096)
def identification_of(path: str) -> Kind | None:
    """PERSON_NAME or INSTITUTION when the innermost identifying sequence on `path` identifies
    a person or an institution (see _PERSON_SEQUENCES), else None."""
    for part in reversed(path.split(".")[:-1]):
        keyword = _ITEM_INDEX.sub("", part)
        if keyword in _PERSON_SEQUENCES:
            return Kind.PERSON_NAME
        if keyword in _INSTITUTION_SEQUENCES:
            return Kind.INSTITUTION
    return None


def _add_name(found: _Found, whole: set[str], group: str, separators: str) -> None:
    """A person's name, whole (never excused by a kept attribute) and by its parts."""
    texts, wholes, spelled = _name_forms(group, separators)
    for text in texts:
        found.add(text, Kind.PERSON_NAME)
    whole.update(wholes)
    found.spelled.update(dict.fromkeys(spelled, Kind.PERSON_NAME))


@functools.lru_cache(maxsize=4096)  # pure; a patient's and a physician's names recur in a study's files
def _name_forms(group: str, separators: str) -> tuple[tuple[str, ...], frozenset[str], frozenset[str]]:
    """What `_add_name` adds for a name: its texts in order, its whole forms, its spellings."""
    parts = [p for p in re.split(separators, group) if p]
    texts = [" ".join(parts)]
    wholes = {group.strip().lower(), " ".join(parts).lower()} if len(parts) > 1 else set()
    words = [w for w in re.split(r"[\^\s,\-]+", group) if w]
    texts += [part for part in words if part.upper() not in _PARTICLES]
    if len(words) > 1:  # run together: SMITHJOHN, JOHNSMITH (middle names too, or left out)
        texts += ["".join(words), "".join(reversed(words)), words[0] + words[1], words[1] + words[0]]
    return tuple(texts), frozenset(wholes), name_spellings(group)


def _collect_code(visit: Visit, keyword: str, identifies: Kind, found: _Found, whole: set[str]) -> None:
    """Codes inside a person's or an institution's identification: the code value is a staff
    or institution ID, the meaning a name (PS3.3 Table 10-1, Person Identification Macro)."""
    for value in visit.strings:
        if keyword in _CODE_VALUES:
            found.add(value, Kind.ID)
            whole.add(value.strip().lower())
        elif identifies is Kind.PERSON_NAME:
            _add_name(found, whole, value, r"[\^\s,]+")
        else:
            found.add(value, Kind.INSTITUTION)


def _collect(visit: Visit, found: _Found, whole: set[str]) -> None:
    """Add the identifying strings of one element to `found`; whole names and IDs also to `whole`."""
    vr, keyword = visit.vr, keyword_of(visit.tag)
    found.tag = visit.tag
    identifies = identification_of(visit.path) if keyword in _CODE_VALUES or keyword == "CodeMeaning" else None
    if identifies is not None:
        _collect_code(visit, keyword, identifies, found, whole)
    for value in visit.strings:
        if vr == "PN":
            found.add(value, Kind.PERSON_NAME)
            for group in value.split("="):
                _add_name(found, whole, group, r"\^")
        elif vr in ("DA", "DT"):
            if value not in found.dates:  # a date seen before in this file: its spellings are in (all LONG)
                for spelling in _date_spellings(value):
                    found.add(spelling, Kind.DATE)
                found.dates.add(value)
        elif vr == "UI":
            if value not in UID_dictionary:
                found.add(value, Kind.UID)
        elif keyword in _ID_KEYWORDS:
            found.add(value, Kind.ID)
            whole.add(value.lower())
        elif keyword in _INSTITUTION_KEYWORDS:
            found.add(value, Kind.INSTITUTION)
            digits = re.sub(r"\D", "", value)
            if len(digits) >= 6 and "TELEPHONE" in keyword.upper():
                found.add(digits, Kind.INSTITUTION)
        elif keyword in _DEVICE_KEYWORDS or vr == "AE":
            found.add(value, Kind.DEVICE)
        if vr in _FREE_TEXT_VRS and visit.expect is not Expect.CLEAN:
            for word in WORD.findall(value):
                if len(word) >= 6:
                    found.add(word, Kind.FREE_TEXT)


# Speed: `_collect` is pure in the element (its tag, VR, strings, whether C cleans it, and the
# identifying sequence around a code), and a study's values recur in its files: what it adds is
# recorded once and added again as recorded. Adding is idempotent and order-free (the strongest
# kind wins, origins are a union), so the replay gives what `_collect` would.
_Record = tuple[tuple[tuple[str, Kind, int, bool], ...], frozenset[str], tuple[tuple[str, Kind], ...], tuple[str, ...]]
_RECORDS: dict[tuple[object, ...], _Record] = {}
_RECORDS_SIZE = 8192
_CLEAN = Expect.CLEAN  # a module constant: `Expect.CLEAN` is a look-up on the Enum class per element
_RECORDED_LENGTH = 256  # characters: longer values (free text) are rarely repeated; collected each time


def _collect_recorded(visit: Visit, found: _Found, whole: set[str]) -> None:
    """`_collect(visit, found, whole)`, from the record of an element seen before."""
    strings = visit.cached  # read by the caller: `visit.strings` without the property's call
    if strings is None:
        strings = visit.strings
    if sum(map(len, strings)) > _RECORDED_LENGTH:
        _collect(visit, found, whole)
        return
    tag, keyword = visit.tag, keyword_of(visit.tag)
    identifies = identification_of(visit.path) if keyword in _CODE_VALUES or keyword == "CodeMeaning" else None
    key = (tag, visit.vr, identifies, visit.expect is _CLEAN, strings)
    record = _RECORDS.get(key)
    if record is None:
        fresh, fresh_whole = _Found(), set[str]()
        _collect(visit, fresh, fresh_whole)
        record = (tuple((text, kind, _PRIORITY[kind], len(text) < LONG) for text, kind in fresh.kinds.items()),
                  frozenset(fresh_whole), tuple(fresh.spelled.items()), tuple(fresh.dates))
        if len(_RECORDS) >= _RECORDS_SIZE:
            _RECORDS.clear()
        _RECORDS[key] = record
    kinds, wholes, spelled, dates = record
    found.tag = tag
    known_kinds, origins = found.kinds, found.origins
    for text, kind, rank, short in kinds:  # `found._add(text, kind)`, written out
        known = known_kinds.get(text)
        if known is None or rank < _PRIORITY[known]:
            known_kinds[text] = kind
        if short:
            origin = origins.get(text)
            if origin is None:
                origins[text] = {tag}
            else:
                origin.add(tag)
    if wholes:
        whole.update(wholes)
    if spelled:
        found.spelled.update(spelled)
    if dates:
        found.dates.update(dates)


@functools.lru_cache(maxsize=8192)  # pure; a study's identifiers recur in its files
def _usable(text: str, kind: Kind) -> bool:
    upper = text.upper()
    if len(upper) < 2 or upper in _SKIPPED or (upper.isdigit() and len(upper) < 6):
        return False
    return not (kind is Kind.FREE_TEXT and upper in _COMMON_WORDS)


@functools.lru_cache(maxsize=8192)  # pure; a study's identifiers recur in its files
def is_loose(text: str, kind: Kind) -> bool:
    """Whether the raw-byte search matches `text` anywhere, glued to other characters or not: long
    enough not to occur by chance, and not a run of digits (which long UIDs are full of). Values
    end next to tag and length bytes, which may read as letters: word edges cannot be relied on."""
    return kind is not Kind.UID and len(text) >= 5 and not text.replace("-", "").replace("/", "").replace(
        ".", "").isdigit()


def _occurs(needle: str, haystack: str, loose: bool) -> bool:
    """`needle` in `haystack` (both lower case); unless `loose`, with no letter or digit glued on."""
    start = haystack.find(needle)
    while start >= 0:
        if loose:
            return True
        end = start + len(needle)
        before = haystack[start - 1] if start else " "
        after = haystack[end] if end < len(haystack) else " "
        if not (before.isalnum() and needle[0].isalnum()) and not (after.isalnum() and needle[-1].isalnum()):
            return True
        start = haystack.find(needle, start + 1)
    return False


def original_identifiers(ds: Dataset, profile: Profile) -> Original:
    values: dict[str, tuple[str, ...]] = {}
    found = _Found()
    whole: set[str] = set()
    kept: list[str] = [_WRITTEN_TEXT]
    cleaned: list[str] = []
    visits = list(walk(ds.file_meta, profile)) if hasattr(ds, "file_meta") else []
    sop_class = stored_text(ds, 0x00080016, "SOPClassUID").strip("\x00 ") or None
    keep, shifted, clean = Expect.KEEP, Expect.SHIFTED, Expect.CLEAN
    for visit in visits + list(walk(ds, profile, sop_class=sop_class)):
        expect, vr = visit.expect, visit.vr
        keeps = expect is keep or (expect is shifted and vr not in _MODIFIED_VRS)
        if keeps and vr in NUMBER_VRS:
            continue  # binary numbers spell no name, ID or date: not decoded, never an excuse
        strings = visit.strings
        values[visit.path] = strings
        if keeps:
            kept.extend(strings)  # what the output legitimately still holds (a UTC offset stays with shifted dates)
        elif strings:  # an empty value identifies no one
            if expect is clean:
                cleaned.extend(strings)
            if vr in _COLLECTED_VRS or keyword_of(visit.tag) in _COLLECTED_KEYWORDS:
                _collect_recorded(visit, found, whole)
    kept_text, cleaned_text = "\n".join(kept).lower(), "\n".join(cleaned).lower()
    identifiers: dict[str, Kind] = {}
    short: dict[str, tuple[Kind, frozenset[int]]] = {}
    for key, kind in found.kinds.items():
        if not _usable(key, kind):
            continue
        # `key in text` first: most keys occur in neither text, and then `_occurs` is not called
        if key in kept_text and key not in whole and _occurs(key, kept_text, is_loose(key, kind)):
            continue  # a kept attribute holds it; a whole name or ID is never excused
        if kind in _CLEANED_KINDS and key in cleaned_text and _occurs(key, cleaned_text, is_loose(key, kind)):
            continue  # C keeps the words of descriptors; names, IDs, dates and UIDs it must remove
        if len(key) < LONG:
            short[key] = (kind, frozenset(found.origins[key]))
        else:
            identifiers[key] = kind
    spelled = {key: kind for key, kind in found.spelled.items() if key}
    for value in found.dates:
        spelled.update(dict.fromkeys(date_spellings(value), Kind.DATE))
    for key, kind in identifiers.items():  # names in Latin letters also full-width (folded text)
        if kind is Kind.PERSON_NAME and key.isascii() and fold(key) == key:
            spelled.setdefault(key, kind)
    return Original(values, identifiers, _encodings(ds), short, spelled)

