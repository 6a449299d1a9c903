"""verify compares an output's pixels with its original's (issue 15, item 5): real burned-in
images of the sample archive, cleaned by the real scrubber with OCR, then faults planted in
the cleaned output: a rectangle drawn in the anatomy, a stroke in the fill colour, a box left
half uncleaned, a share beyond the bound. A correct output passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from pipeline.profile.plan import PixelMode, compile_plan
from pipeline.runner.process import pixel_bound, scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_file
from pipeline.verify.pixels import CEILING, PixelBound, PixelRule, compare, opening, pixel_findings
from tests.conftest import REPO, bundled, encode, read

ARCHIVE = REPO / "sample_data" / "archive"
KEY = json.loads((REPO / "sample_data" / "archive_key.json").read_text(encoding="utf-8"))
OCR = compile_plan("basic", pixel_mode=PixelMode.OCR)
BOUND = pixel_bound(OCR)


def burned_in(kind: str) -> Path:
    """The first archive file of `kind` (its name ends so) with text drawn in its pixels."""
    return next(ARCHIVE / rel for rel, entry in KEY["files"].items()
                if rel.endswith(kind) and any(b["plane"] == "pixels" for b in entry.get("burned_in", [])))


@pytest.fixture(scope="module", params=["_US1.dcm", "_SC1.dcm", "_US2.dcm"])
def cleaned(request: pytest.FixtureRequest) -> tuple[bytes, bytes]:
    """(original, cleaned output) bytes: a JPEG baseline ultrasound (lossy, YBR), a JPEG 2000
    lossless or deflated secondary capture, a multi-frame ultrasound."""
    original = burned_in(request.param).read_bytes()
    keys = Keys(key=b"k" * 32)
    return original, scrub_bytes(original, OCR, keys).data


def frames_of(ds: Dataset) -> NDArray[Any]:
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.SamplesPerPixel)
    return np.array(ds.pixel_array).reshape((frames, int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1
                                                                                       else ()))


def with_frames(data: bytes, frames: NDArray[Any]) -> bytes:
    """The output with its pixels replaced by `frames`, stored uncompressed (colour as RGB)."""
    ds = read(data)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if int(ds.SamplesPerPixel) == 3:
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    ds.PixelData = frames.astype(frames.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    return encode(ds)


def rules(original: bytes, output: bytes, bound: PixelBound = BOUND) -> set[str]:
    return {str(f.rule) for f in pixel_findings(read(output), read(original), bound)}


def test_a_correctly_cleaned_output_passes_the_whole_verify(cleaned: tuple[bytes, bytes]) -> None:
    original, output = cleaned
    after, before = frames_of(read(output)), frames_of(read(original))
    change = compare(after, before)[0]
    print(f"\ncleaned share {change.share:.2%} in frames {change.frames}")
    assert 0 < change.share < 0.25 and change.outside == 0
    verdict = verify_file(output, ("clean-pixel-data",), original, None, BOUND)
    assert verdict.verified, verdict.findings


def test_a_rectangle_drawn_in_the_anatomy_is_found(cleaned: tuple[bytes, bytes]) -> None:
    original, output = cleaned
    frames = frames_of(read(output))
    rows, cols = frames.shape[1:3]
    frames[:, rows // 2:rows // 2 + 12, cols // 2:cols // 2 + 20] = frames.max()  # not the fill value
    found = pixel_findings(read(with_frames(output, frames)), read(original), BOUND)
    assert PixelRule.OUTSIDE_CLEANED in {f.rule for f in found}
    assert [f.detail for f in found if f.rule == PixelRule.OUTSIDE_CLEANED] != ["0 pixel(s)"]


def test_a_stroke_in_the_fill_colour_is_not_a_cleaned_rectangle(cleaned: tuple[bytes, bytes]) -> None:
    original, output = cleaned
    after, before = frames_of(read(output)), frames_of(read(original))
    _, _, fill = compare(after, before)
    rows, cols = after.shape[1:3]
    column = cols // 2
    stroke = np.zeros(after.shape[:3], dtype=bool)
    stroke[:, rows // 3:2 * rows // 3, column] = True  # a one-pixel line through the middle
    stroke &= (before != fill).any(axis=-1) if before.ndim == 4 else before != fill
    assert stroke.any()
    after[stroke] = fill
    assert PixelRule.OUTSIDE_CLEANED in rules(original, with_frames(output, after))


def test_a_box_left_mostly_uncleaned_leaves_text_that_re_ocr_reads(cleaned: tuple[bytes, bytes]) -> None:
    """The blanked places put back to the original right of their first 10 columns: what a
    box too small leaves beside it. Without re-reading, the rectangles look fine."""
    original, output = cleaned
    after, before = frames_of(read(output)), frames_of(read(original))
    _, changed, _ = compare(after, before)
    restore = np.zeros_like(changed)
    for index in range(changed.shape[0]):
        columns = np.flatnonzero(changed[index].any(axis=0))
        if columns.size:
            restore[index, :, int(columns[0]) + 10:] = True
    planted = with_frames(output, np.where(restore[..., np.newaxis] if after.ndim == 4 else restore, before, after))
    assert PixelRule.TEXT_REMAINS in rules(original, planted)
    assert PixelRule.TEXT_REMAINS not in rules(original, planted, PixelBound(BOUND.max_cleaned_fraction))


def test_a_share_above_the_bound_is_a_finding(cleaned: tuple[bytes, bytes]) -> None:
    original, output = cleaned
    assert PixelRule.SHARE_ABOVE_BOUND in rules(original, output, PixelBound(0.001))
    after, before = frames_of(read(output)), frames_of(read(original))
    _, _, fill = compare(after, before)
    after[:] = fill  # the whole image blanked
    share = compare(after, before)[0].share
    print(f"\nthe whole image blanked changes {share:.1%} of it")
    found = rules(original, with_frames(output, after), PixelBound(None))
    assert (PixelRule.SHARE_ABOVE_BOUND in found) is (share >= CEILING)  # the ceiling holds without a bound
    assert PixelRule.SHARE_ABOVE_BOUND in rules(original, with_frames(output, after), PixelBound(share - 0.01))


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_jp2klossless.dcm", "JPGExtended.dcm"])
def test_an_untouched_ct_mr_or_lossy_image_has_no_pixel_finding(name: str) -> None:
    original = bundled(name).read_bytes()
    output = scrub_bytes(original, OCR, Keys(key=b"k" * 32)).data
    assert pixel_findings(read(output), read(original), BOUND) == []
    frames = frames_of(read(output))
    frames[0, 0, 0] += 1  # one pixel off: found
    assert PixelRule.OUTSIDE_CLEANED in rules(original, with_frames(output, frames))


def test_opening_keeps_unions_of_rectangles_and_drops_strokes() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:15, 5:50] = True  # two text lines of different widths, touching: an L shape
    mask[15:25, 5:20] = True
    mask[30, 10:50] = True  # a stroke one pixel high
    mask[33:35, 10:12] = True  # a 2 x 2 dot
    kept = opening(mask, 3)
    assert kept[5:25, 5:20].all() and kept[5:15, 5:50].all()
    assert not kept[30].any() and not kept[33:35].any()
    assert not (kept & ~mask).any()
