"""Helpers shared by the run tests (imported explicitly): a key file, an input tree built from
DICOM files bundled with pydicom, and a reader for a release's files."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pydicom.data

from tests.conftest import bundled

KEY_HEX = "7c1f0e9a4b2d3c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6"
OTHER_KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

PATIENT_FOLDER = "Smith^John_MRN12345"
OTHER_FOLDER = "Doe^Jane_MRN67890"
GOOD_FILES = {  # input path under the root -> bundled file
    f"{PATIENT_FOLDER}/CT/ct_head_2004.dcm": "CT_small.dcm",
    f"{PATIENT_FOLDER}/MR/mr_knee.dcm": "MR_small.dcm",
    f"{OTHER_FOLDER}/RT/plan.dcm": "rtplan.dcm",
    f"{OTHER_FOLDER}/SR/report.dcm": "test-SR.dcm",
}
NOT_DICOM_FILES = (f"{OTHER_FOLDER}/empty.dcm", f"{OTHER_FOLDER}/notes.txt")
TRUNCATED_FILE = "Broken^Patient_MRN000/cut.dcm"  # DICM prefix, then cut in half
RAW_FILE = "Broken^Patient_MRN000/structures.dcm"  # a dataset without preamble and file meta: published


def write_key(folder: Path, hex_key: str = KEY_HEX) -> Path:
    """An owner-only key file of 64 hex characters."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "project.key"
    path.write_text(hex_key + "\n")
    os.chmod(path, 0o600)
    return path


def build_inputs(root: Path, broken: bool = False) -> Path:
    """Four DICOM files in patient-named folders, an empty file and a text file; with
    `broken`, also a DICOM file cut in half (quarantined by a run) and a complete dataset
    stored without preamble and file meta (an older export: published as a PS3.10 file)."""
    for relative, name in GOOD_FILES.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundled(name), target)
    (root / NOT_DICOM_FILES[0]).write_bytes(b"")
    (root / NOT_DICOM_FILES[1]).write_text("Smith^John called about his scan on 2004-01-19\n")
    if broken:
        cut = root / TRUNCATED_FILE
        cut.parent.mkdir(parents=True, exist_ok=True)
        data = bundled("CT_small.dcm").read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        shutil.copyfile(bundled("rtstruct.dcm"), root / RAW_FILE)
    return root


def release_files(release: Path) -> dict[str, bytes]:
    """Every file of a release by its release-relative path (hidden ones included)."""
    return {p.relative_to(release).as_posix(): p.read_bytes() for p in sorted(release.rglob("*")) if p.is_file()}


def identifying_strings() -> set[str]:
    """Original values of the bundled inputs and names of the input tree, none of which
    may appear in ledgers, logs or names."""
    found = {"Smith", "MRN12345", "Doe", "MRN67890", "Broken", "MRN000", "ct_head_2004", "mr_knee", "plan.dcm",
             "structures", "report.dcm", "notes.txt"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in GOOD_FILES.values():
            ds = pydicom.dcmread(bundled(name), force=True)
            for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID"):
                value = str(ds.get(keyword, "") or "").strip()
                if len(value) >= 4:
                    found.add(value)
    return found
