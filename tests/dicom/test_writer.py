"""The fast encoder (pipeline/dicom/writer.py) writes exactly the bytes pydicom's dcmwrite writes,
for datasets with elements kept as read, changed, removed and added, in every transfer syntax
it covers; what it does not cover it leaves to dcmwrite."""

from __future__ import annotations

import io
import warnings

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.dicom.file import read_dataset
from pipeline.dicom.writer import encode_file
from tests.conftest import bundled

FILES = ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtplan.dcm",
         "JPEG2000.dcm", "MR_small_RLE.dcm", "SC_rgb_small_odd.dcm")


def _prepared(name: str, change: bool) -> Dataset:
    """A dataset as the scrub leaves it: most elements as read (sequences among them), some changed,
    one removed, a new sequence added."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = read_dataset(bundled(name).read_bytes())
        if change:
            ds.PatientName = "ANONYMIZED"
            ds.PatientIdentityRemoved = "YES"
            if "StudyDate" in ds:
                del ds.StudyDate
            item = Dataset()  # a new item (no encoding of its own) in a new sequence
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "113100", "DCM", "Basic Profile"
            ds.DeidentificationMethodCodeSequence = Sequence([item])
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.preamble = b"\x00" * 128
    return ds


def _dcmwrite(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("change", [False, True])
def test_the_fast_encoder_writes_the_bytes_dcmwrite_writes(name: str, change: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = encode_file(_prepared(name, change))
    assert fast is not None  # the syntaxes above are all covered
    assert fast == _dcmwrite(_prepared(name, change))


def test_a_deflated_file_is_left_to_dcmwrite() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = read_dataset(bundled("image_dfl.dcm").read_bytes())
    ds.preamble = b"\x00" * 128
    assert encode_file(ds) is None
