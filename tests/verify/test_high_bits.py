"""verify's own reading of unused bits (PS3.5 8.1.1): a bitmap planted into the bits above High
Bit of an otherwise clean scrubbed file is a finding; the scrub of that file clears it."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from pipeline.dicom.file import encode
from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.high_bits import BitsRule, high_bits_findings
from tests.conftest import read
from tests.pixels.test_unused_bits import bitmap, image, samples

KEY = Keys(key=b"h" * 32)
ABOVE = "pixel-bits-above-high-bit"


def as_input(ds: Dataset) -> bytes:
    """An input file as pydicom writes it (its own implementation UID, not the pipeline's)."""
    buffer = io.BytesIO()
    big = ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True, little_endian=not big,
                         implicit_vr=ds.file_meta.TransferSyntaxUID.is_implicit_VR)
    return buffer.getvalue()


def scrub(data: bytes) -> bytes:
    return scrub_bytes(data, compile_plan("basic"), KEY).data


def rules(output: bytes, original: bytes) -> set[str]:
    return {str(f.rule) for f in verify_bytes(output, (), original)}


def cleared(planted: bytes) -> bool:
    """The scrub of the planted file leaves verify nothing to say about its cells."""
    return high_bits_findings(read(scrub(planted))) == []


def plant(output: bytes, change: Callable[[np.ndarray], np.ndarray]) -> bytes:  # type: ignore[type-arg]
    """The scrubbed file with its native cells changed by `change`, nothing else."""
    ds = read(output)
    order = ">" if ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian else "<"
    cells = np.frombuffer(ds.PixelData, dtype=f"{order}u2").astype(np.uint16)
    ds.PixelData = change(cells).astype(f"{order}u2").tobytes()
    return encode(ds)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian], ids=lambda s: s.name)
@pytest.mark.parametrize("frames", [1, 3], ids=["one-frame", "three-frames"])
def test_a_bitmap_planted_above_high_bit_of_a_clean_output_is_found(syntax: str, frames: int) -> None:
    shape = (frames, 32, 32) if frames > 1 else (32, 32)
    original = as_input(image(samples(shape, signed=False), syntax=syntax))  # type: ignore[arg-type]
    output = scrub(original)
    assert rules(output, original) == set()  # otherwise clean
    overlay = bitmap(shape).ravel()
    if frames > 1:
        overlay[: overlay.size * 2 // 3] = 0  # in the last frame only
    planted = plant(output, lambda cells: cells | overlay)
    assert ABOVE in rules(planted, original)
    assert cleared(planted)  # the scrub clears what verify found


def test_signed_cells_sign_extended_pass_and_a_per_cell_mixture_is_found() -> None:
    clean = samples((32, 32), signed=True)
    original = as_input(image(clean, signed=True))
    output = scrub(original)
    assert rules(output, original) == set()
    assert (clean < 0).any()
    zero_above = plant(output, lambda cells: cells & 0x0FFF)  # the other whole-image form
    assert ABOVE not in rules(zero_above, original)

    def mixture(cells: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        changed = cells.copy()
        changed[::3] &= 0x0FFF  # one negative cell in three loses its sign extension: a bitmap
        return changed
    planted = plant(output, mixture)
    assert ABOVE in rules(planted, original)
    assert cleared(planted)


def test_bits_below_a_high_placed_sample_are_found() -> None:
    original = as_input(image(samples((16, 16), signed=False) << 4, high_bit=15))
    output = scrub(original)
    assert rules(output, original) == set()
    planted = plant(output, lambda cells: cells | 0x0003)
    assert str(BitsRule.BELOW_LOW_BIT) in rules(planted, original)


def _rle(ds: Dataset, words: np.ndarray) -> None:  # type: ignore[type-arg]
    stored, high = ds.BitsStored, ds.HighBit
    ds.BitsStored, ds.HighBit = 16, 15  # the encoder takes no value beyond Bits Stored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.compress(RLELossless, words, generate_instance_uid=False)
    ds.BitsStored, ds.HighBit = stored, high


def test_a_bitmap_in_rle_cells_is_found_by_decoding_them() -> None:
    shape = (2, 24, 24)
    clean = samples(shape, signed=False)
    original = as_input(image(clean, syntax=RLELossless))
    output = scrub(original)
    assert read(output).file_meta.TransferSyntaxUID == RLELossless
    assert rules(output, original) == set()
    ds = read(output)
    _rle(ds, clean | bitmap(shape))
    planted = encode(ds)
    assert ABOVE in rules(planted, original)
    assert cleared(planted)


def test_rle_cells_that_cannot_be_decoded_are_unchecked_not_passed() -> None:
    ds = image(samples((24, 24), signed=False), syntax=RLELossless)
    ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + b"\x00" * 60])  # one segment header, no segment
    assert [f.rule for f in high_bits_findings(ds)] == [BitsRule.UNCHECKED]


