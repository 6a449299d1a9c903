"""verify's own spellings (pipeline/verify/spellings.py) of the original's dates and names,
issue 13 kinds 4 and 5: planted into an otherwise clean scrubbed file, each is found, in the
attribute it was put in; dates that are not the original's, and text around them, are not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.clean import Identifiers, clean_text
from pipeline.scrub.keys import Keys
from pipeline.scrub.textdates import date_spans
from pipeline.verify.checks import verify_bytes
from pipeline.verify.findings import Finding, VerifyRule
from pipeline.verify.original import Kind
from pipeline.verify.spellings import _SPACES, date_spellings, fold, name_spellings, spellings_of
from tests.conftest import encode, make_dataset, read
from tests.scrub.test_textdates import (
    KEPT_TEXT,
    NAMES,
    OPTIONS,
    OTHER_DATES,
    SPELLED_DATES,
    _dataset,
    _scrub,
    _text_item,
)


def _clean_pair(patient: str = "Yamada^Tarou=山田^太郎=ヤマダ^タロウ") -> tuple[bytes, Dataset]:
    """An original with text in the cleaned attributes, and its scrubbed output (which verify passes)."""
    ds = _dataset(patient)
    ds.ImageComments = "CT HEAD 5 mm"
    ds.StudyDescription = "T2 FLAIR"
    ds.ContentSequence = Sequence([_text_item("3 out of 5 stable")])
    original, output = _scrub(ds)
    assert verify_bytes(output, OPTIONS, original=original) == []
    return original, read(output)


def _plant(output: Dataset, where: str, text: str) -> bytes:
    if where == "TextValue":
        output.ContentSequence[0].TextValue = f"Compared with {text}: stable"
    else:
        setattr(output, where, f"{text} CT 5 mm" if where == "StudyDescription" else f"Seen {text}, CT HEAD 5 mm")
    return encode(output)


def _flags(findings: list[Finding], where: str, kind: Kind) -> bool:
    path = "ContentSequence[0].TextValue" if where == "TextValue" else where
    return any(f.rule is VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE and f.path == path and f.detail == kind.value
               for f in findings)


@pytest.mark.parametrize("where", ["ImageComments", "StudyDescription", "TextValue"])
def test_each_spelling_of_the_originals_dates_planted_is_flagged(where: str) -> None:
    original, output = _clean_pair()
    missed = [s for s in SPELLED_DATES
              if not _flags(verify_bytes(_plant(output, where, s), OPTIONS, original=original), where, Kind.DATE)]
    assert missed == []


@pytest.mark.parametrize("where", ["ImageComments", "TextValue"])
def test_each_name_written_without_spaces_planted_is_flagged(where: str) -> None:
    missed: list[tuple[str, str]] = []
    for patient, spellings in NAMES.items():
        original, output = _clean_pair(patient)
        for spelling in spellings:
            findings = verify_bytes(_plant(output, where, f"患者{spelling}様"), OPTIONS, original=original)
            if not _flags(findings, where, Kind.PERSON_NAME):
                missed.append((patient.split("=")[0], spelling))
    assert missed == []


@pytest.mark.parametrize("text", OTHER_DATES + KEPT_TEXT + ("李 CT", "明 T2", "15 March 2024", "5.3.24.1",
                                                            "March 15", "Mar 5 2023", "2024", "March 2024"))
def test_text_that_is_not_the_originals_is_not_flagged(text: str) -> None:
    original, output = _clean_pair("Li^Ming=李^明")
    assert verify_bytes(_plant(output, "ImageComments", text), OPTIONS, original=original) == []


def test_a_kept_attribute_that_spells_the_date_is_the_profiles_to_allow() -> None:
    """Manufacturer (K) keeps its words; the same date in cleaned text is flagged."""
    ds = _dataset()
    ds.Manufacturer = "Model of 5 March 2024"
    ds.ImageComments = "CT HEAD"
    original, output = _scrub(ds)
    assert read(output).Manufacturer == "Model of 5 March 2024"
    assert verify_bytes(output, OPTIONS, original=original) == []
    planted = read(output)
    planted.ImageComments = "Seen 5 March 2024"
    assert _flags(verify_bytes(encode(planted), OPTIONS, original=original), "ImageComments", Kind.DATE)


def test_spellings_fold_separators_scripts_and_month_names() -> None:
    found = spellings_of(date_spellings("20240305"))
    same = ["05-MAR-2024", "05MAR2024", "5. März 2024", "March 5, 2024", "２０２４年３月５日", "2024 년 3 월 5 일"]
    assert all(next(found.find(fold(text)), None) is not None for text in same)
    assert date_spellings("19000101") == frozenset() and date_spellings("") == frozenset()
    assert name_spellings("Yamada^Tarou") == frozenset()  # spaced scripts: the identifier search's business
    assert name_spellings("李^明") == {"李明", "明李", "李 明", "明 李"}  # one-character parts only together
    assert {"ヤマダ", "タロウ", "ヤマダタロウ"} <= name_spellings("ﾔﾏﾀﾞ^ﾀﾛｳ")


_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
       "November", "December")
_DE = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November",
       "Dezember")
_ES = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
       "noviembre", "diciembre")


def _ordinal(n: int) -> str:
    return f"{n}{'th' if n in (11, 12, 13) else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


_WRITTEN: tuple[Callable[[date], str], ...] = (
    lambda d: f"{d.day} {_EN[d.month - 1]} {d.year}",
    lambda d: f"{_EN[d.month - 1]} {_ordinal(d.day)}, {d.year}",
    lambda d: f"{_ordinal(d.day)} of {_EN[d.month - 1]} {d.year}",
    lambda d: f"{d.day:02d}-{_EN[d.month - 1][:3].upper()}-{d.year}",
    lambda d: f"{d.day:02d}{_EN[d.month - 1][:3].upper()}{d.year % 100:02d}",
    lambda d: f"{d.day}. {_DE[d.month - 1]} {d.year}",
    lambda d: f"{d.day} de {_ES[d.month - 1]} de {d.year}",
    lambda d: f"{d.year}年{d.month}月{d.day}日",
    lambda d: f"{d.year}년 {d.month}월 {d.day}일",
    lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}",
    lambda d: f"{d.month}/{d.day}/{d.year % 100:02d}",
    lambda d: f"{d.day}.{d.month}.{d.year}",
    lambda d: f"{d.year}{d.month:02d}{d.day:02d}",
)


@settings(max_examples=300, deadline=None)
@given(st.dates(date(1901, 1, 1), date(2099, 12, 31)), st.sampled_from(range(len(_WRITTEN))))
def test_any_date_written_any_way_is_found_by_verify_and_by_the_scrub(day: date, form: int) -> None:
    """Both readings, each its own: verify's spellings of the value and the scrub's grammar."""
    written = _WRITTEN[form](day)
    text = f"Seen {written}; CT HEAD 5 mm"
    found = spellings_of(date_spellings(day.strftime("%Y%m%d")))
    assert next(found.find(fold(text)), None) is not None
    start = text.index(written)
    assert any(a <= start and b >= start + len(written) for a, b in date_spans(text))



@settings(max_examples=300, deadline=None)
@given(st.dates(date(1901, 1, 1), date(2099, 12, 31)))
def test_every_date_spelling_is_written_as_fold_writes_text(day: date) -> None:
    """Spellings are matched against folded text, whose runs of spaces and commas are one space
    with none at the ends: a spelling written otherwise would never be found."""
    for spelling in date_spellings(day.strftime("%Y%m%d")):
        assert _SPACES.sub(" ", spelling).strip() == spelling

_HAN = "李王张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗明华伟芳娜敏静丽强磊军洋勇艳杰娟涛超秀霞平刚桂英"


@settings(max_examples=200, deadline=None)
@given(st.text(_HAN, min_size=1, max_size=2), st.text(_HAN, min_size=1, max_size=2), st.booleans())
def test_any_cjk_name_run_together_is_removed_by_the_scrub_and_found_by_verify(
        family: str, given_name: str, given_first: bool) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = f"Romanised^Name={family}^{given_name}"
    joined = given_name + family if given_first else family + given_name
    text = f"患者{joined}様の所見 CT 5 mm"
    cleaned = clean_text(text, Identifiers.of(ds))
    assert joined not in cleaned and cleaned.startswith("患者") and cleaned.endswith("様の所見 CT 5 mm")
    found = spellings_of(name_spellings(f"{family}^{given_name}"))
    assert next(found.find(fold(text)), None) is not None
    if len(family) == 1 and family not in given_name:  # alone, a one-character family name is no finding
        assert next(found.find(fold(f"患者{family}様の所見")), None) is None


@pytest.mark.parametrize("value", ["\u00b20180624", "2018\u00b906\u00b324", "".join(map(chr, range(0x2460, 0x2468)))])
def test_a_date_of_digits_int_cannot_read_spells_no_date(value: str) -> None:
    """Superscripts and circled digits are digits to `str.isdigit` but not decimal: `int` could
    not read them, and date_spellings raised (PS3.5 Table 6.2-1: DA is "0"-"9")."""
    assert date_spellings(value) == frozenset()


def test_an_original_date_holding_a_superscript_digit_is_searched_not_unreadable() -> None:
    """Was verify:original-unreadable (`make fuzz`, seed 3819846985): a flipped bit made the 2 of
    a date the byte 0xB2, read as Latin-1 "²"; the original's dates could not be spelled, so
    verify could not search the output for the original's values."""
    ds = make_dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate = "20180624"
    data = encode(ds).replace(b"20180624", b"\xb20180624")
    output = scrub_bytes(data, compile_plan("basic"), Keys(key=b"k" * 32)).data
    assert verify_bytes(output, (), original=data) == []
