"""A quarantine reason names the cause (issue 18): an unknown VR, a value its VR cannot hold, a
truncated JPEG 2000 codestream and pixel data cut off with the file each get their own reason
through `process_one`, and none holds a value."""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.errors import BytesLengthException
from pydicom.tag import Tag

from pipeline.dicom.file import decode_cause
from pipeline.errors import Cause, InputError
from pipeline.profile.plan import PixelMode, Plan, compile_plan
from pipeline.runner import process
from pipeline.runner.discover import SourceFile
from pipeline.runner.outcome import Disposition, Outcome
from pipeline.runner.process import WorkerConfig, process_one
from pipeline.scrub.keys import Keys
from tests.conftest import bundled
from tests.conftest_run import KEY_HEX

KEYS = Keys(key=KEY_HEX.encode("ascii"))
BASIC = compile_plan("basic", [])
SERIAL = b"SN-4471-QX"  # a device serial number: a value that must not reach a reason


def _process(tmp_path: Path, data: bytes, plan: Plan = BASIC) -> Outcome:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "input.dcm"
    path.write_bytes(data)
    cfg = WorkerConfig(tmp_path / "release", tmp_path / "quarantine")
    (tmp_path / "quarantine").mkdir(exist_ok=True)
    return process_one(SourceFile(path, len(data), 0), plan, KEYS, cfg)


def _quarantined(outcome: Outcome, reason: str) -> None:
    assert (outcome.disposition, outcome.reason) == (Disposition.QUARANTINED, reason)
    assert SERIAL.decode() not in repr(outcome)


