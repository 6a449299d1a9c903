"""The Aho-Corasick search (pipeline/verify/search.py) finds exactly what the regular-expression
alternation it replaced found: same positions, same kinds, in bytes with masks and in text. The
alternation is kept here as the reference (longest identifier first, the same edges)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.verify.findings import VerifyRule
from pipeline.verify.original import Kind, Original, is_loose
from pipeline.verify.search import search_bytes, search_path


def _reference_branch_bytes(text: str, kind: Kind, encoding: str) -> bytes | None:
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


def _reference_bytes(data: bytes, original: Original, masks: list[tuple[int, int]]) -> list[tuple[str, str]]:
    branches: dict[bytes, int] = {}
    for text, kind in sorted(original.identifiers.items()):
        for encoding in original.encodings:
            branch = _reference_branch_bytes(text, kind, encoding)
            if branch is not None:
                branches[branch] = len(text)
    if not branches:
        return []
    pattern = re.compile(b"|".join(sorted(branches, key=branches.__getitem__, reverse=True)), re.IGNORECASE)
    found: list[tuple[str, str]] = []
    start = 0
    for mask_start, mask_end in [*sorted(masks), (len(data), len(data))]:
        for match in pattern.finditer(data, start, max(start, mask_start)):
            kind = original.identifiers.get(match.group().decode("latin-1").lower(), Kind.FREE_TEXT)
            found.append((f"bytes@{match.start()}", kind.value))
        start = max(start, mask_end)
    return found


def _reference_text(text: str, original: Original) -> str | None:
    branches = []
    for ident, kind in sorted(sorted(original.identifiers.items()), key=lambda pair: -len(pair[0])):
        body = re.escape(ident)
        if kind is Kind.UID:
            branches.append(rf"(?<![0-9A-Za-z.]){body}(?![0-9]|\.[0-9])")
            continue
        before = r"(?<![0-9A-Za-z])" if ident[0].isalnum() else ""
        after = r"(?![0-9A-Za-z])" if ident[-1].isalnum() else ""
        branches.append(before + body + after)
    if not branches:
        return None
    match = re.compile("|".join(branches), re.IGNORECASE).search(text)
    return None if match is None else original.identifiers.get(match.group().lower(), Kind.FREE_TEXT).value


# Small alphabets, so identifiers overlap, nest, share prefixes and touch edges often.
_IDENT = st.text(alphabet="ab1.2 ^-", min_size=4, max_size=7).filter(lambda t: t.strip() == t and t)
_KINDS = st.sampled_from([Kind.PERSON_NAME, Kind.ID, Kind.UID, Kind.DATE, Kind.FREE_TEXT, Kind.INSTITUTION])


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Original, bytes, list[tuple[int, int]]]:
    identifiers = draw(st.dictionaries(_IDENT.map(str.lower), _KINDS, max_size=6))
    pieces = [*identifiers, "A", "B", "1", "2", ".", " ", "\x00", "x", "AB12"]
    data = "".join(draw(st.lists(st.sampled_from(pieces), max_size=30))).encode("latin-1")
    data = bytes(c ^ 0x20 if c in b"ab" and draw(st.booleans()) else c for c in data)  # mixed case
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    masks = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]
    return Original({}, identifiers, ("utf-8", "latin-1")), data, masks


@settings(max_examples=400, deadline=None)
@given(_cases())
def test_bytes_search_finds_what_the_alternation_found(case: tuple[Original, bytes, list[tuple[int, int]]]) -> None:
    original, data, masks = case
    found = [(f.path, f.detail) for f in search_bytes(data, original, masks)]
    assert found == _reference_bytes(data, original, masks)
    assert all(f.rule is VerifyRule.ORIGINAL_VALUE_IN_BYTES for f in search_bytes(data, original, masks))


@settings(max_examples=400, deadline=None)
@given(_cases())
def test_text_search_finds_what_the_alternation_found(case: tuple[Original, bytes, list[tuple[int, int]]]) -> None:
    original, data, _ = case
    text = data.decode("latin-1")
    findings = search_path(text, original)
    assert (findings[0].detail if findings else None) == _reference_text(text, original)


def test_text_outside_ascii_folds_case_as_the_alternation_does() -> None:
    original = Original({}, {"müller": Kind.PERSON_NAME, "kevin": Kind.PERSON_NAME}, ("utf-8",))
    assert [f.detail for f in search_path("DR MÜLLER", original)] == ["person-name"]
    assert [f.detail for f in search_path("\u212aEVIN", original)] == ["person-name"]  # the Kelvin sign
    assert search_path("MÜLLERS", original) == []


# Outside ASCII: letters re.IGNORECASE folds in more ways than lower() (dotless and dotted i, long s,
# the Kelvin sign, micro and mu, final sigma), accents, and ASCII edges.
_WIDE_ALPHABET = "a\u0131\u0130i\u017fsKk\u212a\u00b5\u03bc\u03c3\u03c2\u03a3\u00fc\u00dc1.^ "
_WIDE_IDENT = st.text(alphabet=_WIDE_ALPHABET, min_size=2, max_size=6).filter(lambda t: t.strip() == t and t)


@st.composite
def _wide_cases(draw: st.DrawFn) -> tuple[Original, str]:
    identifiers = draw(st.dictionaries(_WIDE_IDENT.map(str.lower), _KINDS, max_size=5))
    pieces = [*identifiers, *_WIDE_ALPHABET.upper(), *_WIDE_ALPHABET, "\u039c", "x"]
    text = "".join(draw(st.lists(st.sampled_from(pieces), max_size=25)))
    return Original({}, identifiers, ("utf-8",)), text


@settings(max_examples=600, deadline=None)
@given(_wide_cases())
def test_text_outside_ascii_is_searched_as_the_ignorecase_alternation_did(case: tuple[Original, str]) -> None:
    """No regular expression is compiled per file: the folded automaton finds what the
    alternation under re.IGNORECASE found, first match and its kind."""
    original, text = case
    findings = search_path(text, original)
    assert (findings[0].detail if findings else None) == _reference_text(text, original)
