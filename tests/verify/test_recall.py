"""verify and scan find the identifiers planted in the sample archive (issue 5, "how it must be shown").

Each good file of the raw archive is checked as if it were its own output, with itself as the
original: verify then reports every attribute the Basic Profile does not allow and every
original value still present. scan_tree judges the raw archive without originals. For every
plant of the answer key (`sample_data/archive_key.json`), a finding must name the plant's
place: the attribute path (or a sequence holding it), the path, the preamble or the trailing
padding. Pixel plants are out of scope for a header check and are only counted. Recall is
printed per category (`pytest -s`); no value is ever printed.

Then the real pipeline runs on the archive, and `deid-pipeline verify` with the originals finds
nothing in its release.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.datadict import RepeatersDictionary, tag_for_keyword

from pipeline.scan.tree import ScanReport, ScanRule, scan_tree
from pipeline.verify.checks import verify_bytes
from pipeline.verify.findings import Finding, Severity, VerifyRule
from tests.conftest import REPO
from tests.conftest_run import write_key

ARCHIVE = REPO / "sample_data" / "archive"
KEY = REPO / "sample_data" / "archive_key.json"
CLI = Path(sys.executable).parent / "deid-pipeline"
PIXEL_PLANES = frozenset({"pixels"})  # text drawn into PixelData: a header check cannot see it
SCAN_RECALL_FLOOR = 1.0  # measured 1.000 (1947/1947) on the committed archive; 0.701 before not-allowed-by-profile
# measured 1.0 in every category (before the profile rule: patient_name 0.655, staff_name 0.800, patient_id 0.848,
# accession 0.918, institution 0.964, time 0.0, uid 0.0): the raw archive declares no de-identification, so each
# attribute the Basic Profile removes, empties or replaces (UIDs too) is reported
SCAN_CATEGORY_FLOORS = {"patient_name": 1.0, "staff_name": 1.0, "patient_id": 1.0, "accession": 1.0,
                        "institution": 1.0, "address": 1.0, "phone": 1.0, "birth_date": 1.0, "date": 1.0,
                        "datetime": 1.0, "other_patient_id": 1.0, "request_id": 1.0, "institution_address": 1.0,
                        "time": 1.0, "uid": 1.0}
_COMPONENT = re.compile(r"^(?P<name>[^\[]+)(?P<index>(?:\[\d+\])*)$")
_HEX = re.compile(r"^\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)$")
_REPEATER_MASKS = {entry[4]: mask.upper().replace("X", "0") for mask, entry in RepeatersDictionary.items()}


# --- the answer key --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plant:
    file: str  # archive-relative
    identifier: str
    category: str
    where: str


@cache
def _key() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(KEY.read_text(encoding="utf-8"))
    return data


def good_files() -> list[str]:
    """Archive-relative paths of the good files, sorted."""
    return sorted(rel for rel, entry in _key()["files"].items() if entry["kind"] == "good")


def plants() -> list[Plant]:
    """Every plant of every good file."""
    return [Plant(rel, p["identifier"], p["category"], p["where"])
            for rel in good_files() for p in _key()["files"][rel]["plants"]]


# --- matching a plant with findings ----------------------------------------------------------


def _canonical_component(component: str) -> str:
    """`PatientName[0]` and `(0010,0010)[0]` -> `(0010,0010)[0]`: keywords by tag, hex upper case."""
    match = _COMPONENT.match(component)
    if match is None:
        return component
    name, index = match["name"], match["index"]
    hexed = _HEX.match(name)
    if hexed is not None:
        return f"({hexed[1].upper()},{hexed[2].upper()}){index}"
    tag = tag_for_keyword(name)
    if tag is not None:
        return f"({tag >> 16:04X},{tag & 0xFFFF:04X}){index}"
    mask = _REPEATER_MASKS.get(name)  # OverlayDescription: pydicom names 60xx elements by tag only
    return f"({mask[:4]},{mask[4:]}){index}" if mask is not None else component


def canonical(path: str) -> tuple[str, ...]:
    """An attribute path as a tuple of `(GGGG,EEEE)[i]` components (file meta: no prefix)."""
    path = path.removeprefix("file-meta.")
    return tuple(_canonical_component(part) for part in path.split("."))


def _is_private(component: str) -> bool:
    hexed = _HEX.match(component.split("[")[0])
    return hexed is not None and int(hexed[1], 16) % 2 == 1


def _covers(finding_path: tuple[str, ...], plant_path: tuple[str, ...]) -> bool:
    """The finding names the plant's attribute or a sequence (item) that holds it."""
    if finding_path == plant_path:
        return True
    if len(finding_path) > len(plant_path):
        return False
    head, last = finding_path[:-1], finding_path[-1]
    return plant_path[: len(head)] == head and (plant_path[len(head)] == last or
                                                plant_path[len(head)].startswith(last + "["))


