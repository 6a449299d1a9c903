"""The search for the original's identifiers (pipeline/verify/original.py) in an output's
bytes, parsed values and path. Findings name places and kinds, never values.
"""

from __future__ import annotations

import functools
import re

from pipeline.verify.findings import Finding, Severity, VerifyRule
from pipeline.verify.original import WORD, Kind, Original, is_loose
from pipeline.verify.walk import STRING_VRS, Visit

_NAME_TEXT_VRS = frozenset({"PN", "LO", "LT", "ST", "UT", "UC"})  # text that can name a person


def _branch(text: str, kind: Kind) -> str:
    body = re.escape(text)
    if kind is Kind.UID:
        return rf"(?<![0-9A-Za-z.]){body}(?![0-9]|\.[0-9])"
    before = r"(?<![0-9A-Za-z])" if text[0].isalnum() else ""
    after = r"(?![0-9A-Za-z])" if text[-1].isalnum() else ""
    return before + body + after


@functools.lru_cache(maxsize=256)
def _pattern(identifiers: tuple[tuple[str, Kind], ...]) -> re.Pattern[str] | None:
    if not identifiers:
        return None
    ordered = sorted(identifiers, key=lambda pair: -len(pair[0]))
    return re.compile("|".join(_branch(t, k) for t, k in ordered), re.IGNORECASE)


def _branch_bytes(text: str, kind: Kind, encoding: str) -> bytes | None:
    try:
        body = re.escape(text.encode(encoding))
    except (UnicodeError, LookupError):
        return None
    if kind is Kind.UID:
        return rb"(?<![0-9.])" + body + rb"(?![0-9]|\.[0-9])"
    if is_loose(text, kind):
        return body
    edge = rb"0-9" if text[0].isdigit() and text[-1].isdigit() else rb"0-9A-Za-z"
    before = rb"(?<![" + edge + rb"])" if text[0].isalnum() else b""
    after = rb"(?![" + edge + rb"])" if text[-1].isalnum() else b""
    return before + body + after


@functools.lru_cache(maxsize=256)
def _bytes_pattern(identifiers: tuple[tuple[str, Kind], ...], encodings: tuple[str, ...]) -> re.Pattern[bytes] | None:
    """One alternation over every identifier in every encoding, longest first."""
    branches: dict[bytes, int] = {}
    for text, kind in identifiers:
        for encoding in encodings:
            branch = _branch_bytes(text, kind, encoding)
            if branch is not None:
                branches[branch] = len(text)
    if not branches:
        return None
    ordered: list[bytes] = sorted(branches, key=branches.__getitem__, reverse=True)
    return re.compile(b"|".join(ordered), re.IGNORECASE)


def _decode(found: bytes, encodings: tuple[str, ...]) -> str:
    for encoding in encodings:
        try:
            return found.decode(encoding).lower()
        except (UnicodeError, LookupError):
            continue
    return ""


def _bodies_bytes(identifiers: tuple[tuple[str, Kind], ...], encodings: tuple[str, ...]) -> set[bytes]:
    bodies: set[bytes] = set()
    for text, _kind in identifiers:
        for encoding in encodings:
            try:
                bodies.add(text.encode(encoding).lower())
            except (UnicodeError, LookupError):
                continue
    return bodies


def _segments(data: bytes, masks: list[tuple[int, int]]) -> list[bytes]:
    """The parts of `data` outside the masked (bulk) ranges, as the search below visits them."""
    parts: list[bytes] = []
    start = 0
    for mask_start, mask_end in [*sorted(masks), (len(data), len(data))]:
        if mask_start > start:
            parts.append(data[start:mask_start])
        start = max(start, mask_end)
    return parts


def _may_match_bytes(data: bytes, identifiers: tuple[tuple[str, Kind], ...], encodings: tuple[str, ...],
                     masks: list[tuple[int, int]]) -> bool:
    bodies = _bodies_bytes(identifiers, encodings)
    if not bodies:
        return False
    if b"" in bodies:
        return True
    # Joining the segments can only add occurrences (across a joint); an extra one costs the
    # exact search, never a missed finding.
    haystack = b"\x00".join(_segments(data, masks)).lower()
    return any(body in haystack for body in bodies)


