"""The search for the original's identifiers (pipeline/verify/original.py) in an output's
bytes, parsed values and path. Findings name places and kinds, never values.

One Aho-Corasick automaton (pyahocorasick) per file's identifier set finds every occurrence of
every identifier in one pass; each occurrence is then held to the edges its kind asks for (a
UID not inside a longer UID, a word not inside a longer word). Matches are taken as a regular
expression alternation, longest identifier first, would take them: leftmost first, then the
longest identifier that fits its edges there, then on after its end. No regular expression is
compiled per file: text outside ASCII in the parsed values or the path, where a case-insensitive
match folds more than ``lower()`` (the Kelvin sign matches ``k``), is searched folded as
``re.IGNORECASE`` folds it (pipeline/verify/casefold.py), by an automaton over the folded
identifiers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import ahocorasick

from pipeline.verify import casefold
from pipeline.verify.findings import Finding, Severity, VerifyRule
from pipeline.verify.original import WORD, Kind, Original, is_loose
from pipeline.verify.profile import Expect
from pipeline.verify.spellings import Spellings, fold, may_hold, spellings_of
from pipeline.verify.strings import STRING_VRS
from pipeline.verify.walk import Visit

_NAME_TEXT_VRS = frozenset({"PN", "LO", "LT", "ST", "UT", "UC"})  # text that can name a person
_SPELLED_VRS = _NAME_TEXT_VRS | {"SH"}  # text a person writes dates and names into
_DIGITS = frozenset(b"0123456789")
_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_UID_BEFORE_BYTES = _DIGITS | {ord(".")}
_UID_BEFORE_TEXT = _ALNUM | {ord(".")}
_NO_EDGE: frozenset[int] = frozenset()
_NAME_PARTS = re.compile(r"[\^=]")


@dataclass(frozen=True, slots=True)
class _Branch:
    """One identifier in one spelling: its rank (longest identifier first), its length, the
    characters that must not stand just before or after it, and whether it is a UID (which
    must not be followed by ``.`` and a digit either)."""

    rank: int
    length: int
    kind: Kind
    before: frozenset[int]
    after: frozenset[int]
    uid: bool


def _edges(text: str, kind: Kind, *, in_bytes: bool) -> tuple[frozenset[int], frozenset[int]]:
    if kind is Kind.UID:
        return (_UID_BEFORE_BYTES if in_bytes else _UID_BEFORE_TEXT), _DIGITS
    if in_bytes and is_loose(text, kind):
        return _NO_EDGE, _NO_EDGE
    edge = _DIGITS if in_bytes and text[0].isdigit() and text[-1].isdigit() else _ALNUM
    return (edge if text[0].isalnum() else _NO_EDGE), (edge if text[-1].isalnum() else _NO_EDGE)


class _Matcher:
    """The automaton over one file's identifiers, in one alphabet (bytes as Latin-1 text, so
    one character is one byte; or ASCII text), case-insensitive by lower-casing both sides."""

    def __init__(self, spellings: dict[str, tuple[str, Kind]], in_bytes: bool) -> None:
        ordered = sorted(spellings.items(), key=lambda item: -len(item[1][0]))  # stable: longest first
        self._automaton = ahocorasick.Automaton()
        for rank, (spelling, (text, kind)) in enumerate(ordered):
            before, after = _edges(text, kind, in_bytes=in_bytes)
            branch = _Branch(rank, len(spelling), kind, before, after, kind is Kind.UID)
            self._automaton.add_word(spelling, branch)
        self.empty = not ordered
        if not self.empty:
            self._automaton.make_automaton()

    def matches(self, folded: str, original: bytes | str, offset: int = 0) -> Iterator[tuple[int, _Branch]]:
        """(position in `original`, branch) of each match in ``original[offset:offset + len(folded)]``
        (``folded`` is that part lower-cased), as the alternation would find them: characters
        before `offset` count as edges, characters after the part do not."""
        if self.empty or not folded:
            return
        limit = offset + len(folded)
        found = sorted((offset + last + 1 - branch.length, branch.rank, branch)
                       for last, branch in self._automaton.iter(folded)
                       if _fits(branch, original, offset + last + 1 - branch.length, offset + last + 1, limit))
        cursor = offset
        for position, _rank, branch in found:
            if position >= cursor:
                yield position, branch
                cursor = position + branch.length


def _code(data: bytes | str, index: int) -> int:
    return data[index] if isinstance(data, bytes) else ord(data[index])


def _fits(branch: _Branch, data: bytes | str, start: int, end: int, limit: int) -> bool:
    if branch.before and start > 0 and _code(data, start - 1) in branch.before:
        return False
    if end < limit:
        following = _code(data, end)
        if following in branch.after:
            return False
        if branch.uid and following == 0x2E and end + 1 < limit and _code(data, end + 1) in _DIGITS:
            return False
    return True


@functools.lru_cache(maxsize=64)
def _bytes_matcher(identifiers: tuple[tuple[str, Kind], ...], encodings: tuple[str, ...]) -> _Matcher:
    """Every identifier in every encoding of the original, as Latin-1 text of its bytes."""
    spellings: dict[str, tuple[str, Kind]] = {}
    for text, kind in identifiers:
        for encoding in encodings:
            try:
                spelling = text.encode(encoding).lower().decode("latin-1")
            except (UnicodeError, LookupError):
                continue
            spellings.setdefault(spelling, (text, kind))
    return _Matcher(spellings, in_bytes=True)


@functools.lru_cache(maxsize=64)
def _text_matcher(identifiers: tuple[tuple[str, Kind], ...]) -> _Matcher:
    """The ASCII identifiers (text is searched this way only when all of them are ASCII)."""
    return _Matcher({text.lower(): (text, kind) for text, kind in identifiers}, in_bytes=False)


@functools.lru_cache(maxsize=64)
def _folded_matcher(identifiers: tuple[tuple[str, Kind], ...]) -> _Matcher:
    """Text outside ASCII: the identifiers folded as ``re.IGNORECASE`` folds (`casefold.fold`: one
    character for one, and the edge characters it takes for ``[0-9A-Za-z]`` fold into ASCII)."""
    spellings: dict[str, tuple[str, Kind]] = {}
    for text, kind in identifiers:
        spellings.setdefault(casefold.fold(text), (text, kind))
    return _Matcher(spellings, in_bytes=False)


class _TextSearch:
    """The first identifier in a piece of text, for one file's identifiers."""

    def __init__(self, original: Original, texts: list[str]) -> None:
        self._kinds = original.identifiers
        self._ascii = all(map(str.isascii, texts)) and "" not in self._kinds and all(map(str.isascii, self._kinds))
        self._matcher: _Matcher | None = None  # built at the first text that needs it

    @functools.cached_property
    def _identifiers(self) -> tuple[tuple[str, Kind], ...]:
        return tuple(sorted(self._kinds.items()))

    def _ascii_matcher(self) -> _Matcher:
        if self._matcher is None:
            self._matcher = _text_matcher(self._identifiers)
        return self._matcher

    def anywhere(self, texts: list[str]) -> bool:
        """False only when no identifier can match in any of `texts`: they are joined by a line
        break, which is an edge for every identifier, so a match in one text is a match here."""
        if self._ascii is False:
            return True
        haystack = "\n".join(texts).lower()
        return any(map(haystack.__contains__, self._kinds))

    def first(self, text: str) -> Kind | None:
        if self._ascii:
            for _position, branch in self._ascii_matcher().matches(text.lower(), text):
                return branch.kind
            return None
        folded = casefold.fold(text)  # its edges are judged folded too, as re.IGNORECASE judges them
        for position, branch in _folded_matcher(self._identifiers).matches(folded, folded):
            return self._kinds.get(text[position:position + branch.length].lower(), Kind.FREE_TEXT)
        return None


