"""Review instead of destruction (issue 15): when OCR cleaning would blank too much of an image.

PS3.15 E.3.1 (Clean Pixel Data) asks that burned-in identifying text be removed, not that the
image be destroyed: OCR that mistakes anatomy for words would blank it. So, in pixel mode ocr,
after the text lines are found and before anything is published, an image is sent to
quarantine with reason ``pixels-need-review`` (`PixelsNeedReview`) when the pixels OCR would
blank (beyond the pixel rules' regions, which are configured, not guessed)

* would change more than ``max_cleaned_fraction`` of all its pixels, all frames together
  (pixels already at the fill value do not count; the plan's `max_cleaned_fraction`,
  ``--max-cleaned-fraction``, default 0.25); or
* cover more than `MAX_ANATOMY_SHARE` of its anatomy region in any one frame;

or when OCR read a word that looks like text in every way but its size (taller than a quarter
of the rows, or more than a tenth of the image: `pipeline.pixels.ocr.classify`), a title or
anatomy read as a word, neither dropped unseen nor blanked. The anatomy region is, for
ultrasound with a Sequence of Ultrasound Regions (PS3.3 C.8.5.5), the union of its region
boxes (Region Location Min/Max, Max inclusive); for every other image, the central half of
the rows and of the columns: consoles and scanners write text in banners along the edges and
in the corners, the image's subject sits in the middle.

The before/after preview travels with the error, so ``--pixel-preview`` can show a reviewer
what cleaning would have done; the message names shares only, never what the text says.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from pipeline.errors import PixelError
from pipeline.profile.pixel_rules import Region

# The archive's 9 burned-in images: OCR's boxes cover 0-22.9 % of the central half (US2: a
# 33-row text block in 96 rows) and 2.8-22.7 % of the pixels, of which 0.7-13.5 % change. A
# third leaves room for that and still stops a box over the anatomy.
MAX_ANATOMY_SHARE = 1 / 3

Preview = tuple[NDArray[np.uint8], NDArray[np.uint8]]


class PixelsNeedReview(PixelError):
    """OCR cleaning would blank too much of the image (see the module's notes): quarantined
    for a person to look at, never published. `preview` is (before, after) of the frame that
    changes most, when the run asked for previews."""

    code = "pixels-need-review"

    def __init__(self, message: str, preview: Preview | None = None) -> None:
        super().__init__(message)
        self.preview = preview


def anatomy_regions(ds: Dataset) -> tuple[Region, ...]:
    """The region boxes of the original header's Sequence of Ultrasound Regions, if any."""
    regions: list[Region] = []
    for item in ds.get("SequenceOfUltrasoundRegions") or ():
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1) + 1, int(item.RegionLocationMaxY1) + 1
        except (AttributeError, TypeError, ValueError):
            continue  # an item without a usable box: the other items, or the central half
        if x1 > x0 >= 0 and y1 > y0 >= 0:
            regions.append(Region(x0, y0, x1, y1))
    return tuple(regions)


def anatomy_mask(shape: tuple[int, int], regions: tuple[Region, ...]) -> NDArray[np.bool_]:
    """The anatomy region of a frame of `shape`: the union of `regions`, else the central half."""
    rows, cols = shape
    mask = np.zeros(shape, dtype=bool)
    for r in regions:
        mask[r.y0:r.y1, r.x0:r.x1] = True
    if not mask.any():
        mask[rows // 4:rows - rows // 4, cols // 4:cols - cols // 4] = True
    return mask


def review_reason(blanked: NDArray[np.bool_], fraction: float, anatomy: NDArray[np.bool_], max_fraction: float,
                  oversized: int = 0) -> str | None:
    """Why an image whose OCR would blank `blanked` (frames x rows x columns), changing
    `fraction` of its pixels, and found `oversized` words too large to blank unseen, needs
    review, or None when it does not."""
    if oversized:
        return f"OCR read {oversized} word(s) too large to blank without review"
    if not blanked.any():
        return None
    if fraction > max_fraction:
        return f"OCR would blank {fraction:.1%} of the pixels (at most {max_fraction:.1%})"
    area = int(anatomy.sum())
    if area:
        share = max(float((frame & anatomy).sum()) / area for frame in blanked)
        if share > MAX_ANATOMY_SHARE:
            return f"OCR would blank {share:.1%} of the anatomy region in a frame (at most {MAX_ANATOMY_SHARE:.1%})"
    return None
