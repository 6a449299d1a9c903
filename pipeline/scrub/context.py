"""One file's scrub in progress (`ScrubContext`): the plan and keys, the patient the file belongs
to and its pseudonym, the identifiers C removes, the object's IOD, the patient's date offset (made
when first needed), and the (tag, action) of every element, counted into the `ScrubLog` at the
end (pipeline/scrub/header.py). What is noted names attributes, never values.
"""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from dataclasses import dataclass, field

from pipeline.profile.iod import IodTable
from pipeline.profile.plan import Action, Plan
from pipeline.scrub.clean import Identifiers
from pipeline.scrub.dates import Offset, patient_offset
from pipeline.scrub.keys import Keys


@dataclass
class ScrubContext:
    """One file's scrub in progress: what the actions read, and what each element got."""

    plan: Plan
    keys: Keys
    patient: str
    pseudonym: str
    identifiers: Identifiers | None = None
    iod: IodTable | None = None  # the object's IOD: combined codes and requirements by Type
    offset: Offset | None = None
    times: dict[int, tuple[str, ...]] = field(default_factory=dict)  # DA tag -> its TM's original values
    noted: list[tuple[int, Action]] = field(default_factory=list)  # (tag, action) per element, counted at the end
    touched: set[int] = field(default_factory=set)  # besides the noted ones (the file meta's)
    unparsable_dates: int = 0

    def note(self, tag: int, action: Action) -> None:
        self.noted.append((tag, action))

    def counts(self) -> Counter[Action]:
        return Counter(map(_second, self.noted))  # counted in C: no Python step per element

    def touched_tags(self) -> set[int]:
        """The file meta's, and every noted tag whose action is not K."""
        changed = map(Action.KEEP.__ne__, map(_second, self.noted))  # Action members are unique by value
        return self.touched | set(itertools.compress(map(_first, self.noted), changed))

    def shift(self) -> Offset:
        if self.offset is None:
            self.offset = patient_offset(self.patient, self.keys)
        return self.offset


_first, _second = operator.itemgetter(0), operator.itemgetter(1)
