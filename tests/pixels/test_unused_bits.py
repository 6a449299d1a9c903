"""Unused bits of Pixel Data (PS3.5 8.1.1): a bitmap in the bits above High Bit, with no overlay
group declaring it, never reaches the output; clean cells pass through byte-identical."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from pipeline.dicom.file import encode
from pipeline.errors import PixelError
from pipeline.pixels.unused_bits import BitLayout, canonicalise, codestream_precision, is_clean, layout
from pipeline.profile.plan import compile_plan
from pipeline.runner.process import Scrubbed, scrub_bytes
from pipeline.scrub.keys import Keys
from tests.conftest import bundled, read

BASIC = compile_plan("basic")


def bitmap(shape: tuple[int, ...]) -> NDArray[np.uint16]:
    """A 4-bit 'overlay': a filled box and a diagonal in each frame, bits 12-15."""
    plane = np.zeros(shape, dtype=np.uint16)
    plane[..., 4:12, 4:20] = 0xF
    for i in range(min(shape[-2:])):
        plane[..., i, i] = 0x5
    return plane << 12


def samples(shape: tuple[int, ...], signed: bool, seed: int = 3) -> NDArray[Any]:
    """12-bit samples: unsigned 0..4095, or signed -2048..2047 (negative ones included)."""
    rng = np.random.default_rng(seed)
    if signed:
        return rng.integers(-2048, 2048, shape).astype(np.int16)
    return rng.integers(0, 4096, shape).astype(np.uint16)


def image(cells: NDArray[Any], *, signed: bool = False, stored: int = 12, high_bit: int | None = None,
          syntax: UID = ExplicitVRLittleEndian) -> Dataset:
    """CT_small.dcm holding `cells` ((frames,) rows, columns) exactly as given, in `syntax`."""
    ds = read(bundled("CT_small.dcm").read_bytes())
    frames = cells if cells.ndim == 3 else cells[None]
    ds.Rows, ds.Columns = frames.shape[1:]
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.BitsAllocated, ds.BitsStored = 16, stored
    ds.HighBit = stored - 1 if high_bit is None else high_bit
    ds.PixelRepresentation = int(signed)
    words = frames.view(np.uint16)
    if syntax.is_compressed:
        ds.BitsStored, ds.HighBit = 16, 15  # the encoders take no value beyond Bits Stored: the whole cell
        ds.PixelRepresentation = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.compress(syntax, words if len(frames) > 1 else words[0], generate_instance_uid=False)
        ds.BitsStored, ds.PixelRepresentation = stored, int(signed)
        ds.HighBit = stored - 1 if high_bit is None else high_bit
    else:
        order = ">" if syntax == ExplicitVRBigEndian else "<"
        ds.PixelData = words.astype(f"{order}u2").tobytes()
        ds["PixelData"].VR = "OW"
        ds.file_meta.TransferSyntaxUID = syntax
    return ds


def scrubbed(ds: Dataset, keys: Keys) -> tuple[Scrubbed, Dataset]:
    result = scrub_bytes(encode(ds), BASIC, keys)
    return result, read(result.data)


def stored_cells(ds: Dataset) -> NDArray[np.uint16]:
    """The output's cells as stored: native bytes, or decoded with the unused bits left as they are."""
    syntax = ds.file_meta.TransferSyntaxUID
    if not syntax.is_compressed:
        order = ">" if syntax == ExplicitVRBigEndian else "<"
        return np.frombuffer(ds.PixelData, dtype=f"{order}u2").astype(np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array, _ = get_decoder(syntax).as_array(ds, raw=True, correct_unused_bits=False)
    return np.asarray(array).view(np.uint16).ravel()


# ----------------------------------------------------------------------------- native


@pytest.mark.parametrize("frames", [1, 3], ids=["one-frame", "three-frames"])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian],
                         ids=lambda s: s.name)
