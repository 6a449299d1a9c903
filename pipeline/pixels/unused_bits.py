"""Unused bits of Pixel Data: never published holding anything (PS3.5 8.1.1, PS3.15 E.1-1).

A pixel cell is Bits Allocated wide; its sample is the Bits Stored bits ending at High Bit
(PS3.5 8.1.1). Every other bit is unused. Older objects kept overlay planes there (the retired
overlay-in-pixel-data of PS3.5 8.1.2 / PS3.3 C.9.2), and nothing stops a device from writing a
bitmap there with no 60xx group declaring it: the Basic Profile removes Overlay Data (PS3.15
Table E.1-1), so those bits must go too, declared or not.

What an unused bit may hold, decided image-wide (so that no choice per pixel can encode a bitmap):

| bits                         | unsigned (PixelRepresentation 0) | signed (1, two's complement) |
|------------------------------|----------------------------------|------------------------------|
| below the sample (High Bit   | zero                             | zero                         |
| above Bits Stored - 1)       |                                  |                              |
| above High Bit               | zero                             | all zero in every cell, or   |
|                              |                                  | the sign (bit High Bit)      |
|                              |                                  | extended in every cell       |

"The sign bit shall be the High Bit" (PS3.5 8.1.1), so a signed sample read into a wider
integer is sign-extended: that is the value pydicom's decoders give, and what readers that
ignore Bits Stored expect (CT's -1024 stored as FC00). Both all-zero and all-extended high bits
carry nothing beyond the samples; a mixture, or anything else, is rewritten: unsigned cells
masked to their sample, signed cells sign-extended from High Bit, low unused bits zero.

Cost, the check runs on every image: native (uncompressed) Pixel Data is checked on its bytes
with a few vectorised numpy passes (nothing is decoded; clean data stays byte-identical). An
encapsulated image is decoded only when its codestream can hold more bits than Bits Stored:
RLE (whose byte segments fill the whole cell), or a JPEG / JPEG-LS / JPEG 2000 codestream whose
declared sample precision exceeds Bits Stored; otherwise no decoded value can reach an unused bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID, ExplicitVRBigEndian, RLELossless

from pipeline.dicom.stored import number
from pipeline.errors import Cause, PixelError

_NATIVE_WIDTHS = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}
# JPEG (ISO 10918) start-of-frame markers carry the sample precision P: SOF0-SOF15 less DHT (C4),
# JPG (C8) and DAC (CC); JPEG-LS (ISO 14495) SOF55 (F7) the same way.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}
_J2K_SIZ = b"\xff\x4f\xff\x51"  # SOC then SIZ (ISO 15444-1 A.5.1)


@dataclass(frozen=True, slots=True)
class BitLayout:
    """Where the sample sits in its cell (PS3.5 8.1.1)."""

    allocated: int
    stored: int
    high_bit: int
    signed: bool

    @property
    def low_bit(self) -> int:
        """The sample's least significant bit."""
        return self.high_bit - self.stored + 1

    @property
    def has_unused_bits(self) -> bool:
        return self.stored < self.allocated


_BITS_ALLOCATED, _BITS_STORED, _HIGH_BIT, _PIXEL_REPRESENTATION = 0x00280100, 0x00280101, 0x00280102, 0x00280103
_PIXEL_DATA, _TRANSFER_SYNTAX = 0x7FE00010, 0x00020010


