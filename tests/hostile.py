"""Generators of hostile inputs (imported explicitly by the hostile, fuzz and side-door tests).

Each generator returns the bytes of one file, built by hand where pydicom would refuse to
write it: lengths that point past the end, sequences nested a thousand deep, a 2 GB pixel
length in a few hundred bytes, two private creators claiming one block, a DICOMDIR whose
ReferencedFileID climbs out of the release. `plant_tree` lays out an input folder holding all
of them plus symbolic-link loops and names that are not UTF-8 or hold a newline.

Every file carries `CANARY` (in PatientName or a private value), so a test can tell a file
that was published with its identifier from one that was scrubbed or quarantined.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLossless

CANARY = "ZQXCANARY^HOSTILE"
CANARY_ID = "ZQXID4711"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
TWO_GIB = 0x7FFFFFF0
NESTING = 1000


def _uid(n: int) -> str:
    return f"2.25.{4711000 + n}"


def base_dataset(n: int = 0, sop_class: str = CT_IMAGE_STORAGE) -> Dataset:
    """A small valid instance carrying the canaries in PatientName and PatientID."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _uid(3 * n + 1)
    ds.StudyInstanceUID = _uid(3 * n + 2)
    ds.SeriesInstanceUID = _uid(3 * n + 3)
    ds.PatientName = CANARY
    ds.PatientID = CANARY_ID
    ds.Modality = "OT"
    return ds


def encode(ds: Dataset, implicit: bool = False, tail: bytes = b"", syntax: str | None = None) -> bytes:
    """A PS3.10 file of `ds` (preamble, DICM, meta), then `tail` appended raw to its dataset."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax or (ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)
    ds.file_meta = meta
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue() + tail


def _explicit(group: int, element: int, vr: bytes, value: bytes, length: int | None = None) -> bytes:
    size = len(value) if length is None else length
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OF", b"OD", b"OL", b"OV"):
        return struct.pack("<HH2sHI", group, element, vr, 0, size) + value
    return struct.pack("<HH2sH", group, element, vr, size) + value


def _implicit(group: int, element: int, value: bytes, length: int | None = None) -> bytes:
    return struct.pack("<HHI", group, element, len(value) if length is None else length) + value


# --- the generators ------------------------------------------------------------------------


def length_beyond_file() -> bytes:
    """An implicit VR file whose last text element (PatientComments, LT) declares 1 GiB."""
    return encode(base_dataset(1), implicit=True, tail=_implicit(0x0010, 0x4000, b"ZQXCOMMENT", 0x40000000))


def explicit_length_beyond_file() -> bytes:
    """An explicit VR file whose UT element (a 32-bit length) declares nearly 2 GiB."""
    return encode(base_dataset(2), tail=_explicit(0x0018, 0x9937, b"UT", b"ZQXTEXT", TWO_GIB))


def huge_pixel_length() -> bytes:
    """A 2 GB declared PixelData length in a file of a few hundred bytes."""
    ds = base_dataset(3)
    ds.Rows = ds.Columns = 46341
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    return encode(ds, tail=_explicit(0x7FE0, 0x0010, b"OB", b"\x00" * 64, TWO_GIB))


def huge_declared_frames() -> bytes:
    """Encapsulated (JPEG Lossless) pixel data whose header declares 65535 x 65535 x 10000
    frames of 16 bits: terabytes once decoded, from one tiny fragment."""
    ds = base_dataset(4)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 10000
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    ds["PixelData"].VR = "OB"
    return encode(ds, syntax=JPEGLossless)


def deep_sequences(depth: int = NESTING) -> bytes:
    """ReferencedSeriesSequence nested `depth` levels deep (undefined lengths), the canary at
    the bottom in PatientName."""
    opening = (_explicit(0x0008, 0x1115, b"SQ", b"", 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF))
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    name = CANARY.encode() + (b" " if len(CANARY) % 2 else b"")
    body = opening * depth + _explicit(0x0010, 0x0010, b"PN", name) + closing * depth
    return encode(base_dataset(5), tail=body)


def private_creator_clash() -> bytes:
    """Two private creators claim block 0x10 of group 0x0009 (the same tag twice), and a
    second group names one creator for two blocks; the private values hold the canary."""
    ds = base_dataset(6)
    data = encode(ds)
    value = CANARY.encode() + (b" " if len(CANARY) % 2 else b"")
    tail = (_explicit(0x0009, 0x0010, b"LO", b"ACME 1.0")
            + _explicit(0x0009, 0x0010, b"LO", b"OTHER CO")
            + _explicit(0x0009, 0x1001, b"LO", value)
            + _explicit(0x0011, 0x0010, b"LO", b"ACME 1.0")
            + _explicit(0x0011, 0x0011, b"LO", b"ACME 1.0")
            + _explicit(0x0011, 0x1001, b"LO", value)
            + _explicit(0x0011, 0x1101, b"LO", value))
    return _insert_before(data, 0x0010, tail)


def _insert_before(data: bytes, group: int, extra: bytes) -> bytes:
    """Insert raw elements before the first element of `group` (explicit VR LE dataset)."""
    position = 132 + 12 + struct.unpack("<I", data[140:144])[0]
    while position < len(data):
        tag_group = struct.unpack("<H", data[position:position + 2])[0]
        if tag_group >= group:
            return data[:position] + extra + data[position:]
        vr = data[position + 4:position + 6]
        if vr in (b"OB", b"OW", b"UN", b"UT", b"SQ"):
            position += 12 + struct.unpack("<I", data[position + 8:position + 12])[0]
        else:
            position += 8 + struct.unpack("<H", data[position + 6:position + 8])[0]
    return data + extra


def dicomdir_pointing_outside(outside: str) -> bytes:
    """A DICOMDIR with one IMAGE record whose ReferencedFileID climbs to `outside` (an
    absolute path, or ``..`` components)."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.1.3.10"
    ds.SOPInstanceUID = _uid(900)
    ds.FileSetID = "HOSTILE"
    record = Dataset()
    record.DirectoryRecordType = "IMAGE"
    record.ReferencedFileID = [part for part in outside.split("/") if part] if not outside.startswith("/") \
        else ["", *outside.strip("/").split("/")]
    record.ReferencedSOPClassUIDInFile = CT_IMAGE_STORAGE
    record.ReferencedSOPInstanceUIDInFile = _uid(901)
    record.PatientName = CANARY
    record.OffsetOfTheNextDirectoryRecord = 0
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.RecordInUseFlag = 0xFFFF
    ds.DirectoryRecordSequence = [record]
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    return encode(ds)


