"""Issue 15: OCR cleaning removes text and keeps images. Real tesseract, real files: pydicom's own
test images, the sample archive's burned-in images and synthetic images drawn with Pillow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.encaps import generate_fragmented_frames
from pydicom.uid import JPEG2000Lossless

from pipeline.dicom.file import encode
from pipeline.errors import ProfileError
from pipeline.pixels.clean import PixelTask, clean_pixels
from pipeline.pixels.review import PixelsNeedReview, anatomy_mask, review_reason
from pipeline.profile.pixel_rules import Region
from pipeline.profile.plan import DEFAULT_MAX_CLEANED_FRACTION, PixelMode, compile_plan
from pipeline.runner.discover import discover
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import WorkerConfig, pixel_actions, process_one, scrub_bytes
from pipeline.scrub.keys import Keys
from tests.conftest import REPO, bundled
from tests.pixels.test_clean import SC_IMAGE_STORAGE, decoded, image_dataset, read, text_mask

OCR = compile_plan("basic", pixel_mode=PixelMode.OCR)
ARCHIVE = REPO / "sample_data" / "archive"
KEY = json.loads((REPO / "sample_data" / "archive_key.json").read_text(encoding="utf-8"))


def huge_text_image() -> Any:
    """A secondary capture whose text, drawn 64 pixels high, covers far more than a quarter of it."""
    rng = np.random.default_rng(7)
    pixels = (40 + rng.integers(0, 30, (200, 300))).astype(np.uint8)
    for row, word in ((10, "QUILLERBY"), (100, "TOBIASZ")):
        pixels[text_mask((200, 300), word, (4, row), 64)] = 250
    return image_dataset(pixels, SOPClassUID=SC_IMAGE_STORAGE, Manufacturer="ACME")


# ----------------------------------------------------------------------------- no text: no change
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "693_J2KI.dcm"])
def test_a_ct_or_mr_slice_without_burned_in_text_keeps_bit_identical_pixel_data(name: str, keys: Keys) -> None:
    """693_J2KI is a CT head marked DERIVED without a Manufacturer: a likely kind, so OCR reads
    it; tesseract once returned one 'word' (confidence 41) over the whole head, which blanked it."""
    data = bundled(name).read_bytes()
    result = scrub_bytes(data, OCR, keys)
    assert read(result.data).PixelData == read(data).PixelData
    assert result.pixels is None or not result.pixels.cleaned
    if name == "693_J2KI.dcm":
        assert result.pixels is not None and result.pixels.ocr  # read by OCR, and nothing found


@pytest.mark.parametrize("name", ["ExplVR_BigEnd.dcm", "image_dfl.dcm"])
def test_text_free_ultrasound_and_test_pattern_are_not_blanked(name: str, keys: Keys) -> None:
    data = bundled(name).read_bytes()
    result = scrub_bytes(data, OCR, keys)
    assert result.pixels is not None and result.pixels.ocr and not result.pixels.cleaned
    assert read(result.data).PixelData == read(data).PixelData


def test_a_photo_like_colour_gradient_without_text_is_not_blanked(keys: Keys) -> None:
    yy, xx = np.mgrid[0:240, 0:320]
    rng = np.random.default_rng(11)
    photo = np.stack([xx * 255 // 320, yy * 255 // 240, (xx + yy) * 255 // 560], axis=-1)
    photo = (photo + rng.integers(0, 40, photo.shape)).clip(0, 255).astype(np.uint8)
    ds = image_dataset(photo, SOPClassUID=SC_IMAGE_STORAGE, Manufacturer="ACME")
    result = scrub_bytes(encode(ds), OCR, keys)
    assert result.pixels is not None and result.pixels.ocr and not result.pixels.cleaned
    assert read(result.data).PixelData == ds.PixelData


# ----------------------------------------------------------------------------- review
def test_huge_text_covering_more_than_the_bound_goes_to_review(keys: Keys) -> None:
    with pytest.raises(PixelsNeedReview) as caught:
        scrub_bytes(encode(huge_text_image()), OCR, keys)
    assert caught.value.code == "pixels-need-review"
    assert "QUILLERBY" not in str(caught.value)


def test_a_review_is_quarantined_with_its_preview_and_never_released(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "huge.dcm").write_bytes(encode(huge_text_image()))
    cfg = WorkerConfig(tmp_path / "release", tmp_path / "quarantine", preview_dir=tmp_path / "previews")
    [src] = list(discover([inputs]))
    outcome = process_one(src, OCR, Keys(key=bytes(range(32))), cfg)
    assert outcome.disposition is Disposition.QUARANTINED and outcome.reason == "pixels-need-review"
    assert not (tmp_path / "release").exists() or not any((tmp_path / "release").rglob("*"))
    assert len(list((tmp_path / "previews").glob("*.png"))) == 1


def test_the_bound_is_an_option_checked_before_any_file() -> None:
    assert OCR.max_cleaned_fraction == DEFAULT_MAX_CLEANED_FRACTION == 0.25
    assert compile_plan("basic", pixel_mode=PixelMode.OCR, max_cleaned_fraction=0.5).max_cleaned_fraction == 0.5
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ProfileError):
            compile_plan("basic", pixel_mode=PixelMode.OCR, max_cleaned_fraction=bad)


def test_blanking_over_the_anatomy_needs_review_and_a_banner_does_not() -> None:
    shape = (100, 200)
    anatomy = anatomy_mask(shape, ())
    banner = np.zeros((1, *shape), dtype=bool)
    banner[0, :20, :] = True  # 20 % of the pixels, in the top band
    assert review_reason(banner, 0.2, anatomy, 0.25) is None
    centre = np.zeros((1, *shape), dtype=bool)
    centre[0, 30:70, 60:140] = True  # 16 % of the pixels, but most of the central half
    assert review_reason(centre, 0.16, anatomy, 0.25) is not None
    regions = anatomy_mask(shape, (Region(150, 50, 200, 100),))  # an ultrasound region, bottom right
    assert review_reason(centre, 0.16, regions, 0.25) is None
    assert review_reason(banner, 0.3, anatomy, 0.25) is not None  # changing 30 % of the pixels


# ----------------------------------------------------------------------------- text still goes
def burned_in() -> list[tuple[str, dict[str, Any]]]:
    return [(rel, box) for rel, entry in sorted(KEY["files"].items())
            for box in entry.get("burned_in", []) if box["plane"] == "pixels"]


def test_every_burned_in_box_of_the_archive_is_still_blanked(keys: Keys) -> None:
    boxes = burned_in()
    assert len(boxes) == 9
    for rel, box in boxes:
        result = scrub_bytes((ARCHIVE / rel).read_bytes(), OCR, keys)
        after = decoded(read(result.data))[box["frame"]]
        x0, y0, x1, y1 = box["box"]
        region = after[y0:y1, x0:x1]
        assert region.min() == region.max(), rel  # one fill value: the text is gone
        assert result.pixels is not None and dict(pixel_actions(result.pixels))["pixels-ocr"] == 1


# ----------------------------------------------------------------------------- photometric
def _uses_mct(ds: Any) -> bool:
    """The multiple component transformation flag of the first frame's COD marker (ISO 15444-1 A.6.1)."""
    frames = int(ds.get("NumberOfFrames") or 1)
    stream = b"".join(next(generate_fragmented_frames(ds.PixelData, number_of_frames=frames)))
    cod = stream.find(b"\xff\x52")
    return stream[cod + 8] == 1


