"""Text detection with tesseract on synthetic images: text drawn with Pillow's scalable default
font over noise, gradients and shapes. Recall is measured over the drawn strings and printed."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from pipeline.pixels.ocr import Box, find_text, find_text_frames, find_text_lines, is_available, merge_lines

STRINGS = [
    "QUILLERBY^TOBIASZEK", "MRN 0012345", "1970-01-01", "SMITH JOHN", "ACC 998877", "ST MARY HOSP",
    "Dr WHO", "12/31/2023", "ID 55501", "F 54Y", "14:22:05", "L 12.5 cm", "GAIN 45%", "PRIYA^NAIR",
    "DOB 03.04.1961", "Ward 7B",
]
SIZES = (8, 10, 12, 14, 16, 20, 24)
RECALL_FLOOR = 0.8


def background(rows: int, cols: int, kind: str, rng: np.random.Generator) -> NDArray[np.float64]:
    """Uniform speckle on a ramp, or a textured ellipse on a noisy ramp (an 'anatomy')."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    if kind == "speckle":
        return 10 + 55 * xx / cols + rng.integers(0, 27, (rows, cols))
    image = 20 + 60 * xx / cols + rng.normal(0, 12, (rows, cols))
    inside = ((xx - cols / 2) / (cols * 0.3)) ** 2 + ((yy - rows / 2) / (rows * 0.25)) ** 2 < 1
    image[inside] += 70 + 30 * np.sin(xx[inside] / 7) * np.cos(yy[inside] / 5)
    return image


Drawn = tuple[tuple[int, int, int, int], NDArray[np.bool_]]  # a string's box and its pixels


def drawn_image(size: int, kind: str, seed: int) -> tuple[NDArray[np.uint8], list[Drawn]]:
    """A 256 x 320 image with four strings in its corners, as scanners and consoles put them."""
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    rows, cols = 256, 320
    image = background(rows, cols, kind, rng)
    font = ImageFont.load_default(size=size)
    drawn: list[Drawn] = []
    level = int(rng.integers(170, 256))  # text near, not always at, full scale
    for corner, text in enumerate(pick.sample(STRINGS, 4)):
        canvas = Image.new("L", (cols, rows))
        draw = ImageDraw.Draw(canvas)
        width = int(draw.textlength(text, font=font))
        x = 3 if corner % 2 == 0 else cols - width - 3
        y = 3 if corner < 2 else rows - size - 6
        box = draw.textbbox((x, y), text, font=font)
        draw.text((x, y), text, fill=255, font=font)
        pixels = np.asarray(canvas) > 96
        image[pixels] = level
        drawn.append(((int(box[0]), int(box[1]), int(box[2]), int(box[3])), pixels))
    return image.clip(0, 255).astype(np.uint8), drawn


def under(boxes: list[Box], shape: tuple[int, int]) -> NDArray[np.bool_]:
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        mask[box.y0:box.y1, box.x0:box.x1] = True
    return mask


def coverage(drawn: tuple[int, int, int, int], found: list[Box]) -> float:
    x0, y0, x1, y1 = drawn
    covered = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for box in found:
        covered[max(box.y0 - y0, 0):max(box.y1 - y0, 0), max(box.x0 - x0, 0):max(box.x1 - x0, 0)] = True
    return float(covered.mean())


def test_tesseract_is_installed() -> None:
    assert is_available()  # `make install` installs tesseract-ocr; no test skips without it


def test_recall_over_drawn_strings_is_printed_and_above_the_floor() -> None:
    """Found: half of a string's box is under tesseract's word boxes (what scan relies on).
    Covered: every pixel of it is under the lines cleaning blanks (find_text_lines)."""
    found = covered = total = 0
    by_size: dict[int, list[int]] = {}
    for seed, (size, kind) in enumerate((s, k) for s in SIZES for k in ("speckle", "anatomy")):
        image, drawn = drawn_image(size, kind, seed)
        words, lines = find_text(image), find_text_lines([image])[0]
        hits = [coverage(box, words) >= 0.5 for box, _ in drawn]
        found += sum(hits)
        blanked = under(lines, image.shape)
        covered += sum(bool(blanked[pixels].all()) for _, pixels in drawn)
        total += len(hits)
        counts = by_size.setdefault(size, [0, 0])
        counts[0] += sum(hits)
        counts[1] += len(hits)
    sizes = ", ".join(f"{size}px {hit}/{of}" for size, (hit, of) in sorted(by_size.items()))
    print(f"\nOCR recall: found {found}/{total} drawn strings = {found / total:.2f} ({sizes}); "
          f"wholly covered by the cleaned lines {covered}/{total} = {covered / total:.2f}")
    assert found / total >= RECALL_FLOOR and covered / total >= RECALL_FLOOR


