"""How a run counts its inputs, so the figures add up.

Every input the run sees (read now, or unchanged since an earlier run) is counted once, in one
of four classes: published, quarantined, skipped (not DICOM), or a duplicate of an input seen
before it in this run: the same content, or a different file published under the same release
name (the same SOP Instance UID, scrubbed to the same bytes). So, always,

    inputs = published + quarantined + skipped + duplicates

and, for a release made from one archive, ``release files = published``. An input with the
same SOP Instance UID as another but different content is quarantined (``duplicate-sop-
instance``) and counted there too, in `Summary.same_sop_instance`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.files import DuplicateOutputError
from pipeline.runner.outcome import Disposition

_CLASS = {Disposition.WRITTEN: "published", Disposition.QUARANTINED: "quarantined",
          Disposition.SKIPPED: "skipped"}


@dataclass(frozen=True, slots=True)
class Summary:
    """The run's figures; `release_files` counts the files in the release tree at its end."""

    inputs: int
    published: int
    quarantined: int
    skipped: int
    duplicates: int
    same_sop_instance: int  # quarantined: same SOP Instance UID as another input, other content
    release_files: int

    def adds_up(self) -> bool:
        return self.inputs == self.published + self.quarantined + self.skipped + self.duplicates


def seen_key(status: Disposition, source_id: str, output: str | None) -> str:
    """What makes two inputs one: the release file a published input became, else its content."""
    return f"output:{output}" if status is Disposition.WRITTEN and output else f"content:{source_id}"


class Tally:
    """Counts of one run: by disposition (this run's outcomes, and inputs unchanged since an
    earlier run) and by class (see the module's docstring)."""

    def __init__(self) -> None:
        self.processed: Counter[str] = Counter()
        self.unchanged: Counter[str] = Counter()
        self.classes: Counter[str] = Counter()

    def count(self, status: Disposition, reason: str | None, first: bool, unchanged: bool) -> None:
        """One input: its disposition, reason code, whether it is the first of its kind in
        this run (`seen_key`), and whether an earlier run did it."""
        (self.unchanged if unchanged else self.processed)[status.value] += 1
        self.classes[_CLASS[status] if first else "duplicates"] += 1
        if first and status is Disposition.QUARANTINED and reason == DuplicateOutputError.code:
            self.classes["same_sop_instance"] += 1

    @property
    def any_quarantined(self) -> bool:
        return bool(self.processed[Disposition.QUARANTINED] or self.unchanged[Disposition.QUARANTINED])

    def summary(self, release: Path) -> Summary:
        return Summary(
            inputs=sum(self.processed.values()) + sum(self.unchanged.values()),
            published=self.classes["published"],
            quarantined=self.classes["quarantined"],
            skipped=self.classes["skipped"],
            duplicates=self.classes["duplicates"],
            same_sop_instance=self.classes["same_sop_instance"],
            release_files=count_files(release),
        )


def count_files(folder: Path) -> int:
    """Files (and links) in the tree under `folder`; 0 when it does not exist."""
    return sum(len(names) for _, _, names in os.walk(folder))
