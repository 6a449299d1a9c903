"""scan_tree(root) / scan_instances(stream) -> ScanReport: look for identifying data in a DICOM
release someone else published, without its originals (DESIGN.md, "Verification and validation").

Every file under `root`, or of the stream of (key, bytes), is read and judged by what its values look like and by
what the profile it declares allows:

| rule                      | what                                                    | severity            |
|---------------------------|---------------------------------------------------------|---------------------|
| person-name               | a PN value that is not a dummy                          | high                |
| name-in-text              | "Given Family", "Family^Given", "Dr Name" in free text  | medium; low in a C  |
|                           | (scan/meaning.py: C attributes of E.1-1, LT/ST/UT)      | attribute the file  |
|                           |                                                         | declares cleaned    |
| date-looks-real           | a DA/DT value other than empty, 19000101 or a 1 January | by the temporal     |
|                           | (year-only) placeholder                                 | flag: see below;    |
|                           |                                                         | info for 1 January  |
| accession-number          | AccessionNumber not empty                               | high                |
| patient-id-not-pseudonym  | PatientID not pseudonym-looking                         | medium              |
| other-patient-ids         | OtherPatientIDs / OtherPatientIDsSequence not empty     | high                |
| private-tag               | a private block (reported by its creator: not PHI)      | medium              |
| burned-in-annotation      | BurnedInAnnotation YES                                  | high                |
| encapsulated-document     | EncapsulatedDocument present (not readable here)        | medium              |
| dicomdir                  | a DICOMDIR (a media index, often with names)            | medium              |
| identifying-path          | a path part like Family_Given, a date, a long number    | high / medium       |
| not-dicom                 | a file that is not DICOM                                | info                |
| identifying-attribute     | address, institution, device, request ID: not a dummy   | high                |
| uid-looks-original        | a UID neither registered nor under 2.25                 | medium              |
| trailing-padding          | DataSetTrailingPadding present                          | high                |
| preamble-not-zero         | a preamble with bytes other than zero                   | medium              |
| overlay-plane             | overlay data (a bitmap that can hold text)              | medium              |
| not-allowed-by-profile    | an attribute, at any depth, that the profile the file   | high: nothing       |
|                           | declares does not allow (pipeline/scan/conformance.py): X    | declared; medium:   |
|                           | present, Z or D not empty/dummy, U when undeclared,     | declared, not       |
|                           | unnamed text, PN, dates; detail: expected action and    | followed; low: X    |
|                           | what the file declares                                  | present but blank   |

Dates: LongitudinalTemporalInformationModified MODIFIED -> low, UNMODIFIED -> medium,
anything else -> high. The profile judged by not-allowed-by-profile is what the file declares
(PatientIdentityRemoved YES, DeidentificationMethodCodeSequence: 113100 plus CID 7050 option
codes), Basic alone when it declares nothing; private attributes are left to private-tag.
Placeholders and pseudonyms (ANONYMOUS, REMOVED, XXXXXX, 12+ hex digits, "^" alone: scan/meaning.py)
are de-identified values: no value rule flags them.
Findings name the file (relative to `root`), the attribute path and the rule, never the value.
The census (distinct values per attribute keyword, in how many files, rare ones marked) does
hold values: it is for the HTML report and must never be printed.
"""

from __future__ import annotations

import io
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pydicom
from pydicom._uid_dict import UID_dictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pipeline.errors import ProfileError
from pipeline.scan.conformance import Declared, breaches, read_declaration
from pipeline.scan.meaning import cleaned_by_declared_option, is_free_text, is_placeholder, is_placeholder_date
from pipeline.verify.findings import Finding, Severity
from pipeline.verify.profile import load_profile
from pipeline.verify.strings import text_values
from pipeline.verify.walk import tag_name


