"""Text in pixels, for verify and scan: does an image still show readable text?

Decodes every frame of a DICOM file and asks tesseract (pipeline/pixels/ocr.py) for words. A word
read with confidence at least MIN_CONFIDENCE makes a `text-in-pixels` finding naming the file
and frame, never the text.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom

from pipeline.errors import is_codec_failure
from pipeline.pixels.ocr import find_text_frames
from pipeline.verify.findings import Finding, Severity

RULE = "text-in-pixels"
MIN_CONFIDENCE = 60.0
MIN_WORD_PIXELS = 20  # a "word" smaller than this (speckle read as a letter) does not count


def text_findings(path: Path | bytes, relative: str) -> list[Finding]:
    """`text-in-pixels` findings for the frames of `path` (a file, or its bytes) that show readable text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(path) if isinstance(path, bytes) else path)
            if "PixelData" not in ds:
                return []
            array = np.asarray(ds.pixel_array)
    except BaseException as exc:
        if not is_codec_failure(exc):
            raise
        return []
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if frames == 1:
        array = array[np.newaxis]
    if array.ndim != (4 if samples > 1 else 3):
        return []
    findings: list[Finding] = []
    for index, boxes in enumerate(find_text_frames(list(array), min_confidence=MIN_CONFIDENCE)):
        words = [b for b in boxes if (b.x1 - b.x0) * (b.y1 - b.y0) >= MIN_WORD_PIXELS]
        if words:
            findings.append(Finding(RULE, f"pixels[frame {index}]", Severity.HIGH, file=relative,
                                    detail=f"{len(words)} word(s)"))
    return findings
