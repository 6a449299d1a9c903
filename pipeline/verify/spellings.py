"""verify's own reading of how people write the original's dates and names in text (issue 13,
kinds 4 and 5), apart from the scrubber's grammar (pipeline/scrub/textdates.py) so that one
bug does not hide the other: the scrubber removes any date-shaped run by a grammar; verify
writes out every spelling of each of the original's dates and looks for them.

Text is first folded (`fold`): NFKC (full-width digits and letters, half-width katakana),
hiragana read as katakana (a name's reading in either), case folding, each month name or
abbreviation (English, French, German, Spanish, Italian, Portuguese, Dutch, Swedish, Polish,
Russian) turned into one private-use character standing for its month, with the separators
around it (``05-MAR-2024``, ``5. März 2024``, ``March 5, 2024`` all read
``<d> <month> <year>``), runs of spaces and commas made one space, and the spaces around CJK
date characters dropped. The spellings (`date_spellings`, `name_spellings`) are written in
that folded form and found with one Aho-Corasick automaton (`Spellings`): digits and Latin
letters must not run on at either end; CJK text has no word edges.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

import ahocorasick

# Full month names by language, January first (Polish and Russian in the genitive dates use).
_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"),
    "de": ("januar", "februar", "märz", "april", "mai", "juni", "juli", "august", "september", "oktober",
           "november", "dezember"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"),
    "it": ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre",
           "novembre", "dicembre"),
    "pt": ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro",
           "novembro", "dezembro"),
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
           "november", "december"),
    "sv": ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober",
           "november", "december"),
    "pl": ("stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca", "lipca", "sierpnia", "września",
           "października", "listopada", "grudnia"),
    "ru": ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
           "ноября", "декабря"),
}
# Spellings that are not a language's full name or its first three letters.
_OTHER: dict[int, tuple[str, ...]] = {
    1: ("janv", "jänner", "jän"), 2: ("févr", "fevr", "fevrier", "feber"), 3: ("maerz", "mrz", "mrt", "marco"),
    7: ("juil",), 8: ("aout",), 9: ("sept", "setiembre"), 12: ("decembre",),
}
_WORDS = frozenset({"mayo", "marco", "maja", "mars", "marca"})  # words or names of their own
_LONG_BASE, _SHORT_BASE = 0xE000, 0xE010  # private use: month tokens, with and without a year needed


def _month_names() -> dict[str, int]:
    """Every spelling -> month; a three-letter prefix shared by two months (jui-n, jui-llet) is left out."""
    names: dict[str, int] = {}
    prefixes: dict[str, set[int]] = {}
    for months in _NAMES.values():
        for number, name in enumerate(months, start=1):
            names[name] = number
            prefixes.setdefault(name[:3], set()).add(number)
    for number, others in _OTHER.items():
        names.update(dict.fromkeys(others, number))
    for prefix, numbers in prefixes.items():
        if len(numbers) == 1 and prefix not in names:
            names[prefix] = numbers.pop()
    return names


_MONTH_OF = _month_names()


def _token(name: str) -> str:
    """The month's character: the long token only for names a text would not use otherwise."""
    base = _LONG_BASE if len(name) >= 4 and name not in _WORDS else _SHORT_BASE
    return chr(base + _MONTH_OF[name])


_LETTERS = re.compile(r"[^\W\d_]+")
_AROUND_MONTH = " \t\n\r\f\v,.-/'"  # separators a month token absorbs on either side
_SPACES = re.compile(r"[\s,]+")
_CJK_DATE = re.compile(r"\s*([年月日号號년월일])\s*")
_KANA = {chr(code): chr(code + 0x60) for code in range(0x3041, 0x3097)}  # hiragana read as katakana
_HINT = re.compile(r"[^\x00-\x7f]|\d")  # text with neither holds no spelling `Spellings` can find


def may_hold(text: str) -> bool:
    """False only when `text` (ASCII without a digit) cannot hold a date spelling or a name
    written in a script without spaces."""
    return _HINT.search(text) is not None


def fold(text: str) -> str:
    """`text` as the spellings are written: NFKC, hiragana as katakana, case-folded, month
    names as tokens. Short texts (names, codes, descriptions: the same in many files of a
    study) are remembered, a bounded number of them."""
    return _fold_short(text) if len(text) <= _SHORT else _fold(text)


_SHORT = 128  # characters: what `fold` remembers (4096 of them at most)


@functools.lru_cache(maxsize=4096)
def _fold_short(text: str) -> str:
    return _fold(text)