def _private_block_covers(finding_path: tuple[str, ...], plant_path: tuple[str, ...]) -> bool:
    """scan reports a private block by its creator `(gggg,00xx)`, not each element: a creator
    finding in the same dataset and group covers every private element below it."""
    for depth, component in enumerate(plant_path):
        if not _is_private(component):
            continue
        if len(finding_path) == depth + 1 and finding_path[:depth] == plant_path[:depth] \
                and finding_path[depth][:5] == component[:5] and _is_private(finding_path[depth]):
            return True
    return False


_VERIFY_SPECIAL: dict[str, frozenset[str]] = {
    "path": frozenset({VerifyRule.VALUE_IN_PATH}),
    "preamble": frozenset({VerifyRule.PREAMBLE_NOT_ZERO}),
    "trailing-padding": frozenset({VerifyRule.TRAILING_PADDING}),
}
_SCAN_SPECIAL: dict[str, frozenset[str]] = {
    "path": frozenset({ScanRule.IDENTIFYING_PATH}),
    "preamble": frozenset({ScanRule.PREAMBLE}),
    "trailing-padding": frozenset({ScanRule.TRAILING_PADDING}),
}
_OVERLAY_DATA = {"overlay-6000": ("(6000,3000)",)}


def verify_finds(plant: Plant, findings: Iterable[Finding], ranges: dict[str, tuple[int, int]] | None = None) -> bool:
    """Whether a verify finding names the plant's place; with `ranges` (top-level element ->
    byte range of its value in the file), an `original-value-in-bytes` finding inside the range
    of the plant's top-level element names it too (an OB value such as EncapsulatedDocument)."""
    findings = list(findings)
    if _finds(plant, findings, _VERIFY_SPECIAL, private_blocks=False):
        return True
    span = (ranges or {}).get(canonical(plant.where)[0].split("[")[0]) if plant.where not in _VERIFY_SPECIAL else None
    return span is not None and any(
        f.rule == VerifyRule.ORIGINAL_VALUE_IN_BYTES and span[0] <= int(f.path.removeprefix("bytes@")) < span[1]
        for f in findings)


def value_ranges(data: bytes) -> dict[str, tuple[int, int]]:
    """`(GGGG,EEEE)` -> (start, end) of the value bytes of each top-level element of a
    non-deflated file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    ranges: dict[str, tuple[int, int]] = {}
    for tag in ds.keys():
        raw = ds.get_item(tag)
        tell = getattr(raw, "value_tell", None)
        if isinstance(tell, int) and raw is not None and isinstance(raw.value, bytes):
            ranges[f"({tag.group:04X},{tag.element:04X})"] = (tell, tell + len(raw.value))
    return ranges


def scan_finds(plant: Plant, findings: Iterable[Finding]) -> bool:
    """Whether a scan finding names the plant's place (a private block by its creator)."""
    return _finds(plant, findings, _SCAN_SPECIAL, private_blocks=True)


def _finds(plant: Plant, findings: Iterable[Finding], special: dict[str, frozenset[str]],
           private_blocks: bool) -> bool:
    if plant.where in special:
        return any(str(f.rule) in special[plant.where] for f in findings)
    target = _OVERLAY_DATA.get(plant.where) or canonical(plant.where)
    for finding in findings:
        if finding.path in ("file", "path", "preamble") or finding.path.startswith(("bytes@", "path[")):
            continue
        path = canonical(finding.path)
        if _covers(path, target):
            return True
        if private_blocks and str(finding.rule) == ScanRule.PRIVATE_TAG and _private_block_covers(path, target):
            return True
    return False


