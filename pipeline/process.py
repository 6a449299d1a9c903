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
from pipeline.plan import Plan
from pipeline.scrub import ScrubLog, scrub


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """The scrubbed dataset, its encoded bytes and the record of what was done."""

    dataset: Dataset
    data: bytes
    log: ScrubLog


def source_id(data: bytes) -> str:
    """The identity of an input in logs, manifests and reports: its content hash."""
    return hashlib.sha256(data).hexdigest()


def scrub_bytes(data: bytes, plan: Plan, keys: Keys) -> Scrubbed:
    """De-identify one DICOM file given as bytes; raise a PipelineError (or anything else,
    which callers treat the same way: quarantine) when it cannot be done."""
    ds = read_dataset(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warnings may quote values
        log = scrub(ds, plan, keys)
    return Scrubbed(dataset=ds, data=encode(ds), log=log)
