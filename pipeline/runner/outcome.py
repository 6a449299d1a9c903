"""What became of one input: its `Disposition` and the `Outcome` record the run keeps of it.

Outcomes carry no values and no source paths, except the (original, new) identifier pairs
of the confidential mapping, and only when the run asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Disposition(StrEnum):
    """What became of one input file."""

    WRITTEN = "written"
    QUARANTINED = "quarantined"
    SKIPPED = "skipped-not-dicom"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one input: named by content hash and run index, never by path."""

    source_id: str
    index: int
    disposition: Disposition
    output: str | None = None  # release-relative path of the published file
    reason: str | None = None  # a reason code, never a value
    actions: tuple[tuple[str, int], ...] = ()  # scrub action counts
    uid_pairs: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # mapping runs only
    patient_pair: tuple[str, str] | None = field(default=None, repr=False)  # mapping runs only
    # (PatientID, StudyInstanceUID, SOPClassUID) as written into the release, for the audit
    # message (PS3.15 A.5.3.4): values of the published file, never of its input.
    released: tuple[str, str, str] | None = None