def _may_occur_in_bytes(data: bytes, original: Original, masks: list[tuple[int, int]]) -> bool:
    """False only when no identifier occurs, in any encoding and any case, outside the masks: a
    substring test that spares building the automaton for the many outputs that hold none."""
    parts: list[bytes] = []
    start = 0
    for mask_start, mask_end in [*sorted(masks), (len(data), len(data))]:
        if mask_start > start:
            parts.append(data[start:mask_start])
        start = max(start, mask_end)
    haystack = b"\x00".join(parts).lower()  # a joint can only add occurrences, never hide one
    bodies: set[bytes] = set()  # ASCII text is the same bytes in every encoding: searched once
    for text in original.identifiers:
        bodies.update(_bodies(text, original.encodings))
    return any(map(haystack.__contains__, bodies))


@functools.lru_cache(maxsize=8192)
def _bodies(text: str, encodings: tuple[str, ...]) -> frozenset[bytes]:
    """`text` lower-cased in each of `encodings` it can be written in (remembered: a study's
    names, IDs and UIDs recur in its files)."""
    bodies: set[bytes] = set()
    for encoding in encodings:
        try:
            bodies.add(text.encode(encoding).lower())
        except (UnicodeError, LookupError):
            continue
    return frozenset(bodies)


def _severity(kind: Kind) -> Severity:
    return Severity.MEDIUM if kind is Kind.FREE_TEXT else Severity.HIGH


