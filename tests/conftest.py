"""Shared test fixtures: a fixed key, a dataset factory, the PS3.15 reference tables."""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pipeline.scrub.keys import Keys

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "pipeline" / "recipes"  # package data (pyproject: tool.setuptools.package-data)
# The PS3.15 tables as JSON (../shared/reference, or $DEID_REFERENCE): only the tests that check
# the committed copies against them need it; the rest read TABLE_COPY.
REFERENCE = Path(os.environ.get("DEID_REFERENCE") or REPO.parent / "shared" / "reference")
TABLE_COPY = REPO / "profiles" / "table-e1-1.json"  # written by `make profiles` (generate_recipes.py)
TEST_KEY = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0")
OTHER_KEY = bytes.fromhex("ffeeddccbbaa99887766554433221100fedcba98765432100123456789abcdef")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def keys() -> Keys:
    return Keys(key=TEST_KEY)


@pytest.fixture
def other_keys() -> Keys:
    return Keys(key=OTHER_KEY)


def make_dataset(patient: str = "DOE^JANE", study: str | None = None, series: str | None = None,
                 instance: str | None = None, patient_id: str = "MRN0001") -> Dataset:
    """A small CT-like dataset in memory, with file meta, carrying the identifiers given."""
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = instance or generate_uid(prefix="1.2.826.0.1.3680043.10.1.")
    ds.StudyInstanceUID = study or "1.2.826.0.1.3680043.10.2.1"
    ds.SeriesInstanceUID = series or "1.2.826.0.1.3680043.10.3.1"
    ds.PatientName = patient
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = "20240131"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC123456"
    ds.Modality = "CT"
    ds.Rows = 2
    ds.Columns = 2
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\x00\x01\x02\x03\x04\x05\x06\x07"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


@pytest.fixture
def dataset_factory() -> Callable[..., Dataset]:
    return make_dataset


def bundled(name: str) -> Path:
    """A DICOM file shipped inside pydicom's wheel (never downloaded)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = pydicom.data.get_testdata_file(name, download=False)
    assert path is not None, name
    return Path(str(path))


def read(data: bytes) -> Dataset:
    """Parse DICOM bytes quietly (pydicom's warnings are errors under pytest's config)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


def encode(ds: Dataset) -> bytes:
    """A dataset as the bytes of a PS3.10 file."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def reference_rows() -> list[dict[str, object]]:
    """The rows of PS3.15 Table E.1-1 (the columns the tests read), from the committed copy."""
    table = json.loads(TABLE_COPY.read_text())
    return [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
