"""Text detection in pixels with tesseract (Debian ``tesseract-ocr`` through pytesseract).

Nothing is downloaded at run time: the English model comes with the Debian package. Used by
OCR cleaning (pipeline/pixels/clean.py, ``PixelMode.OCR``) to find and blank text, and by verify/scan
to confirm that no readable text is left or to flag images that carry text.

A `Box` says where text is and how sure tesseract is, never what it reads: the words may be
a patient's name. Detection, tuned on text drawn over noise, gradients and shapes
(tests/test_ocr.py; /tmp experiments showed tesseract's own binarisation fails on speckle):

1. frames are scaled to 8-bit grey (colour: luminance) over the value range of all the frames
   together, so a frame without text is not stretched until its speckle looks like letters;
2. passes, each binarised to black on white: the bright pass keeps pixels in the top 30 % of
   the range (burned-in text is drawn near full scale); a dark pass (bottom 30 %) runs when
   the background is light (scanned documents); colour images get a saturation pass too
   (yellow or green annotation over grey ultrasound);
3. images up to 1024 pixels wide are enlarged 2x (small burned-in fonts are 8-12 pixels);
4. frames are stacked into sheets up to `SHEET_ROWS` tall, white gaps between them, and each
   sheet is read once per pass with page segmentation mode 11 (sparse text, any order);
5. a word counts only when it looks like text (`looks_like_text`): confidence at least
   `MIN_CONFIDENCE` (`MIN_CONFIDENCE_SHORT` for a short word alone on its line), at least
   half of its characters letters or digits, a height between `MIN_TEXT_HEIGHT` pixels and
   `MAX_TEXT_HEIGHT` of the rows (larger but below `NOISE_HEIGHT`: oversized, the image goes
   to review), a width its characters could fill
   (`MIN_CHAR_WIDTH`..`MAX_CHAR_WIDTH` line heights each), and at most `MAX_WORD_SHARE` of the
   image. Before this (issue 15) every word with a letter or digit counted, whatever its
   confidence: tesseract's "words" over anatomy (confidence 41 over a whole CT head, 0 over a
   Doppler area) blanked images without text;
6. cleaning grows each line over the text pixels beside it (`find_text_lines`), but a line
   that would grow beyond `MAX_LINE_SHARE` of the image keeps its words' box.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pipeline.errors import PixelError

SHEET_ROWS = 4096
GAP = 16
PAD = 8
ENLARGE_UP_TO = 1024
TIMEOUT_SECONDS = 120
TESSERACT_CONFIG = "--psm 11"
MIN_LINE = 6  # pixels: the smallest line height cleaning assumes
THRESHOLD = 77  # of 255: the top (bright pass) or bottom (dark pass) 30 % of the range
# What looks like text (issue 15). Measured over tesseract's words on the 9 burned-in images of
# sample_data/archive (a word is right when it overlaps a box of archive_key.json) and 71
# images without text (the archive's other images; pydicom's wheel test files but
# examples_jpeg2k, examples_rgb_color, examples_ybr_color, examples_palette, GDCMJ2K_TextGBR):
#   every word with a letter or digit (before): precision 77/89 = 0.87, false words in 11 of
#     the 71 text-free images (CT head 693_J2KI: one "word" of 512 x 237 at confidence 41);
#   the rules below at confidence >= 30: 41/41 = 1.00; >= 40: 37/37; >= 50: 33/33; false
#     words in 0 of the 71 images at each; the key's 9 boxes hit by an accepted word at each.
# 40: without the short-word rule it was the lowest threshold with no false word (>= 30:
# 44/45, a 10 x 7 "aA" at 37 on a text-free ultrasound; >= 40: 38/38). Words below it inside
# real text lines (names read at 0-35) are covered by growing the confident words' lines.
# On tests/pixels/test_ocr.py's drawn strings, recall 56/56 before, 51/56 after.
# Text heights and widths: true words measured 0.29-0.81 line heights per character (one
# 1.44 at a 6-pixel height; "WHO" drawn by Pillow 1.12), false ones 1.08-1.58. The CT head's
# "word" (512 x 237, 1.08 per character) is larger than any title: beyond `NOISE_HEIGHT` of
# the rows or `NOISE_SHARE` of the image a word is noise; between the text limits and these,
# oversized (pipeline/pixels/review.py: the image goes to review).
MIN_CONFIDENCE = 40.0
SHORT, MIN_CONFIDENCE_SHORT = 3, 60.0  # a lone short word: noise reads so ("eae" at 42 on a gradient)
MIN_TEXT_HEIGHT = 4  # pixels: tesseract boxes Pillow's 8-pixel font 5 high
MAX_TEXT_HEIGHT = 0.25  # of the image's rows: big titles still count (and go to review)
MIN_CHAR_WIDTH, MAX_CHAR_WIDTH = 0.2, 1.2  # a word's width per character, in line heights
MAX_WORD_SHARE = 0.1  # of the image's pixels, one word
NOISE_HEIGHT, NOISE_SHARE = 0.5, 0.3  # of the rows, of the pixels: no title is this large
MAX_LINE_SHARE = 0.5  # of a frame, one grown line: never the whole image (review bounds the rest)
GROW_ROUNDS = 4  # grow, merge, grow again: at most this many times
NEAR_ACROSS, NEAR_DOWN = 6, 3  # line heights around the words that lines may grow into

# One thread per tesseract: the pipeline already runs one worker per core.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")


class WordKind(StrEnum):
    """What a word tesseract returned is taken for (`classify`)."""

    TEXT = "text"
    OVERSIZED = "oversized"
    NOISE = "noise"


@dataclass(frozen=True, slots=True)
class TextLines:
    """What cleaning blanks (`read_lines`): per frame, its text lines; and how many words
    looked like text but too large to blank without review."""

    lines: list[list[Box]]
    oversized: int


class OcrUnavailable(PixelError):
    """tesseract is not installed (``apt-get install tesseract-ocr``; `make install` does it)."""

    code = "ocr-unavailable"


class OcrFailed(PixelError):
    """tesseract ran but failed or timed out on an image."""

    code = "ocr-failed"


@dataclass(frozen=True, slots=True)
class Box:
    """Where tesseract found a word: columns x0..x1-1, rows y0..y1-1; its confidence 0-100."""

    x0: int
    y0: int
    x1: int
    y1: int
    confidence: float

    def grown(self, margin: int, rows: int, cols: int) -> Box:
        """The box widened by `margin` pixels on every side, clipped to the image."""
        return Box(max(self.x0 - margin, 0), max(self.y0 - margin, 0),
                   min(self.x1 + margin, cols), min(self.y1 + margin, rows), self.confidence)


@functools.lru_cache(maxsize=1)
def is_available() -> bool:
    """True when the tesseract program and its English model answer."""
    if shutil.which("tesseract") is None:
        return False
    import pytesseract  # type: ignore[import-untyped]

    try:
        return "eng" in pytesseract.get_languages(config="")
    except Exception:
        return False


def require() -> None:
    """Raise `OcrUnavailable` unless tesseract can be run."""
    if not is_available():
        raise OcrUnavailable("tesseract with its English model is not installed (apt-get install tesseract-ocr)")


def to_gray8(image: NDArray[np.generic], value_range: tuple[float, float] | None = None) -> NDArray[np.uint8]:
    """One frame (rows x cols, or rows x cols x 3) as 8-bit grey over `value_range`, by
    default its own range of values."""
    data = _luminance(np.asarray(image))
    low, high = value_range or (float(data.min()), float(data.max()))
    if high <= low:
        return np.zeros(data.shape, dtype=np.uint8)
    return np.round((data.clip(low, high) - low) * (255.0 / (high - low))).astype(np.uint8)


def find_text(image: NDArray[np.generic], *, min_confidence: float = MIN_CONFIDENCE) -> list[Box]:
    """Boxes of the words tesseract reads in one image (frame), in its pixel coordinates."""
    return find_text_frames([image], min_confidence=min_confidence)[0]


def find_text_frames(frames: list[NDArray[np.generic]] | NDArray[np.generic], *,
                     min_confidence: float = MIN_CONFIDENCE) -> list[list[Box]]:
    """Boxes of words per frame for a sequence of frames of one size (one image's frames)."""
    images = [np.asarray(frame) for frame in frames]
    return _find(images, _masks(images), min_confidence) if images else []


def find_text_lines(frames: list[NDArray[np.generic]] | NDArray[np.generic]) -> list[list[Box]]:
    """Per frame, the text lines cleaning blanks (`read_lines`)."""
    return read_lines(frames).lines


def read_lines(frames: list[NDArray[np.generic]] | NDArray[np.generic]) -> TextLines:
    """What cleaning blanks: per frame, the text around the words tesseract reads.

    Words are joined into lines (`merge_lines`), and each line grows over the binarised text
    pixels next to it (the masks of the passes): sideways across gaps narrower than one and
    a half line heights (the image's median word height, at least `MIN_LINE`), up and down
    across gaps of half a line, by at most one and a half lines per
    round; grown lines are merged and grown again, up to `GROW_ROUNDS` times, so the lines of
    a block of text go together. Letters tesseract did not read, or read with too little
    confidence (the end of a name, a date under it), go with their neighbours; some anatomy
    next to text may go too, but lines grow only near words (`NEAR_ACROSS` line heights
    sideways, `NEAR_DOWN` up and down) and never beyond `MAX_LINE_SHARE` of the image."""
    images = [np.asarray(frame) for frame in frames]
    if not images:
        return TextLines([], 0)
    masks = _masks(images)
    union = [np.logical_or.reduce([pass_[index] for pass_ in masks]) for index in range(len(images))]
    shape = images[0].shape[:2]
    kinds = [classify_frame(words, shape) for words in _read(images, masks)]
    found = [[box for box, kind in words if kind is WordKind.TEXT] for words in kinds]
    oversized = sum(kind is WordKind.OVERSIZED for words in kinds for _, kind in words)
    heights = [b.y1 - b.y0 for words in found for b in words]
    typical = max(int(np.median(heights)) if heights else 0, MIN_LINE)
    limit = MAX_LINE_SHARE * images[0].shape[0] * images[0].shape[1]
    result = []
    for index, words in enumerate(found):
        near = _near(words, union[index], typical)
        lines = merge_lines(words)
        for _ in range(GROW_ROUNDS):  # a block of lines: each round may reach the next line
            grown = merge_lines([_bounded(line, _grow(line, near, typical), limit) for line in lines])
            if grown == lines:
                break
            lines = grown
        result.append(lines)
    return TextLines(result, oversized)


def _near(words: list[Box], mask: NDArray[np.bool_], line: int) -> NDArray[np.bool_]:
    """The pixels of `mask` within `NEAR_ACROSS` line heights sideways and `NEAR_DOWN` up or
    down of a word: lines grow over these only, never along bright anatomy far from any word."""
    zone = np.zeros(mask.shape, dtype=bool)
    across, down = NEAR_ACROSS * line, NEAR_DOWN * line
    for b in words:
        zone[max(b.y0 - down, 0):b.y1 + down, max(b.x0 - across, 0):b.x1 + across] = True
    return mask & zone


def _bounded(line: Box, grown: Box, limit: float) -> Box:
    """`grown`, unless it covers more than `limit` pixels: then the line as read."""
    return grown if (grown.x1 - grown.x0) * (grown.y1 - grown.y0) <= limit else line


def _find(images: list[NDArray[Any]], masks: list[list[NDArray[np.bool_]]],
          min_confidence: float) -> list[list[Box]]:
    """Per frame, the words that look like text (`looks_like_text`) in the frame's pixels."""
    shape = images[0].shape[:2]
    return [[box for box, kind in classify_frame(words, shape, min_confidence) if kind is WordKind.TEXT]
            for words in _read(images, masks)]


def classify_frame(words: list[tuple[Box, str]], shape: tuple[int, ...],
                   min_confidence: float = MIN_CONFIDENCE) -> list[tuple[Box, WordKind]]:
    """`classify` for the words of one frame, where a short word below `MIN_CONFIDENCE_SHORT`
    still counts when another word of its line counts at `min_confidence` ("Dr WHO" read at
    46 and 46; noise reads as lone short words)."""
    strict = [(box, classify(box, text, shape, min_confidence)) for box, text in words]
    relaxed = [classify(box, text, shape, min_confidence, short=False) for box, text in words]
    kinds = []
    for index, (box, kind) in enumerate(strict):
        if kind is WordKind.NOISE and relaxed[index] is not WordKind.NOISE and any(
                other is not WordKind.NOISE and _same_line(box, words[j][0])
                for j, other in enumerate(relaxed) if j != index):
            kind = relaxed[index]
        kinds.append((box, kind))
    return kinds


def _same_line(a: Box, b: Box) -> bool:
    """Two words on one line: they share half the lower one's height and stand less than two
    line heights apart."""
    shared = min(a.y1, b.y1) - max(a.y0, b.y0)
    line = max(a.y1 - a.y0, b.y1 - b.y0)
    return 2 * shared >= min(a.y1 - a.y0, b.y1 - b.y0) and max(a.x0, b.x0) - min(a.x1, b.x1) <= 2 * line


def _read(images: list[NDArray[Any]], masks: list[list[NDArray[np.bool_]]]) -> list[list[tuple[Box, str]]]:
    """Per frame, every non-empty word tesseract returns, in the frame's pixels."""
    require()
    found: list[list[tuple[Box, str]]] = [[] for _ in images]
    rows, cols = images[0].shape[:2]
    scale = _scale(cols)
    for pass_ in masks:
        prepared = [_enlarge(np.where(mask, 0, 255).astype(np.uint8), scale) for mask in pass_]
        per_sheet = max(1, (SHEET_ROWS - 2 * PAD + GAP) // (prepared[0].shape[0] + GAP))
        for start in range(0, len(prepared), per_sheet):
            for offset, words in enumerate(_read_sheet(prepared[start:start + per_sheet])):
                found[start + offset] += [(_unscale(box, scale, rows, cols), text) for box, text in words]
    return found


def looks_like_text(box: Box, text: str, shape: tuple[int, ...], min_confidence: float = MIN_CONFIDENCE) -> bool:
    """True when a word tesseract returned looks like burned-in text (see the module's notes):
    confident enough, mostly letters and digits, a width its characters could fill, a line
    height of text, and a small share of the image."""
    return classify(box, text, shape, min_confidence) is WordKind.TEXT


def classify(box: Box, text: str, shape: tuple[int, ...], min_confidence: float = MIN_CONFIDENCE, *,
             short: bool = True) -> WordKind:
    """TEXT, OVERSIZED (a word in every way but too tall or too large a share of the image:
    a title, or anatomy; cleaning sends the image to review) or NOISE. `short`: words of at
    most `SHORT` characters need `MIN_CONFIDENCE_SHORT` (see `classify_frame`)."""
    height, width = box.y1 - box.y0, box.x1 - box.x0
    letters = sum(c.isalnum() for c in text)
    if letters == 0 or 2 * letters < len(text):
        return WordKind.NOISE
    if box.confidence < (max(min_confidence, MIN_CONFIDENCE_SHORT) if short and len(text) <= SHORT else min_confidence):
        return WordKind.NOISE
    per_character = width / (height * len(text)) if height else 0.0
    if height < MIN_TEXT_HEIGHT or not MIN_CHAR_WIDTH <= per_character <= MAX_CHAR_WIDTH:
        return WordKind.NOISE
    if height > NOISE_HEIGHT * shape[0] or width * height > NOISE_SHARE * shape[0] * shape[1]:
        return WordKind.NOISE
    if height > MAX_TEXT_HEIGHT * shape[0] or width * height > MAX_WORD_SHARE * shape[0] * shape[1]:
        return WordKind.OVERSIZED
    return WordKind.TEXT


def _scale(cols: int) -> int:
    return 2 if cols <= ENLARGE_UP_TO else 1


def _masks(images: list[NDArray[Any]]) -> list[list[NDArray[np.bool_]]]:
    """Per pass, per frame: the pixels that may be text (see the module's notes)."""
    luminance = [_luminance(image) for image in images]
    low = min(float(x.min()) for x in luminance)
    high = max(float(x.max()) for x in luminance)
    grey = [to_gray8(x, (low, high)) for x in luminance]
    masks = [[g >= 255 - THRESHOLD for g in grey]]
    if float(np.median(np.stack(grey))) >= 128:
        masks.append([g <= THRESHOLD for g in grey])
    if images[0].ndim == 3:
        saturation = [np.ptp(image.astype(np.float64), axis=-1) for image in images]
        top = max(float(s.max()) for s in saturation) or 1.0
        masks.append([s >= top / 2 for s in saturation])
    return masks


def _grow(box: Box, mask: NDArray[np.bool_], line: int) -> Box:
    """`box` grown over the text pixels of `mask` around it (see `find_text_lines`). `line` is
    the image's median word height, never the box's: a merged or grown box is several lines
    tall, and would reach further into the image each round."""
    rows, cols = mask.shape
    reach, gap, side = (3 * line) // 2, max(2, line // 2), (3 * line) // 2
    top, bottom = max(box.y0 - reach, 0), min(box.y1 + reach, rows)
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    changed = True
    while changed:
        changed = False
        band = mask[y0:y1]
        left = np.flatnonzero(band[:, max(x0 - side, 0):x0].any(axis=0))
        if left.size:
            x0, changed = max(x0 - side, 0) + int(left[0]), True
        right = np.flatnonzero(band[:, x1:min(x1 + side, cols)].any(axis=0))
        if right.size:
            x1, changed = x1 + int(right[-1]) + 1, True
        above = np.flatnonzero(mask[max(y0 - gap, top):y0, x0:x1].any(axis=1))
        if above.size:
            y0, changed = max(y0 - gap, top) + int(above[0]), True
        below = np.flatnonzero(mask[y1:min(y1 + gap, bottom), x0:x1].any(axis=1))
        if below.size:
            y1, changed = y1 + int(below[-1]) + 1, True
    return Box(x0, y0, x1, y1, box.confidence)


def _luminance(image: NDArray[Any]) -> NDArray[np.float64]:
    data = image.astype(np.float64)
    if data.ndim == 3:
        data = data[..., :3] @ np.array([0.299, 0.587, 0.114])[: data.shape[-1]]
    if data.ndim != 2:
        raise PixelError(f"an image for OCR must be 2-D or 2-D with samples, not {image.ndim}-D")
    return data


def _enlarge(data: NDArray[np.uint8], scale: int) -> NDArray[np.uint8]:
    if scale == 1:
        return data
    size = (data.shape[1] * scale, data.shape[0] * scale)
    return np.asarray(Image.fromarray(data).resize(size, Image.Resampling.BICUBIC))


def _read_sheet(chunk: list[NDArray[np.uint8]]) -> list[list[tuple[Box, str]]]:
    """Read frames stacked in one white sheet; return each frame's words (box in prepared
    pixels, and what tesseract read, for `looks_like_text` only: it never leaves this module)."""
    import pytesseract

    height, width = chunk[0].shape
    sheet = np.full((2 * PAD + len(chunk) * (height + GAP) - GAP, width + 2 * PAD), 255, dtype=np.uint8)
    tops = [PAD + index * (height + GAP) for index in range(len(chunk))]
    for top, frame in zip(tops, chunk, strict=True):
        sheet[top:top + height, PAD:PAD + width] = frame
    try:
        # Not image_to_data: it writes the image and the words tesseract reads in the system's temporary
        # folder, readable by everyone and left there when the process is killed. mkdtemp's folder is
        # owner-only (0700), so a killed run leaves nothing another user can read.
        with tempfile.TemporaryDirectory(prefix="deid-ocr-") as folder:
            image, base = os.path.join(folder, "sheet.png"), os.path.join(folder, "words")
            Image.fromarray(sheet).save(image)
            pytesseract.pytesseract.run_tesseract(image, base, "tsv", None,
                                                  f"-c tessedit_create_tsv=1 {TESSERACT_CONFIG}", 0, TIMEOUT_SECONDS)
            with open(f"{base}.tsv", encoding="utf-8") as words_file:
                data = pytesseract.pytesseract.file_to_dict(words_file.read(), "\t", -1)
    except Exception as exc:
        raise OcrFailed(f"tesseract failed ({type(exc).__name__})") from None
    words: list[list[tuple[Box, str]]] = [[] for _ in chunk]
    for index, text in enumerate(data["text"]):
        text = str(text).strip()
        if not text:
            continue
        left, top = int(data["left"][index]) - PAD, int(data["top"][index])
        right, bottom = left + int(data["width"][index]), top + int(data["height"][index])
        centre = (top + bottom) // 2
        which = min(max((centre - PAD) // (height + GAP), 0), len(chunk) - 1)
        origin = tops[which]
        words[which].append((Box(max(left, 0), max(top - origin, 0), min(right, width),
                                 min(bottom - origin, height), float(data["conf"][index])), text))
    return words


def merge_lines(boxes: list[Box]) -> list[Box]:
    """Words on one text line joined into one box: boxes that share at least half the height
    of the lower one and stand less than one height apart. Cleaning blanks whole lines, so
    a letter tesseract left between two words goes too."""
    merged = sorted(boxes, key=lambda b: (b.y0, b.x0))
    changed = True
    while changed:
        changed = False
        for i, a in enumerate(merged):
            for j in range(i + 1, len(merged)):
                b = merged[j]
                shared = min(a.y1, b.y1) - max(a.y0, b.y0)
                height = max(a.y1 - a.y0, b.y1 - b.y0)
                gap = max(a.x0, b.x0) - min(a.x1, b.x1)
                if shared * 2 >= min(a.y1 - a.y0, b.y1 - b.y0) and gap <= height:
                    merged[i] = Box(min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1),
                                    min(a.confidence, b.confidence))
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def _unscale(box: Box, scale: int, rows: int, cols: int) -> Box:
    """A box in prepared (enlarged) pixels back in the frame's pixels, rounded outwards."""
    return Box(box.x0 // scale, box.y0 // scale, min(-(-box.x1 // scale), cols),
               min(-(-box.y1 // scale), rows), box.confidence)