class ScanRule(StrEnum):
    """Why scan reports a finding."""

    PERSON_NAME = "person-name"
    NAME_IN_TEXT = "name-in-text"
    DATE = "date-looks-real"
    ACCESSION_NUMBER = "accession-number"
    PATIENT_ID = "patient-id-not-pseudonym"
    OTHER_PATIENT_IDS = "other-patient-ids"
    PRIVATE_TAG = "private-tag"
    BURNED_IN_ANNOTATION = "burned-in-annotation"
    ENCAPSULATED_DOCUMENT = "encapsulated-document"
    DICOMDIR = "dicomdir"
    IDENTIFYING_PATH = "identifying-path"
    NOT_DICOM = "not-dicom"
    IDENTIFYING_ATTRIBUTE = "identifying-attribute"
    ORIGINAL_UID = "uid-looks-original"
    TRAILING_PADDING = "trailing-padding"
    PREAMBLE = "preamble-not-zero"
    OVERLAY_PLANE = "overlay-plane"
    NOT_ALLOWED = "not-allowed-by-profile"


@dataclass(frozen=True, slots=True)
class CensusEntry:
    """One distinct value of one attribute keyword and in how many files it was seen.

    `value` is a value of the release: for the HTML report only, never logged or printed.
    """

    keyword: str
    value: str = field(repr=False)
    files: int
    rare: bool


@dataclass(frozen=True, slots=True)
class ScanReport:
    """What `scan_tree` found: counts, findings (no values) and the census (values)."""

    files: int
    dicom_files: int
    findings: tuple[Finding, ...]
    census: tuple[CensusEntry, ...] = field(repr=False)

    def counts(self) -> dict[tuple[str, Severity], int]:
        """Number of findings by (rule, severity)."""
        return dict(Counter((str(f.rule), f.severity) for f in self.findings))

    @property
    def has_high(self) -> bool:
        return any(f.severity is Severity.HIGH for f in self.findings)


DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
RARE_MIN_FILES = 5
_CENSUS_VRS = frozenset({"PN", "LO", "SH", "CS", "AS", "DA", "DT", "ST", "AE"})
_CENSUS_MAX_LENGTH = 64
_CENSUS_MAX_VALUES = 500  # distinct values kept per keyword: memory stays flat on big releases
# Free text that names products, codes and methods, not people.
_NOT_FREE_TEXT = frozenset({
    "CodeMeaning", "CodingSchemeName", "CodingSchemeResponsibleOrganization", "Manufacturer",
    "ManufacturerModelName", "SoftwareVersions", "DetectorManufacturerName", "DetectorManufacturerModelName",
    "DeidentificationMethod", "ImplementationVersionName", "MIMETypeOfEncapsulatedDocument",
    "SpecificCharacterSet", "ConvolutionKernel", "SequenceName", "PulseSequenceName", "ReceiveCoilName",
    "TransmitCoilName", "WindowCenterWidthExplanation", "LUTExplanation",
})
_DUMMY_NAMES = ("ANONYMIZED", "ANONYMOUS")
_COMMON = frozenset({
    "abdomen", "abdominal", "acquisition", "after", "agfa", "and", "angio", "ankle", "anterior", "aorta",
    "application", "arterial", "at", "axial", "basic", "before", "body", "bone", "bones", "brain", "breast", "canon",
    "capture", "cardiac", "carestream", "center", "centre", "cervical", "chest", "clean", "clinic", "clinical",
    "comprehensive", "confidentiality", "content", "contrast", "coronal", "coronary", "cr", "ct", "data", "dates",
    "delayed", "department", "derived", "descriptors", "device", "diffusion", "document", "dose", "dr", "dual", "dx",
    "echo", "elbow", "electric", "energy", "enhanced", "extremity", "face", "fast", "fat", "features", "field",
    "flair", "foot", "for", "frontal", "fuji", "full", "general", "gradient", "graphics", "hand", "head",
    "healthcare", "heart", "high", "hip", "hologic", "hospital", "identity", "image", "images", "imaging", "in",
    "information", "institution", "key", "knee", "kodak", "lateral", "left", "level", "liver", "localizer",
    "longitudinal", "low", "lower", "lumbar", "lung", "mammo", "map", "medial", "medical", "mg", "modified", "mr",
    "multi", "neck", "nm", "no", "not", "object", "oblique", "of", "on", "option", "orbit", "original", "ot",
    "pelvis", "perfusion", "phase", "philips", "pixel", "portal", "post", "posterior", "pre", "presentation",
    "primary", "private", "processed", "profile", "protocol", "pt", "radiology", "raw", "recognizable", "recon",
    "reconstruction", "report", "retain", "rf", "right", "routine", "safe", "sagittal", "sat", "save", "sc", "scan",
    "scout", "screen", "secondary", "selection", "series", "siemens", "single", "sinus", "slice", "slices", "soft",
    "spin", "spine", "sr", "standard", "state", "structured", "study", "summary", "systems", "temporal", "text",
    "thick", "thin", "thoracic", "tissue", "to", "tomosynthesis", "toshiba", "turbo", "uids", "university", "up",
    "upper", "us", "venous", "view", "views", "visual", "volume", "water", "weighted", "whole", "window", "with",
    "without", "wrist", "xa",
    # radiotherapy, ECG and file vocabulary seen in descriptions (issue 14: none of them a name)
    "beam", "beat", "ecg", "file", "isocenter", "median", "normal", "resampled", "rhythm", "set", "test",
    "testing",
})
# Attributes that identify whatever their value looks like: the Basic Profile removes or empties
# them all (X, Z or D in PS3.15 Table E.1-1), so any non-empty value in a release is a finding.
_ALWAYS_IDENTIFYING = frozenset({
    "PatientAddress", "PatientTelephoneNumbers", "PatientTelecomInformation", "PatientMotherBirthName",
    "PatientBirthName", "MedicalRecordLocator", "MilitaryRank", "BranchOfService", "Occupation",
    "RegionOfResidence", "CountryOfResidence", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "PersonAddress", "PersonTelephoneNumbers", "AdmissionID",
    "IssuerOfPatientID", "StudyID", "RequestedProcedureID", "ScheduledProcedureStepID",
    "PerformedProcedureStepID", "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest",
})
# Kept by an option the release declares in DeidentificationMethodCodeSequence (CID 7050).
_KEPT_BY_OPTION = {
    "113112": frozenset({"InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName"}),
    "113109": frozenset({"StationName", "DeviceSerialNumber"}),
}
_UPPER_PAIR = re.compile(r"\b([A-Z]{3,})[ ]+([A-Z]{3,})\b")
_CAPITALISED_PAIR = re.compile(r"\b([A-Z][a-z]+)[ ]+([A-Z][a-z]+)\b")
_CARET_NAME = re.compile(r"\b([A-Za-z]{2,})\^([A-Za-z]{2,})\b")
_TITLED_NAME = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Prof)\.?\s+([A-Z][a-z]+)\b")
# "RESTING ECG for BRANNOCKE", "annotation SMITH": one upper-case word after a word that introduces a person
_INTRODUCED_NAME = re.compile(r"\b(?:for|by|from|of|patient|pt|annotation|re)[.:]?\s+([A-Z][A-Z'-]{3,})\b",
                              re.IGNORECASE)
_PATH_NAME = re.compile(r"(?<![A-Za-z])([A-Z][A-Za-z]+)[_^]([A-Z][A-Za-z]+)(?![A-Za-z])")
_PATH_DATE = re.compile(r"(?<!\d)(?:19|20)\d{2}[-_.]?(?:0[1-9]|1[0-2])[-_.]?(?:0[1-9]|[12]\d|3[01])(?!\d)")
_PATH_NUMBER = re.compile(r"(?<![\d.])[1-9]\d{6,}(?![\d.])")
_UID_LIKE = re.compile(r"[0-9]+(?:\.[0-9]+)+")
_PSEUDONYM_ID = re.compile(r"PAT-.*|.*ANON.*|.*SUBJ.*|[A-Z2-7]{16,}|[0-9a-f]{16,}", re.IGNORECASE)


