"""Conformance kept (issue 14): no output of `deid-pipeline run` gains a dciodvfy error kind over its input.

De-identification (PS3.15 E.1) must leave an instance that still conforms to its IOD (PS3.3): a Type 1
attribute replaced, not removed; a Type 2 emptied, not dropped; every value valid for its VR (PS3.5 6.2).
dciodvfy, written apart from this project and from pydicom, is the judge. An input that already breaks
a rule may keep breaking it; an output must not break a rule its input kept.

The pipeline runs end to end through its command line on (a) sample_data/archive and (b) the DICOM files
shipped in pydicom's wheel, with the Basic Profile alone and with options. Each published output is paired
with its input by the confidential uid_mapping.csv (new SOPInstanceUID -> old) and the quarantine ledger
(of inputs sharing an old SOPInstanceUID, the published one is the one not quarantined). Messages name
files by content hash and IOD (and the bundled pydicom files by their names); never a value.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.data.data_manager import DATA_ROOT

from tests.conftest import REPO, bundled
from tests.conftest_run import write_key
from tests.dciodvfy import Readability, Validation, executable, parse, validate

CLI = Path(sys.executable).with_name("deid-pipeline")
ARCHIVE = REPO / "sample_data" / "archive"
# pydicom.data.get_testdata_files() also fetches pydicom's external test data over the network; the
# files in the wheel are what it returns offline, so they are listed from the wheel's folder.
PYDICOM_FILES = Path(DATA_ROOT) / "test_files"
OPTION_SETS = {
    "basic": (),
    # modified dates and cleaned descriptors change values the scrubber writes; OCR cleaning publishes the
    # secondary captures and ultrasound images the Basic Profile alone quarantines as burned-in-unhandled
    "dates-descriptors-ocr": ("--option", "retain-longitudinal-modified-dates", "--option", "clean-descriptors",
                              "--clean-pixels", "ocr"),
}
# What still fails, by test and option set (strict: an XPASS fails, so a fix removes its entry).
KNOWN_FAILURES: dict[tuple[str, str], str] = {}  # none left: every run compares clean (issue 14)


def _option_sets(inputs: str) -> list[object]:
    return [pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[(inputs, name)])]
                         if (inputs, name) in KNOWN_FAILURES else []) for name in sorted(OPTION_SETS)]


@dataclass(frozen=True, slots=True)
class Source:
    """One input file: content hash (the pipeline's source id), a label safe to print, its SOP Instance UID."""

    path: Path
    sha256: str
    label: str
    sop_instance_uid: str | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """What dciodvfy says about one run's inputs and outputs."""

    outputs: int
    violations: dict[str, tuple[str, ...]]  # output's source label -> error kinds its input did not have
    valid_to_invalid: int  # violations whose input dciodvfy finds valid
    not_compared: dict[str, str]  # source label -> why dciodvfy's kinds cannot be compared
    unmapped: tuple[str, ...]  # outputs no single input could be found for
    refused_valid: dict[str, str]  # source label -> quarantine reason, for inputs dciodvfy finds valid
    refused_readable: Counter[str]  # quarantine reason -> inputs dciodvfy read to the end (with or without errors)

    def report(self) -> str:
        """A readable account: violations, then what was not compared and what was refused."""
        lines = [f"{len(self.violations)} of {self.outputs} outputs gain dciodvfy error kinds"
                 f" ({self.valid_to_invalid} of them from an input dciodvfy finds valid):"]
        for label, kinds in sorted(self.violations.items()):
            lines += [f"  {label}:"] + [f"    + {kind}" for kind in kinds]
        gained = Counter(kind for kinds in self.violations.values() for kind in kinds)
        lines += ["kinds gained, by outputs:"] + [f"  {n} x {kind}" for kind, n in sorted(gained.items())]
        if self.unmapped:
            lines.append(f"{len(self.unmapped)} outputs without a single input: {', '.join(self.unmapped)}")
        lines.append(f"{len(self.not_compared)} not compared (dciodvfy cannot read or type the input):")
        lines += [f"  {label}: {why}" for label, why in sorted(self.not_compared.items())]
        lines.append(f"{len(self.refused_valid)} inputs dciodvfy finds valid were quarantined:")
        lines += [f"  {label}: {reason}" for label, reason in sorted(self.refused_valid.items())]
        readable = dict(sorted(self.refused_readable.items()))
        lines.append(f"quarantined inputs dciodvfy reads to the end, by reason: {readable}")
        return "\n".join(lines)


_VALIDATIONS: dict[str, Validation] = {}  # by content hash: an input is checked once for every run


def _validation(path: Path, digest: str) -> Validation:
    if digest not in _VALIDATIONS:
        _VALIDATIONS[digest] = validate(path)
    return _VALIDATIONS[digest]


def _sources(root: Path, named: bool) -> dict[str, list[Source]]:
    """Every file under `root` by content hash; labelled by name only when `named` (pydicom's own files)."""
    found: dict[str, list[Source]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        iod = _validation(path, digest).iod or "no IOD"
        label = f"{path.name} [{digest[:12]}]" if named else f"[{digest[:12]} {iod}]"
        found.setdefault(digest, []).append(Source(path, digest, label, _sop_instance_uid(path)))
    return found


def _sop_instance_uid(path: Path) -> str | None:
    """The input's SOP Instance UID, read with force: a dataset stored without preamble and file
    meta is published as PS3.10 (issue 14 item 4) and must be paired like any other input."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"], force=True)
    except Exception:  # not DICOM, or too broken to read: the run quarantines or skips it
        return None
    value = ds.get("SOPInstanceUID")
    return str(value) if value else None


def _copy_pydicom_files(folder: Path) -> Path:
    """Each *.dcm of pydicom's wheel that pydicom reads (without force), once per content."""
    folder.mkdir()
    seen: set[bytes] = set()
    for path in sorted(PYDICOM_FILES.rglob("*.dcm")):
        data = path.read_bytes()
        digest = hashlib.sha256(data).digest()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydicom.dcmread(path)
        except Exception:  # not readable by pydicom (no preamble, no meta): outside this comparison
            continue
        if digest not in seen and not (folder / path.name).exists():
            seen.add(digest)
            (folder / path.name).write_bytes(data)
    return folder


def _run(inputs: Path, work: Path, options: tuple[str, ...]) -> tuple[Path, Path]:
    """`deid-pipeline run` in this process (no Dask); the release folder and the mapping folder."""
    release, mapping = work / "release", work / "mapping"
    command = [str(CLI), "run", str(inputs), "--output", str(release), "--key-file", str(write_key(work)),
               "--mapping-dir", str(mapping), "--workers", "0", "--quiet", *options]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=work)
    assert done.returncode in (0, 1), f"run exited {done.returncode}: {done.stderr[-2000:]}"
    return release, mapping


def _compare(inputs: Path, release: Path, mapping: Path, named: bool) -> Comparison:
    sources = _sources(inputs, named)
    ledger_path = release.parent / f"{release.name}.quarantine" / "ledger.jsonl"
    quarantined = {entry["source_id"]: entry["reason"]
                   for entry in map(json.loads, ledger_path.read_text().splitlines())} if ledger_path.exists() else {}
    with (mapping / "uid_mapping.csv").open(newline="") as handle:
        old_of = {row["id_new"]: row["id_old"] for row in csv.DictReader(handle)}
    by_uid: dict[str, list[Source]] = {}
    for digest, copies in sources.items():
        if digest not in quarantined and copies[0].sop_instance_uid:
            by_uid.setdefault(copies[0].sop_instance_uid, []).append(copies[0])

    outputs = sorted(release.rglob("*.dcm"))
    violations: dict[str, tuple[str, ...]] = {}
    valid_to_invalid = 0
    not_compared: dict[str, str] = {}
    unmapped: list[str] = []
    for output in outputs:
        new_uid = _sop_instance_uid(output)
        candidates = by_uid.get(old_of.get(new_uid or "", ""), [])
        if len(candidates) != 1:
            unmapped.append(f"{output.name[:16]}... ({len(candidates)} candidate inputs)")
            continue
        source = candidates[0]
        before, after = _validation(source.path, source.sha256), validate(output)
        if before.readability is not Readability.READ:
            not_compared[source.label] = f"input {before.readability}"
        elif after.readability is not Readability.READ:
            violations[source.label] = (f"dciodvfy: output {after.readability} (input read)",)
        elif gained := after.errors - before.errors:
            violations[source.label] = tuple(sorted(gained))
        valid_to_invalid += source.label in violations and before.is_valid

    refused_valid: dict[str, str] = {}
    refused_readable: Counter[str] = Counter()
    for digest, reason in quarantined.items():
        assert digest in sources, f"the ledger names an input that is not in the input folder: {digest[:12]}"
        refused = sources[digest][0]
        found = _validation(refused.path, digest)
        if found.readability is Readability.READ:
            refused_readable[reason] += 1
        if found.is_valid:
            refused_valid[refused.label] = reason
    return Comparison(len(outputs), violations, valid_to_invalid, not_compared, tuple(unmapped), refused_valid,
                      refused_readable)


def _check(comparison: Comparison) -> None:
    print(comparison.report())  # the refused-but-valid list is information, not a failure
    assert comparison.outputs > 0, "nothing was published: nothing compared"
    assert not comparison.unmapped, comparison.report()
    assert not comparison.violations, comparison.report()


@pytest.mark.parametrize("option_set", _option_sets("archive"))
def test_archive_outputs_gain_no_dciodvfy_error_kind(tmp_path: Path, option_set: str) -> None:
    release, mapping = _run(ARCHIVE, tmp_path, OPTION_SETS[option_set])
    _check(_compare(ARCHIVE, release, mapping, named=False))


@pytest.mark.parametrize("option_set", _option_sets("pydicom"))
def test_pydicom_files_outputs_gain_no_dciodvfy_error_kind(tmp_path: Path, option_set: str) -> None:
    inputs = _copy_pydicom_files(tmp_path / "inputs")
    release, mapping = _run(inputs, tmp_path, OPTION_SETS[option_set])
    _check(_compare(inputs, release, mapping, named=True))


# The oracle itself, on real files and dciodvfy's real reports.

def test_dciodvfy_is_installed() -> None:
    assert shutil.which("dciodvfy") == executable()


def test_a_conforming_file_has_no_error_kind() -> None:
    found = validate(bundled("CT_small.dcm"))
    assert found.readability is Readability.READ and found.iod == "CTImage"
    assert found.errors == frozenset() and found.is_valid
    assert found.warnings, "CT_small.dcm draws warnings, which are not errors"


def test_a_removed_type_1_attribute_is_one_kind_naming_attribute_and_module(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(bundled("CT_small.dcm"))
    del ds.FrameOfReferenceUID
    ds.save_as(tmp_path / "no_frame_of_reference.dcm")
    found = validate(tmp_path / "no_frame_of_reference.dcm")
    assert found.errors == {"Missing attribute Type 1 Required Element=<FrameOfReferenceUID> Module=<FrameOfReference>"}


def test_two_invalid_values_of_one_attribute_are_the_same_kind_without_the_value(tmp_path: Path) -> None:
    data = bundled("CT_small.dcm").read_bytes()
    study_date = b"\x08\x00\x20\x00DA\x08\x0020040119"  # (0008,0020) DA, 8 bytes, explicit VR little endian
    assert data.count(study_date) == 1
    kinds = []
    for bad in (b"2004.119", b"1999:1:3"):
        (tmp_path / "bad.dcm").write_bytes(data.replace(study_date, study_date[:8] + bad))
        found = validate(tmp_path / "bad.dcm")
        assert found.readability is Readability.READ
        assert not any(bad.decode() in kind or "2004" in kind or "1999" in kind for kind in found.errors)
        kinds.append(found.errors)
    assert kinds[0] == kinds[1] == {
        "Value invalid for this VR - (0008,0020) DA Study Date - Character invalid for this VR",
        "Dicom dataset contains invalid data values for Value Representations",
    }


def test_a_value_spread_over_lines_stays_in_its_message() -> None:
    found = validate(bundled("examples_ybr_color.dcm"))  # a private UT holding an XML schema, tabs included
    assert "Value invalid for this VR - (0019,xx60) ? UT - Character invalid for this VR" in found.errors
    assert not any("xsd" in kind for kind in found.errors | found.warnings)
    assert found.iod == "USMultiFrameImage"


def test_a_file_that_crashes_dciodvfy_is_unreadable_not_clean() -> None:
    found = validate(bundled("rtdose.dcm"))  # 32-bit dose grid: dciodvfy stops on an assertion
    assert found.readability is Readability.CRASHED and not found.is_valid


def test_a_deflated_file_is_validated_inflated() -> None:
    found = validate(bundled("image_dfl.dcm"))
    assert found.inflated and found.readability is Readability.READ and found.iod == "SCImage"


def test_a_read_failure_marks_the_file_partly_read() -> None:
    found = parse("Error - Seek failed - while reading unencapsulated Pixel Data\nError - Dicom dataset read failed\n"
                  "MRImage\n", returncode=1)
    assert found.readability is Readability.READ_FAILED
    assert validate(bundled("MR_truncated.dcm")).readability is Readability.READ_FAILED