def _fold(text: str) -> str:
    if not text.isascii():
        text = "".join(_KANA.get(c, c) for c in unicodedata.normalize("NFKC", text))
    text = text.casefold()
    words = _LETTERS.findall(text)
    if words and not _MONTH_OF.keys().isdisjoint(words):
        text = _tokens(text)
    if not text.isascii():
        text = _CJK_DATE.sub(r"\1", text)
    return _SPACES.sub(" ", text)


def _tokens(text: str) -> str:
    """Each month word as its token, the separators around it made one space either side."""
    pieces: list[str] = []
    cursor = 0
    for word in _LETTERS.finditer(text):
        name = word.group()
        if name not in _MONTH_OF:
            continue
        start, end = word.start(), word.end()
        while start > cursor and text[start - 1] in _AROUND_MONTH:
            start -= 1
        while end < len(text) and text[end] in _AROUND_MONTH:
            end += 1
        pieces += [text[cursor:start], f" {_token(name)} "]
        cursor = end
    return "".join(pieces) + text[cursor:]


# --- dates -----------------------------------------------------------------------------------

_KANJI_DIGITS = "〇一二三四五六七八九"
_ERAS = (("令和", "r", 2019, 5, 1), ("平成", "h", 1989, 1, 8), ("昭和", "s", 1926, 12, 25),
         ("大正", "t", 1912, 7, 30), ("明治", "m", 1868, 1, 25))


def _kanji_number(n: int) -> str:
    """1..31 as kanji numerals (十二, 二十一)."""
    tens, ones = divmod(n, 10)
    return (("" if tens < 2 else _KANJI_DIGITS[tens]) + "十" if tens else "") + (_KANJI_DIGITS[ones] if ones else "")


def _ordinals(day: int) -> set[str]:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    forms = {f"{day}{suffix}", f"{day}o", f"{day}°"}
    if day == 1:
        forms.add("1er")
    return forms


def _month_spellings(y: int, m: int, d: int) -> set[str]:
    year, yy = f"{y:04d}", f"{y:04d}"[2:]
    days = {str(d), f"{d:02d}"} | _ordinals(d)
    out: set[str] = set()
    for base in (_LONG_BASE, _SHORT_BASE):
        month = f" {chr(base + m)} "  # as fold writes it, then spaces made one
        for day in days:
            for form in (f"{day}{month}{year}", f"{day} of{month}{year}", f"{day} de{month}de {year}",
                         f"{day} de{month}del {year}", f"{day} de{month}{year}", f"{day}{month}de {year}",
                         f"{month}{day} {year}", f"{month}{day} de {year}", f"{year}{month}{day}",
                         f"{day}{month}{yy}", f"{month}{day} {yy}"):
                out.add(" ".join(form.split()))  # as _SPACES.sub(" ", form).strip(): no form holds a comma
            if base == _LONG_BASE:  # no year: only a month written out in full
                for form in (f"{day}{month}", f"{day} of{month}", f"{day} de{month}", f"{month}{day}"):
                    out.add(" ".join(form.split()))
    return out


def _numeric_spellings(y: int, m: int, d: int) -> set[str]:
    year, yy, mm, dd = f"{y:04d}", f"{y:04d}"[2:], f"{m:02d}", f"{d:02d}"
    out = {year + mm + dd, f"{year} {mm} {dd}"}
    for sep in "-/.":
        out |= {f"{year}{sep}{mm}{sep}{dd}", f"{year}{sep}{m}{sep}{d}", f"{yy}{sep}{mm}{sep}{dd}"}
        for first, second in ((dd, mm), (str(d), str(m)), (mm, dd), (str(m), str(d))):
            out |= {f"{first}{sep}{second}{sep}{year}", f"{first}{sep}{second}{sep}{yy}"}
    return out


def _cjk_spellings(y: int, m: int, d: int) -> set[str]:
    year = f"{y:04d}"
    out: set[str] = set()
    for month, day in ((str(m), str(d)), (f"{m:02d}", f"{d:02d}")):
        out |= {f"{year}年{month}月{day}日", f"{year}年{month}月{day}号", f"{month}月{day}日",
                f"{year}년{month}월{day}일", f"{month}월{day}일"}
    kanji_year = "".join(_KANJI_DIGITS[int(c)] for c in year)
    out |= {f"{kanji_year}年{_kanji_number(m)}月{_kanji_number(d)}日", f"{_kanji_number(m)}月{_kanji_number(d)}日"}
    for name, letter, start_y, start_m, start_d in _ERAS:
        if (y, m, d) >= (start_y, start_m, start_d):
            n = y - start_y + 1
            for number in {str(n), f"{n:02d}", "元" if n == 1 else str(n)}:
                out |= {f"{name}{number}年{m}月{d}日", f"{name}{number}年{m:02d}月{d:02d}日"}
            for sep in "./-":
                out |= {f"{letter}{n}{sep}{m}{sep}{d}", f"{letter}{n:02d}{sep}{m:02d}{sep}{d:02d}"}
            break
    return out


