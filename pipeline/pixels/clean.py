"""Pixels: decide on the original header, then decode (pydicom + pylibjpeg) -> mask -> re-encode.

Two steps, so that the decision reads the header before the scrub changes it:

* `assess(ds, plan)` -> `PixelTask | None`, on the original header, decodes nothing. It refuses
  what cannot be released (`EncapsulatedDocumentRefused`, `BurnedInUnhandled`), and says
  which regions to blank, whether to run OCR and whether an overlay hides in unused high bits.
* `clean_pixels(ds, task)` -> `PixelLog`, after the header scrub: decodes every frame, blanks,
  re-encodes. `None` from `assess` means the pixel data is passed through byte-identical.

Burned-in text (PS3.15 E.3.1 Clean Pixel Data, CID 7050 113101), by `plan.pixel_mode`:

| the image (original header)                   | off        | rules            | ocr               |
|-----------------------------------------------|------------|------------------|-------------------|
| holds an EncapsulatedDocument (PDF, CDA, ...) | refused    | refused          | refused           |
| matches a pixels.deid blacklist block         | -          | refused          | refused           |
| matches a graylist block with coordinates     | -          | regions blanked  | regions blanked   |
| says BurnedInAnnotation YES                   | refused    | regions blanked, | regions blanked,  |
| or matches a graylist block without           | (YES only; | or refused when  | then OCR blanks   |
| coordinates (a likely kind: US, SC, screen    | kinds not  | no block locates | the text it finds |
| save, ...) and no whitelist block             | judged)    | its text         |                   |

OCR blanks only words that look like text (pipeline/pixels/ocr.py); an image whose OCR would
blank too much of it, or its anatomy, is quarantined as ``pixels-need-review``
(pipeline/pixels/review.py), never published. BurnedInAnnotation becomes NO only when pixels
were blanked. Regions apply to every frame; OCR
lines to their own frame. Blanked pixels take the darkest value: the image's minimum
(MONOCHROME2), maximum (MONOCHROME1), black (RGB; Y 0 and Cb Cr mid-scale for YBR_FULL), the
palette entry nearest black (PALETTE COLOR).

Unused bits, whatever the options (PS3.5 8.1.1; PS3.15 E.1-1 removes Overlay Data): an overlay
stored in unused high bits of Pixel Data, declared by a 60xx group (OverlayBitPosition >=
BitsStored) or not, never reaches the release (pipeline/pixels/unused_bits.py: the rule, and the
cost). Native data is checked and rewritten on its bytes; encapsulated data whose codestream can
hold more bits than Bits Stored is decoded, checked, and re-encoded as below only when a bit is
set. Clean data passes through byte-identical. The overlay's 60xx group goes with the header scrub.

Re-encoding: a lossless input stays lossless and every untouched pixel stays identical.

| input transfer syntax                                   | output                           |
|---------------------------------------------------------|----------------------------------|
| implicit / explicit VR little endian, deflated, big end. | the same                        |
| RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless       | the same                        |
| JPEG Lossless (process 14, SV1), HTJ2K Lossless (RPCL)   | JPEG-LS Lossless (no encoder    |
|                                                          | here for the input's syntax)    |
| JPEG 2000 / HTJ2K with LossyImageCompression "00"        | JPEG 2000 Lossless              |
| lossy: JPEG baseline / extended, JPEG-LS near-lossless,  | explicit VR little endian, RGB  |
| JPEG 2000 / HTJ2K otherwise                              | for YBR; never lossy again      |

JPEG 2000 Lossless colour keeps its Photometric Interpretation: YBR_RCT is encoded with the
reversible colour transform, RGB without it (PS3.5 8.2.4). When the lossless encoder refuses
an image (e.g. 32-bit samples), it is stored as explicit VR little endian, still lossless.
A lossy input keeps LossyImageCompression "01"; its method and ratio are added (method by
transfer syntax, ratio from the input's sizes) where missing, unless the other records
several steps; recorded values are never changed. Video transfer syntaxes cannot be decoded
here: such an image is refused when it needs cleaning, and passed through when it does not.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut, convert_color_space
from pydicom.pixels.utils import pack_bits
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from pipeline.dicom.stored import number
from pipeline.errors import Cause, PixelError, ProfileError, is_codec_failure
from pipeline.pixels import ocr, unused_bits
from pipeline.pixels.codestream import decode_sequential_scans, is_truncated_codestream
from pipeline.pixels.review import PixelsNeedReview, anatomy_mask, anatomy_regions, review_reason
from pipeline.profile.pixel_rules import FilterList, Region, evaluate
from pipeline.profile.plan import PixelMode, Plan

log = logging.getLogger(__name__)

NATIVE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                    ExplicitVRBigEndian})
LOSSLESS_KEPT = frozenset({RLELossless, JPEGLSLossless, JPEG2000Lossless})
LOSSLESS_TO_JPEG_LS = frozenset({JPEGLossless, JPEGLosslessSV1, HTJ2KLossless, HTJ2KLosslessRPCL})
LOSSLESS_IF_SAID = {JPEG2000: JPEG2000Lossless, HTJ2K: JPEG2000Lossless}  # LossyImageCompression "00"
LOSSY_METHODS = {JPEGBaseline8Bit: "ISO_10918_1", JPEGExtended12Bit: "ISO_10918_1",
                 JPEGLSNearLossless: "ISO_14495_1", JPEG2000: "ISO_15444_1", HTJ2K: "ISO_15444_15"}
OCR_MARGIN = 2  # pixels around each line of text (ocr.find_text_lines)
OCR_MARGIN_LOSSY = 4  # lossy inputs: the ringing of the codec's blocks around the letters too

Regions = tuple[tuple[tuple[Region, ...], tuple[Region, ...]], ...]  # (blank, keep) per located rule


class BurnedInUnhandled(PixelError):
    """The image carries or likely carries burned-in text that nothing asked for cleans."""

    code = "burned-in-unhandled"


class EncapsulatedDocumentRefused(PixelError):
    """An encapsulated document (PDF, CDA, ...) cannot be cleaned: never released."""

    code = "encapsulated-document"


@dataclass(frozen=True, slots=True)
class PixelTask:
    """What the pixel step does to one image, decided on its original header."""

    regions: Regions = ()
    labels: tuple[str, ...] = ()  # the pixel rules that located text
    ocr: bool = False
    high_bits: bool = False
    max_cleaned_fraction: float = 1.0  # OCR blanking beyond this share of the pixels: review
    anatomy: tuple[Region, ...] = ()  # ultrasound region boxes (pipeline/pixels/review.py)


@dataclass(frozen=True, slots=True)
class PixelLog:
    """What was done to the pixels of one file: no values, and the preview only when asked."""

    cleaned: bool
    labels: tuple[str, ...]
    ocr_lines: int
    high_bits_zeroed: bool
    transfer_syntax_in: str
    transfer_syntax_out: str
    preview: tuple[NDArray[np.uint8], NDArray[np.uint8]] | None = field(default=None, repr=False, compare=False)
    ocr: bool = False  # the image was read by OCR
    changed: float = 0.0  # the share of its pixels (all frames) that cleaning changed


# ----------------------------------------------------------------------------- assess
_ENCAPSULATED_DOCUMENT, _BURNED_IN_ANNOTATION, _PIXEL_DATA = 0x00420011, 0x00280301, 0x7FE00010
_BITS_ALLOCATED, _BITS_STORED = 0x00280100, 0x00280101


def assess(ds: Dataset, plan: Plan) -> PixelTask | None:
    """Decide, on the original header, what the pixel step must do; raise when the file
    cannot be released. None: nothing to do, the pixel data passes through untouched."""
    if _ENCAPSULATED_DOCUMENT in ds._dict:
        raise EncapsulatedDocumentRefused("EncapsulatedDocument present: a document cannot be cleaned")
    if _PIXEL_DATA not in ds._dict:
        return None
    burned_in = ds[_BURNED_IN_ANNOTATION].value if _BURNED_IN_ANNOTATION in ds._dict else ""
    declared = str(burned_in or "").strip().upper() == "YES"
    high_bits = overlay_in_high_bits(ds) or unused_bits.may_be_set(ds)
    if plan.pixel_rules is None:  # a plan built by hand without pixels.deid: only the flag is known
        if declared:
            raise BurnedInUnhandled("BurnedInAnnotation is YES and Clean Pixel Data was not asked for")
        return PixelTask(high_bits=True) if high_bits else None
    matches = evaluate(plan.pixel_rules, ds)
    if plan.pixel_mode is PixelMode.OFF:
        # Without Clean Pixel Data nothing is blanked, so whatever carries or likely carries
        # burned-in text is refused (fail closed), whatever the device rules would locate.
        flags = [m.label for m in matches if m.filter_list is not FilterList.WHITELIST and not m.blank]
        waived = any(m.filter_list is FilterList.WHITELIST for m in matches)
        if declared or (flags and not waived) or any(m.filter_list is FilterList.BLACKLIST for m in matches):
            why = "BurnedInAnnotation is YES" if declared else "a pixel rule flags it"
            raise BurnedInUnhandled(f"{why} and Clean Pixel Data was not asked for")
        return PixelTask(high_bits=True) if high_bits else None
    for match in matches:
        if match.filter_list is FilterList.BLACKLIST:
            raise BurnedInUnhandled(f"pixel rule {match.label!r} (blacklist) refuses this image")
    whitelisted = any(m.filter_list is FilterList.WHITELIST for m in matches)
    flags = [m.label for m in matches if m.filter_list is FilterList.GRAYLIST and not m.blank]
    located = [m for m in matches if m.locates_text and _mask(_shape(ds), ((m.blank, m.keep),)).any()]
    flagged = declared or (bool(flags) and not whitelisted)
    run_ocr = flagged and plan.pixel_mode is PixelMode.OCR
    if flagged and not located and not run_ocr:
        why = "BurnedInAnnotation is YES" if declared else f"pixel rule {flags[0]!r} flags it"
        raise BurnedInUnhandled(f"{why}, no pixel rule locates its text and OCR was not asked for")
    if not located and not run_ocr and not high_bits:
        return None
    return PixelTask(regions=tuple((m.blank, m.keep) for m in located), labels=tuple(m.label for m in located),
                     ocr=run_ocr, high_bits=high_bits, max_cleaned_fraction=plan.max_cleaned_fraction,
                     anatomy=anatomy_regions(ds) if run_ocr else ())


def overlay_in_high_bits(ds: Dataset) -> bool:
    """True when an overlay plane (60xx) is stored in unused high bits of Pixel Data."""
    try:
        allocated = int(number(ds, _BITS_ALLOCATED) or 0)
        stored = int(number(ds, _BITS_STORED) or allocated)
    except (TypeError, ValueError):
        raise PixelError("BitsAllocated or BitsStored is not a number", cause=Cause.BAD_PIXEL_ATTRIBUTES) from None
    if stored >= allocated:
        return False
    for group in range(0x6000, 0x6020, 2):
        if (group << 16) | 0x0102 not in ds._dict:
            continue
        position = ds.get((group << 16) | 0x0102)  # OverlayBitPosition
        if position is not None and position.value is not None and int(position.value) >= stored:
            return True
    return False


def _shape(ds: Dataset) -> tuple[int, int]:
    try:
        return int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise PixelError("pixel data without a usable Rows or Columns", cause=Cause.BAD_PIXEL_ATTRIBUTES) from None


def _mask(shape: tuple[int, int], regions: Regions) -> NDArray[np.bool_]:
    """Pixels to blank: per rule its blank regions less its keep regions; the rules' union."""
    mask = np.zeros(shape, dtype=bool)
    for blank, keep in regions:
        one = np.zeros(shape, dtype=bool)
        for r in blank:
            one[r.y0:r.y1, r.x0:r.x1] = True
        for r in keep:
            one[r.y0:r.y1, r.x0:r.x1] = False
        mask |= one
    return mask


