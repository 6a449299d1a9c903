"""One file, start to finish, as pure functions over bytes: read, scrub, encode.

`scrub_bytes` is the heart of the pipeline (DESIGN.md): it depends on the file's bytes, the
plan and the key, and nothing else. Staging, verifying and promoting the result is the
caller's (orchestrate.py / write.py).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

from pydicom.dataset import Dataset

from pipeline.dicomfile import encode, read_dataset
from pipeline.keys import Keys
from pipeline.pixels import PixelLog, assess, clean_pixels
from pipeline.plan import Plan
from pipeline.scrub import ScrubLog, scrub


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """The scrubbed dataset, its encoded bytes and the record of what was done."""

    dataset: Dataset
    data: bytes
    log: ScrubLog
    pixels: PixelLog | None = None  # None: the pixel data passed through untouched


def source_id(data: bytes) -> str:
    """The identity of an input in logs, manifests and reports: its content hash."""
    return hashlib.sha256(data).hexdigest()


def scrub_bytes(data: bytes, plan: Plan, keys: Keys, *, preview: bool = False) -> Scrubbed:
    """De-identify one DICOM file given as bytes; raise a PipelineError (or anything else,
    which callers treat the same way: quarantine) when it cannot be done.

    The pixel step is decided on the original header (pixels.assess: rules read values the
    scrub removes) and applied after the header scrub. `preview` keeps one frame before and
    after pixel cleaning in `Scrubbed.pixels.preview` (for pixels.write_preview)."""
    ds = read_dataset(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warnings may quote values
        task = assess(ds, plan)
        log = scrub(ds, plan, keys)
        pixels = None if task is None else clean_pixels(ds, task, preview=preview)
    return Scrubbed(dataset=ds, data=encode(ds), log=log, pixels=pixels)
