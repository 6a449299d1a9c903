"""verify_bytes(output, options, original, output_path) -> findings: an independent check of one
scrubbed file against the profile (PS3.15 Annex E) and, when given, against its original.

Written apart from the scrubber so that a bug in one is caught by the other: this module
imports none of pipeline.scrub, plan, recipe, clean or deid. It reads the recipe text in
`profiles/` with its own small parser, resolves every attribute of the output by the
standard's rules, and checks that what is present is allowed:

| action (recipe)                    | allowed in the output                                     |
|------------------------------------|-----------------------------------------------------------|
| REMOVE (X)                         | absent                                                    |
| BLANK (Z)                          | absent or empty                                           |
| func:dummy, combined codes         | absent, empty, or not the original (a dummy without one)  |
| func:uid (U)                       | absent or `2.25.` UIDs, never the original                |
| func:shift_date                    | valid dates, never the original date                      |
| func:patient_id / patient_name     | never the original                                        |
| KEEP, func:clean                   | anything here; C text is checked by the search below      |
| not named: PN LO SH ST LT UT UC    | absent, unless inside a sequence a C rule cleans          |
|   UR AE; UN; DA DT                 |   (dates: kept with full dates, shifted with modified)    |
| not named: UI                      | a registered UID or a `2.25.` UID, unless Retain UIDs     |
| private (odd group)                | only what Retain Safe Private keeps (creator + element)   |
| 50xx / 60xx groups                 | absent unless Clean Graphics                              |

With the original at hand, every identifying value of the original that the profile does not
keep (names, IDs, dates in common spellings, UIDs, institution, device and address values,
long free-text words) is searched for in the output's raw bytes (preamble, meta, dataset,
padding) and in the output's path. Findings name rules and places, never values.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from enum import Enum, StrEnum
from pathlib import Path

import pydicom
from pydicom._uid_dict import UID_dictionary
from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_has_tag, dictionary_keyword, dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from pipeline.errors import ProfileError
from pipeline.findings import Finding, Severity

PROFILES_ENV = "DEID_PIPELINE_PROFILES"
_DEFAULT_PROFILES = Path(__file__).resolve().parent.parent / "profiles"

# Options in the order their recipes are layered (the option columns of PS3.15 Table E.1-1),
# then the pixel options, which have no header recipe. Value: CID 7050 code (PS3.16).
OPTION_CODES: dict[str, str] = {
    "retain-safe-private": "113111",
    "retain-uids": "113110",
    "retain-device-identity": "113109",
    "retain-institution-identity": "113112",
    "retain-patient-characteristics": "113108",
    "retain-longitudinal-full-dates": "113106",
    "retain-longitudinal-modified-dates": "113107",
    "clean-descriptors": "113105",
    "clean-structured-content": "113104",
    "clean-graphics": "113103",
    "clean-pixel-data": "113101",
    "clean-recognizable-visual-features": "113102",
}
BASIC_PROFILE_CODE = "113100"
_PIXEL_OPTIONS = frozenset({"clean-pixel-data", "clean-recognizable-visual-features"})
_FULL_DATES, _MODIFIED_DATES = "retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"
# CID 7050 meanings: text the pipeline writes itself, never an original's identifier.
_WRITTEN_TEXT = (
    "Basic Application Confidentiality Profile; Clean Pixel Data Option; Clean Recognizable Visual "
    "Features Option; Clean Graphics Option; Clean Structured Content Option; Clean Descriptors Option; "
    "Retain Longitudinal Temporal Information Full Dates Option; Retain Longitudinal Temporal "
    "Information Modified Dates Option; Retain Patient Characteristics Option; Retain Device Identity "
    "Option; Retain UIDs Option; Retain Safe Private Option; Retain Institution Identity Option; "
    "deid-pipeline PS3.15 basic profile ANONYMIZED"
)


class VerifyRule(StrEnum):
    """Why verify reports a finding."""

    ORIGINAL_VALUE_IN_BYTES = "original-value-in-bytes"
    ORIGINAL_VALUE_IN_ATTRIBUTE = "original-value-in-attribute"  # found in a parsed value: names the attribute
    VALUE_IN_PATH = "value-in-path"
    ATTRIBUTE_NOT_ALLOWED = "attribute-not-allowed"
    PRIVATE_NOT_ALLOWED = "private-not-allowed"
    VALUE_NOT_BLANK = "value-not-blank"
    VALUE_NOT_REPLACED = "value-not-replaced"
    VALUE_NOT_DUMMY = "value-not-dummy"
    LITERAL_MISMATCH = "literal-mismatch"
    UID_NOT_REMAPPED = "uid-not-remapped"
    DATE_NOT_SHIFTED = "date-not-shifted"
    DATE_INVALID = "date-invalid"
    TRAILING_PADDING = "trailing-padding-present"
    IDENTITY_REMOVED_MISSING = "identity-removed-missing"
    METHOD_CODES_MISMATCH = "method-codes-mismatch"
    TEMPORAL_FLAG_MISMATCH = "temporal-flag-mismatch"
    META_NOT_ALLOWED = "meta-not-allowed"
    META_UID_MISMATCH = "meta-uid-mismatch"
    PREAMBLE_NOT_ZERO = "preamble-not-zero"
    OUTPUT_UNREADABLE = "output-unreadable"
    ORIGINAL_UNREADABLE = "original-unreadable"


class _Expect(Enum):
    """What the profile allows for one attribute (PS3.15 Table E.1-1a, as verify reads it)."""

    ABSENT = "X"
    EMPTY = "Z"
    REPLACED = "D"  # func:dummy and every combined code
    UID = "U"
    KEEP = "K"
    CLEAN = "C"
    SHIFTED = "shift"
    PSEUDONYM = "pseudonym"
    LITERAL = "literal"
    STANDARD_OR_NEW_UID = "registered-or-2.25"  # UI that no recipe names


class _Kind(StrEnum):
    """What sort of identifier of the original was seen (a finding's detail)."""

    PERSON_NAME = "person-name"
    ID = "identifier"
    DATE = "date"
    UID = "uid"
    INSTITUTION = "institution-or-address"
    DEVICE = "device"
    FREE_TEXT = "free-text"


_FUNCTIONS: dict[str, _Expect] = {
    "dummy": _Expect.REPLACED, "blank_or_dummy": _Expect.REPLACED, "remove_or_blank": _Expect.REPLACED,
    "remove_or_dummy": _Expect.REPLACED, "remove_blank_or_dummy": _Expect.REPLACED,
    "remove_blank_or_uids": _Expect.REPLACED, "uid": _Expect.UID, "clean": _Expect.CLEAN,
    "shift_date": _Expect.SHIFTED, "patient_id": _Expect.PSEUDONYM, "patient_name": _Expect.PSEUDONYM,
}
TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "UR", "AE"})
_STRING_VRS = TEXT_VRS | {"AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UN"}
_SERIOUS_VRS = TEXT_VRS | {"DA", "DT", "UN", "SQ", "OB", "OW", "UI"}
_BULK_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010, 0x54001010, 0x56000020})
_ICON_IMAGE_SEQUENCE, _TRAILING_PADDING = 0x00880200, 0xFFFCFFFC
_META_ALLOWED = frozenset({0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013})
_DUMMY_MARKERS = ("ANONYM", "REMOVED", "DUMMY", "REDACTED", "UNKNOWN")
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
_FREE_TEXT_VRS = frozenset({"ST", "LT", "UT", "LO"})
_UID_2_25 = re.compile(r"2\.25\.(?:0|[1-9][0-9]{0,38})")
_WORD = re.compile(r"[^\W_]+")


