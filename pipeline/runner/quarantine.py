"""The quarantine folder: it lies outside the release and holds originals, so it is
owner-only. A quarantined input is kept as ``<source id>.dcm``: a copy, or a link to it.

The originals may go to an object store instead (``--quarantine s3://bucket/prefix``, issue 17):
each is put as ``<prefix>/<source id>.dcm`` in one PUT (`pipeline.runner.destination.put_object`),
and the bucket then holds PHI: its access is the operator's to restrict (the command line warns).
The ledger stays in the local quarantine folder. An input whose bytes were never read is kept
there as a link, as before."""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path, PurePosixPath

from pipeline.errors import WriteError
from pipeline.files import PARTIAL_SUFFIX, promote, stage
from pipeline.runner.destination import Destination, DestinationKind, put_object, remove


class QuarantineMode(StrEnum):
    """What the quarantine folder keeps of a quarantined input."""

    COPY = "copy"  # a copy of the original, <source id>.dcm
    REFERENCE = "reference"  # a symbolic link to the original, <source id>.dcm


def quarantine(source_id: str, data: bytes | None, source: Path, folder: Path, mode: QuarantineMode,
               store: str | None = None) -> None:
    """Keep the original of a quarantined input as ``<source id>.dcm`` in `folder`: an
    owner-only copy of `data`, or a symbolic link to `source`; with `store` (an fsspec URL) and
    the bytes at hand, an object there instead. The name is content-addressed, so a file already
    there is the same original and is left as it is."""
    if store is not None and data is not None:
        put_object(Destination(DestinationKind.FSSPEC, store), PurePosixPath(f"{source_id}.dcm"), data)
        return
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



def release_kept(source_id: str, folder: Path, store: str | None = None) -> bool:
    """Remove the kept original of an input now published (from `folder` or the `store`);
    True if there was one."""
    kept = folder / f"{source_id}.dcm"
    if kept.is_symlink() or kept.exists():
        kept.unlink()
        return True
    if store is not None:
        return remove(Destination(DestinationKind.FSSPEC, store), [f"{source_id}.dcm"]) > 0
    return False
