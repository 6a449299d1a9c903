"""verify's own reading of the unused bits of Pixel Data (PS3.5 8.1.1; PS3.15 E.1-1 Overlay Data).

Written apart from the scrubber's pipeline/pixels/unused_bits.py, sharing no helper with it: a
bitmap left in the cells' unused bits (an overlay of the retired kind, PS3.5 8.1.2, declared or
not) is a finding, whatever the scrub believed it did.

A cell is Bits Allocated wide and its sample the Bits Stored bits ending at High Bit. A clean
output has, in every cell of every frame:

* no bit set below the sample's lowest bit;
* above High Bit: nothing (unsigned), or, for two's complement samples, either nothing in any
  cell or the sign bit (High Bit) repeated in every cell; a per-cell mixture can hold a bitmap.

Native Pixel Data is read on its bytes. Encapsulated frames are decoded (pydicom, unused bits
left as stored) unless every frame's codestream declares a sample precision no larger than Bits
Stored (JPEG / JPEG-LS SOF, JPEG 2000 SIZ, read by pydicom's parsers), when no decoded value can
reach an unused bit. An encapsulated output that must be decoded and cannot be is a finding too.
"""

from __future__ import annotations

import warnings
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import get_j2k_parameters

from pipeline.errors import is_codec_failure
from pipeline.verify.findings import Finding, Severity
from pipeline.verify.strings import stored_text

_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_NATIVE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", _BIG_ENDIAN})
_RLE = "1.2.840.10008.1.2.5"
_WHERE = "PixelData"
_PIXEL_DATA = 0x7FE00010  # looked up by tag: a keyword costs a dictionary look-up
_NO_META = object()  # a dataset without file meta (`getattr`'s default)


class BitsRule(StrEnum):
    """Why verify reports the cells of Pixel Data."""

    ABOVE_HIGH_BIT = "pixel-bits-above-high-bit"  # a bit above High Bit that is neither zero nor the sign
    BELOW_LOW_BIT = "pixel-bits-below-stored-bits"  # a bit below the sample's lowest bit
    UNCHECKED = "pixel-bits-unchecked"  # encapsulated cells that may hold such bits and cannot be decoded


