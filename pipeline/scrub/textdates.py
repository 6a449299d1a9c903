"""Dates as people write them, found anywhere in text that PS3.15 action C keeps (Clean
Descriptors Option E.3.5, Clean Structured Content Option E.3.6: dates in descriptive text
identify). One grammar, not the original's values: any date-shaped run is removed.

Covered: numeric forms (2024-03-05, 05/03/2024, 5.3.24, 20240305), month names and
abbreviations in English, French, German, Spanish, Italian, Portuguese, Dutch, the
Scandinavian languages, Polish and Russian (5 March 2024, March 5th, 2024, 5th of March 2024,
05-MAR-2024, 05MAR2024, 5. März 2024, 5 de marzo de 2024), day and month without a year when
the month is spelled out in full, CJK year-month-day forms (2024年3月5日, 二〇二四年三月五日,
令和6年3月5日, 2024년 3월 5일), Japanese era abbreviations (R6.3.5) and a time written just
after a date. The text is matched after NFKC folding (full-width digits and letters), see
pipeline/scrub/clean.py.

Why not the ``dateparser`` library: measured on descriptor-like text, ``search_dates`` took
about 50 ms per text (3 s for its first call) against microseconds here, and it reads "CT",
"may", "3 of 24" and "SE 4 IM 12" as dates, which would strip descriptors of their meaning.
"""

from __future__ import annotations

import re

# Month names and abbreviations, lower case, by month. Short or ambiguous ones (three letters
# or fewer, or words of their own: "mayo", "marco") count only in forms with a year.
_MONTHS: tuple[tuple[str, ...], ...] = (
    ("january", "jan", "janvier", "janv", "januar", "jänner", "jän", "enero", "ene", "gennaio", "gen", "janeiro",
     "januari", "stycznia", "styczeń", "sty", "января", "январь", "янв"),
    ("february", "feb", "février", "fevrier", "févr", "fevr", "februar", "feber", "febrero", "febbraio", "fevereiro",
     "fev", "februari", "lutego", "luty", "lut", "февраля", "февраль", "фев"),
    ("march", "mar", "mars", "märz", "maerz", "mrz", "marzo", "março", "marco", "maart", "mrt", "marca", "marzec",
     "марта", "март"),
    ("april", "apr", "avril", "avr", "abril", "abr", "aprile", "kwietnia", "kwiecień", "kwi", "апреля", "апрель",
     "апр"),
    ("may", "mai", "mayo", "maggio", "mag", "maio", "mei", "maj", "maja", "мая", "май"),
    ("june", "jun", "juin", "juni", "junio", "giugno", "giu", "junho", "czerwca", "czerwiec", "cze", "июня", "июнь"),
    ("july", "jul", "juillet", "juil", "juli", "julio", "luglio", "lug", "julho", "lipca", "lipiec", "lip", "июля",
     "июль"),
    ("august", "aug", "août", "aout", "agosto", "ago", "augustus", "augusti", "sierpnia", "sierpień", "sie",
     "августа", "август", "авг"),
    ("september", "sep", "sept", "septembre", "septiembre", "setiembre", "settembre", "set", "setembro", "września",
     "wrzesień", "wrz", "сентября", "сентябрь", "сен"),
    ("october", "oct", "octobre", "oktober", "okt", "octubre", "ottobre", "ott", "outubro", "out", "października",
     "październik", "paź", "октября", "октябрь", "окт"),
    ("november", "nov", "novembre", "noviembre", "novembro", "listopada", "listopad", "lis", "ноября", "ноябрь",
     "ноя"),
    ("december", "dec", "décembre", "decembre", "déc", "dezember", "dez", "diciembre", "dic", "dicembre",
     "dezembro", "grudnia", "grudzień", "gru", "декабря", "декабрь", "дек"),
)
_AMBIGUOUS = frozenset({"mayo", "marco", "maja", "mars"})  # words (or names) of their own


_ANY, _LONG = "\ue002", "\ue001"  # month words are marked by these (private use), length kept
_MONTH_MARK = {name: (_LONG if len(name) >= 4 and name not in _AMBIGUOUS else _ANY)
               for names in _MONTHS for name in names}
_WORD = re.compile(r"[^\W\d_]+")
_MONTH = rf"[{_LONG}{_ANY}]+\.?"  # any spelling: only with a year
_MONTH_LONG = rf"{_LONG}+\.?"
_DAY = r"(?<![A-Za-z\d.])(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th|er|re|e|\.|º|°)?"
_DAY_PLAIN = r"(?<![A-Za-z\d.])(?:0?[1-9]|[12]\d|3[01])"
_YEAR4 = r"(?:1[89]\d\d|20\d\d)(?!\d)"
_YEAR = rf"(?:{_YEAR4}|'\d\d(?!\d))"  # 2024 or '24
_YEAR_SHORT = r"(?:\d\d)(?![\d.]\d)"  # 24, only where the month is spelled next to it (05-MAR-24)
_GAP = r"[\s,]*"
_PARTICLE = r"(?:\s*(?:of|de|del|di|du|the)\s+|\s+|\s*[-/.]\s*|)"
_TIME = r"(?:(?:[\sT,]+|\s*(?:at|um|à|a las)\s+)\d{1,2}[:h]\d\d(?::\d\d(?:[.,]\d+)?)?(?:\s*[ap]\.?m\.?)?(?![\d:]))?"
_KANJI = "\u3007零一二三四五六七八九十"  # ideographic zero, then the kanji numerals
_CJK_NUMBER = rf"(?:\d{{1,4}}|[{_KANJI}]{{1,4}})"
_ERA = r"(?:明治|大正|昭和|平成|令和)\s*(?:\d{1,2}|元|[一二三四五六七八九十]{1,3})"