def place(plant: Plant) -> str:
    """The kind of place a plant is in: a reporting bucket."""
    if plant.where in ("path", "preamble", "trailing-padding", "overlay-6000") or plant.where in PIXEL_PLANES:
        return plant.where
    if any(_is_private(c) for c in canonical(plant.where)):
        return "private"
    return "nested" if "[" in plant.where else "attribute"


@dataclass(frozen=True, slots=True)
class Recall:
    found: int
    total: int

    @property
    def ratio(self) -> float:
        return self.found / self.total if self.total else 1.0


def recall(items: list[Plant], finds: Callable[[Plant], bool],
           by: Callable[[Plant], str]) -> tuple[Recall, dict[str, Recall]]:
    """Overall and per-bucket recall of `finds` over the `items`."""
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        bucket = hits[by(item)]
        bucket[0] += finds(item)
        bucket[1] += 1
    per = {name: Recall(found, total) for name, (found, total) in sorted(hits.items())}
    return Recall(sum(r.found for r in per.values()), sum(r.total for r in per.values())), per


def print_recall(title: str, overall: Recall, per: dict[str, Recall]) -> None:
    print(f"\n{title}: {overall.found}/{overall.total} = {overall.ratio:.3f}")
    for name, r in per.items():
        print(f"  {name:<22} {r.found:>4}/{r.total:<4} {r.ratio:.3f}")


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verify_findings() -> dict[str, tuple[list[Finding], dict[str, tuple[int, int]]]]:
    """verify on each raw good file, as its own output and its own original; and the file's
    top-level value byte ranges."""
    found: dict[str, tuple[list[Finding], dict[str, tuple[int, int]]]] = {}
    for rel in good_files():
        raw = (ARCHIVE / rel).read_bytes()
        found[rel] = verify_bytes(raw, (), original=raw, output_path=rel), value_ranges(raw)
    return found


@pytest.fixture(scope="module")
def scan_report() -> ScanReport:
    return scan_tree(ARCHIVE)


@pytest.fixture(scope="module")
def scan_findings(scan_report: ScanReport) -> dict[str, list[Finding]]:
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for finding in scan_report.findings:
        by_file[finding.file].append(finding)
    return by_file


def declared_burned_in() -> set[str]:
    """Good files whose BurnedInAnnotation is YES (the key records it for images only; the
    encapsulated PDFs carry YES as their IOD requires)."""
    declared: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rel in good_files():
            ds = pydicom.dcmread(ARCHIVE / rel, stop_before_pixels=True, specific_tags=["BurnedInAnnotation"])
            if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
                declared.add(rel)
    return declared


def run_pipeline(archive: Path, base: Path) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """`deid-pipeline run` on `archive` (basic profile, burned-in text cleaned by rules and OCR, in process);
    returns (result, release, key file)."""
    key_file = write_key(base / "secrets")
    release = base / "out" / "release"
    result = subprocess.run(
        [str(CLI), "run", str(archive), "--output", str(release), "--key-file", str(key_file),
         "--workers", "0", "--quiet", "--clean-pixels", "ocr"],
        capture_output=True, text=True, timeout=300, check=False)
    return result, release, key_file


@pytest.fixture(scope="module")
def pipeline_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    return run_pipeline(ARCHIVE, tmp_path_factory.mktemp("pipeline"))


# --- recall on the raw archive ---------------------------------------------------------------


Checked = dict[str, tuple[list[Finding], dict[str, tuple[int, int]]]]


def test_every_header_plant_of_the_raw_archive_is_found_by_verify(verify_findings: Checked) -> None:
    header = [p for p in plants() if p.where not in PIXEL_PLANES]
    pixel = [p for p in plants() if p.where in PIXEL_PLANES]
    finds = lambda p: verify_finds(p, *verify_findings[p.file])  # noqa: E731
    by_attribute = sum(verify_finds(p, verify_findings[p.file][0]) for p in header)
    overall, by_category = recall(header, finds, lambda p: p.category)
    _, by_place = recall(header, finds, place)
    print_recall("verify header recall by category", overall, by_category)
    print_recall("verify header recall by place", overall, by_place)
    print(f"  {overall.found - by_attribute} of them only through original-value-in-bytes inside the value of the "
          f"top-level element (EncapsulatedDocument: the profile keeps it, verify searches its bytes)")
    print(f"  out of scope (text drawn into pixels): {len(pixel)} plants in "
          f"{len({p.file for p in pixel})} files")
    missed = sorted({(p.file, p.where) for p in header if not finds(p)})
    assert overall.ratio == 1.0, missed[:20]


