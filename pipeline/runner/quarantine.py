"""The quarantine folder: it lies outside the release and holds originals, so it is
owner-only. A quarantined input is kept as ``<source id>.dcm``: a copy, or a link to it."""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path

from pipeline.errors import WriteError
from pipeline.files import PARTIAL_SUFFIX, promote, stage


class QuarantineMode(StrEnum):
    """What the quarantine folder keeps of a quarantined input."""

    COPY = "copy"  # a copy of the original, <source id>.dcm
    REFERENCE = "reference"  # a symbolic link to the original, <source id>.dcm


def quarantine(source_id: str, data: bytes | None, source: Path, folder: Path, mode: QuarantineMode) -> None:
    """Keep the original of a quarantined input as ``<source id>.dcm`` in `folder`: an
    owner-only copy of `data`, or a symbolic link to `source`. The name is content-addressed,
    so a file already there is the same original and is left as it is."""
    target = folder / f"{source_id}.dcm"
    if target.is_symlink() or target.exists():
        if mode is QuarantineMode.COPY and target.is_symlink():
            target.unlink()
        else:
            return
    try:
        if mode is QuarantineMode.REFERENCE or data is None:
            staged = folder / f".{target.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}"
            os.symlink(source.resolve(), staged)
            os.replace(staged, target)
        else:
            promote(stage(data, target, mode=0o600), target)
    except OSError as exc:
        raise WriteError(f"cannot quarantine an original ({type(exc).__name__})") from None