_MONTH_FORMS = (
    # 5 March 2024, 5th of March, 2024, 5 de marzo de 2024, 05-MAR-2024, 05MAR2024, 5. März 2024
    rf"{_DAY}{_PARTICLE}{_MONTH}{_PARTICLE}{_GAP}{_YEAR}",
    rf"{_DAY_PLAIN}[-/ ]?{_MONTH}[-/ ]?{_YEAR_SHORT}",  # 05-MAR-24, 05MAR24
    # March 5, 2024; Mar 5th 2024; MAR-05-2024
    rf"{_MONTH}{_GAP}[-/ ]?{_DAY}{_GAP}[-/ ]?{_YEAR}",
    # 2024 Mar 05, 2024-MAR-05
    rf"(?<!\d){_YEAR4}[-/ .]?{_MONTH}[-/ .]?{_DAY_PLAIN}(?!\d)",
    # without a year, month in full: 5 March, 5th of March, March 5th, 5. März
    rf"{_DAY}{_PARTICLE}{_MONTH_LONG}",
    rf"{_MONTH_LONG}\s*{_DAY}(?![\d.]\d)",
)
_NUMERIC_FORMS = (
    # 2024-03-05, 2024/3/5, 05/03/2024, 03-05-24, 5.3.24, 20240305
    r"(?<![\d.])(?:1[89]|20)\d\d(?P<s1>[-/.])(?:0?[1-9]|1[0-2])(?P=s1)(?:0?[1-9]|[12]\d|3[01])(?![\d]|\.\d)",
    r"(?<![\d.])(?:0?[1-9]|[12]\d|3[01])(?P<s2>[-/.])(?:0?[1-9]|[12]\d|3[01])(?P=s2)(?:\d{4}|\d{2})(?!\d|\.\d)",
    r"(?<!\d)(?:1[89]|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)",
    # Japanese era abbreviations: R6.3.5, H31/4/30
    r"(?<![A-Za-z\d])[MTSHRmtshr]\d{1,2}[./-]\d{1,2}[./-]\d{1,2}(?![\d])",
)
_CJK_FORMS = (
    # 2024年3月5日, 二〇二四年三月五日, 令和6年3月5日, 3月5日, 2024年3月
    rf"(?:(?:{_ERA}|{_CJK_NUMBER})\s*年\s*)?{_CJK_NUMBER}\s*月\s*{_CJK_NUMBER}\s*[日号號]",
    rf"(?:{_ERA}|\d{{4}}|[{_KANJI}]{{4}})\s*年\s*{_CJK_NUMBER}\s*月",
    # Korean: 2024년 3월 5일, 3월 5일
    r"(?:\d{2,4}\s*년\s*)?\d{1,2}\s*월\s*\d{1,2}\s*일",
)


def _compile(forms: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{form}){_TIME}" for form in forms), re.IGNORECASE)


_MONTH_PATTERN, _NUMERIC_PATTERN, _CJK_PATTERN = _compile(_MONTH_FORMS), _compile(_NUMERIC_FORMS), _compile(_CJK_FORMS)
_HAS_DIGIT = re.compile(r"\d")
_NUMERIC_HINT = re.compile(r"\d[-/.]\d\d?[-/.]\d|\d{8}")  # every numeric form holds such a run: most text has none


def _mark_months(text: str) -> str | None:
    """`text` with each month word's letters replaced by its mark (same length), or None."""
    if _MONTH_MARK.keys().isdisjoint(_WORD.findall(text.lower())):
        return None
    marked: list[str] = []
    cursor = 0
    for word in _WORD.finditer(text):
        mark = _MONTH_MARK.get(word.group().lower())
        if mark is not None:
            marked += [text[cursor:word.start()], mark * (word.end() - word.start())]
            cursor = word.end()
    return None if not marked else "".join(marked) + text[cursor:]


def date_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) of every date-shaped run in `text` (with a time written right after it);
    runs of different forms may overlap. Three passes, each only when the text can hold its
    forms: month words (marked first), numbers, CJK."""
    spans: list[tuple[int, int]] = []
    if _HAS_DIGIT.search(text):
        marked = _mark_months(text)
        if marked is not None:
            spans += [m.span() for m in _MONTH_PATTERN.finditer(marked)]
        if _NUMERIC_HINT.search(text):
            spans += [m.span() for m in _NUMERIC_PATTERN.finditer(text)]
    if not text.isascii() and ("月" in text or "월" in text):
        spans += [m.span() for m in _CJK_PATTERN.finditer(text)]
    return spans
