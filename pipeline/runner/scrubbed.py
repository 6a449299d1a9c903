"""One DICOM file as bytes, de-identified: `scrub_bytes(data, plan, keys) -> Scrubbed`.

`scrub_bytes` is the heart of the pipeline (DESIGN.md): read, scrub, clean pixels and encode, as a
pure function of the file's bytes, the plan and the key. It raises on a file it cannot
de-identify; the runner (pipeline/runner/process.py) quarantines such a file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from pydicom.dataset import Dataset

from pipeline.dicom.file import encode, read_dataset
from pipeline.pixels.clean import PixelLog, assess, clean_pixels
from pipeline.profile.plan import Plan
from pipeline.runner.mapping import OriginalIds, original_ids
from pipeline.scrub.header import ScrubLog, scrub
from pipeline.scrub.keys import Keys
from pipeline.verify.before import as_read


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """The scrubbed dataset, its encoded bytes and the record of what was done."""

    dataset: Dataset
    data: bytes
    log: ScrubLog
    pixels: PixelLog | None = None  # None: the pixel data passed through untouched
    original: OriginalIds | None = None  # with `ids`: the input's UIDs and PatientID, for the mapping
    before: Dataset | None = None  # with `keep_original`: verify's copy of the input as read (`as_read`)


def scrub_bytes(data: bytes, plan: Plan, keys: Keys, *, preview: bool = False, ids: bool = False,
                keep_original: bool = False) -> Scrubbed:
    """De-identify one DICOM file given as bytes; raise a PipelineError (or anything else,
    which callers treat the same way: quarantine) when it cannot be done.

    The pixel step is decided on the original header (pixels.assess: rules read values the
    scrub removes) and applied after the header scrub. `preview` keeps one frame before and
    after pixel cleaning in `Scrubbed.pixels.preview` (for pixels.write_preview). `ids` keeps the
    input's UIDs and PatientID, read before the scrub, in `Scrubbed.original` (for the mapping).
    `keep_original` keeps verify's copy of the input as read in `Scrubbed.before` (for verify)."""
    ds = read_dataset(data)
    before = as_read(ds) if keep_original else None
    original = original_ids(ds) if ids else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warnings may quote values
        task = assess(ds, plan)
        log = scrub(ds, plan, keys)
        pixels = None if task is None else clean_pixels(ds, task, preview=preview)
    return Scrubbed(dataset=ds, data=encode(ds), log=log, pixels=pixels, original=original, before=before)