# ----------------------------------------------------------------------------- clean
def clean_pixels(ds: Dataset, task: PixelTask, *, preview: bool = False) -> PixelLog:
    """Decode every frame of `ds`, blank what `task` says, and re-encode in place."""
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if not syntax:
        raise PixelError("pixel data without a Transfer Syntax UID", cause=Cause.NO_TRANSFER_SYNTAX)
    source = UID(str(syntax))
    bits = unused_bits.layout(ds)
    if bits is not None and source in NATIVE and not task.regions and not task.ocr:
        zeroed = unused_bits.zero_native(ds, bits, source)  # the bytes, nothing decoded
        return PixelLog(False, task.labels, 0, zeroed, source, source)
    lossy = _is_lossy(source, ds)
    compressed_size = len(ds.PixelData) if source.is_compressed else 0
    frames, meta = _decode(ds, source, as_rgb=lossy)
    zeroed = bits is not None and not unused_bits.is_clean(frames, bits)
    if bits is not None:
        unused_bits.canonicalise(frames, bits)  # the samples' values, whatever the decoder left above them
    shown_range = (float(frames.min()), float(frames.max()))
    before = _display(frames, meta, ds, shown_range) if preview else None
    mask = _mask(frames.shape[1:3], task.regions)
    fill = _fill(frames, meta, ds)
    ruled = frames[:, mask] != fill
    changed_pixels = int((ruled.any(axis=-1) if frames.ndim == 4 else ruled).sum())  # the rules' share
    frames[:, mask] = fill
    lines = 0
    if task.ocr:
        rows, cols = frames.shape[1:3]
        blanked = np.zeros(frames.shape[:3], dtype=bool)
        text = ocr.read_lines(list(_display(frames, meta, ds, shown_range)))
        for index, found in enumerate(text.lines):
            for box in found:
                grown = box.grown(OCR_MARGIN_LOSSY if lossy else OCR_MARGIN, rows, cols)
                blanked[index, grown.y0:grown.y1, grown.x0:grown.x1] = True
            lines += len(found)
        blanked &= ~mask  # the rules' regions are configured, not guessed: only OCR's share counts
        differs = frames != fill
        ocr_changed = int((blanked & (differs.any(axis=-1) if differs.ndim == 4 else differs)).sum())
        changed = ocr_changed / blanked.size
        changed_pixels += ocr_changed
        frames[blanked] = fill
        reason = review_reason(blanked, changed, anatomy_mask((rows, cols), task.anatomy),
                               task.max_cleaned_fraction, text.oversized)
        if reason is not None:
            raise PixelsNeedReview(reason, None if before is None else _preview(before, frames, meta, ds, shown_range))
    cleaned = bool(mask.any()) or lines > 0
    share = changed_pixels / (frames.shape[0] * frames.shape[1] * frames.shape[2])
    if not cleaned and not zeroed:
        return PixelLog(False, task.labels, 0, False, source, source, ocr=task.ocr)
    target = _encode(ds, frames, meta, _target(source, ds, lossy))
    if lossy:
        _record_lossy(ds, source, compressed_size)
    if cleaned:
        ds.BurnedInAnnotation = "NO"
    log.debug("pixels: %d rule(s), %d OCR line(s), %s -> %s", len(task.labels), lines, source.name, target.name)
    shown = None if before is None else _preview(before, frames, meta, ds, shown_range)
    return PixelLog(cleaned, task.labels, lines, zeroed, source, target, shown, ocr=task.ocr, changed=share)


