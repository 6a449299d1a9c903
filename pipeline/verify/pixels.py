"""Pixels of one output against its original's (issue 15, item 5): what cleaning changed, and
nothing else.

PS3.15 E.3.1 (Clean Pixel Data) removes burned-in text; it must not lose anatomy unseen. The
scrubber (pipeline/pixels/clean.py) blanks text with the image's fill value in rectangles: the
pixel rules' regions and OCR's text lines. This module does not read the scrubber's rules or
boxes (an import contract forbids it); it decodes both files with pydicom and judges the
difference by its own rules:

| check                                                      | finding                                  |
|------------------------------------------------------------|------------------------------------------|
| rows, columns, frames or samples differ                    | ``pixels-changed-outside-cleaned-regions`` |
| a changed pixel does not hold the one fill value of the    | ``pixels-changed-outside-cleaned-regions`` |
|   image's changed pixels, or lies outside every fill       |   (detail: the count of such pixels)     |
|   rectangle of at least `MIN_BOX` x `MIN_BOX` pixels       |                                          |
| changed pixels / all pixels (every frame) above the bound  | ``pixels-cleaned-share-above-bound``     |
| re-OCR (tesseract) around the cleaned places reads a word  | ``pixel-text-remains``                   |
| the output or the original cannot be decoded               | ``pixels-not-compared`` (medium)         |

A cleaned place is a rectangle of the output filled with one value (the blanked box): the
"fill rectangles" are the union of every `MIN_BOX` x `MIN_BOX` square whose pixels all hold the
fill value (a morphological opening). Text lines and rule regions are far larger than that; a
stroke, a dot or any other value drawn over the anatomy is not. What this cannot see is a
fill-coloured rectangle over anatomy: the share bound and the scrubber's anatomy review
(pipeline/pixels/review.py) bound that.

The bound is the run's ``--max-cleaned-fraction`` when the run read images with OCR (the run
record says so); the verifier bounds every image's total change, the rules' regions included,
and never passes an image with `CEILING` or more of its pixels changed, whatever the run asked.

Lossy originals: the scrubber stores a lossy input decoded (never recompressed), with the same
pydicom decoders this module uses, so even then unchanged pixels must be identical
(`TOLERANCE` 0: measured on pydicom's lossy JPEG and JPEG 2000 test files and the archive's
JPEG baseline ultrasound). Output pixel data byte-identical to the original's is unchanged and
not decoded.

Re-OCR: the output's frames with changes are read by tesseract (pipeline/pixels/ocr.py, as
`pipeline.verify.pixel_text` does), with every pixel farther than `ZONE_ROWS` rows or
`ZONE_COLUMNS` columns from a change set to the fill value, so the places cleaned are read with
their surroundings (tesseract needs the rest of a line to read a word); a word read with
confidence at least `pixel_text.MIN_CONFIDENCE` whose box touches a cleaned place (or lies
within `EDGE` pixels of one: letters a box cut) or stands on the same line as one (cleaned
pixels on half its rows, within `ZONE_COLUMNS`: the rest of a line a box too small left) is a
finding. Text wholly
away from the cleaned places is not this check's business: an image's labels ("PWR", a
scale) are not blanked by design, and an image that says it holds no text is read whole by
`pipeline.verify.pixel_text` when verify is asked to. Findings name rules,
frames and counts, never what the text says.
"""

from __future__ import annotations

import copy
import io
import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
)

from pipeline.errors import is_codec_failure
from pipeline.pixels import codestream, ocr
from pipeline.verify.findings import Finding, Severity
from pipeline.verify.pixel_text import MIN_CONFIDENCE, MIN_WORD_PIXELS
from pipeline.verify.strings import stored_text