def high_bits_findings(ds: Dataset) -> list[Finding]:
    """Findings about the unused bits of `ds`'s Pixel Data (empty when clean or when it has none)."""
    if _PIXEL_DATA not in ds:
        return []
    try:
        allocated = int(_unsigned(ds, 0x00280100, "BitsAllocated"))
        stored = int(_unsigned(ds, 0x00280101, "BitsStored"))
        high = int(_unsigned(ds, 0x00280102, "HighBit"))
        signed = int((_unsigned(ds, 0x00280103, "PixelRepresentation") if 0x00280103 in ds else None) or 0) == 1
    except (AttributeError, TypeError, ValueError):
        return []  # no cell layout: conformance's question, not a hidden bitmap's
    if allocated not in (8, 16, 32, 64) or stored >= allocated:
        return []
    meta: Any = getattr(ds, "file_meta", _NO_META)
    syntax = (stored_text(meta, 0x00020010, "TransferSyntaxUID") if isinstance(meta, Dataset)
              else "" if meta is _NO_META else str(meta.get("TransferSyntaxUID", "") or ""))  # any other: as before
    if syntax in _NATIVE:
        order = ">" if syntax == _BIG_ENDIAN else "<"
        data = _pixel_bytes(ds)
        cells = np.frombuffer(data, dtype=f"{order}u{allocated // 8}", count=len(data) // (allocated // 8))
    else:
        if syntax != _RLE and _precision_within(ds, stored):
            return []
        decoded = _decoded(ds, syntax)
        if decoded is None:
            return [Finding(BitsRule.UNCHECKED, _WHERE, Severity.HIGH, detail="undecodable")]
        cells = decoded
    return [Finding(rule, _WHERE, Severity.HIGH, detail="bitmap-in-unused-bits")
            for rule in _rules_broken(cells, stored, high, signed)]


def _unsigned(ds: Dataset, tag: int, keyword: str) -> Any:
    """The value of a US element, from its two stored bytes when it holds one; else as pydicom gives it."""
    stored = ds.get_item(tag)
    if isinstance(stored, RawDataElement) and stored.VR == "US" and isinstance(stored.value, bytes) and len(
            stored.value) == 2:
        return int.from_bytes(stored.value, "little" if stored.is_little_endian else "big")
    if isinstance(stored, DataElement):
        return stored.value  # decoded already: what `getattr(ds, keyword)` gives
    return getattr(ds, keyword)


def _pixel_bytes(ds: Dataset) -> Any:
    """Native Pixel Data as stored (pydicom gives OB and OW values as their bytes)."""
    stored = ds.get_item(0x7FE00010)
    if isinstance(stored, RawDataElement) and stored.VR in ("OB", "OW") and isinstance(stored.value, bytes):
        return stored.value
    return ds.PixelData


def _rules_broken(cells: NDArray[Any], stored: int, high: int, signed: bool) -> list[BitsRule]:
    unsigned = cells.view(cells.dtype.str.replace("i", "u"))  # the same bits, read as a number
    broken: list[BitsRule] = []
    lowest = high - stored + 1
    if lowest > 0 and np.any(unsigned % (1 << lowest)):
        broken.append(BitsRule.BELOW_LOW_BIT)
    spare = unsigned.dtype.itemsize * 8 - 1 - high  # the decoder's container may be wider than the cell
    if spare <= 0:
        return broken
    if not _any_bit(unsigned, ~((1 << (high + 1)) - 1) & ((1 << (unsigned.dtype.itemsize * 8)) - 1)):
        return broken
    top = unsigned >> (high + 1)  # the bits above High Bit, as a number
    if not signed:
        return [*broken, BitsRule.ABOVE_HIGH_BIT]
    sign = (unsigned >> high) & 1
    if not np.array_equal(top, sign * ((1 << spare) - 1)):
        broken.append(BitsRule.ABOVE_HIGH_BIT)
    return broken


def _any_bit(cells: NDArray[Any], mask: int) -> bool:
    """Whether any cell has a bit of `mask` set: where the mask is every bit from one up (the bits
    above High Bit), whether the largest cell reaches that bit; else eight bytes at a time where
    the cells fill them (the mask repeated in the cells' byte order, so the same bits are tested)."""
    size = cells.dtype.itemsize
    lowest = mask & -mask
    if cells.dtype.kind == "u" and mask and mask + lowest == 1 << (size * 8):  # every bit from `lowest` up
        return bool(cells.size) and int(cells.max()) >= lowest  # one pass, no temporary array
    if size < 8 and cells.ndim == 1 and cells.flags.c_contiguous and (cells.size * size) % 8 == 0:
        pattern = np.array([mask] * (8 // size), dtype=cells.dtype).view(np.uint64)[0]
        return bool(np.any(cells.view(np.uint64) & pattern))
    return bool(np.any(cells & cells.dtype.type(mask)))


def _precision_within(ds: Dataset, stored: int) -> bool:
    """Whether every frame's codestream declares a sample precision no larger than `stored`."""
    from pydicom.pixels.utils import _get_jpg_parameters  # JPEG and JPEG-LS SOF (pydicom 3)

    try:
        for frame in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)):
            j2k = get_j2k_parameters(frame)
            precision = j2k.get("precision") if j2k else _get_jpg_parameters(frame).get("precision")
            if precision is None or int(precision) > stored:
                return False
    except Exception:
        return False
    return True


def _decoded(ds: Dataset, syntax: str) -> NDArray[Any] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            options: dict[str, Any] = {"raw": True, "correct_unused_bits": False}  # the bits as stored
            array, _ = get_decoder(syntax).as_array(ds, **options)
    except BaseException as exc:
        if not is_codec_failure(exc):
            raise
        return None
    return np.asarray(array)


__all__ = ["BitsRule", "high_bits_findings"]