def test_every_good_file_gets_a_high_verify_finding_for_its_original_values(verify_findings: Checked) -> None:
    for rel, (findings, _) in verify_findings.items():
        rules = {str(f.rule) for f in findings if f.severity is Severity.HIGH}
        assert {VerifyRule.ORIGINAL_VALUE_IN_BYTES, VerifyRule.VALUE_IN_PATH} <= rules, rel


# Value rules alone (every rule but not-allowed-by-profile) cannot judge times of day or UIDs that
# already look like 2.25 pseudonyms, nor names and IDs in free text that do not look like names or
# IDs; the profile rule reports their attributes because the raw files declare no de-identification.
# Printed, not asserted: what the value rules see by themselves.


def _value_rules_only(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.rule != ScanRule.NOT_ALLOWED]


def test_scan_recall_on_the_raw_archive_is_at_least_the_measured_floor(
        scan_findings: dict[str, list[Finding]]) -> None:
    header = [p for p in plants() if p.where not in PIXEL_PLANES]
    finds = lambda p: scan_finds(p, scan_findings.get(p.file, []))  # noqa: E731
    overall, by_category = recall(header, finds, lambda p: p.category)
    _, by_place = recall(header, finds, place)
    print_recall("scan header recall by category", overall, by_category)
    print_recall("scan header recall by place", overall, by_place)
    by_values = lambda p: scan_finds(p, _value_rules_only(scan_findings.get(p.file, [])))  # noqa: E731
    alone, alone_by_category = recall(header, by_values, lambda p: p.category)
    print_recall("scan header recall of the value rules alone (without not-allowed-by-profile)", alone,
                 alone_by_category)
    assert overall.ratio >= SCAN_RECALL_FLOOR
    for category, floor in SCAN_CATEGORY_FLOORS.items():
        assert by_category[category].ratio >= floor, category


# The raw archive declares nothing, so scan takes every UID in it for an original. A dataset that
# falsely declares the Basic Profile is the hard case: its original 2.25 UIDs look like pseudonyms
# and only the originals could tell (measured 0/234, printed). Every other category must still be
# found in full: the declared profile forbids what holds them.
FALSE_DECLARATION_FLOORS = {category: (0.0 if category == "uid" else floor)
                            for category, floor in SCAN_CATEGORY_FLOORS.items()}