def test_a_bitmap_above_high_bit_without_an_overlay_group_is_zeroed(frames: int, syntax: UID, keys: Keys) -> None:
    shape = (frames, 32, 40) if frames > 1 else (32, 40)
    clean = samples(shape, signed=False)
    ds = image(clean | bitmap(shape), syntax=syntax)
    assert not any(tag >> 16 == 0x6000 for tag in ds.keys())  # nothing declares the bitmap
    result, out = scrubbed(ds, keys)
    cells = stored_cells(out)
    assert not (cells & 0xF000).any()
    assert np.array_equal(cells, clean.ravel())  # every sample kept
    assert result.pixels is not None and result.pixels.high_bits_zeroed
    assert out.file_meta.TransferSyntaxUID == syntax


def test_signed_cells_with_a_bitmap_are_sign_extended_from_high_bit(keys: Keys) -> None:
    clean = samples((2, 24, 24), signed=True)
    words = (clean.view(np.uint16) & 0x0FFF) | bitmap(clean.shape)  # the sign bit is bit 11
    ds = image(words, signed=True)
    _, out = scrubbed(ds, keys)
    cells = stored_cells(out)
    assert np.array_equal(cells.view(np.int16), clean.ravel())  # -1 stored as FFFF, 5 as 0005
    assert (clean < 0).any() and (clean >= 0).any()


@pytest.mark.parametrize("form", ["sign-extended", "zero-above-high-bit"])
def test_signed_cells_in_either_whole_image_form_pass_through_byte_identical(form: str, keys: Keys) -> None:
    clean = samples((24, 24), signed=True)
    words = clean.view(np.uint16) if form == "sign-extended" else clean.view(np.uint16) & 0x0FFF
    ds = image(words, signed=True)
    result, out = scrubbed(ds, keys)
    assert result.pixels is None and out.PixelData == ds.PixelData


def test_a_mixture_of_both_signed_forms_is_rewritten(keys: Keys) -> None:
    """Choosing per cell between zero and the sign above High Bit would carry one bit per
    negative sample: a bitmap. Such an image is rewritten, sign-extended everywhere."""
    clean = samples((24, 24), signed=True)
    words = clean.view(np.uint16).copy()
    words[::2] &= 0x0FFF  # even rows zero above the sample, odd rows sign-extended
    ds = image(words, signed=True)
    result, out = scrubbed(ds, keys)
    assert result.pixels is not None and result.pixels.high_bits_zeroed
    assert np.array_equal(stored_cells(out).view(np.int16), clean.ravel())


def test_clean_unsigned_cells_pass_through_byte_identical(keys: Keys) -> None:
    ds = image(samples((3, 32, 32), signed=False))
    result, out = scrubbed(ds, keys)
    assert result.pixels is None and out.PixelData == ds.PixelData


def test_bits_below_a_high_placed_sample_are_zeroed(keys: Keys) -> None:
    """Bits Stored 12 at High Bit 15: the 4 low bits are unused (PS3.5 8.1.1's own example)."""
    clean = samples((16, 16), signed=False) << 4
    ds = image(clean | 0x000A, high_bit=15)
    result, out = scrubbed(ds, keys)
    assert result.pixels is not None and result.pixels.high_bits_zeroed
    assert np.array_equal(stored_cells(out), clean.ravel())


# ----------------------------------------------------------------------------- encapsulated


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless], ids=lambda s: s.name)
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_compressed_cells_with_a_bitmap_are_reencoded_losslessly_without_it(
        syntax: UID, signed: bool, keys: Keys) -> None:
    shape = (2, 64, 64)  # OpenJPEG's default resolution levels need 64 pixels a side
    clean = samples(shape, signed=signed)
    ds = image((clean.view(np.uint16) & 0x0FFF) | bitmap(shape), signed=signed, syntax=syntax)
    result, out = scrubbed(ds, keys)
    assert result.pixels is not None and result.pixels.high_bits_zeroed
    assert out.file_meta.TransferSyntaxUID.is_compressed
    assert "LossyImageCompression" not in out or out.LossyImageCompression == "00"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded, _ = get_decoder(out.file_meta.TransferSyntaxUID).as_array(out)
    assert np.array_equal(np.asarray(decoded).reshape(shape), clean)
    cells = stored_cells(out)
    if signed:
        assert is_clean(cells, BitLayout(16, 12, 11, True))
    else:
        assert not (cells & 0xF000).any()