def truncated_in_header() -> bytes:
    """A valid file cut in the middle of an element header."""
    data = encode(base_dataset(7))
    return data[: len(data) - 3]


def unknown_transfer_syntax() -> bytes:
    """Native pixel data under a transfer syntax UID no one registered (found by the fuzzer:
    it raised ValueError, reported as unexpected-ValueError)."""
    ds = base_dataset(8)
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\x00\x01\x02\x03"
    return encode(ds).replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.9\x00", 1)


def garbage_after_preamble() -> bytes:
    """DICM, then noise: no file meta at all."""
    return b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4


GENERATORS: dict[str, Callable[[], bytes]] = {
    "length_beyond_file": length_beyond_file,
    "explicit_length_beyond_file": explicit_length_beyond_file,
    "huge_pixel_length": huge_pixel_length,
    "huge_declared_frames": huge_declared_frames,
    "deep_sequences": deep_sequences,
    "private_creator_clash": private_creator_clash,
    "truncated_in_header": truncated_in_header,
    "garbage_after_preamble": garbage_after_preamble,
    "unknown_transfer_syntax": unknown_transfer_syntax,
}


# --- an input tree ----------------------------------------------------------------------------

ODD_NAMES = (b"new\nline.dcm", b"latin1-\xe9\xff.dcm", b"-leading-dash.dcm", b" spaced .dcm")


def plant_tree(root: Path, outside: Path) -> dict[str, Path]:
    """Write every generated file under `root`, a DICOMDIR pointing into `outside` (by ``..``
    and by absolute path), symbolic-link loops, a link leading out of the root, and valid
    files under odd names; return name -> path for the files."""
    root.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    for name, generate in GENERATORS.items():
        path = root / f"{name}.dcm"
        path.write_bytes(generate())
        made[name] = path
    media = root / "media"
    media.mkdir()
    climb = os.path.relpath(outside / "escaped.dcm", media)
    (media / "DICOMDIR").write_bytes(dicomdir_pointing_outside(climb))
    (root / "absolute").mkdir()
    (root / "absolute" / "DICOMDIR").write_bytes(dicomdir_pointing_outside(str(outside / "escaped_abs.dcm")))
    loops = root / "loops"
    loops.mkdir()
    (loops / "parent").symlink_to("..")  # a directory loop
    (loops / "self.dcm").symlink_to("self.dcm")  # ELOOP
    (loops / "a.dcm").symlink_to("b.dcm")
    (loops / "b.dcm").symlink_to("a.dcm")
    (loops / "dangling.dcm").symlink_to("nowhere.dcm")
    outside.mkdir(parents=True, exist_ok=True)
    secret = outside / "outside_secret.dcm"
    secret.write_bytes(encode(base_dataset(50)))
    (root / "link_out.dcm").symlink_to(secret)
    (root / "link_out_dir").symlink_to(outside, target_is_directory=True)
    for number, raw in enumerate(ODD_NAMES):
        path = Path(os.fsdecode(os.fsencode(root) + b"/" + raw))
        path.write_bytes(encode(base_dataset(100 + number)))
        made[f"odd-name-{number}"] = path
    return made
