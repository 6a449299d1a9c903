"""Findings: what `verify` and `scan` report about one file. Never a value.

A finding names a rule (a machine-readable reason), where it was seen (an attribute path
such as ``RequestAttributesSequence[0].RequestedProcedureID``, ``bytes@1234`` or ``path``)
and how serious it is. The value that triggered it is never part of a finding, so findings
can go to logs, reports and terminals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How serious a finding is, most serious first."""

    HIGH = "high"  # identifying data present, or likely present
    MEDIUM = "medium"  # the output breaks the plan in a way that may expose data
    LOW = "low"  # bookkeeping is wrong (flags, method codes), nothing identifying seen
    INFO = "info"  # worth a look; not a defect by itself

    @property
    def rank(self) -> int:
        """0 for HIGH up to 3 for INFO: sorts the most serious first."""
        return _RANKS[self]


_RANKS = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2, Severity.INFO: 3}


class VerifyRule(StrEnum):
    """Why verify reports a finding."""

    ORIGINAL_VALUE_IN_BYTES = "original-value-in-bytes"
    ORIGINAL_VALUE_IN_ATTRIBUTE = "original-value-in-attribute"  # found in a parsed value: names the attribute
    VALUE_IN_PATH = "value-in-path"
    ATTRIBUTE_NOT_ALLOWED = "attribute-not-allowed"
    PRIVATE_NOT_ALLOWED = "private-not-allowed"
    VALUE_NOT_BLANK = "value-not-blank"
    VALUE_NOT_REPLACED = "value-not-replaced"
    VALUE_NOT_DUMMY = "value-not-dummy"
    LITERAL_MISMATCH = "literal-mismatch"
    UID_NOT_REMAPPED = "uid-not-remapped"
    DATE_NOT_SHIFTED = "date-not-shifted"
    TIME_NOT_MODIFIED = "time-not-modified"  # Modified Dates: an original time of day at its own place
    DATE_INVALID = "date-invalid"
    TRAILING_PADDING = "trailing-padding-present"
    IDENTITY_REMOVED_MISSING = "identity-removed-missing"
    METHOD_CODES_MISMATCH = "method-codes-mismatch"
    TEMPORAL_FLAG_MISMATCH = "temporal-flag-mismatch"
    META_NOT_ALLOWED = "meta-not-allowed"
    META_UID_MISMATCH = "meta-uid-mismatch"
    PREAMBLE_NOT_ZERO = "preamble-not-zero"
    OUTPUT_UNREADABLE = "output-unreadable"
    REQUIRED_ATTRIBUTE_MISSING = "required-attribute-missing"  # conformance relative to the original
    REQUIRED_VALUE_EMPTIED = "required-value-emptied"
    SEQUENCE_EMPTIED = "sequence-emptied"
    VALUE_TOO_LONG = "value-too-long"
    ORIGINAL_UNREADABLE = "original-unreadable"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem seen in one file.

    Attributes
    ----------
    rule
        Machine-readable reason, e.g. ``original-value-in-bytes`` (a member of a rule enum).
    path
        Where: an attribute path, ``bytes@<offset>``, ``path`` or ``file``.
    severity
        How serious it is.
    file
        The file, relative to the release root; empty when the caller checks one file.
    detail
        What kind of thing was seen (``person-name``, ``date``); never the value itself.
    """

    rule: str
    path: str
    severity: Severity
    file: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        """The finding as JSON-ready strings."""
        return {"file": self.file, "path": self.path, "rule": str(self.rule),
                "severity": self.severity.value, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Verdict:
    """verify's answer for one file, with proof that the checks ran (the runner publishes only
    on a `Verdict` that is `verified`; an empty list from anything else publishes nothing).

    Attributes
    ----------
    findings
        What was seen; empty when the file passes.
    elements_checked
        Elements of the output (meta and dataset, at every depth) walked and checked against
        the profile; 0 means nothing was checked (an unreadable output is also a finding).
    original_searched
        Whether the original's identifying values were collected and searched for in the
        output's bytes, values and path (False when no original was given or it was unreadable).
    """

    findings: tuple[Finding, ...]
    elements_checked: int
    original_searched: bool

    @property
    def verified(self) -> bool:
        """True only when elements were checked and nothing was found."""
        return self.elements_checked > 0 and not self.findings


def worst(findings: Iterable[Finding]) -> Severity | None:
    """The most serious severity among `findings`, or None when there are none."""
    ranked = sorted((f.severity for f in findings), key=lambda s: s.rank)
    return ranked[0] if ranked else None


__all__ = ["Finding", "Severity", "Verdict", "worst"]