def test_a_smooth_image_without_text_gives_no_box() -> None:
    ramp = np.repeat(np.linspace(0, 4000, 300)[None, :], 200, axis=0).astype(np.uint16)
    assert find_text(ramp) == []


def test_boxes_come_back_in_their_own_frame_and_say_nothing_of_the_text() -> None:
    rng = np.random.default_rng(3)
    frames = (30 + rng.integers(0, 25, (6, 96, 160))).astype(np.uint8)
    canvas = Image.new("L", (160, 96))
    ImageDraw.Draw(canvas).text((20, 40), "TOBIASZEK 88", fill=255, font=ImageFont.load_default(size=16))
    text = np.asarray(canvas) > 96
    frames[3][text] = 250
    found = find_text_frames(frames)
    assert [len(f) > 0 for f in found] == [False, False, False, True, False, False]
    box = merge_lines(found[3])[0]
    rows, cols = np.nonzero(text)
    assert abs(box.x0 - cols.min()) <= 2 and abs(box.x1 - cols.max() - 1) <= 2
    assert abs(box.y0 - rows.min()) <= 2 and abs(box.y1 - rows.max() - 1) <= 2
    assert set(Box.__dataclass_fields__) == {"x0", "y0", "x1", "y1", "confidence"}


@pytest.mark.parametrize("kind", ["yellow-on-grey", "black-on-paper"])
def test_coloured_annotation_and_dark_print_are_found(kind: str) -> None:
    rng = np.random.default_rng(4)
    canvas = Image.new("L", (320, 200))
    ImageDraw.Draw(canvas).text((10, 80), "PATIENT QUILLERBY", fill=255, font=ImageFont.load_default(size=18))
    text = np.asarray(canvas) > 96
    if kind == "yellow-on-grey":
        grey = rng.integers(60, 255, (200, 320)).astype(np.uint8)  # bright speckle: brighter than yellow's luminance
        image = np.stack([grey] * 3, axis=-1)
        image[text] = (230, 200, 0)
    else:
        image = (235 + rng.integers(0, 20, (200, 320))).astype(np.uint8)
        image[text] = 20
    boxes = find_text(image)
    assert coverage((10, 80, 200, 100), merge_lines(boxes)) >= 0.5


def test_merge_lines_joins_words_of_one_line_only() -> None:
    words = [Box(10, 10, 40, 22, 90.0), Box(46, 11, 80, 22, 80.0), Box(10, 40, 40, 52, 70.0)]
    assert merge_lines(words) == [Box(10, 10, 80, 22, 80.0), Box(10, 40, 40, 52, 70.0)]


@pytest.mark.skipif(not is_available(), reason="tesseract not installed")
def test_tesseract_reads_and_writes_only_in_an_owner_only_folder(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The image handed to tesseract (burned-in text: identifying) and the words it writes lie in
    a folder only the owner can enter, so a run killed mid-OCR leaves nothing readable in /tmp."""
    import pytesseract

    record = tmp_path / "calls.txt"
    shim = tmp_path / "tesseract"
    real = shutil.which("tesseract")
    assert real is not None
    folders = f'stat -c "%a" "$(dirname "$1")" "$(dirname "$2")" >> {record}'  # of the image and the output base
    shim.write_text(f'#!/bin/sh\ncase "$1" in -*) ;; *) {folders};; esac\nexec {real} "$@"\n')
    shim.chmod(0o700)
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(shim))
    image, _ = drawn_image(14, "speckle", 3)
    find_text(image)
    modes = record.read_text().split()
    assert modes, "tesseract was not run"
    assert all(int(mode, 8) & 0o077 == 0 for mode in modes), modes