def _preview(before: NDArray[np.uint8], frames: NDArray[Any], meta: dict[str, Any], ds: Dataset,
             shown_range: tuple[float, float]) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """(before, after) of the frame that changed most, shown over the same value range."""
    after = _display(frames, meta, ds, shown_range)
    changed = int(np.argmax([(b != a).sum() for b, a in zip(before, after, strict=True)]))
    return before[changed], after[changed]


def _is_lossy(source: UID, ds: Dataset) -> bool:
    if source in NATIVE or source in LOSSLESS_KEPT or source in LOSSLESS_TO_JPEG_LS:
        return False
    if source in LOSSLESS_IF_SAID:
        return str(ds.get("LossyImageCompression", "") or "").strip() != "00"
    return True


def _target(source: UID, ds: Dataset, lossy: bool) -> UID:
    if lossy:
        return ExplicitVRLittleEndian
    if source in NATIVE or source in LOSSLESS_KEPT:
        return source
    if source in LOSSLESS_TO_JPEG_LS:
        return JPEGLSLossless
    return LOSSLESS_IF_SAID[source]


def _decode(ds: Dataset, source: UID, *, as_rgb: bool) -> tuple[NDArray[Any], dict[str, Any]]:
    """All frames as (frames, rows, columns[, samples]), in the stored colour space (YBR
    converted to RGB only for lossy inputs, which are stored decoded)."""
    try:
        decoder = get_decoder(source)
    except NotImplementedError:
        raise PixelError(f"no decoder for transfer syntax {source.name}", cause=Cause.NO_DECODER) from None
    if not decoder.is_available:
        raise PixelError(f"the decoder for {source.name} is missing its plugins", cause=Cause.DECODER_PLUGIN_MISSING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # unused bits as stored: pipeline/pixels/unused_bits.py checks, then clears them
            options: dict[str, Any] = {"as_rgb": as_rgb, "correct_unused_bits": False}
            array, meta = decoder.as_array(ds, **options)
    except BaseException as exc:
        if not is_codec_failure(exc):
            raise
        decoded = decode_sequential_scans(decoder, ds, source, options)
        if decoded is None:
            cause = Cause.TRUNCATED_CODESTREAM if is_truncated_codestream(ds, source) else Cause.UNDECODABLE
            raise PixelError(f"cannot decode the pixel data ({type(exc).__name__})", cause=cause) from None
        array, meta = decoded
    count = int(meta["number_of_frames"])
    samples = int(meta["samples_per_pixel"])
    shape = (count, int(meta["rows"]), int(meta["columns"])) + ((samples,) if samples > 1 else ())
    return np.array(array.reshape(shape)), dict(meta)


def _fill(frames: NDArray[Any], meta: dict[str, Any], ds: Dataset) -> Any:
    """The darkest value of the image's colour space (see the module's notes)."""
    photometric = str(meta["photometric_interpretation"])
    if photometric == "MONOCHROME1":
        return frames.max()
    if photometric == "PALETTE COLOR":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entries = np.arange(int(frames.min()), int(frames.max()) + 1, dtype=frames.dtype)
            colours = apply_color_lut(entries, ds).astype(np.float64)
        return entries[int(np.argmin(colours.sum(axis=-1)))]
    if photometric.startswith("YBR"):
        middle = 1 << (int(meta["bits_stored"]) - 1)
        return np.array([0, middle, middle], dtype=frames.dtype)
    if photometric == "RGB":
        return np.zeros(frames.shape[-1], dtype=frames.dtype)
    return frames.min()


def _display(frames: NDArray[Any], meta: dict[str, Any], ds: Dataset,
             value_range: tuple[float, float] | None = None) -> NDArray[np.uint8]:
    """Frames as a person sees them, 8-bit grey or RGB: for OCR (grey over each frame's own
    range) and previews (over `value_range`, the same before and after)."""
    photometric = str(meta["photometric_interpretation"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if photometric == "PALETTE COLOR":
            shown = apply_color_lut(frames, ds)
        elif photometric.startswith("YBR"):
            shown = convert_color_space(frames, "YBR_FULL", "RGB", per_frame=True)
        else:
            shown = frames
    grey = [ocr.to_gray8(f, value_range) if f.ndim == 2 else to_rgb8(f) for f in shown]
    if photometric == "MONOCHROME1":
        grey = [255 - g for g in grey]  # displayed inverted: low values are white
    return np.stack(grey)


def to_rgb8(frame: NDArray[Any]) -> NDArray[np.uint8]:
    if frame.dtype == np.uint8:
        return frame
    high = float(frame.max()) or 1.0
    return np.round(frame.astype(np.float64) * (255.0 / high)).astype(np.uint8)


def _encode(ds: Dataset, frames: NDArray[Any], meta: dict[str, Any], target: UID) -> UID:
    """Store `frames` as the dataset's Pixel Data in `target` (or explicit VR little endian
    when the lossless encoder refuses the image); return the syntax used."""
    samples = int(meta["samples_per_pixel"])
    decoded = str(meta["photometric_interpretation"])
    # PS3.5 8.2.4: JPEG 2000 colour is YBR_RCT when the codestream uses the reversible colour
    # transform, RGB when it does not. The decoder undoes the transform (RGB); a YBR_RCT input
    # is encoded with it again and keeps its label (the US Image IOD allows no RGB here).
    rct = target == JPEG2000Lossless and samples == 3 and decoded == "RGB" and \
        str(ds.get("PhotometricInterpretation", "")) == "YBR_RCT"
    ds.PhotometricInterpretation = "YBR_RCT" if rct else decoded
    if samples > 1:
        ds.PlanarConfiguration = 0
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    array = frames if frames.shape[0] > 1 else frames[0]
    if target.is_compressed:
        options: dict[str, Any] = {"use_mct": rct} if target == JPEG2000Lossless and samples == 3 else {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.compress(target, array, generate_instance_uid=False, **options)
            return target
        except Exception as exc:
            log.info("pixels: %s refused the image (%s); stored uncompressed", target.name, type(exc).__name__)
            target = ExplicitVRLittleEndian
            ds.PhotometricInterpretation = decoded
    if int(ds.BitsAllocated) == 1:
        data = pack_bits(array)
    else:
        order: Literal["<", ">"] = ">" if target == ExplicitVRBigEndian else "<"
        data = array.astype(array.dtype.newbyteorder(order)).tobytes()
    ds.PixelData = data + (b"\x00" if len(data) % 2 else b"")
    element = ds["PixelData"]
    element.VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
    element.is_undefined_length = False
    ds.file_meta.TransferSyntaxUID = target
    return target


def _record_lossy(ds: Dataset, source: UID, compressed_size: int) -> None:
    """PS3.3 C.7.6.1.1.5: once lossy, always "01"; method and ratio when none is recorded."""
    ds.LossyImageCompression = "01"
    has_method = "LossyImageCompressionMethod" in ds
    has_ratio = "LossyImageCompressionRatio" in ds
    steps = max((ds[k].VM for k in ("LossyImageCompressionMethod", "LossyImageCompressionRatio") if k in ds),
                default=0)
    if (has_method and has_ratio) or steps > 1:
        return  # recorded, or a history of several steps whose missing half cannot be told
    if not has_method:
        ds.LossyImageCompressionMethod = LOSSY_METHODS.get(source, "ISO_10918_1")
    if not has_ratio and compressed_size:
        frames = int(ds.get("NumberOfFrames") or 1)
        raw = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * frames * int(ds.BitsAllocated) // 8
        ds.LossyImageCompressionRatio = f"{raw / compressed_size:.2f}"


def require_for(plan: Plan) -> None:
    """With pixel mode ocr, tesseract must answer: a `ProfileError` otherwise, raised before
    any file is read."""
    if plan.pixel_mode is PixelMode.OCR:
        try:
            ocr.require()
        except PixelError as exc:
            raise ProfileError(f"pixel mode ocr: {exc}") from None

