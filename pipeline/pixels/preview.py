"""--pixel-preview: one frame before and after cleaning, side by side, as a PNG.

The "before" half shows the original burned-in text: a preview folder is identifying and must
be kept with the originals, never with the release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pipeline.errors import PixelError
from pipeline.pixels import ocr
from pipeline.pixels.clean import to_rgb8


def write_preview(before: NDArray[Any], after: NDArray[Any], path: Path) -> None:
    """Write one frame before and after cleaning, side by side, as a PNG (for --pixel-preview).

    The "before" half shows the original burned-in text: a preview folder is identifying
    and must be kept with the originals, never with the release."""
    left, right = _preview_half(before), _preview_half(after)
    if left.shape[:2] != right.shape[:2]:
        raise PixelError("a preview needs two images of one size")
    if left.ndim != right.ndim:
        left, right = (np.stack([x] * 3, axis=-1) if x.ndim == 2 else x for x in (left, right))
    gap = np.full((left.shape[0], 8, *left.shape[2:]), 255, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([left, gap, right], axis=1)).save(path, format="PNG")


def _preview_half(image: NDArray[Any]) -> NDArray[np.uint8]:
    data = np.asarray(image)
    if data.ndim == 3 and data.shape[-1] == 3:
        return to_rgb8(data)
    if data.ndim != 2:
        raise PixelError("a preview shows one frame: rows x columns, or rows x columns x 3")
    return data if data.dtype == np.uint8 else ocr.to_gray8(data)

