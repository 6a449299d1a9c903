"""`casefold.fold` reads text as ``re.IGNORECASE`` does (pipeline/verify/casefold.py): two
characters fold alike exactly when the regular expression engine takes one for the other."""

from __future__ import annotations

import re

from pipeline.verify.casefold import CASED_BELOW, fold, fold_table

# the usual letters and re's extra equivalences
_SAMPLE = ("aAiI\u0131\u0130sS\u017fkK\u212a\u00b5\u03bc\u039c\u03c3\u03c2\u03a3\u00df\u1e9e"
           "\u00e4\u00c4\u00e5\u00c5\u01c5\u01c4\u01c6\u03b8\u03d1\u0398\u03b9\u0345\u0399"
           "\u1fbe\u03c9\u03a9\u2126")


def test_each_character_matches_its_representative_under_ignorecase() -> None:
    table = fold_table()
    for code, representative in table.items():
        assert re.fullmatch(re.escape(chr(representative)), chr(code), re.IGNORECASE), hex(code)


def test_characters_fold_alike_exactly_when_ignorecase_matches_them() -> None:
    candidates = [chr(c) for c in range(0x250)] + sorted({chr(c) for c in fold_table()} | set(_SAMPLE))
    for pattern_char in _SAMPLE + "09._^":
        pattern = re.compile(re.escape(pattern_char), re.IGNORECASE)
        for char in candidates:
            assert (fold(char) == fold(pattern_char)) == (pattern.fullmatch(char) is not None), (
                hex(ord(pattern_char)), hex(ord(char)))


def test_an_edge_class_under_ignorecase_holds_what_folds_into_it() -> None:
    edge = re.compile("[0-9A-Za-z.]", re.IGNORECASE)
    ascii_edge = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.")
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000:
            continue
        char = chr(code)
        assert (edge.fullmatch(char) is not None) == (fold(char) in ascii_edge), hex(code)


def test_no_character_past_the_table_has_a_representative_of_its_own() -> None:
    """The table stops at CASED_BELOW: every character past it matches only itself (its simple
    lower case is itself and re knows no other character for it)."""
    for code in range(CASED_BELOW, 0x110000, 1):
        char = chr(code) if not 0xD800 <= code < 0xE000 else "a"
        if char.lower() != char or char.upper() != char:
            raise AssertionError(hex(code))


def test_folding_keeps_every_position() -> None:
    text = "\u0130STANBUL \u017ftra\u00dfe \u212aelvin \u01c5 \u00b5"
    assert len(fold(text)) == len(text)
    assert fold(text) == "istanbul straße kelvin ǆ µ"  # one character for one, unlike str.lower()