def _is_dummy_name(value: str) -> bool:
    upper = value.strip().strip("^= ").upper()
    return (not upper or upper in _DUMMY_NAMES or "ANON" in upper or upper.startswith("PAT-")
            or is_placeholder(value))


def _is_name_pair(first: str, second: str) -> bool:
    return first.lower() not in _COMMON and second.lower() not in _COMMON


def _looks_name_like(text: str) -> bool:
    if any(_is_name_pair(a, b) for a, b in _CAPITALISED_PAIR.findall(text)):
        return True
    if any(_is_name_pair(a, b) for a, b in _CARET_NAME.findall(text)):
        return True
    if any(name.lower() not in _COMMON for name in _TITLED_NAME.findall(text)):
        return True
    if any(name.isupper() and name.lower() not in _COMMON for name in _INTRODUCED_NAME.findall(text)):
        return True
    # DICOM text is often upper case: two long capitalised words that are not common terms.
    return any(_is_name_pair(a, b) for a, b in _UPPER_PAIR.findall(text))


def _walk(ds: Dataset, prefix: str = "") -> Iterator[tuple[str, DataElement, Dataset]]:
    """Every element at every depth, with its path and the dataset that holds it."""
    for elem in ds:
        path = prefix + tag_name(int(elem.tag))
        yield path, elem, ds
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value or ()):
                yield from _walk(item, f"{path}[{index}].")


def _date_severity(ds: Dataset) -> Severity:
    flag = str(ds.get("LongitudinalTemporalInformationModified", "") or "").strip().upper()
    return {"MODIFIED": Severity.LOW, "UNMODIFIED": Severity.MEDIUM}.get(flag, Severity.HIGH)


def _declared_codes(ds: Dataset) -> frozenset[str]:
    """The CID 7050 codes the file declares in DeidentificationMethodCodeSequence."""
    return frozenset(str(item.get("CodeValue", "")) for item in ds.get("DeidentificationMethodCodeSequence") or ())


def _kept_by_options(ds: Dataset) -> frozenset[str]:
    codes = _declared_codes(ds)
    return frozenset().union(*(names for code, names in _KEPT_BY_OPTION.items() if code in codes))


