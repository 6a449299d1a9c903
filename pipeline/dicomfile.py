"""Reading one DICOM file from bytes and encoding a dataset back to bytes; no scrubbing.

Bytes in, bytes out: the caller decides where they come from and go (write.py stages and
promotes them atomically). Only PS3.10 files are read: a raw dataset without the 128-byte
preamble and DICM prefix, a DICOMDIR, or anything without a SOP Class and Instance UID is an
`InputError` (such files are reported, never published).
"""

from __future__ import annotations

import io
import uuid
import warnings

import pydicom
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pipeline import __version__
from pipeline.errors import InputError, WriteError

# This implementation's class UID, fixed (derived once from its name under the 2.25 arc).
IMPLEMENTATION_CLASS_UID = f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'urn:deid-pipeline').int}"
IMPLEMENTATION_VERSION_NAME = ("DEIDPIPE_" + __version__.replace(".", ""))[:16]

# pydicom's validation warnings quote the offending value: a side door for PHI. Values are
# judged by the plan and verify, not by warnings, so validation is off in this process.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE


def read_dataset(data: bytes) -> Dataset:
    """Parse a whole DICOM file; raise `InputError` (with no value in it) if it is not one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read(data)


def _read(data: bytes) -> Dataset:
    if not data:
        raise InputError("empty file")
    if "DICOMDIR" in _media_storage_hint(data):
        raise InputError("a DICOMDIR is a media index, not an instance: not copied")
    ds: Dataset
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError:
        raise InputError("not a DICOM file: no 128-byte preamble and DICM prefix (PS3.10)") from None
    except Exception as exc:
        raise InputError(f"unreadable DICOM ({type(exc).__name__})") from None
    if str(ds.get("SOPClassUID", "")) == "1.2.840.10008.1.3.10" or "DirectoryRecordSequence" in ds:
        raise InputError("a DICOMDIR is a media index, not an instance: not copied")
    # Elements are decoded lazily; one that cannot be decoded fails the scrub later, and the
    # file is quarantined then (process.py's callers treat every exception that way).
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        raise InputError("no SOP Class or SOP Instance UID: not a composite instance")
    _check_pixel_length(ds)
    return ds


def _check_pixel_length(ds: Dataset) -> None:
    """Native pixel data shorter than Rows x Columns x Samples x Bits x Frames is truncated."""
    if "PixelData" not in ds or ds.file_meta.get("TransferSyntaxUID") is None:
        return
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
        bits = int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel") or 1)
        if str(ds.get("PhotometricInterpretation", "")).startswith("YBR_FULL_422"):
            samples = 2  # 4:2:2 subsampling: two values per pixel on average
        pixels = int(ds.Rows) * int(ds.Columns) * samples * frames
    except (AttributeError, TypeError, ValueError):
        raise InputError("pixel data without a usable Rows, Columns or BitsAllocated") from None
    expected = (pixels * bits + 7) // 8
    if len(ds.PixelData) < expected:
        raise InputError("pixel data is shorter than its header declares (truncated file)")


def _media_storage_hint(data: bytes) -> str:
    head = data[:512]
    return "DICOMDIR" if b"1.2.840.10008.1.3.10\x00" in head or b"1.2.840.10008.1.3.10 " in head else ""


def encode(ds: Dataset) -> bytes:
    """Encode a dataset as a DICOM file (preamble, DICM, file meta) in its transfer syntax."""
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding if ds.original_encoding[0] is not None else (True, True)
        if implicit:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    except Exception as exc:
        raise WriteError(f"cannot encode the dataset ({type(exc).__name__})") from None
    return buffer.getvalue()