def test_scan_recall_when_the_archive_falsely_declares_the_basic_profile(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    root = tmp_path / "declared"
    for rel in good_files():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(ARCHIVE / rel)
            ds.PatientIdentityRemoved = "YES"
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "113100", "DCM", "Basic Profile"
            ds.DeidentificationMethodCodeSequence = Sequence([item])
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(target)
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for finding in scan_tree(root).findings:
        by_file[finding.file].append(finding)
    header = [p for p in plants() if p.where not in PIXEL_PLANES]
    overall, by_category = recall(header, lambda p: scan_finds(p, by_file.get(p.file, [])), lambda p: p.category)
    print_recall("scan header recall when every file falsely declares the Basic Profile", overall, by_category)
    for category, floor in FALSE_DECLARATION_FLOORS.items():
        assert by_category[category].ratio >= floor, category


def test_scan_flags_the_burned_in_annotation_of_every_file_that_declares_it(
        scan_findings: dict[str, list[Finding]]) -> None:
    declared = declared_burned_in()
    flagged = {rel for rel, fs in scan_findings.items() if any(f.rule == ScanRule.BURNED_IN_ANNOTATION for f in fs)}
    pixel_files = {p.file for p in plants() if p.where in PIXEL_PLANES}
    print(f"\nscan: pixel plants in {len(pixel_files)} files; {len(pixel_files & flagged)} of those files are "
          f"flagged by BurnedInAnnotation YES (the others declare NO or nothing, wrongly on purpose)")
    assert flagged == declared


def test_scan_flags_a_preamble_that_is_not_zero(scan_findings: dict[str, list[Finding]]) -> None:
    found = [p for p in plants() if p.where == "preamble" and scan_finds(p, scan_findings.get(p.file, []))]
    assert found and len(found) == len([p for p in plants() if p.where == "preamble"])


def test_scan_flags_trailing_padding(scan_findings: dict[str, list[Finding]]) -> None:
    padded = [p for p in plants() if p.where == "trailing-padding"]
    assert padded and all(scan_finds(p, scan_findings.get(p.file, [])) for p in padded)


def test_scan_flags_overlay_planes(scan_findings: dict[str, list[Finding]]) -> None:
    overlays = [p for p in plants() if p.where == "overlay-6000"]
    assert overlays and all(scan_finds(p, scan_findings.get(p.file, [])) for p in overlays)


def test_scan_flags_patient_address_and_telephone_numbers(scan_findings: dict[str, list[Finding]]) -> None:
    contact = [p for p in plants() if p.where in ("PatientAddress", "PatientTelephoneNumbers")]
    assert contact and all(scan_finds(p, scan_findings.get(p.file, [])) for p in contact)


def test_scan_flags_upper_case_patient_names_in_free_text(scan_findings: dict[str, list[Finding]]) -> None:
    places = ("ImageComments", "WaveformAnnotationSequence[0].UnformattedTextValue")
    named = [p for p in plants() if p.category == "patient_name" and p.where in places]
    assert named and all(scan_finds(p, scan_findings.get(p.file, [])) for p in named)


def test_path_styles_are_normalised_before_matching() -> None:
    assert canonical("file-meta.MediaStorageSOPInstanceUID") == ("(0002,0003)",)
    assert canonical("OverlayDescription") == canonical("(6000,0022)")
    assert canonical("(0013,1010)[0].OtherPatientIDsSequence[0].PatientID") == (
        "(0013,1010)[0]", "(0010,1002)[0]", "(0010,0020)")
    plant = Plant("f", "P1.id", "patient_id", "RequestAttributesSequence[0].AccessionNumber")
    assert verify_finds(plant, [Finding(VerifyRule.ATTRIBUTE_NOT_ALLOWED, "RequestAttributesSequence", Severity.HIGH)])
    assert not verify_finds(plant, [Finding(VerifyRule.ATTRIBUTE_NOT_ALLOWED, "AccessionNumber", Severity.HIGH)])
    private = Plant("f", "P1.id", "patient_id", "(0013,1010)[0].OtherPatientIDsSequence[0].PatientID")
    creator = Finding(ScanRule.PRIVATE_TAG, "(0013,0010)", Severity.MEDIUM)
    assert scan_finds(private, [creator]) and not verify_finds(private, [creator])


# --- the real pipeline on the archive --------------------------------------------------------


def test_the_pipeline_release_of_the_archive_passes_verify_with_originals(
        pipeline_release: tuple[subprocess.CompletedProcess[str], Path, Path]) -> None:
    result, release, key_file = pipeline_release
    # Quarantined: the 2 parseable bad inputs and the 3 encapsulated PDFs (a document cannot be cleaned); the
    # dataset stored without preamble and file meta is read and published as a PS3.10 file (issue 14).
    assert result.returncode == 1, result.stderr
    assert "written 37, quarantined 5" in result.stdout
    report = release.parent / "verify.json"
    checked = subprocess.run(
        [str(CLI), "verify", str(release), "--originals", str(ARCHIVE), "--key-file", str(key_file),
         "--option", "clean-pixel-data", "--json", str(report)],
        capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "verified 37 file(s)" in checked.stdout and "0 with findings" in checked.stdout
    assert json.loads(report.read_text(encoding="utf-8"))["findings"] == []


def test_scan_of_the_pipeline_release_has_no_finding(
        pipeline_release: tuple[subprocess.CompletedProcess[str], Path, Path]) -> None:
    """Burned-in text is cleaned (BurnedInAnnotation then says NO), the PDFs are quarantined and
    every file follows the profile it declares, so scan finds nothing in the release (issue 5)."""
    _, release, _ = pipeline_release
    report = scan_tree(release)
    print(f"\nscan of the pipeline release: {dict(Counter(str(f.rule) for f in report.findings))}")
    assert declared_burned_in()  # the archive does declare burned-in text
    assert report.dicom_files == 37
    assert Counter((str(f.rule), f.path) for f in report.findings) == Counter()