def layout(ds: Dataset) -> BitLayout | None:
    """The cell layout of `ds`'s integer Pixel Data, or None when it has no unused bits to
    check (no Pixel Data, Bits Stored = Bits Allocated, 1-bit cells). A layout that does not fit
    its cell (High Bit below Bits Stored - 1 or beyond the cell) is refused."""
    if _PIXEL_DATA not in ds._dict:
        return None
    try:
        allocated = int(number(ds, _BITS_ALLOCATED) or 0)
        stored = int(number(ds, _BITS_STORED) or allocated)
        high = number(ds, _HIGH_BIT)
        high_bit = int(high if high is not None else stored - 1)
        signed = int(number(ds, _PIXEL_REPRESENTATION) or 0) == 1
    except (TypeError, ValueError):
        raise PixelError("a Bits attribute is not a number", cause=Cause.BAD_PIXEL_ATTRIBUTES) from None
    if allocated not in _NATIVE_WIDTHS or stored >= allocated:
        return None
    if stored < 1 or not stored - 1 <= high_bit < allocated:
        raise PixelError("Bits Stored and High Bit do not fit Bits Allocated", cause=Cause.BAD_PIXEL_ATTRIBUTES)
    return BitLayout(allocated, stored, high_bit, signed)


def may_be_set(ds: Dataset) -> bool:
    """Native data: an unused bit is set (checked on the bytes). Encapsulated: the codestream can
    hold one (`may_hold_unused_bits`; pipeline/pixels/clean.py decodes and checks it)."""
    bits = layout(ds)
    meta = getattr(ds, "file_meta", {})
    if isinstance(meta, Dataset):  # `meta.get("TransferSyntaxUID")` without the keyword look-up
        syntax = meta[_TRANSFER_SYNTAX].value if _TRANSFER_SYNTAX in meta._dict else None
    else:
        syntax = meta.get("TransferSyntaxUID")
    if bits is None or not syntax:
        return False
    source = UID(str(syntax))
    if not source.is_compressed:
        return not is_clean(native_cells(ds, bits, source), bits)
    return may_hold_unused_bits(ds, bits, source)


# ----------------------------------------------------------------------------- the rule
def is_clean(cells: NDArray[Any], bits: BitLayout) -> bool:
    """Whether every unused bit of `cells` (integers of the cell's width, any signedness, any
    shape) holds nothing, by the module's table."""
    words = _unsigned(cells, bits.allocated)
    above = bits.allocated - 1 - bits.high_bit
    low = (1 << bits.low_bit) - 1
    # Clean data is the common case: every unused bit, below and above, checked in one pass. With
    # no bit below the sample, a cell has a bit above High Bit exactly when it is at least
    # 2**(High Bit + 1): its largest cell says it, read without a temporary array the size of the image.
    if not bits.low_bit:
        if not words.size or int(words.max()) < 1 << (bits.high_bit + 1):
            return True
    elif not (words & _word(words, low | (((1 << above) - 1) << (bits.high_bit + 1)))).any():
        return True
    if bits.low_bit and (words & _word(words, low)).any():
        return False
    if not above:
        return True
    upper = words >> _word(words, bits.high_bit + 1)
    if not upper.any():
        return True
    if not bits.signed:
        return False
    # Some cell has a bit above High Bit, so every cell must be sign-extended: the sign bit and
    # the bits above it (t) all 0 or all 1, i.e. (t + 1) masked to their width is 0 or 1.
    every = _word(words, (1 << (above + 1)) - 1)
    sign_and_above = words >> _word(words, bits.high_bit)
    return not bool((((sign_and_above + _word(words, 1)) & every) > 1).any())


def canonicalise(cells: NDArray[Any], bits: BitLayout) -> None:
    """Rewrite `cells` in place: low unused bits zero; above High Bit zero (unsigned) or the
    sign extended (signed)."""
    words = _unsigned(cells, bits.allocated)
    signed = words.view(words.dtype.str.replace("u", "i"))
    up = _word(words, bits.allocated - 1 - bits.high_bit)
    np.left_shift(words, up, out=words)
    if bits.signed:
        np.right_shift(signed, up.astype(signed.dtype), out=signed)
    else:
        np.right_shift(words, up, out=words)
    if bits.low_bit:
        np.bitwise_and(words, _word(words, ~((1 << bits.low_bit) - 1) & ((1 << bits.allocated) - 1)), out=words)


