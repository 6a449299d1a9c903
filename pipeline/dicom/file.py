"""Reading one DICOM file from bytes and encoding a dataset back to bytes; no scrubbing.

Bytes in, bytes out: the caller decides where they come from and go (write.py stages and
promotes them atomically). PS3.10 files are read, once their declared lengths are checked
(`pipeline.dicom.lengths`); so is a complete dataset stored without the 128-byte preamble,
DICM prefix and file meta (older exports) when its transfer syntax can be established
(`pipeline.dicom.raw`): it is read, and later encoded, as a PS3.10 file. A DICOMDIR,
a bare dataset in no syntax it reads in, or anything without a SOP Class and Instance UID is an
`InputError` (such files are reported, never published).
"""

from __future__ import annotations

import io
import logging
import struct
import uuid
import warnings
from typing import Any

import pydicom
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pipeline.dicom import raw
from pipeline.dicom.datasets import put_meta_element
from pipeline.dicom.lengths import MAX_DECODED_PIXEL_BYTES, TooLargeError, check_declared_lengths
from pipeline.dicom.reader import read_part10
from pipeline.dicom.stored import number, stored_values
from pipeline.dicom.writer import encode_file
from pipeline.errors import Cause, InputError, WriteError
from pipeline.version import __version__

# This implementation's class UID, fixed (derived once from its name under the 2.25 arc).
IMPLEMENTATION_CLASS_UID = f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'urn:deid-pipeline').int}"
IMPLEMENTATION_VERSION_NAME = ("DEIDPIPE_" + __version__.replace(".", ""))[:16]

# pydicom's validation warnings quote the offending value: a side door for PHI. Values are
# judged by the plan and verify, not by warnings, so validation is off in this process.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
# pydicom also logs what it warns (warn_and_log), values included: its logger stays quiet.
logging.getLogger("pydicom").setLevel(logging.CRITICAL)