def _explicit(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    value += b" " * (len(value) % 2)
    return struct.pack("<HH", group, element) + vr + struct.pack("<H", len(value)) + value


def _insert_before(data: bytes, group: int, element: int, raw: bytes) -> bytes:
    """`raw` elements inserted before the top-level element (group, element) of an explicit VR
    little endian file."""
    at = data.index(struct.pack("<HH", group, element), 132)
    return data[:at] + raw + data[at:]


def _replace(data: bytes, group: int, element: int, raw: bytes) -> bytes:
    """The top-level short-VR element (group, element) replaced by `raw`."""
    at = data.index(struct.pack("<HH", group, element), 132)
    (length,) = struct.unpack("<H", data[at + 6:at + 8])
    return data[:at] + raw + data[at + 8 + length:]


CT = bundled("CT_small.dcm").read_bytes()  # explicit VR little endian


def test_an_unknown_vr_is_bad_input_unknown_vr(tmp_path: Path) -> None:
    """DeviceSerialNumber stored with the VR "QQ", which PS3.5 does not define (it was
    unexpected-NotImplementedError, raised by pydicom when the scrub decoded it)."""
    data = _insert_before(CT, 0x0018, 0x1020, _explicit(0x0018, 0x1000, b"QQ", SERIAL))
    _quarantined(_process(tmp_path, data), "bad-input:unknown-vr")


def test_an_unknown_vr_in_a_private_element_is_bad_input_unknown_vr(tmp_path: Path) -> None:
    """The scrub removes private elements without decoding them: the reading refuses the file first."""
    raw = _explicit(0x0019, 0x0010, b"LO", b"ACME") + _explicit(0x0019, 0x1001, b"QQ", SERIAL)
    _quarantined(_process(tmp_path, _insert_before(CT, 0x0020, 0x000D, raw)), "bad-input:unknown-vr")


def test_pydicoms_error_for_an_item_header_cut_short_is_named_truncated_header() -> None:
    """A sequence whose value ends inside an item's tag and length: pydicom raises an OSError when
    it is decoded (the CI's make fuzz, seed 3819846985, made such an input inside Other Patient IDs
    Sequence; it was quarantined as unexpected-OSError, the same at a22ddfa)."""
    ds = Dataset()
    half_item = b"\xfe\xff\x00\xe0"
    ds[0x00101002] = RawDataElement(Tag(0x00101002), "SQ", len(half_item), half_item, 0, False, True)
    with pytest.raises(OSError) as cut:
        ds[0x00101002]
    assert decode_cause(cut.value) is Cause.TRUNCATED_HEADER
    assert decode_cause(OSError("another")) is None


def test_pydicoms_lazy_unknown_vr_error_is_named_unknown_vr() -> None:
    """Where an unknown VR is only met when a value is decoded (pydicom's own error, raised here
    by pydicom itself), `decode_cause` names it; a length that does not fit its VR too."""
    ds = Dataset()
    ds[0x00181000] = RawDataElement(Tag(0x00181000), "QQ", len(SERIAL), SERIAL, 0, False, True)
    with pytest.raises(NotImplementedError) as unknown:
        ds[0x00181000]
    assert decode_cause(unknown.value) is Cause.UNKNOWN_VR
    ds[0x00280010] = RawDataElement(Tag(0x00280010), "US", 3, b"\x01\x02\x03", 0, False, True)
    with pytest.raises(BytesLengthException) as odd_length:
        _ = ds[0x00280010].value
    assert decode_cause(odd_length.value) is Cause.BAD_VALUE_LENGTH
    assert decode_cause(ValueError("something else")) is None


def test_a_value_its_stored_vr_cannot_hold_is_write_failed_vr_mismatch(tmp_path: Path) -> None:
    """PatientName stored with the VR US: the scrub gives it a pseudonym (text), which US cannot
    encode (it was write-failed with no cause)."""
    data = _replace(CT, 0x0010, 0x0010, _explicit(0x0010, 0x0010, b"US", b"\x01\x00"))
    _quarantined(_process(tmp_path, data), "write-failed:vr-mismatch")


def test_a_uid_stored_as_binary_is_read_by_its_dictionary_vr_and_remapped(tmp_path: Path) -> None:
    """StudyInstanceUID stored as OB: the dictionary VR (UI) decides (issue 13, kind 2), so the
    value is read as a UID and replaced by its keyed pseudonym, written as UI; before that fix
    the file was refused at encoding (write-failed:vr-mismatch)."""
    at = CT.index(struct.pack("<HH", 0x0020, 0x000D), 132)
    (length,) = struct.unpack("<H", CT[at + 6:at + 8])
    raw = struct.pack("<HH", 0x0020, 0x000D) + b"OB\x00\x00" + struct.pack("<I", 4) + b"\x01\x00\x00\x00"
    outcome = _process(tmp_path, CT[:at] + raw + CT[at + 8 + length:])
    assert outcome.disposition is Disposition.WRITTEN and outcome.output is not None
    published = pydicom.dcmread(tmp_path / "release" / outcome.output)
    assert published["StudyInstanceUID"].VR == "UI" and str(published.StudyInstanceUID).startswith("2.25.")


# --- JPEG 2000 -------------------------------------------------------------------------------

J2K = bundled("MR_small_jp2klossless.dcm").read_bytes()


def _j2k(codestream_share: float, burned_in: bool = True) -> bytes:
    """MR_small in JPEG 2000 Lossless with its one frame's codestream cut to a share of its
    length (fragments well formed); BurnedInAnnotation YES makes the OCR plan decode it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(J2K))
    [frame] = list(generate_frames(ds.PixelData, number_of_frames=1))
    cut = frame[: int(len(frame) * codestream_share)]
    ds.PixelData = encapsulate([cut + b"\x00" * (len(cut) % 2)])
    if burned_in:
        ds.BurnedInAnnotation = "YES"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def ocr_plan() -> Plan:
    return compile_plan("basic", [], pixel_mode=PixelMode.OCR)


def test_a_truncated_jpeg2000_codestream_is_pixel_failed_truncated_codestream(tmp_path: Path,
                                                                             ocr_plan: Plan) -> None:
    _quarantined(_process(tmp_path / "half", _j2k(0.5), ocr_plan), "pixel-failed:truncated-codestream")
    _quarantined(_process(tmp_path / "most", _j2k(0.95), ocr_plan), "pixel-failed:truncated-codestream")


def test_the_whole_codestream_is_decoded_and_published(tmp_path: Path, ocr_plan: Plan) -> None:
    """The control: the same file with its codestream whole passes the same plan."""
    outcome = _process(tmp_path, _j2k(1.0), ocr_plan)
    assert outcome.disposition is Disposition.WRITTEN, outcome.reason


def test_a_jpeg2000_file_cut_inside_its_pixel_data_is_bad_input_truncated_pixel_data(tmp_path: Path) -> None:
    """The file ends just after the first fragment's item tag: pydicom reads an empty dataset
    from it (the reason used to be 'no SOP Class or SOP Instance UID')."""
    item = J2K.index(b"\xfe\xff\x00\xe0", J2K.index(b"\xe0\x7f\x10\x00"))
    for end in (item, item + 4, item + 12):
        outcome = _process(tmp_path / str(end), J2K[:end])
        _quarantined(outcome, "bad-input:truncated-pixel-data")


def test_a_reason_is_its_code_and_a_cause_never_the_message() -> None:
    error = InputError(f"a message that would quote {SERIAL!r}", cause=Cause.UNKNOWN_VR)
    assert error.code == "bad-input:unknown-vr" and InputError.code == "bad-input"
    assert InputError("no cause").code == "bad-input"
    assert all(c.value == c.value.lower() and c.value.replace("-", "").isalnum() for c in Cause)


def test_a_fill_byte_after_the_end_marker_is_not_a_truncated_codestream() -> None:
    """pydicom's JPEG-lossy.dcm ends its frame with FFD9 then an FF fill byte (ISO 10918
    B.1.1.2): whole, not cut short; a frame cut before its end marker still is."""
    from pipeline.pixels.codestream import is_truncated_codestream

    ds = pydicom.dcmread(bundled("JPEG-lossy.dcm"))
    [frame] = list(generate_frames(ds.PixelData, number_of_frames=1))
    assert frame.rstrip(b"\x00").endswith(b"\xff\xd9\xff")
    syntax = ds.file_meta.TransferSyntaxUID
    assert not is_truncated_codestream(ds, syntax)
    ds.PixelData = encapsulate([frame[: len(frame) // 2]])
    assert is_truncated_codestream(ds, syntax)


def test_an_rle_frame_whose_segment_offsets_make_the_codec_panic_is_quarantined_undecodable(tmp_path: Path) -> None:
    """pylibjpeg-rle (Rust, pyo3) panics on a segment offset table that overruns the frame: a
    PanicException, a BaseException that `except Exception` let out of process_one (make fuzz,
    seed 31). It is a codec failure on bad data: the file is quarantined with a reason."""
    ds = pydicom.dcmread(bundled("MR_small_RLE.dcm"))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    bad = frame[:4] + struct.pack("<I", 64) + struct.pack("<I", 64 + 10) + frame[12:]
    ds.PixelData = encapsulate([bad])
    ds.BitsStored, ds.HighBit = 12, 11  # unused bits: the scrub decodes the RLE frame to check them
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    outcome = _process(tmp_path, buffer.getvalue())
    assert outcome.disposition is Disposition.QUARANTINED
    assert outcome.reason == "pixel-failed:undecodable"


def test_encapsulated_pixel_data_whose_items_do_not_parse_is_bad_input_bad_encapsulation(tmp_path: Path) -> None:
    """PS3.5 A.4. Kept as stored, encapsulated Pixel Data whose items did not parse to its end
    (make fuzz, mutations, seed 31: an odd length, padded on writing, the last item running into
    the pad) was published, and verify could not split it (verify:pixel-bits-unchecked). The
    scrub refuses it; here with bytes after the last item that are no item."""
    ds = pydicom.dcmread(bundled("MR_small_jp2klossless.dcm"))
    raw = RawDataElement(Tag(0x7FE00010), "OB", 0xFFFFFFFF, ds.PixelData + b"\x00" * 6, 0, False, True)
    ds._dict[Tag(0x7FE00010)] = raw  # stored as is: pydicom would not take this value by assignment
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    _quarantined(_process(tmp_path, buffer.getvalue()), "bad-input:bad-encapsulation")


@pytest.mark.parametrize("reads", ["whole", "short"])
@pytest.mark.parametrize("size_seen", ["exact", "smaller", "larger", "zero"])
@pytest.mark.parametrize("limit", [10, 999, 1000, 1001, 5000])
def test_an_input_is_read_whole_up_to_one_byte_past_the_limit_however_its_reads_and_size_come(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: str, size_seen: str, limit: int
) -> None:
    """`_read_local` reads by its descriptor: a file that grew or shrank after its size was taken,
    or whose reads come short (a network file system), is read to its end or to one byte past the
    limit (which the caller refuses as too large), never cut short."""
    path = tmp_path / "input.dcm"
    data = bytes(range(256)) * 4 + b"end"  # 1027 bytes
    path.write_bytes(data)
    real_fstat, real_read = os.fstat, os.read
    sizes = {"exact": len(data), "smaller": 500, "larger": 4000, "zero": 0}

    def fstat(descriptor: int) -> os.stat_result:
        seen = list(real_fstat(descriptor))
        seen[stat.ST_SIZE] = sizes[size_seen]
        return os.stat_result(seen)

    def read(descriptor: int, count: int) -> bytes:
        return real_read(descriptor, min(count, 100) if reads == "short" else count)

    monkeypatch.setattr(os, "fstat", fstat)
    monkeypatch.setattr(os, "read", read)
    got = process._read_local(path, limit)
    monkeypatch.undo()
    if size_seen == "larger" and reads == "whole" and limit >= len(data):
        assert got == data  # read short of the size seen: read on, to its end
    assert got == data[:limit + 1]