def search_bytes(data: bytes, original: Original, masks: list[tuple[int, int]]) -> list[Finding]:
    """Every identifier in the output's bytes outside the masked (bulk) ranges, in each of the
    original's encodings; an identifier never spans a mask."""
    if not original.identifiers or not _may_occur_in_bytes(data, original, masks):
        return []
    matcher = _bytes_matcher(tuple(sorted(original.identifiers.items())), original.encodings)
    findings: list[Finding] = []
    start = 0
    for mask_start, mask_end in [*sorted(masks), (len(data), len(data))]:
        end = max(start, mask_start)
        if end > start:
            folded = data[start:end].lower().decode("latin-1")
            for position, branch in matcher.matches(folded, data, start):
                findings.append(Finding(VerifyRule.ORIGINAL_VALUE_IN_BYTES, f"bytes@{position}",
                                        _severity(branch.kind), detail=branch.kind.value))
        start = max(start, mask_end)
    return findings


def _short_match(visit: Visit, values: tuple[str, ...], original: Original) -> Kind | None:
    """A short identifier, where it can identify: in an attribute it came from, as a whole value
    (in a name, a whole component); a short part of a person's name also as a word of text that
    can name a person. Never inside codes (CS, SH, UI, ...): a two-letter ID component equal to
    a true Modality is not a leak."""
    for value in values:
        parts = {value} if visit.vr != "PN" else {value, *_NAME_PARTS.split(value)}
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
    edges); shorter ones only in their own attributes, as whole values (`_short_match`); then the
    spellings people write (`_search_spelled`)."""
    strings = [(visit, visit.strings) for visit in visits if visit.vr in STRING_VRS]
    findings: list[Finding] = []
    if original.short:
        for visit, values in strings:
            kind = _short_match(visit, values, original)
            if kind is not None:
                findings.append(Finding(VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, visit.path, Severity.HIGH,
                                        detail=kind.value))
    if original.identifiers:
        findings += _search_identifiers(strings, original, {finding.path for finding in findings})
    if original.spelled:
        findings += _search_spelled(strings, original, {finding.path for finding in findings})
    return findings


def _search_identifiers(strings: list[tuple[Visit, tuple[str, ...]]], original: Original,
                        flagged: set[str]) -> list[Finding]:
    texts = [value for _, values in strings for value in values]
    search = _TextSearch(original, texts)
    if not search.anywhere(texts):
        return []
    findings: list[Finding] = []
    for visit, values in strings:
        if visit.path in flagged:
            continue
        for value in values:
            kind = search.first(value)
            if kind is not None:
                findings.append(Finding(VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, visit.path, _severity(kind),
                                        detail=kind.value))
                break
    return findings


def _search_spelled(strings: list[tuple[Visit, tuple[str, ...]]], original: Original,
                    flagged: set[str]) -> list[Finding]:
    """The original's dates and names as people write them (pipeline/verify/spellings.py) in
    text attributes the profile does not keep as they are (a kept value is the profile's to
    allow): folded text, so full-width, other cases and month names in any language match; CJK
    names without word edges."""
    matcher: Spellings | None = None  # built (or found) at the first value that may hold a spelling
    findings: list[Finding] = []
    keep = Expect.KEEP
    for visit, values in strings:
        if visit.vr not in _SPELLED_VRS or visit.expect is keep or visit.path in flagged:
            continue
        for value in values:
            spelling = None
            if may_hold(value):
                if matcher is None:
                    matcher = spellings_of(frozenset(original.spelled))
                spelling = next(matcher.find(fold(value)), None)
            if spelling is not None:
                findings.append(Finding(VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, visit.path, Severity.HIGH,
                                        detail=original.spelled[spelling].value))
                break
    return findings


def search_path(output_path: str, original: Original) -> list[Finding]:
    """Every identifier in the output's path (release-relative)."""
    if not original.identifiers:
        return []
    search = _TextSearch(original, [output_path])
    kind = search.first(output_path) if search.anywhere([output_path]) else None
    if kind is None:
        return []
    return [Finding(VerifyRule.VALUE_IN_PATH, "path", Severity.HIGH, detail=kind.value)]