def _check_element(path: str, elem: DataElement, date_severity: Severity,
                   kept: frozenset[str] = frozenset(), codes: frozenset[str] = frozenset(),
                   ) -> Iterator[tuple[ScanRule, Severity]]:
    values, vr, keyword = text_values(elem), elem.VR, elem.keyword
    if vr == "PN" and any(not _is_dummy_name(v) for v in values):
        yield ScanRule.PERSON_NAME, Severity.HIGH
    elif (is_free_text(int(elem.tag), vr) and keyword not in _NOT_FREE_TEXT
          and any(_looks_name_like(v) for v in values if not is_placeholder(v))):
        # a C attribute the file declares cleaned (its Clean option's code): low, left to review
        cleaned = cleaned_by_declared_option(int(elem.tag), codes)
        yield ScanRule.NAME_IN_TEXT, Severity.LOW if cleaned else Severity.MEDIUM
    dates = [v for v in values if v[:8] != ""] if vr in ("DA", "DT") else []
    if any(not is_placeholder_date(v) for v in dates):
        yield ScanRule.DATE, date_severity
    elif any(v[:8] != "19000101" for v in dates):
        yield ScanRule.DATE, Severity.INFO  # 1 January: a year-only placeholder, the year kept
    identifying = [v for v in values if not is_placeholder(v)]
    if keyword == "AccessionNumber" and identifying:
        yield ScanRule.ACCESSION_NUMBER, Severity.HIGH
    if keyword == "PatientID" and values and not all(_PSEUDONYM_ID.fullmatch(v) or is_placeholder(v) for v in values):
        yield ScanRule.PATIENT_ID, Severity.MEDIUM
    if (keyword == "OtherPatientIDs" and identifying) or (keyword == "OtherPatientIDsSequence" and elem.value):
        yield ScanRule.OTHER_PATIENT_IDS, Severity.HIGH
    if keyword == "BurnedInAnnotation" and any(v.upper() == "YES" for v in values):
        yield ScanRule.BURNED_IN_ANNOTATION, Severity.HIGH
    if keyword == "EncapsulatedDocument":
        yield ScanRule.ENCAPSULATED_DOCUMENT, Severity.MEDIUM
    if keyword in _ALWAYS_IDENTIFYING and keyword not in kept and identifying:
        yield ScanRule.IDENTIFYING_ATTRIBUTE, Severity.HIGH
    if vr == "UI" and any(not v.startswith("2.25.") and v not in UID_dictionary for v in values):
        yield ScanRule.ORIGINAL_UID, Severity.MEDIUM  # neither a registered UID nor a 2.25 pseudonym
    if elem.tag == 0xFFFCFFFC:
        yield ScanRule.TRAILING_PADDING, Severity.HIGH  # any bytes, outside every attribute's meaning
    if 0x6000 <= elem.tag.group <= 0x601E and elem.tag.element == 0x3000:
        yield ScanRule.OVERLAY_PLANE, Severity.MEDIUM  # a bitmap that can hold drawn text


def scan_dataset(ds: Dataset, file: str) -> list[Finding]:
    """Findings for one parsed dataset; `file` is its release-relative name."""
    findings: dict[tuple[str, str], Finding] = {}
    severity = _date_severity(ds)
    if str(ds.get("SOPClassUID", "")) == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        findings[("file", ScanRule.DICOMDIR)] = Finding(ScanRule.DICOMDIR, "file", Severity.MEDIUM, file)
    kept = _kept_by_options(ds)
    codes = _declared_codes(ds)
    preamble = getattr(ds, "preamble", None)
    if preamble and preamble.strip(b"\x00"):
        findings[("preamble", ScanRule.PREAMBLE)] = Finding(ScanRule.PREAMBLE, "preamble", Severity.MEDIUM, file)
    for path, elem, parent in _walk(ds):
        group, element = elem.tag.group, elem.tag.element
        if group % 2 == 1:
            if 0x10 <= element <= 0xFF:  # a private creator: its string names a vendor, not a person
                creator = str(elem.value or "").strip()
                findings[(path, ScanRule.PRIVATE_TAG)] = Finding(
                    ScanRule.PRIVATE_TAG, path, Severity.MEDIUM, file, detail=creator or "empty creator")
                continue
            elif element <= 0xFF or ((group << 16) | (element >> 8)) not in parent:
                findings[(path, ScanRule.PRIVATE_TAG)] = Finding(
                    ScanRule.PRIVATE_TAG, path, Severity.MEDIUM, file, detail="no private creator")
        for rule, level in _check_element(path, elem, severity, kept, codes):
            findings[(path, rule)] = Finding(rule, path, level, file)
    declaration = read_declaration(ds)
    level = Severity.HIGH if declaration.declared is Declared.NOTHING else Severity.MEDIUM
    for breach in breaches(ds, declaration):
        findings[(breach.path, ScanRule.NOT_ALLOWED)] = Finding(
            ScanRule.NOT_ALLOWED, breach.path, level if breach.holds_value else Severity.LOW, file,
            detail=breach.detail(declaration))
    return list(findings.values())