# --- the profile, read from the recipe text ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    expect: _Expect
    order: int
    literal: str | None = None


@dataclass(frozen=True, slots=True)
class _Profile:
    """The recipes of one option set: rules by tag, by (group, creator, element byte), by pattern."""

    options: tuple[str, ...]
    exact: dict[int, _Rule]
    private: dict[tuple[int, str, int], _Rule]
    patterns: tuple[tuple[re.Pattern[str], _Rule], ...]
    resolved: dict[tuple[int, str | None], _Rule | None] = field(default_factory=dict)

    def rule_for(self, tag: int, creator: str | None) -> _Rule | None:
        """The rule from the latest recipe line that names `tag` (layer order, then line order)."""
        key = (tag, creator)
        if key not in self.resolved:
            self.resolved[key] = self._resolve(tag, creator)
        return self.resolved[key]

    def _resolve(self, tag: int, creator: str | None) -> _Rule | None:
        best = self.exact.get(tag)
        if creator is not None:
            found = self.private.get((tag >> 16, creator, tag & 0xFF))
            if found is not None and (best is None or found.order > best.order):
                best = found
        text = f"({tag >> 16:04x},{tag & 0xFFFF:04x})"
        for pattern, rule in self.patterns:
            if (best is None or rule.order > best.order) and pattern.search(text):
                best = rule
        return best

    def has(self, option: str) -> bool:
        return option in self.options


_LINE = re.compile(r"(KEEP|REMOVE|BLANK|REPLACE|ADD)\s+(\([0-9A-Fa-f]{4},\"[^\"]+\",[0-9A-Fa-f]{2}\)|\S+)(?:\s+(.+))?")
_TAG_FIELD = re.compile(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)")
_PRIVATE_FIELD = re.compile(r"\(([0-9A-Fa-f]{4}),\"([^\"]+)\",([0-9A-Fa-f]{2})\)")