def _unsigned(cells: NDArray[Any], width: int) -> NDArray[Any]:
    if cells.dtype.kind not in "ui" or cells.dtype.itemsize * 8 != width:
        raise PixelError(f"decoded cells are not {width}-bit integers", cause=Cause.BAD_IMAGE_SHAPE)
    return cells.view(cells.dtype.str.replace("i", "u"))


def _word(words: NDArray[Any], value: int) -> Any:
    return words.dtype.type(value)


# ----------------------------------------------------------------------------- native data
def native_cells(ds: Dataset, bits: BitLayout, syntax: UID) -> NDArray[Any]:
    """The cells of native Pixel Data as a read-only view on its bytes (no copy): every whole
    cell the value holds, the trailing pad byte excluded."""
    stored = ds._dict.get(_PIXEL_DATA)  # type: ignore[call-overload]
    value = getattr(stored, "value", None)
    # the bytes as read are the value pydicom gives OB and OW (PS3.5 8.1.1): not decoded here
    data = value if isinstance(stored, RawDataElement) and isinstance(value, bytes) else ds.PixelData
    dtype = np.dtype(_NATIVE_WIDTHS[bits.allocated]).newbyteorder(">" if syntax == ExplicitVRBigEndian else "<")
    count = len(data) // dtype.itemsize
    return np.frombuffer(data, dtype=dtype, count=count)


def zero_native(ds: Dataset, bits: BitLayout, syntax: UID) -> bool:
    """Rewrite native Pixel Data whose unused bits hold anything; True when it did. Clean data
    is left as it is (the same bytes object)."""
    cells = native_cells(ds, bits, syntax)
    if is_clean(cells, bits):
        return False
    fixed = cells.copy()
    canonicalise(fixed, bits)
    data = fixed.tobytes() + bytes(ds.PixelData)[fixed.nbytes:]
    ds.PixelData = data
    return True


# ----------------------------------------------------------------------------- encapsulated data
def may_hold_unused_bits(ds: Dataset, bits: BitLayout, syntax: UID) -> bool:
    """Whether the encapsulated frames of `ds` could decode to a value with an unused bit set:
    RLE always; JPEG, JPEG-LS and JPEG 2000 when a frame declares a sample precision beyond Bits
    Stored, or when its precision cannot be read; other syntaxes (video) always."""
    if syntax == RLELossless:
        return True
    try:
        frames = generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1))
        for frame in frames:
            precision = codestream_precision(frame)
            if precision is None or precision > bits.stored:
                return True
    except Exception:  # fragments that do not parse: the decoder will say so
        return True
    return False


def codestream_precision(frame: bytes) -> int | None:
    """The largest sample precision a JPEG, JPEG-LS (SOF: P) or JPEG 2000 (SIZ: Ssiz) codestream
    declares, or None when it declares none that can be read."""
    at = frame.find(_J2K_SIZ, 0, 64 + len(_J2K_SIZ) - 1)  # where it counts: not the whole frame's bytes
    if 0 <= at < 64:  # a bare codestream, or one behind a short JP2 header
        siz = at + 4
        count_at = siz + 2 + 2 + 32
        if len(frame) < count_at + 2:
            return None
        count = int.from_bytes(frame[count_at:count_at + 2], "big")
        sizes = frame[count_at + 2:count_at + 2 + 3 * count:3]
        return max(((s & 0x7F) + 1 for s in sizes), default=None) if len(sizes) == count else None
    if not frame.startswith(b"\xff\xd8"):
        return None
    index = 2
    while index + 4 <= len(frame):
        if frame[index] != 0xFF:
            return None
        marker = frame[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        length = int.from_bytes(frame[index + 2:index + 4], "big")
        if marker in _SOF_MARKERS:
            return frame[index + 4] if index + 4 < len(frame) else None
        if marker == 0xDA or length < 2:  # scan data before any frame header
            return None
        index += 2 + length
    return None