def test_rle_cells_without_a_bitmap_pass_through_byte_identical(keys: Keys) -> None:
    ds = image(samples((2, 24, 32), signed=False), syntax=RLELossless)
    result, out = scrubbed(ds, keys)
    assert result.pixels is not None and not result.pixels.high_bits_zeroed  # decoded to be checked
    assert out.PixelData == ds.PixelData


def test_a_codestream_no_wider_than_bits_stored_is_not_decoded(keys: Keys) -> None:
    """JPEG-lossy.dcm: 12-bit extended JPEG in 16-bit cells; its codestream's precision (12)
    leaves no room above High Bit, so it is not decoded for the check, and passes through."""
    ds = read(bundled("JPEG-lossy.dcm").read_bytes())
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert codestream_precision(frame) == 12 == ds.BitsStored
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.20"  # NM, not a capture
    result, out = scrubbed(ds, keys)
    assert result.pixels is None and out.PixelData == ds.PixelData


def test_codestream_precision_reads_jpeg_and_jpeg_2000_headers() -> None:
    for name, precision in (("JPEG-lossy.dcm", 12), ("JPEG2000.dcm", 16), ("SC_rgb_jpeg.dcm", 8),
                            ("JPEGLSNearLossless_16.dcm", 16), ("J2K_pixelrep_mismatch.dcm", 13)):
        ds = read(bundled(name).read_bytes())
        frame = next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))
        assert codestream_precision(frame) == precision, name
    assert codestream_precision(b"\x00\x01\x02") is None
    assert codestream_precision(b"\xff\xd8\xff\xda\x00\x02") is None  # scan data before any frame header


def test_a_jpeg_2000_header_is_read_only_within_a_frames_first_64_bytes() -> None:
    """A SIZ marker (after SOC) starting in the first 64 bytes is read, wherever else the frame
    repeats those bytes; one starting later is not (the frame is then judged as JPEG)."""
    siz = b"\xff\x4f\xff\x51" + bytes(36) + b"\x00\x01" + b"\x0b\x01\x01"  # one component, Ssiz 11: 12 bits
    for at in (0, 1, 62, 63):
        frame = bytes(at) + siz + bytes(200) + siz.replace(b"\x0b", b"\x0f")
        assert codestream_precision(frame) == 12, at
    for at in (64, 65, 1000):
        assert codestream_precision(bytes(at) + siz) is None, at
    jpeg = b"\xff\xd8\xff\xc0\x00\x0b\x0c" + bytes(200) + siz
    assert codestream_precision(jpeg) == 12  # SOF0's P, not the SIZ far behind it


# ----------------------------------------------------------------------------- the rule itself


@pytest.mark.parametrize(("bits", "cells", "clean", "canonical"), [
    (BitLayout(8, 7, 6, False), [0x7F, 0x80], False, [0x7F, 0x00]),
    (BitLayout(8, 7, 6, True), [0x40, 0xC0], False, [0xC0, 0xC0]),  # -64 twice: zero above it, then the sign
    (BitLayout(8, 7, 6, True), [0x40, 0x80], False, [0xC0, 0x00]),
    (BitLayout(32, 24, 23, False), [0x00FFFFFF, 0x01000000], False, [0x00FFFFFF, 0]),
    (BitLayout(32, 24, 23, True), [0xFF800000, 0x00000001], True, [0xFF800000, 1]),
    (BitLayout(16, 12, 15, False), [0xFFF0, 0x0001], False, [0xFFF0, 0]),
])
def test_the_rule_and_the_rewrite_by_cell_width(bits: BitLayout, cells: list[int], clean: bool,
                                               canonical: list[int]) -> None:
    dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[bits.allocated]
    array = np.array(cells, dtype=dtype)
    assert is_clean(array, bits) is clean
    canonicalise(array, bits)
    assert array.tolist() == canonical
    assert is_clean(array, bits)