def read_dataset(data: bytes) -> Dataset:
    """Parse a whole DICOM file; raise `InputError` (with no value in it) if it is not one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read(data)


def _read(data: bytes) -> Dataset:
    if not data:
        raise InputError("empty file", cause=Cause.EMPTY)
    if "DICOMDIR" in _media_storage_hint(data):
        raise InputError("a DICOMDIR is a media index, not an instance: not copied", cause=Cause.DICOMDIR)
    if not raw.is_part10(data):
        data = raw.as_part10(data, _read_part10)
    ds = _read_part10(data)
    _record_implicit_reading(ds)
    sop_class = str(_uid(ds, _SOP_CLASS_UID, "SOPClassUID")) if _SOP_CLASS_UID in ds._dict else ""
    if sop_class == "1.2.840.10008.1.3.10" or _DIRECTORY_RECORDS in ds._dict:
        raise InputError("a DICOMDIR is a media index, not an instance: not copied", cause=Cause.DICOMDIR)
    # Elements are decoded lazily; one that cannot be decoded fails the scrub later, and the
    # file is quarantined then (process.py's callers treat every exception that way).
    if _SOP_CLASS_UID not in ds._dict or _SOP_INSTANCE_UID not in ds._dict:
        raise InputError("no SOP Class or SOP Instance UID: not a composite instance", cause=Cause.NO_SOP_UID)
    _check_pixel_length(ds)
    return ds


def _record_implicit_reading(ds: Dataset) -> None:
    """A dataset stored in implicit VR under an explicit VR transfer syntax (a PS3.5 10.1
    violation: pydicom's SC_rgb_jpeg.dcm) is read as implicit, yet pydicom records the syntax's
    explicit encoding, and would write its raw elements back with no VR (``write-failed:encoder``).
    Record what was read, so that the writer looks each VR up in the dictionary (PS3.6) and the
    output is in its transfer syntax."""
    implicit, little = ds.original_encoding
    first = next(iter(ds.keys()), None)
    if implicit is False and little is not None and first is not None and ds.get_item(first).VR is None:
        ds.set_original_encoding(True, little, ds.original_character_set)


def _read_part10(data: bytes) -> Dataset:
    """pydicom's read of a PS3.10 file, after the declared lengths were checked (`reader`:
    the same dataset, built faster, for a file in explicit VR little endian)."""
    check_declared_lengths(data)
    try:
        return read_part10(data) or pydicom.dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError:
        raise InputError("not a DICOM file: no 128-byte preamble and DICM prefix (PS3.10)",
                         cause=Cause.NOT_PART_10) from None
    except Exception as exc:
        cause = decode_cause(exc) or Cause.UNREADABLE
        raise InputError(f"unreadable DICOM ({type(exc).__name__})", cause=cause) from None


def _check_pixel_length(ds: Dataset) -> None:
    """Native pixel data shorter than Rows x Columns x Samples x Bits x Frames is truncated;
    encapsulated pixel data (an undefined length) needs a syntax that encapsulates (PS3.5 A.4)."""
    if _PIXEL_DATA not in ds._dict:
        return
    syntax = _get(ds.file_meta, _TRANSFER_SYNTAX)  # without keyword look-ups
    if syntax is None:
        _refuse_encapsulated(ds)  # the output would name a native syntax (`encode`)
        return
    try:
        compressed = syntax.is_compressed
    except ValueError:  # not a transfer syntax pydicom knows
        raise InputError("the file meta names an unknown transfer syntax",
                         cause=Cause.UNKNOWN_TRANSFER_SYNTAX) from None
    if compressed:
        _check_decoded_size(ds)
        return
    _refuse_encapsulated(ds)
    try:
        frames = int(_get(ds, _NUMBER_OF_FRAMES) or 1)
        bits = int(_number(ds, _BITS_ALLOCATED, "BitsAllocated"))
        samples = int(number(ds, _SAMPLES_PER_PIXEL) or 1)
        if _text(ds, _PHOTOMETRIC_INTERPRETATION, "CS").startswith("YBR_FULL_422"):
            samples = 2  # 4:2:2 subsampling: two values per pixel on average
        pixels = int(_number(ds, _ROWS, "Rows")) * int(_number(ds, _COLUMNS, "Columns")) * samples * frames
    except (AttributeError, TypeError, ValueError):
        raise InputError("pixel data without a usable Rows, Columns or BitsAllocated",
                         cause=Cause.BAD_PIXEL_ATTRIBUTES) from None
    expected = (pixels * bits + 7) // 8
    if expected > MAX_DECODED_PIXEL_BYTES:
        raise TooLargeError("the pixel data would decode to more than the per-file limit",
                            cause=Cause.PIXEL_DATA_SIZE)
    if _length(ds, _PIXEL_DATA) < expected:
        raise InputError("pixel data is shorter than its header declares (truncated file)",
                         cause=Cause.TRUNCATED_PIXEL_DATA)


def _refuse_encapsulated(ds: Dataset) -> None:
    """Pixel Data of undefined length in a file whose transfer syntax is native or not named:
    PS3.5 7.1.1 allows an undefined length on OB or OW only as the transfer syntax says, and
    A.4 only in the encapsulated syntaxes (native Pixel Data, A.1-A.2, has a defined length).
    Read to its delimiter, its items and fragments would be published as native pixels."""
    stored = ds._dict[_PIXEL_DATA]  # type: ignore[index]
    if stored.length == _UNDEFINED if isinstance(stored, RawDataElement) else stored.is_undefined_length:
        raise InputError("encapsulated (undefined length) Pixel Data under a transfer syntax that is native or "
                         "not named", cause=Cause.BAD_VALUE_LENGTH)


def _check_decoded_size(ds: Dataset) -> None:
    """Compressed pixel data that would decode to more than the limit is refused before any
    decoder sees it."""
    try:
        size = (int(_number(ds, _ROWS, "Rows")) * int(_number(ds, _COLUMNS, "Columns"))
                * int(number(ds, _SAMPLES_PER_PIXEL) or 1) * int(_get(ds, _NUMBER_OF_FRAMES) or 1)
                * int(_number(ds, _BITS_ALLOCATED, "BitsAllocated")) + 7) // 8
    except (AttributeError, TypeError, ValueError):
        raise InputError("pixel data without a usable Rows, Columns or BitsAllocated",
                         cause=Cause.BAD_PIXEL_ATTRIBUTES) from None
    if size > MAX_DECODED_PIXEL_BYTES:
        raise TooLargeError("the pixel data would decode to more than the per-file limit",
                            cause=Cause.PIXEL_DATA_SIZE)


def _media_storage_hint(data: bytes) -> str:
    head = data[:512]
    return "DICOMDIR" if b"1.2.840.10008.1.3.10\x00" in head or b"1.2.840.10008.1.3.10 " in head else ""


def encode(ds: Dataset) -> bytes:
    """Encode a dataset as a DICOM file (preamble, DICM, file meta) in its transfer syntax."""
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    if _TRANSFER_SYNTAX not in meta._dict:  # `"TransferSyntaxUID" not in meta`, without the keyword look-up
        implicit, little = ds.original_encoding if ds.original_encoding[0] is not None else (True, True)
        if implicit:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    _set(meta, 0x00020002, "UI", _uid(ds, 0x00080016, "SOPClassUID"))  # MediaStorageSOPClassUID
    _set(meta, 0x00020003, "UI", _uid(ds, 0x00080018, "SOPInstanceUID"))  # MediaStorageSOPInstanceUID
    _set(meta, 0x00020012, "UI", IMPLEMENTATION_CLASS_UID)
    _set(meta, 0x00020013, "SH", IMPLEMENTATION_VERSION_NAME)
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = _encode_file(ds)
            if fast is not None:
                return fast
            pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    except Exception as exc:
        raise WriteError(f"cannot encode the dataset ({type(exc).__name__})", cause=_encode_cause(ds)) from None
    return buffer.getvalue()


_SOP_CLASS_UID, _SOP_INSTANCE_UID, _DIRECTORY_RECORDS = 0x00080016, 0x00080018, 0x00041220
_TRANSFER_SYNTAX = 0x00020010
_UNDEFINED = 0xFFFFFFFF  # an undefined length (PS3.5 7.1.1)
_SAMPLES_PER_PIXEL, _PHOTOMETRIC_INTERPRETATION, _NUMBER_OF_FRAMES = 0x00280002, 0x00280004, 0x00280008
_ROWS, _COLUMNS, _BITS_ALLOCATED, _PIXEL_DATA = 0x00280010, 0x00280011, 0x00280100, 0x7FE00010


def _get(ds: Dataset, tag: int, default: Any = None) -> Any:
    """`ds.get(<keyword>, default)` without the keyword look-up."""
    return ds[tag].value if tag in ds._dict else default


def _number(ds: Dataset, tag: int, keyword: str) -> Any:
    """`ds.<keyword>` of a US attribute (AttributeError when absent), read as stored (`number`)."""
    return number(ds, tag) if tag in ds._dict else getattr(ds, keyword)


def _value(ds: Dataset, tag: int, keyword: str) -> Any:
    """`ds.<keyword>` (AttributeError when absent, as ever) without the keyword look-up."""
    return ds[tag].value if tag in ds._dict else getattr(ds, keyword)


def _uid(ds: Dataset, tag: int, keyword: str) -> Any:
    """`_value` of a UI attribute, read from the stored bytes when they are plain (one value or
    none: `stored_values`), its text then (a UI element made of it holds the same UID)."""
    stored = ds._dict.get(tag)  # type: ignore[call-overload]
    values = None if stored is None else stored_values(stored, "UI", ds)
    if values is not None and len(values) <= 1:
        return values[0] if values else ""
    return _value(ds, tag, keyword)


def _text(ds: Dataset, tag: int, vr: str) -> str:
    """`str(_get(ds, tag, ""))` of a one-valued text attribute, read from the stored bytes when
    they are plain (`stored_values`: one value or none)."""
    stored = ds._dict.get(tag)  # type: ignore[call-overload]
    if stored is None:
        return ""
    values = stored_values(stored, vr, ds)
    if values is not None and len(values) <= 1:
        return values[0] if values else ""
    return str(ds[tag].value)


def _length(ds: Dataset, tag: int) -> int:
    """`len(ds[tag].value)` of an OB or OW value: its stored bytes, which pydicom decodes as
    they are (no byte swapping)."""
    stored = ds._dict[tag]  # type: ignore[index]
    if isinstance(stored, RawDataElement) and stored.VR in ("OB", "OW") and isinstance(stored.value, bytes):
        return len(stored.value)
    return len(ds[tag].value)


def _set(ds: Dataset, tag: int, vr: str, value: object) -> None:
    """`ds.<keyword> = value` without the keyword look-up: an element already there takes the
    value (keeping its VR), as pydicom's setattr does; one still stored under `vr` is replaced by
    a new element of `vr` and `value` (the same, without decoding the old value)."""
    stored = ds._dict.get(tag)  # type: ignore[call-overload]
    if isinstance(stored, RawDataElement) and vr == stored.VR:
        put_meta_element(ds, tag, DataElement(tag, vr, value))
    elif isinstance(stored, DataElement):
        stored.value = value  # the element `ds[tag]` returns
    elif stored is not None:
        ds[tag].value = value
    else:
        put_meta_element(ds, tag, DataElement(tag, vr, value))


def _encode_file(ds: Dataset) -> bytes | None:
    """`writer.encode_file`, or None (dcmwrite then encodes, or raises what it raises)."""
    try:
        return encode_file(ds)
    except Exception:
        return None


def decode_cause(exc: BaseException) -> Cause | None:
    """The cause of an error pydicom raises while reading or decoding a value (values are
    decoded when first used, so during the scrub too); None when it is not one of these."""
    if isinstance(exc, (BytesLengthException, struct.error)):
        return Cause.BAD_VALUE_LENGTH
    if isinstance(exc, NotImplementedError) and "Value Representation" in str(exc):
        return Cause.UNKNOWN_VR  # pydicom: "Unknown Value Representation '..' in tag (gggg,eeee)"
    if isinstance(exc, MemoryError):
        return Cause.OUT_OF_MEMORY
    if isinstance(exc, OSError) and str(exc).startswith("No tag to read at file position"):
        return Cause.TRUNCATED_HEADER  # pydicom's read_sequence_item: an item's tag and length cut short (PS3.5 7.5)
    return None


def _encode_cause(ds: Dataset) -> Cause:
    """Why `ds` cannot be encoded: the first element (depth first) that cannot be written on its
    own holds a value its VR cannot hold; `VR_MISMATCH` when that VR is not its tag's dictionary VR."""
    meta = getattr(ds, "file_meta", None)
    implicit, little = ds.original_encoding if ds.original_encoding[0] is not None else (False, True)
    for source, is_implicit in ((meta, False), (ds, implicit)):
        if source is None:
            continue
        elem = _unwritable(source, is_implicit, little if source is ds else True)
        if elem is not None:
            return Cause.VR_MISMATCH if _is_foreign_vr(elem) else Cause.UNENCODABLE_VALUE
    return Cause.ENCODER


def _unwritable(ds: Dataset, implicit: bool, little: bool) -> DataElement | None:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or ():
                inner = _unwritable(item, implicit, little)
                if inner is not None:
                    return inner
            continue
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = implicit, little
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                write_data_element(fp, elem)
        except Exception:
            return elem
    return None


def _is_foreign_vr(elem: DataElement) -> bool:
    """The element's VR is not one its tag's dictionary entry allows (e.g. a PN stored as US)."""
    try:
        expected = dictionary_VR(elem.tag)
    except KeyError:
        return False  # private or unknown tag: no dictionary VR to differ from
    return elem.VR not in {v.strip() for v in expected.split(" or ")}