@functools.lru_cache(maxsize=1024)
def date_spellings(value: str) -> frozenset[str]:
    """Every spelling, folded, of the date a DA or DT value starts with (empty for no date).
    Its first eight characters must be decimal digits (PS3.5 Table 6.2-1: DA is YYYYMMDD of
    "0"-"9"): `isdecimal`, what `int` reads, not `isdigit`, which also takes superscripts and
    circled digits ("²0180624", a bit flipped in "20180624", is no date and raised here)."""
    text = value.strip().replace("-", "").replace(".", "")
    if len(text) < 8 or not text[:8].isdecimal():
        return frozenset()
    y, m, d = int(text[:4]), int(text[4:6]), int(text[6:8])
    if not (1 <= m <= 12 and 1 <= d <= 31) or y <= 1900:
        return frozenset()
    return frozenset(_numeric_spellings(y, m, d) | _month_spellings(y, m, d) | _cjk_spellings(y, m, d))


# --- names -----------------------------------------------------------------------------------


def is_unspaced_script(char: str) -> bool:
    """Han, kana and Hangul: scripts whose text puts no space between words."""
    code = ord(char)
    return (0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0x3400 <= code <= 0x9FFF
            or 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F
            or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x3FFFF)


@functools.lru_cache(maxsize=1024)
def name_spellings(group: str) -> frozenset[str]:
    """A person-name component group (one side of '=') in a script without spaces, folded: the
    components joined in either order (with no space or one), and each component of two characters or more (a
    one-character family or given name identifies only next to the other). Empty for other
    scripts."""
    if group.isascii():
        return frozenset()
    group = fold(group).strip()
    if not any(is_unspaced_script(c) for c in group):
        return frozenset()
    parts = [p for p in re.split(r"[\^\s]+", group) if p]
    out = {p for p in parts if len(p) >= 2}
    if len(parts) >= 2:
        out |= {"".join(parts), "".join(reversed(parts)), parts[0] + parts[1], parts[1] + parts[0]}
        out |= {" ".join(parts), " ".join(reversed(parts)), f"{parts[0]} {parts[1]}", f"{parts[1]} {parts[0]}"}
    return frozenset(out)


# --- the search ------------------------------------------------------------------------------


def _runs_on(char: str) -> bool:
    return (char.isascii() and char.isalnum()) or (char.isalpha() and not is_unspaced_script(char))


def _fits(spelling: str, text: str, start: int, end: int) -> bool:
    """No digit or Latin letter runs on at an end that is one (nor ``.`` and a digit on a digit:
    5.3.24 is not inside 15.3.24 nor 5.3.24.1); a time may follow a date after ``T``."""
    first, last = spelling[0], spelling[-1]
    if start > 0 and _runs_on(first):
        before = text[start - 1]
        if _runs_on(before) or (first.isdigit() and before == "." and start > 1 and text[start - 2].isdigit()):
            return False
    if end < len(text) and _runs_on(last):
        after = text[end]
        if after == "t" and last.isdigit() and end + 1 < len(text) and text[end + 1].isdigit():
            return True  # a date then its time: 2024-03-05T10:15
        if _runs_on(after) or (last.isdigit() and after == "." and end + 1 < len(text) and text[end + 1].isdigit()):
            return False
    return True


class Spellings:
    """One automaton over a file's folded spellings; `find` yields those in a folded text."""

    def __init__(self, spellings: frozenset[str]) -> None:
        self._automaton = ahocorasick.Automaton()
        for spelling in spellings:
            self._automaton.add_word(spelling, spelling)
        self.empty = not spellings
        if not self.empty:
            self._automaton.make_automaton()

    def find(self, folded: str) -> Iterator[str]:
        if self.empty or not folded:
            return
        for last, spelling in self._automaton.iter(folded):
            start = last + 1 - len(spelling)
            if _fits(spelling, folded, start, last + 1):
                yield spelling


@functools.lru_cache(maxsize=64)
def spellings_of(spellings: frozenset[str]) -> Spellings:
    """The automaton for one set of spellings (files of one study share theirs)."""
    return Spellings(spellings)
