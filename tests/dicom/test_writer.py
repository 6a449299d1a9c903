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


# File meta elements as read (raw): plain ones are written as stored, the bytes pydicom writes for
# their decoded values; an empty or NUL-only value, an odd-length or padded one, and a missing one
# are judged and written as pydicom's writer does the decoded elements.
_META_VALUES = {
    "as read": {},
    "version empty": {0x00020001: ("OB", b"")},
    "version odd": {0x00020001: ("OB", b"\x00\x01\x02")},
    "implementation class NUL": {0x00020012: ("UI", b"\x00\x00")},
    "implementation class empty": {0x00020012: ("UI", b"")},
    "implementation version padded": {0x00020013: ("SH", b" PYDICOM  ")},
    "implementation version empty": {0x00020013: ("SH", b"")},
    "implementation version missing": {0x00020013: None},
    "source AE odd": {0x00020016: ("AE", b"ABC")},
    "source AE plain": {0x00020016: ("AE", b"ABCD")},
}


@pytest.mark.parametrize("case", list(_META_VALUES))
def test_file_meta_as_stored_is_written_as_dcmwrite_writes_it(case: str) -> None:
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    def prepared() -> Dataset:
        ds = _prepared("CT_small.dcm", False)
        meta = ds.file_meta
        for tag in list(meta.keys()):  # every meta element raw, as the reader leaves it
            elem = meta[tag]
            if elem.VR in ("UI", "SH", "OB", "AE"):
                data = elem.value if isinstance(elem.value, bytes) else str(elem.value).encode("ascii")
                if len(data) % 2:
                    data += b"\x00" if elem.VR == "UI" else b" "
                meta._dict[tag] = RawDataElement(Tag(tag), elem.VR, len(data), data, 0, False, True)
        for number, new in _META_VALUES[case].items():
            if new is None:
                meta._dict.pop(Tag(number), None)
            else:
                meta._dict[Tag(number)] = RawDataElement(Tag(number), new[0], len(new[1]), new[1], 0, False, True)
        return ds

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = encode_file(prepared())
    assert fast is not None
    decoded = prepared()
    for tag in list(decoded.file_meta.keys()):
        decoded.file_meta[tag]  # decoded in place
    assert fast == _dcmwrite(decoded)