def _clean_by_cells(values: list[int], bits: BitLayout) -> bool:
    """The module's table for 8-bit cells, bit by bit: low unused bits zero in every cell; above
    High Bit zero in every cell, or (signed) copies of the sign bit in every cell."""
    if any(value & ((1 << bits.low_bit) - 1) for value in values):
        return False
    above = [[value >> bit & 1 for bit in range(bits.high_bit + 1, 8)] for value in values]
    if not any(any(bits_above) for bits_above in above):
        return True
    return bits.signed and all(all(b == value >> bits.high_bit & 1 for b in bits_above)
                               for value, bits_above in zip(values, above, strict=True))


@pytest.mark.parametrize("signed", [False, True])
def test_the_rule_agrees_with_a_bit_by_bit_reading_for_every_8_bit_layout(signed: bool) -> None:
    for stored in range(1, 8):
        for high_bit in range(stored - 1, 8):
            bits = BitLayout(8, stored, high_bit, signed)
            for base in ([0], [1 << (bits.low_bit + stored - 1)], [0xFF]):  # zero, a sign bit, all ones
                for value in range(256):
                    cells = [*base, value]
                    expected = _clean_by_cells(cells, bits)
                    assert is_clean(np.array(cells, dtype=np.uint8), bits) is expected, (bits, cells)


def _clean_by_table(values: list[int], bits: BitLayout) -> bool:
    """The module's table on cells of any width: low unused bits zero in every cell; above High
    Bit zero in every cell, or (signed) the sign bit and every bit above it equal in every cell."""
    if any(value & ((1 << bits.low_bit) - 1) for value in values):
        return False
    if not any(value >> (bits.high_bit + 1) for value in values):
        return True
    ones = (1 << (bits.allocated - bits.high_bit)) - 1
    return bits.signed and all(value >> bits.high_bit in (0, ones) for value in values)


@pytest.mark.parametrize("width", [16, 32, 64])
def test_the_rule_on_wide_cells_agrees_with_the_table(width: int) -> None:
    """Wide cells (read by their largest cell when no bit lies below the sample), and no cell at
    all, in either signedness: `is_clean` says what the module's table says."""
    unsigned = np.dtype(f"uint{width}")
    rng = np.random.default_rng(width)
    for stored, high_bit in ((12, 11), (width - 1, width - 2), (10, 13)):
        for signed in (False, True):
            bits = BitLayout(width, stored, high_bit, signed)
            samples = rng.integers(0, 1 << stored, 64, dtype=np.uint64).astype(unsigned) << unsigned.type(bits.low_bit)
            assert is_clean(samples[:0], bits)
            sign = 1 << high_bit
            extended = ((1 << width) - 1) ^ (sign - 1)  # the sign bit and every bit above it
            for cell in (0, sign, sign << 1, extended, extended | 1, (1 << width) - 1, (1 << (high_bit + 1)) - 1):
                cells = samples.copy()
                cells[17] = cell
                values = [int(v) for v in cells]
                assert is_clean(cells, bits) is _clean_by_table(values, bits), (bits, cell)
                assert is_clean(cells.view(np.dtype(f"int{width}")), bits) is _clean_by_table(values, bits)


def test_a_layout_that_does_not_fit_its_cell_is_refused() -> None:
    ds = image(samples((4, 4), signed=False))
    ds.HighBit = 9  # below Bits Stored - 1
    with pytest.raises(PixelError) as caught:
        layout(ds)
    assert caught.value.code == "pixel-failed:bad-pixel-attributes"
    ds.HighBit, ds.BitsStored = 15, 16
    assert layout(ds) is None  # no unused bit


def test_a_bundled_overlay_example_keeps_its_separate_overlay_out_and_its_cells(keys: Keys) -> None:
    """examples_overlay.dcm: 12 bits in 16, its overlay in (6000,3000), not in the cells."""
    ds = read(bundled("examples_overlay.dcm").read_bytes())
    result, out = scrubbed(ds, keys)
    assert result.pixels is None and out.PixelData == ds.PixelData
    assert pydicom.tag.Tag(0x60003000) not in out