def scan_path(relative: str) -> list[Finding]:
    """Findings for the path parts of one file: names, dates, long numbers (UID-like parts pass)."""
    findings: list[Finding] = []
    parts = relative.split("/")
    for index, part in enumerate(parts):
        stem = part.rsplit(".", 1)[0] if index == len(parts) - 1 and not _UID_LIKE.fullmatch(part) else part
        if _UID_LIKE.fullmatch(stem) or _UID_LIKE.fullmatch(part):
            continue
        where = f"path[{index}]"
        if any(_is_name_pair(a, b) for a, b in _PATH_NAME.findall(stem)):
            findings.append(Finding(ScanRule.IDENTIFYING_PATH, where, Severity.HIGH, relative, detail="name-like"))
        elif _PATH_DATE.search(stem):
            findings.append(Finding(ScanRule.IDENTIFYING_PATH, where, Severity.MEDIUM, relative, detail="date"))
        elif _PATH_NUMBER.search(stem):
            findings.append(Finding(ScanRule.IDENTIFYING_PATH, where, Severity.MEDIUM, relative, detail="long-number"))
    return findings


def _read(data: bytes) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(io.BytesIO(data))  # whole: trailing padding stands after the pixel data
        except InvalidDicomError:
            pass
        except Exception:
            return None
        try:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        except Exception:
            return None
        return ds if "SOPClassUID" in ds or "PatientName" in ds else None


class _Census:
    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, ds: Dataset) -> None:
        seen: set[tuple[str, str]] = set()
        for path, elem, _ in _walk(ds):
            if elem.VR not in _CENSUS_VRS or elem.tag.group % 2 == 1:
                continue
            keyword = elem.keyword or path.rsplit(".", 1)[-1]
            for value in text_values(elem):
                if len(value) <= _CENSUS_MAX_LENGTH:
                    seen.add((keyword, value))
        for keyword, value in seen:
            counter = self.counts[keyword]
            if value in counter or len(counter) < _CENSUS_MAX_VALUES:
                counter[value] += 1

    def entries(self, files: int) -> tuple[CensusEntry, ...]:
        return tuple(
            CensusEntry(keyword, value, count, rare=files >= RARE_MIN_FILES and count == 1)
            for keyword in sorted(self.counts)
            for value, count in sorted(self.counts[keyword].items())
        )


def scan_instances(instances: Iterable[tuple[str, bytes]]) -> ScanReport:
    """Scan a stream of (release-relative key, file bytes), one file at a time, and return the
    report: a folder (`scan_tree`), an object store or a DICOMweb server (pipeline/runner/sources.py)."""
    load_profile(())  # a missing or broken recipe is a ProfileError before any file is read
    findings: list[Finding] = []
    census = _Census()
    files = dicom_files = 0
    for relative, data in instances:
        files += 1
        findings += scan_path(relative)
        ds = _read(data)
        if ds is None:
            findings.append(Finding(ScanRule.NOT_DICOM, "file", Severity.INFO, relative))
            continue
        dicom_files += 1
        if relative.rsplit("/", 1)[-1].upper() == "DICOMDIR" and "DirectoryRecordSequence" not in ds:
            findings.append(Finding(ScanRule.DICOMDIR, "file", Severity.MEDIUM, relative))
        try:
            findings += scan_dataset(ds, relative)
            census.add(ds)
        except ProfileError:
            raise
        except Exception:  # a broken element: report the file, never its value
            findings.append(Finding(ScanRule.NOT_DICOM, "file", Severity.INFO, relative, detail="unreadable element"))
    return ScanReport(files=files, dicom_files=dicom_files, findings=tuple(findings),
                      census=census.entries(dicom_files))


def scan_tree(root: Path) -> ScanReport:
    """Scan every file under `root` (a published release), in sorted path order."""
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    return scan_instances((path.relative_to(root).as_posix(), path.read_bytes()) for path in paths)


__all__ = ["CensusEntry", "ScanReport", "ScanRule", "scan_dataset", "scan_instances", "scan_path", "scan_tree"]