def normalise_options(options: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The options named, deduplicated and in layer order; unknown names are a `ProfileError`."""
    chosen = {o.strip().lower() for o in options}
    unknown = sorted(chosen - OPTION_CODES.keys())
    if unknown:
        raise ProfileError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTION_CODES)}")
    if {_FULL_DATES, _MODIFIED_DATES} <= chosen:
        raise ProfileError(f"options contradict each other: {_FULL_DATES} and {_MODIFIED_DATES}")
    return tuple(o for o in OPTION_CODES if o in chosen)


def load_profile(options: tuple[str, ...]) -> _Profile:
    """The profile for `options` (any order), read from $DEID_PIPELINE_PROFILES or profiles/."""
    directory = os.environ.get(PROFILES_ENV) or str(_DEFAULT_PROFILES)
    return _load_profile(normalise_options(options), directory)


@functools.lru_cache(maxsize=64)
def _load_profile(options: tuple[str, ...], directory: str) -> _Profile:
    names = ["safe_text.deid", "basic.deid"] + [o.replace("-", "_") + ".deid" for o in options
                                                if o not in _PIXEL_OPTIONS]
    exact: dict[int, _Rule] = {}
    private: dict[tuple[int, str, int], _Rule] = {}
    patterns: dict[str, _Rule] = {}
    order = 0
    for name in names:
        path = Path(directory) / name
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            raise ProfileError(f"recipe not found or unreadable: {name}") from None
        section = ""
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#") or line.startswith("FORMAT "):
                continue
            if line.startswith("%"):
                section = line.split()[0]
                continue
            if section != "%header":
                continue  # pixel filters and labels are not header rules
            order += 1
            _add_rule(line, f"{name}:{number}", order, exact, private, patterns)
    compiled = tuple((re.compile(p, re.IGNORECASE), r) for p, r in patterns.items())
    return _Profile(options=options, exact=exact, private=private, patterns=compiled)


def _add_rule(line: str, where: str, order: int, exact: dict[int, _Rule],
              private: dict[tuple[int, str, int], _Rule], patterns: dict[str, _Rule]) -> None:
    match = _LINE.fullmatch(line)
    if match is None:
        raise ProfileError(f"{where}: not a recipe line verify understands")
    verb, target, value = match.group(1), match.group(2), match.group(3)
    if verb in ("KEEP", "REMOVE", "BLANK"):
        if value is not None:
            raise ProfileError(f"{where}: {verb} takes no value")
        rule = _Rule({"KEEP": _Expect.KEEP, "REMOVE": _Expect.ABSENT, "BLANK": _Expect.EMPTY}[verb], order)
    elif value is None:
        raise ProfileError(f"{where}: {verb} needs a value")
    elif value.startswith("func:"):
        if verb != "REPLACE" or value[5:] not in _FUNCTIONS:
            raise ProfileError(f"{where}: unknown function {value[5:]!r}")
        rule = _Rule(_FUNCTIONS[value[5:]], order)
    else:
        rule = _Rule(_Expect.LITERAL, order, value.strip().strip('"'))
    if target.startswith("contains:"):
        patterns.pop(target[9:], None)  # re-inserted last: a later line wins
        patterns[target[9:]] = rule
    elif (tag_match := _TAG_FIELD.fullmatch(target)) is not None:
        exact[int(tag_match.group(1) + tag_match.group(2), 16)] = rule
    elif (private_match := _PRIVATE_FIELD.fullmatch(target)) is not None:
        key = (int(private_match.group(1), 16), private_match.group(2), int(private_match.group(3), 16))
        private[key] = rule
    else:
        tag = tag_for_keyword(target)
        if tag is None:
            raise ProfileError(f"{where}: unknown keyword {target!r}")
        exact[int(tag)] = rule


# --- walking a dataset with the profile -----------------------------------------------------


# Speed: pydicom decodes an element into a value object the first time it is read, which cost
# more than every check here. The walk decides on each element's tag and VR while it is still
# raw, and reads a value only when a check or the search needs it; ASCII text is split and
# stripped here exactly as pydicom would give it (anything else goes through pydicom).
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT"})
_SINGLE_VALUED = frozenset({"ST", "LT", "UT", "UR"})
_FAST_TEXT_VRS = (_STRING_VRS - {"UN"}) | {"AE", "UC"}


@dataclass(slots=True)
class _Visit:
    """One element at one place, with what the profile allows for it; its value is read on demand."""

    path: str
    tag: int
    vr: str
    expect: _Expect
    private: bool
    parent: Dataset
    stored: DataElement | RawDataElement  # as the dataset holds it: raw until something decodes it
    cached: tuple[str, ...] | None = None

    @property
    def elem(self) -> DataElement:
        return self.parent[self.tag]

    @property
    def strings(self) -> tuple[str, ...]:
        if self.cached is None:
            self.cached = _strings_of(self.parent, self.tag, self.vr, self.stored)
        return self.cached


@functools.lru_cache(maxsize=8192)
def _keyword(tag: int) -> str:
    """The dictionary keyword of `tag`, or "" (cached: a dictionary look-up per element adds up)."""
    return str(dictionary_keyword(tag)) if dictionary_has_tag(tag) else ""  # as DataElement.keyword


@functools.lru_cache(maxsize=8192)
def _tag_name(tag: int) -> str:
    return _keyword(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@functools.lru_cache(maxsize=8192)
def _dictionary_vr(tag: int) -> str | None:
    """The VR pydicom gives a public attribute read without one (implicit VR); None when it
    has none or several (those are left to pydicom)."""
    if tag >> 16 & 1 or not dictionary_has_tag(tag):
        return None
    vr = str(dictionary_VR(tag))
    return None if " or " in vr else vr


def _vr(ds: Dataset, tag: int, raw: DataElement | RawDataElement) -> str:
    """The element's VR as pydicom resolves it, without decoding the value where it can."""
    if isinstance(raw, RawDataElement):
        vr = raw.VR if raw.VR not in (None, "UN") else _dictionary_vr(tag)
        if vr is not None:
            return str(vr)
        return str(ds[tag].VR)
    return str(raw.VR)


def _default(vr: str, profile: _Profile, in_clean: bool) -> _Expect:
    """The expectation for an attribute that no recipe names."""
    if vr == "SQ":
        return _Expect.KEEP
    if vr in TEXT_VRS:
        return _Expect.CLEAN if in_clean else _Expect.ABSENT
    if vr in ("DA", "DT"):
        if profile.has(_FULL_DATES):
            return _Expect.KEEP
        return _Expect.SHIFTED if profile.has(_MODIFIED_DATES) else _Expect.ABSENT
    if vr == "UN":
        return _Expect.ABSENT
    if vr == "UI":
        return _Expect.KEEP if profile.has("retain-uids") else _Expect.STANDARD_OR_NEW_UID
    return _Expect.KEEP


def _is_overlay_data(tag: int) -> bool:
    return (tag >> 16) & 0xFF01 == 0x6000 and tag & 0xFFFF == 0x3000


def _walk(ds: Dataset, profile: _Profile, prefix: str = "", in_clean: bool = False, removed: bool = False,
          masks: list[tuple[int, int]] | None = None) -> Iterator[_Visit]:
    """Every element of `ds` at every depth, with what the profile allows for it. With `masks`
    (the output), sequences that must be absent are not entered and the byte ranges of bulk
    values are recorded; without (the original), everything is entered and what lies in a
    removed sequence counts as removed."""
    elements = sorted((int(tag), stored) for tag, stored in ds.items())
    creators: dict[tuple[int, int], str] = {}
    for tag, stored in elements:
        if tag >> 16 & 1 and 0x10 <= tag & 0xFFFF <= 0xFF:
            creators[(tag >> 16, tag & 0xFFFF)] = str(ds[tag].value or "").strip()
        elif masks is not None and (tag in _BULK_TAGS or _is_overlay_data(tag)):
            tell = getattr(stored, "value_tell", None)
            if isinstance(tell, int) and stored.value is not None:
                masks.append((tell, tell + len(stored.value)))
    kept_blocks: set[tuple[int, int]] = set()
    creator_visits: list[_Visit] = []
    for tag, stored in elements:
        path = prefix + _tag_name(tag)
        group, element = tag >> 16, tag & 0xFFFF
        is_private = group % 2 == 1
        if is_private and 0x10 <= element <= 0xFF:
            creator_visits.append(_Visit(path, tag, "LO", _Expect.ABSENT, True, ds, stored))
            continue
        vr = _vr(ds, tag, stored)
        graphics = not is_private and (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E)
        if is_private:
            creator = creators.get((group, element >> 8)) if element > 0xFF else None
            rule = profile.rule_for(tag, creator) if creator is not None else None
            expect = _Expect.KEEP if rule is not None and rule.expect is _Expect.KEEP else _Expect.ABSENT
            if expect is _Expect.KEEP:
                kept_blocks.add((group, element >> 8))
        elif tag == _ICON_IMAGE_SEQUENCE or (graphics and not profile.has("clean-graphics")):
            expect = _Expect.ABSENT
        else:
            rule = profile.rule_for(tag, None)
            expect = rule.expect if rule is not None else _default(vr, profile, in_clean)
        if removed:
            expect = _Expect.ABSENT
        yield _Visit(path, tag, vr, expect, is_private, ds, stored)
        if vr == "SQ" and (masks is None or expect not in (_Expect.ABSENT, _Expect.EMPTY)):
            inner_removed = removed or expect in (_Expect.ABSENT, _Expect.EMPTY)
            inner_clean = in_clean or expect is _Expect.CLEAN
            for index, item in enumerate(ds[tag].value or ()):
                yield from _walk(item, profile, f"{path}[{index}].", inner_clean, inner_removed, masks)
    for visit in creator_visits:
        keep = (visit.tag >> 16, visit.tag & 0xFFFF) in kept_blocks and not removed
        visit.expect = _Expect.KEEP if keep else _Expect.ABSENT
        visit.vr = str(ds[visit.tag].VR)
        yield visit


def _strings_of(ds: Dataset, tag: int, vr: str, stored: DataElement | RawDataElement) -> tuple[str, ...]:
    """`_strings` of the element `tag` of `ds`, reading plain ASCII text from the raw bytes."""
    if vr == "SQ" or tag in _BULK_TAGS or _is_overlay_data(tag):
        return ()
    if isinstance(stored, RawDataElement) and vr in _FAST_TEXT_VRS:
        value = stored.value
        if value is None:
            return ()
        if isinstance(value, bytes) and value.isascii() and b"\x1b" not in value:
            text = value.decode("ascii")
            out = tuple(part.strip(" \x00") for part in ([text] if vr in _SINGLE_VALUED else text.split("\\")))
            return out if any(out) else ()
    return _strings(ds[tag])


def _strings(elem: DataElement) -> tuple[str, ...]:
    """The element's values as stripped strings (bytes as latin-1); () for sequences and bulk."""
    value = elem.value
    if elem.VR == "SQ" or value is None or int(elem.tag) in _BULK_TAGS or _is_overlay_data(int(elem.tag)):
        return ()
    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        text = item.decode("latin-1") if isinstance(item, bytes) else str(item)
        out.append(text.strip(" \x00"))
    return tuple(out) if any(out) else ()


def _read(data: bytes) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            try:
                return pydicom.dcmread(io.BytesIO(data))
            except InvalidDicomError:
                return pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception:
            return None


# --- the original's identifiers -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Original:
    values: dict[str, tuple[str, ...]]
    identifiers: dict[str, _Kind]  # lower-case text -> kind
    encodings: tuple[str, ...]  # Python codecs the values may be written in


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


_PRIORITY = {kind: rank for rank, kind in enumerate(_Kind)}  # PERSON_NAME strongest, FREE_TEXT weakest


def _add(found: dict[str, _Kind], text: str, kind: _Kind) -> None:
    key = text.strip().lower()
    if key and (key not in found or _PRIORITY[kind] < _PRIORITY[found[key]]):
        found[key] = kind


def _collect(visit: _Visit, found: dict[str, _Kind], whole: set[str]) -> None:
    """Add the identifying strings of one element to `found`; whole names and IDs also to `whole`."""
    vr, keyword = visit.vr, _keyword(visit.tag)
    for value in visit.strings:
        if vr == "PN":
            _add(found, value, _Kind.PERSON_NAME)
            for group in value.split("="):
                parts = [p for p in group.split("^") if p]
                _add(found, " ".join(parts), _Kind.PERSON_NAME)
                if len(parts) > 1:
                    whole.update({group.strip().lower(), " ".join(parts).lower()})
                for part in re.split(r"[\^\s,\-]+", group):
                    if part.upper() not in _PARTICLES:
                        _add(found, part, _Kind.PERSON_NAME)
        elif vr in ("DA", "DT"):
            for spelling in _date_spellings(value):
                _add(found, spelling, _Kind.DATE)
        elif vr == "UI":
            if value not in UID_dictionary:
                _add(found, value, _Kind.UID)
        elif keyword in _ID_KEYWORDS:
            _add(found, value, _Kind.ID)
            whole.add(value.lower())
        elif keyword in _INSTITUTION_KEYWORDS:
            _add(found, value, _Kind.INSTITUTION)
            digits = re.sub(r"\D", "", value)
            if len(digits) >= 6 and "TELEPHONE" in keyword.upper():
                _add(found, digits, _Kind.INSTITUTION)
        elif keyword in _DEVICE_KEYWORDS or vr == "AE":
            _add(found, value, _Kind.DEVICE)
        if vr in _FREE_TEXT_VRS and visit.expect is not _Expect.CLEAN:
            for word in _WORD.findall(value):
                if len(word) >= 6:
                    _add(found, word, _Kind.FREE_TEXT)


def _usable(text: str, kind: _Kind) -> bool:
    upper = text.upper()
    if len(upper) < 2 or upper in _SKIPPED or (upper.isdigit() and len(upper) < 6):
        return False
    return not (kind is _Kind.FREE_TEXT and upper in _COMMON_WORDS)


def _is_loose(text: str, kind: _Kind) -> bool:
    """Whether the raw-byte search matches `text` anywhere, glued to other characters or not: long
    enough not to occur by chance, and not a run of digits (which long UIDs are full of). Values
    end next to tag and length bytes, which may read as letters: word edges cannot be relied on."""
    return kind is not _Kind.UID and len(text) >= 5 and not text.replace("-", "").replace("/", "").replace(
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


def _original(ds: Dataset, profile: _Profile) -> _Original:
    values: dict[str, tuple[str, ...]] = {}
    found: dict[str, _Kind] = {}
    whole: set[str] = set()
    kept: list[str] = [_WRITTEN_TEXT]
    cleaned: list[str] = []
    visits = list(_walk(ds.file_meta, profile)) if hasattr(ds, "file_meta") else []
    for visit in visits + list(_walk(ds, profile)):
        keeps = visit.expect is _Expect.KEEP or (visit.expect is _Expect.SHIFTED and visit.vr not in ("DA", "DT"))
        if keeps and visit.vr in _NUMBER_VRS:
            continue  # binary numbers spell no name, ID or date: not decoded, never an excuse
        strings = visit.strings
        values[visit.path] = strings
        if keeps:
            kept.extend(strings)  # what the output legitimately still holds (times stay with shifted dates)
        else:
            if visit.expect is _Expect.CLEAN:
                cleaned.extend(strings)
            _collect(visit, found, whole)
    kept_text, cleaned_text = "\n".join(kept).lower(), "\n".join(cleaned).lower()
    identifiers: dict[str, _Kind] = {}
    for key, kind in found.items():
        loose = _is_loose(key, kind)
        if not _usable(key, kind) or (key not in whole and _occurs(key, kept_text, loose)):
            continue  # a kept attribute holds it; a whole name or ID is never excused
        if kind in (_Kind.FREE_TEXT, _Kind.DEVICE, _Kind.INSTITUTION) and _occurs(key, cleaned_text, loose):
            continue  # C keeps the words of descriptors; names, IDs, dates and UIDs it must remove
        identifiers[key] = kind
    return _Original(values, identifiers, _encodings(ds))


# --- the checks ------------------------------------------------------------------------------


def _looks_dummy(vr: str, value: str) -> bool:
    upper = value.strip().upper()
    if not upper:
        return True
    if vr == "UI":
        return _UID_2_25.fullmatch(upper) is not None
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


def _check(visit: _Visit, original: _Original | None) -> list[Finding]:
    vr, expect, path = visit.vr, visit.expect, visit.path
    serious = Severity.HIGH if vr in _SERIOUS_VRS else Severity.MEDIUM
    if expect is _Expect.ABSENT:
        rule = VerifyRule.PRIVATE_NOT_ALLOWED if visit.private else VerifyRule.ATTRIBUTE_NOT_ALLOWED
        return [Finding(rule, path, Severity.HIGH if visit.private else serious)]
    if vr == "SQ":
        if expect is _Expect.EMPTY and len(visit.elem.value or ()) > 0:
            return [Finding(VerifyRule.VALUE_NOT_BLANK, path, Severity.HIGH)]
        return []
    if expect in (_Expect.KEEP, _Expect.CLEAN):
        return []  # any value: C text is checked by the search for the original's values
    values = visit.strings
    before = original.values.get(path) if original is not None else None
    if expect is _Expect.EMPTY and values:
        return [Finding(VerifyRule.VALUE_NOT_BLANK, path, serious)]
    if expect is _Expect.REPLACED and values:
        if before and values == before and not all(_looks_dummy(vr, v) for v in values):
            return [Finding(VerifyRule.VALUE_NOT_REPLACED, path, Severity.HIGH)]
        if not before and not all(_looks_dummy(vr, v) for v in values):
            return [Finding(VerifyRule.VALUE_NOT_DUMMY, path, Severity.MEDIUM)]
    if expect is _Expect.UID:
        remapped = all(_UID_2_25.fullmatch(v) is not None for v in values if v)
        if not remapped or (before and set(values) & set(before)):
            return [Finding(VerifyRule.UID_NOT_REMAPPED, path, Severity.HIGH)]
    if expect is _Expect.STANDARD_OR_NEW_UID:
        for value in values:
            new = _UID_2_25.fullmatch(value) is not None and not (before and value in before)
            if value and not new and value not in UID_dictionary:
                return [Finding(VerifyRule.UID_NOT_REMAPPED, path, Severity.HIGH)]
    if expect is _Expect.SHIFTED and vr in ("DA", "DT"):
        if not all(_valid_date(v) for v in values if v):
            return [Finding(VerifyRule.DATE_INVALID, path, Severity.MEDIUM)]
        old = {v[:8] for v in before or ()}
        if any(v[:8] in old for v in values if v):
            return [Finding(VerifyRule.DATE_NOT_SHIFTED, path, Severity.HIGH)]
    if expect is _Expect.PSEUDONYM and before and values and values == before:
        return [Finding(VerifyRule.VALUE_NOT_REPLACED, path, Severity.HIGH)]
    return []


def _check_literal(visit: _Visit, profile: _Profile) -> list[Finding]:
    rule = profile.rule_for(visit.tag, None)
    literal = rule.literal if rule is not None else None
    if visit.vr != "SQ" and "\\".join(visit.strings) != (literal or ""):
        return [Finding(VerifyRule.LITERAL_MISMATCH, visit.path, Severity.LOW)]
    return []


def _check_record(ds: Dataset, profile: _Profile) -> list[Finding]:
    """PS3.15 E.1.1: Patient Identity Removed, the method codes, the temporal flag."""
    findings: list[Finding] = []
    if str(ds.get("PatientIdentityRemoved", "")).strip().upper() != "YES":
        findings.append(Finding(VerifyRule.IDENTITY_REMOVED_MISSING, "PatientIdentityRemoved", Severity.MEDIUM))
    expected = sorted([BASIC_PROFILE_CODE] + [OPTION_CODES[o] for o in profile.options])
    items = ds.get("DeidentificationMethodCodeSequence") or []
    codes = sorted(str(item.get("CodeValue", "")) for item in items)
    schemes = {str(item.get("CodingSchemeDesignator", "")) for item in items}
    if codes != expected or (items and schemes != {"DCM"}):
        findings.append(Finding(VerifyRule.METHOD_CODES_MISMATCH, "DeidentificationMethodCodeSequence", Severity.LOW))
    flag = str(ds.get("LongitudinalTemporalInformationModified", "") or "").strip().upper()
    if profile.has(_FULL_DATES):
        allowed = {"UNMODIFIED"}
    elif profile.has(_MODIFIED_DATES):
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
    findings = [Finding(VerifyRule.META_NOT_ALLOWED, _tag_name(int(tag)),
                        Severity.HIGH if meta[tag].VR in TEXT_VRS else Severity.MEDIUM)
                for tag in meta.keys() if int(tag) not in _META_ALLOWED]
    stored = str(meta.get("MediaStorageSOPInstanceUID", "") or "").strip("\x00 ")
    if stored != str(ds.get("SOPInstanceUID", "") or "").strip("\x00 "):
        findings.append(Finding(VerifyRule.META_UID_MISMATCH, "MediaStorageSOPInstanceUID", Severity.MEDIUM))
    return findings


# --- the search for the original's values ---------------------------------------------------

_LONG = 4  # shorter identifiers would match VR codes and random bytes: searched in values only


def _branch(text: str, kind: _Kind) -> str:
    body = re.escape(text)
    if kind is _Kind.UID:
        return rf"(?<![0-9A-Za-z.]){body}(?![0-9]|\.[0-9])"
    before = r"(?<![0-9A-Za-z])" if text[0].isalnum() else ""
    after = r"(?![0-9A-Za-z])" if text[-1].isalnum() else ""
    return before + body + after


@functools.lru_cache(maxsize=256)
def _pattern(identifiers: tuple[tuple[str, _Kind], ...]) -> re.Pattern[str] | None:
    if not identifiers:
        return None
    ordered = sorted(identifiers, key=lambda pair: -len(pair[0]))
    return re.compile("|".join(_branch(t, k) for t, k in ordered), re.IGNORECASE)


def _branch_bytes(text: str, kind: _Kind, encoding: str) -> bytes | None:
    try:
        body = re.escape(text.encode(encoding))
    except (UnicodeError, LookupError):
        return None
    if kind is _Kind.UID:
        return rb"(?<![0-9.])" + body + rb"(?![0-9]|\.[0-9])"
    if _is_loose(text, kind):
        return body
    edge = rb"0-9" if text[0].isdigit() and text[-1].isdigit() else rb"0-9A-Za-z"
    before = rb"(?<![" + edge + rb"])" if text[0].isalnum() else b""
    after = rb"(?![" + edge + rb"])" if text[-1].isalnum() else b""
    return before + body + after


@functools.lru_cache(maxsize=256)
def _bytes_pattern(identifiers: tuple[tuple[str, _Kind], ...], encodings: tuple[str, ...]) -> re.Pattern[bytes] | None:
    """One alternation over every identifier in every encoding, longest first."""
    branches: dict[bytes, int] = {}
    for text, kind in identifiers:
        for encoding in encodings:
            branch = _branch_bytes(text, kind, encoding)
            if branch is not None:
                branches[branch] = len(text)
    if not branches:
        return None
    ordered: list[bytes] = sorted(branches, key=branches.__getitem__, reverse=True)
    return re.compile(b"|".join(ordered), re.IGNORECASE)


def _decode(found: bytes, encodings: tuple[str, ...]) -> str:
    for encoding in encodings:
        try:
            return found.decode(encoding).lower()
        except (UnicodeError, LookupError):
            continue
    return ""


# Speed: the identifiers differ in every file (its UIDs), so the alternations above are compiled
# afresh for each file, which cost more than everything else verify does. A plain substring
# test runs first: each branch of the pattern matches only where its literal body occurs, in
# any ASCII case, and ASCII case is all that IGNORECASE folds in bytes (and all that
# str.lower() changes in ASCII text). Only when some body occurs is the pattern compiled and
# run, so the findings are exactly what the pattern alone gives.


def _bodies_bytes(identifiers: tuple[tuple[str, _Kind], ...], encodings: tuple[str, ...]) -> set[bytes]:
    bodies: set[bytes] = set()
    for text, _kind in identifiers:
        for encoding in encodings:
            try:
                bodies.add(text.encode(encoding).lower())
            except (UnicodeError, LookupError):
                continue
    return bodies


def _segments(data: bytes, masks: list[tuple[int, int]]) -> list[bytes]:
    """The parts of `data` outside the masked (bulk) ranges, as the search below visits them."""
    parts: list[bytes] = []
    start = 0
    for mask_start, mask_end in [*sorted(masks), (len(data), len(data))]:
        if mask_start > start:
            parts.append(data[start:mask_start])
        start = max(start, mask_end)
    return parts


def _may_match_bytes(data: bytes, identifiers: tuple[tuple[str, _Kind], ...], encodings: tuple[str, ...],
                     masks: list[tuple[int, int]]) -> bool:
    bodies = _bodies_bytes(identifiers, encodings)
    if not bodies:
        return False
    if b"" in bodies:
        return True
    # Joining the segments can only add occurrences (across a joint); an extra one costs the
    # exact search, never a missed finding.
    haystack = b"\x00".join(_segments(data, masks)).lower()
    return any(body in haystack for body in bodies)


def _may_match_text(texts: list[str], identifiers: dict[str, _Kind]) -> bool:
    """False only when no identifier can match in any of `texts` (see above); with text or
    identifiers outside ASCII, where IGNORECASE folds more than lower(), always True."""
    if not identifiers:
        return False
    haystack = "\n".join(texts)
    if not haystack.isascii() or not all(text.isascii() and text for text in identifiers):
        return True
    haystack = haystack.lower()
    return any(text in haystack for text in identifiers)


def _search_bytes(data: bytes, original: _Original, masks: list[tuple[int, int]]) -> list[Finding]:
    identifiers = tuple(sorted((t, k) for t, k in original.identifiers.items() if len(t) >= _LONG))
    if not _may_match_bytes(data, identifiers, original.encodings, masks):
        return []
    pattern = _bytes_pattern(identifiers, original.encodings)
    if pattern is None:
        return []
    findings: list[Finding] = []
    start = 0
    for mask_start, mask_end in [*sorted(masks), (len(data), len(data))]:
        for match in pattern.finditer(data, start, max(start, mask_start)):
            kind = original.identifiers.get(_decode(match.group(), original.encodings), _Kind.FREE_TEXT)
            severity = Severity.MEDIUM if kind is _Kind.FREE_TEXT else Severity.HIGH
            findings.append(Finding(VerifyRule.ORIGINAL_VALUE_IN_BYTES, f"bytes@{match.start()}", severity,
                                    detail=kind.value))
        start = max(start, mask_end)
    return findings


def _search_values(visits: list[_Visit], original: _Original) -> list[Finding]:
    """Every identifier, whatever its length, in every parsed value (value edges are word edges)."""
    strings = [(visit, visit.strings) for visit in visits if visit.vr in _STRING_VRS]
    if not _may_match_text([value for _, values in strings for value in values], original.identifiers):
        return []
    pattern = _pattern(tuple(sorted(original.identifiers.items())))
    if pattern is None:
        return []
    findings: list[Finding] = []
    for visit, values in strings:
        for value in values:
            match = pattern.search(value)
            if match is not None:
                kind = original.identifiers.get(match.group().lower(), _Kind.FREE_TEXT)
                severity = Severity.MEDIUM if kind is _Kind.FREE_TEXT else Severity.HIGH
                findings.append(Finding(VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, visit.path, severity,
                                        detail=kind.value))
                break
    return findings


def _search_path(output_path: str, original: _Original) -> list[Finding]:
    if not _may_match_text([output_path], original.identifiers):
        return []
    pattern = _pattern(tuple(sorted(original.identifiers.items())))
    match = pattern.search(output_path) if pattern is not None else None
    if match is None:
        return []
    kind = original.identifiers.get(match.group().lower(), _Kind.FREE_TEXT)
    return [Finding(VerifyRule.VALUE_IN_PATH, "path", Severity.HIGH, detail=kind.value)]


# --- the entry point -------------------------------------------------------------------------


def verify_bytes(
    output: bytes,
    options: tuple[str, ...],
    original: bytes | None = None,
    output_path: str | None = None,
) -> list[Finding]:
    """Check one scrubbed DICOM file; return the findings (empty when it passes).

    Parameters
    ----------
    output
        The scrubbed file's bytes, exactly as written.
    options
        The PS3.15 options applied (kebab case); unknown names raise `ProfileError`.
    original
        The input file's bytes: enables the search for its identifying values.
    output_path
        Where the output is (best relative to the release root): searched for the same values.
    """
    profile = load_profile(tuple(options))
    findings: list[Finding] = []
    if len(output) < 132 or output[128:132] != b"DICM" or any(output[:128]):
        findings.append(Finding(VerifyRule.PREAMBLE_NOT_ZERO, "preamble", Severity.HIGH))
    before: _Original | None = None
    if original is not None:
        try:
            original_ds = _read(original)
            before = _original(original_ds, profile) if original_ds is not None else None
        except Exception:  # without its identifiers the output cannot be cleared: say so
            before = None
        if before is None:
            findings.append(Finding(VerifyRule.ORIGINAL_UNREADABLE, "original", Severity.MEDIUM))
    masks: list[tuple[int, int]] = []
    visits: list[_Visit] = []
    ds = _read(output)
    try:
        if ds is None:
            raise ValueError("unreadable")
        meta = getattr(ds, "file_meta", None)
        visits = (list(_walk(meta, profile, masks=masks)) if meta is not None else []) + list(
            _walk(ds, profile, masks=masks))
        findings += _check_meta(ds)
        for visit in visits:
            if visit.tag == _TRAILING_PADDING:
                findings.append(Finding(VerifyRule.TRAILING_PADDING, visit.path, Severity.HIGH))
            elif visit.expect is _Expect.LITERAL:
                findings += _check_literal(visit, profile)
            else:
                findings += _check(visit, before)
        findings += _check_record(ds, profile)
    except Exception:  # a broken output is a finding, never a crash of the run
        findings.append(Finding(VerifyRule.OUTPUT_UNREADABLE, "file", Severity.HIGH))
    if before is not None:
        findings += _search_bytes(output, before, masks)
        findings += _search_values(visits, before)
        if output_path:
            findings += _search_path(output_path, before)
    return findings


__all__ = ["OPTION_CODES", "VerifyRule", "load_profile", "normalise_options", "verify_bytes"]