CORNER = PixelTask(regions=(((Region(0, 0, 12, 9),), ()),), labels=("corner",))


@pytest.mark.parametrize("name", ["GDCMJ2K_TextGBR.dcm", "examples_jpeg2k.dcm"])
def test_a_jpeg_2000_lossless_ybr_rct_input_stays_ybr_rct_with_the_transform(name: str) -> None:
    ds = read(bundled(name).read_bytes())
    assert ds.PhotometricInterpretation == "YBR_RCT" and _uses_mct(ds)
    before = decoded(read(bundled(name).read_bytes()), as_rgb=True)
    clean_pixels(ds, CORNER)
    out = read(encode(ds))
    assert out.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert out.PhotometricInterpretation == "YBR_RCT" and _uses_mct(out)
    assert np.array_equal(decoded(out, as_rgb=True)[:, 20:], before[:, 20:])


def test_a_jpeg_2000_lossless_rgb_input_stays_rgb_without_the_transform() -> None:
    rng = np.random.default_rng(5)
    ds = image_dataset(rng.integers(0, 255, (64, 80, 3)).astype(np.uint8), JPEG2000Lossless)
    assert ds.PhotometricInterpretation == "RGB" and not _uses_mct(ds)
    clean_pixels(ds, CORNER)
    out = read(encode(ds))
    assert out.PhotometricInterpretation == "RGB" and not _uses_mct(out)