def _may_match_text(texts: list[str], identifiers: dict[str, Kind]) -> bool:
    """False only when no identifier can match in any of `texts` (see above); with text or
    identifiers outside ASCII, where IGNORECASE folds more than lower(), always True."""
    if not identifiers:
        return False
    haystack = "\n".join(texts)
    if not haystack.isascii() or not all(text.isascii() and text for text in identifiers):
        return True
    haystack = haystack.lower()
    return any(text in haystack for text in identifiers)


def search_bytes(data: bytes, original: Original, masks: list[tuple[int, int]]) -> list[Finding]:
    identifiers = tuple(sorted(original.identifiers.items()))
    if not _may_match_bytes(data, identifiers, original.encodings, masks):
        return []
    pattern = _bytes_pattern(identifiers, original.encodings)
    if pattern is None:
        return []
    findings: list[Finding] = []
    start = 0
    for mask_start, mask_end in [*sorted(masks), (len(data), len(data))]:
        for match in pattern.finditer(data, start, max(start, mask_start)):
            kind = original.identifiers.get(_decode(match.group(), original.encodings), Kind.FREE_TEXT)
            severity = Severity.MEDIUM if kind is Kind.FREE_TEXT else Severity.HIGH
            findings.append(Finding(VerifyRule.ORIGINAL_VALUE_IN_BYTES, f"bytes@{match.start()}", severity,
                                    detail=kind.value))
        start = max(start, mask_end)
    return findings


def _short_match(visit: Visit, values: tuple[str, ...], original: Original) -> Kind | None:
    """A short identifier, where it can identify: in an attribute it came from, as a whole value
    (in a name, a whole component); a short part of a person's name also as a word of text that
    can name a person. Never inside codes (CS, SH, UI, ...): a two-letter ID component equal to
    a true Modality is not a leak."""
    for value in values:
        parts = {value} if visit.vr != "PN" else {value, *re.split(r"[\^=]", value)}
        for part in parts:
            found = original.short.get(part.strip().lower())
            if found is not None and visit.tag in found[1]:
                return found[0]
        if visit.vr in _NAME_TEXT_VRS:
            for word in WORD.findall(value):
                found = original.short.get(word.lower())
                if found is not None and found[0] is Kind.PERSON_NAME:
                    return found[0]
    return None


def search_values(visits: list[Visit], original: Original) -> list[Finding]:
    """Every identifier of `LONG` characters or more in every parsed value (value edges are word
    edges); shorter ones only in their own attributes, as whole values (`_short_match`)."""
    strings = [(visit, visit.strings) for visit in visits if visit.vr in STRING_VRS]
    findings: list[Finding] = []
    if original.short:
        for visit, values in strings:
            kind = _short_match(visit, values, original)
            if kind is not None:
                findings.append(Finding(VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, visit.path, Severity.HIGH,
                                        detail=kind.value))
    if not _may_match_text([value for _, values in strings for value in values], original.identifiers):
        return findings
    pattern = _pattern(tuple(sorted(original.identifiers.items())))
    if pattern is None:
        return findings
    flagged = {finding.path for finding in findings}
    for visit, values in strings:
        if visit.path in flagged:
            continue
        for value in values:
            match = pattern.search(value)
            if match is not None:
                kind = original.identifiers.get(match.group().lower(), Kind.FREE_TEXT)
                severity = Severity.MEDIUM if kind is Kind.FREE_TEXT else Severity.HIGH
                findings.append(Finding(VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, visit.path, severity,
                                        detail=kind.value))
                break
    return findings


def search_path(output_path: str, original: Original) -> list[Finding]:
    if not _may_match_text([output_path], original.identifiers):
        return []
    pattern = _pattern(tuple(sorted(original.identifiers.items())))
    match = pattern.search(output_path) if pattern is not None else None
    if match is None:
        return []
    kind = original.identifiers.get(match.group().lower(), Kind.FREE_TEXT)
    return [Finding(VerifyRule.VALUE_IN_PATH, "path", Severity.HIGH, detail=kind.value)]