MIN_BOX = 3  # pixels: the smallest blanked rectangle (a text line is at least 6 + 2 x 2 margin)
CEILING = 0.5  # of the pixels: no image this changed is published, whatever the bound
TOLERANCE = 0  # grey levels of difference still "unchanged"; see the module's notes on lossy inputs
CROSS_SECTIONAL = frozenset({"CT", "MR", "PT", "NM"})  # not read whole without originals (`says_no_burned_in_text`)
ZONE_ROWS, ZONE_COLUMNS = 24, 96  # pixels around the changes that re-OCR reads
EDGE = 4  # pixels: a word this close to a cleaned place is in it (a letter cut by the box)
_PIXEL_DATA = 0x7FE00010  # looked up by tag: a keyword costs a dictionary look-up
_NO_META = object()  # a dataset without file meta (`getattr`'s default)


class PixelRule(StrEnum):
    """Why verify reports a finding about pixels."""

    OUTSIDE_CLEANED = "pixels-changed-outside-cleaned-regions"
    SHARE_ABOVE_BOUND = "pixels-cleaned-share-above-bound"
    TEXT_REMAINS = "pixel-text-remains"
    NOT_COMPARED = "pixels-not-compared"


@dataclass(frozen=True, slots=True)
class PixelBound:
    """What the pixel check is given: the run's bound on the changed share (None: `CEILING`
    only) and whether to re-read the cleaned places with tesseract."""

    max_cleaned_fraction: float | None = None
    reread: bool = False


@dataclass(frozen=True, slots=True)
class PixelChange:
    """What changed between an original's pixels and its output's: counts only."""

    changed: int  # pixels (all frames) that differ
    total: int  # pixels (all frames)
    outside: int  # changed pixels that are not in a fill rectangle
    frames: tuple[int, ...]  # the frames with changes

    @property
    def share(self) -> float:
        return self.changed / self.total if self.total else 0.0


def pixel_findings(output: Dataset, original: Dataset, bound: PixelBound | None = None) -> list[Finding]:
    """The pixel findings for one output against its original (see the module's notes)."""
    bound = bound or PixelBound()
    if _PIXEL_DATA not in output or _PIXEL_DATA not in original:  # by tag: no keyword look-up
        if (_PIXEL_DATA in output) != (_PIXEL_DATA in original):
            return [Finding(PixelRule.OUTSIDE_CLEANED, "PixelData", Severity.HIGH, detail="present in one file only")]
        return []
    if _same_bytes(output, original):
        return []
    after, before = _frames(output), _frames(original)
    if after is None or before is None:
        return [Finding(PixelRule.NOT_COMPARED, "PixelData", Severity.MEDIUM, detail="undecodable")]
    if after.shape != before.shape:
        return [Finding(PixelRule.OUTSIDE_CLEANED, "PixelData", Severity.HIGH, detail="shape differs")]
    change, changed, fill = compare(after, before)
    findings: list[Finding] = []
    if change.outside:
        findings.append(Finding(PixelRule.OUTSIDE_CLEANED, "PixelData", Severity.HIGH,
                                detail=f"{change.outside} pixel(s)"))
    limit = CEILING if bound.max_cleaned_fraction is None else min(bound.max_cleaned_fraction, CEILING)
    if change.share > limit or change.share >= CEILING:
        findings.append(Finding(PixelRule.SHARE_ABOVE_BOUND, "PixelData", Severity.HIGH,
                                detail=f"{change.share:.1%} changed (at most {limit:.1%})"))
    if bound.reread and change.frames and fill is not None:
        findings += text_remains(after, changed, fill)
    return findings


def compare(after: NDArray[Any], before: NDArray[Any]) -> tuple[PixelChange, NDArray[np.bool_], Any]:
    """(the change, the changed-pixel mask per frame, the fill value or None) of two decoded
    images of one shape, (frames, rows, columns[, samples]); frame by frame, so memory stays
    a few frames' worth whatever the image's length."""
    changed = np.zeros(after.shape[:3], dtype=bool)
    for index in range(after.shape[0]):
        differs = _differs(after[index], before[index])
        changed[index] = differs.any(axis=-1) if differs.ndim == 3 else differs
    count = int(changed.sum())
    total = int(changed.size)
    if not count:
        return PixelChange(0, total, 0, ()), changed, None
    values = after[changed]  # (n,) or (n, samples)
    kinds, counts = np.unique(values, axis=0, return_counts=True)
    fill = kinds[int(np.argmax(counts))]
    outside = 0
    frames = tuple(int(i) for i in np.flatnonzero(changed.reshape(len(changed), -1).any(axis=1)))
    for index in frames:
        is_fill = after[index] == fill
        filled = is_fill.all(axis=-1) if is_fill.ndim == 3 else is_fill
        outside += int((changed[index] & ~opening(filled, MIN_BOX)).sum())
    return PixelChange(count, total, outside, frames), changed, fill