def test_a_codestream_no_wider_than_bits_stored_is_not_decoded() -> None:
    """J2K at precision 12 for Bits Stored 12: no decoded value reaches bit 12, so a codestream
    the decoder would refuse (its tile data cut) is not decoded and not a finding."""
    ds = image(samples((64, 64), signed=False), syntax=JPEG2000Lossless)
    ds.BitsStored, ds.HighBit = 12, 11
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.compress(JPEG2000Lossless, samples((64, 64), signed=False), generate_instance_uid=False)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert high_bits_findings(ds) == []
    ds.PixelData = encapsulate([frame[: len(frame) // 2]])
    assert high_bits_findings(ds) == []
    ds.BitsStored, ds.HighBit = 11, 10  # now the codestream is wider than the sample: decoded, and it cannot be
    assert [f.rule for f in high_bits_findings(ds)] == [BitsRule.UNCHECKED]


@pytest.mark.parametrize("seed", range(6))
def test_verify_and_the_scrub_read_the_rule_alike_on_random_layouts(seed: int) -> None:
    """Two readings written apart: for random layouts and cells (clean, with a bitmap, with the
    signed forms mixed), verify finds something exactly when the scrubber's rule says unclean,
    and nothing once the scrubber has rewritten the cells."""
    from pipeline.pixels.unused_bits import BitLayout, canonicalise, is_clean

    rng = np.random.default_rng(seed)
    for _ in range(20):
        allocated = int(rng.choice([8, 16, 32]))
        stored = int(rng.integers(1, allocated))
        high = int(rng.integers(stored - 1, allocated))
        signed = bool(rng.integers(0, 2))
        bits = BitLayout(allocated, stored, high, signed)
        dtype = np.dtype(f"<u{allocated // 8}")
        sample = rng.integers(0, 1 << stored, 64, dtype=np.uint64)
        cells = (sample << np.uint64(high - stored + 1)).astype(dtype)
        canonicalise(cells, bits)  # a clean image: sign-extended when signed
        kind = int(rng.integers(0, 3))
        if kind == 1:
            cells[rng.integers(0, 64)] ^= dtype.type(1 << int(rng.integers(0, allocated)))  # one stray bit
        elif kind == 2 and high < allocated - 1:
            cells[::2] &= dtype.type((1 << (high + 1)) - 1)  # half the cells lose what is above High Bit
        ds = Dataset()
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = allocated, stored, high, int(signed)
        ds.PixelData = cells.tobytes()
        assert (high_bits_findings(ds) == []) is is_clean(cells, bits), bits
        canonicalise(cells, bits)
        ds.PixelData = cells.tobytes()
        assert high_bits_findings(ds) == []


@pytest.mark.parametrize("dtype", ["<u1", "<u2", ">u2", "<u4", ">u4", "<u8"])
def test_a_bit_above_high_bit_is_seen_in_any_cell_of_any_byte_order(dtype: str) -> None:
    """The bits above High Bit are tested eight bytes at a time where the cells fill them: a single
    set bit in any cell, at any place above High Bit, is seen; the bits up to High Bit are not."""
    from pipeline.verify.high_bits import _any_bit

    size = np.dtype(dtype).itemsize * 8
    for count in (1, 3, 4, 8, 13):
        for high in range(size - 1):
            above = ~((1 << (high + 1)) - 1) & ((1 << size) - 1)
            assert not _any_bit(np.full(count, (1 << (high + 1)) - 1, dtype=dtype), above)
            for position in range(count):
                for bit in (high + 1, size - 1):
                    cells = np.zeros(count, dtype=dtype)
                    cells[position] = 1 << bit
                    assert _any_bit(cells, above), (count, high, position, bit)


@pytest.mark.parametrize("dtype", ["<u1", "<u2", ">u2", "<u4", ">u4", "<u8"])
def test_any_bit_agrees_with_a_plain_test_of_every_cell(dtype: str) -> None:
    """Masks of every bit from one up (read by the largest cell) and any other mask: the same
    answer as testing each cell's bits."""
    from pipeline.verify.high_bits import _any_bit

    size = np.dtype(dtype).itemsize * 8
    rng = np.random.default_rng(7)
    for count in (0, 1, 5, 16):
        for top in range(1, size + 1):
            cells = (rng.integers(0, 1 << min(top, 63), size=count, dtype=np.uint64)).astype(dtype)
            for mask in (~((1 << low) - 1) & ((1 << size) - 1) for low in range(size)):
                assert _any_bit(cells, mask) == bool(np.any(cells & cells.dtype.type(mask))), (count, top, mask)
            odd = 0b1010 & ((1 << size) - 1)
            assert _any_bit(cells, odd) == bool(np.any(cells & cells.dtype.type(odd)))