def _differs(after: NDArray[Any], before: NDArray[Any]) -> NDArray[np.bool_]:
    """Per pixel (and sample) of one frame: differs by more than `TOLERANCE`."""
    if TOLERANCE == 0:
        return np.asarray(after != before)
    return np.asarray(np.abs(after.astype(np.int64) - before.astype(np.int64)) > TOLERANCE)


def opening(mask: NDArray[np.bool_], size: int) -> NDArray[np.bool_]:
    """The union of every `size` x `size` square lying wholly inside `mask`."""
    rows, cols = mask.shape
    if rows < size or cols < size:
        return np.zeros_like(mask)
    full = _window_sums(mask.astype(np.int64), size) == size * size  # top-left corners of full squares
    corners = np.zeros((rows + size - 1, cols + size - 1), dtype=np.int64)
    corners[size - 1:size - 1 + full.shape[0], size - 1:size - 1 + full.shape[1]] = full
    return _window_sums(corners, size)[:rows, :cols] > 0


def _window_sums(data: NDArray[np.int64], size: int) -> NDArray[np.int64]:
    """Sums of every `size` x `size` window, by its top-left corner."""
    integral = np.zeros((data.shape[0] + 1, data.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = data.cumsum(axis=0).cumsum(axis=1)
    return (integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size]
            + integral[:-size, :-size])


def zone(changed: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The pixels within `ZONE_ROWS` rows and `ZONE_COLUMNS` columns of a changed pixel."""
    rows = np.flatnonzero(changed.any(axis=1))
    near = np.zeros(changed.shape, dtype=bool)
    for row in rows:
        cols = np.flatnonzero(changed[row])
        top, bottom = max(int(row) - ZONE_ROWS, 0), int(row) + ZONE_ROWS + 1
        # each run of changed columns in the row, widened
        breaks = np.flatnonzero(np.diff(cols) > 1)
        for start, end in zip(np.r_[cols[0], cols[breaks + 1]], np.r_[cols[breaks], cols[-1]], strict=True):
            near[top:bottom, max(int(start) - ZONE_COLUMNS, 0):int(end) + ZONE_COLUMNS + 1] = True
    return near


def text_remains(after: NDArray[Any], changed: NDArray[np.bool_], fill: Any) -> list[Finding]:
    """`pixel-text-remains` for each frame with changes where tesseract reads a word near them."""
    indices = [int(i) for i in np.flatnonzero(changed.reshape(changed.shape[0], -1).any(axis=1))]
    shown = []
    for index in indices:
        frame = np.array(after[index])
        frame[~zone(changed[index])] = fill
        shown.append(frame)
    findings = []
    for index, boxes in zip(indices, ocr.find_text_frames(shown, min_confidence=MIN_CONFIDENCE), strict=True):
        words = [b for b in boxes if (b.x1 - b.x0) * (b.y1 - b.y0) >= MIN_WORD_PIXELS and _by(b, changed[index])]
        if words:
            findings.append(Finding(PixelRule.TEXT_REMAINS, f"pixels[frame {index}]", Severity.HIGH,
                                    detail=f"{len(words)} word(s) near the cleaned places"))
    return findings


def _by(box: ocr.Box, cleaned: NDArray[np.bool_]) -> bool:
    """Whether a word is in or beside a cleaned place: within `EDGE` pixels of one, or on the
    same line as one (cleaned pixels on at least half its rows, within `ZONE_COLUMNS`)."""
    rows, cols = cleaned.shape
    if cleaned[max(box.y0 - EDGE, 0):min(box.y1 + EDGE, rows), max(box.x0 - EDGE, 0):min(box.x1 + EDGE, cols)].any():
        return True
    band = cleaned[box.y0:box.y1, max(box.x0 - ZONE_COLUMNS, 0):min(box.x1 + ZONE_COLUMNS, cols)]
    return 2 * int(band.any(axis=1).sum()) >= box.y1 - box.y0


def _syntax(ds: Dataset) -> str:
    """The file's transfer syntax; for a dataset stored without file meta, the encoding it was
    read in (implicit or explicit VR, little or big endian: PS3.5 A.1-A.3)."""
    meta: Any = getattr(ds, "file_meta", _NO_META)
    stated = (stored_text(meta, 0x00020010, "TransferSyntaxUID") if isinstance(meta, Dataset)
              else "" if meta is _NO_META else str(meta.get("TransferSyntaxUID", "") or ""))  # any other: as before
    if stated:
        return stated
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or little is None:
        return ""
    return str(ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _same_bytes(output: Dataset, original: Dataset) -> bool:
    """Pixel data stored identically (same transfer syntax, same bytes): nothing changed."""
    try:
        return _syntax(output) == _syntax(original) != "" and _pixel_bytes(output) == _pixel_bytes(original)
    except Exception:
        return False


def _pixel_bytes(ds: Dataset) -> bytes:
    """Pixel Data's bytes as stored (pydicom gives OB and OW values as their bytes, unconverted)."""
    stored = ds.get_item(0x7FE00010)
    if isinstance(stored, RawDataElement) and stored.VR in ("OB", "OW") and isinstance(stored.value, bytes):
        return stored.value
    return bytes(ds.PixelData)


def _frames(ds: Dataset) -> NDArray[Any] | None:
    """Every frame as (frames, rows, columns[, samples]), colour as RGB (pydicom's default),
    or None when it cannot be decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID") and _syntax(ds):
                ds = copy.copy(ds)  # a dataset without file meta: decode it as it was read
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = UID(_syntax(ds))
            array = _decoded(ds)
        frames = int(ds.get("NumberOfFrames") or 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
    except BaseException as exc:
        if not is_codec_failure(exc):
            raise
        return None
    shape = (frames, int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1 else ())
    if array.size != int(np.prod(shape)):
        return None
    return array.reshape(shape)


def _decoded(ds: Dataset) -> NDArray[Any]:
    """`ds.pixel_array`; for a sequential JPEG whose scan headers say other than Ss 0, Se 63
    (ISO 10918-1 B.2.3 fixes them; libjpeg refuses such a frame, pydicom's JPEG-lossy.dcm is one),
    the array of a copy with those headers put right (`codestream.with_sequential_scans`, a
    decoder's input, not a decision of the scrubber). Raises what pydicom raises otherwise."""
    try:
        return np.asarray(ds.pixel_array)
    except BaseException as exc:
        if not is_codec_failure(exc):
            raise
        if _syntax(ds) not in (JPEGBaseline8Bit, JPEGExtended12Bit) or "PixelData" not in ds:
            raise
        fixed = codestream.sequential_pixel_data(ds)
        if fixed is None:
            raise
        copied = copy.copy(ds)
        copied.PixelData = fixed
        return np.asarray(copied.pixel_array)


def says_no_burned_in_text(data: bytes) -> bool:
    """Whether a file holds pixel data, says BurnedInAnnotation NO (what cleaning writes) and
    is not a cross-sectional slice (`CROSS_SECTIONAL`: scanners do not burn text into CT, MR,
    PET or NM slices, and a release holds thousands of them: reading each would make verify
    cost more than the run)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True,
                                 specific_tags=["BurnedInAnnotation", "Modality", "PixelData"])
        return "PixelData" in ds and str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "NO" and \
            str(ds.get("Modality", "") or "").strip().upper() not in CROSS_SECTIONAL
    except Exception:
        return False


def read(data: bytes) -> Dataset | None:
    """A dataset from bytes for `pixel_findings`, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception:
        return None


__all__ = ["CEILING", "PixelBound", "PixelChange", "PixelRule", "compare", "opening", "pixel_findings",
           "says_no_burned_in_text"]
