"""Issue 13, kinds 4 and 5: dates as people write them and names in scripts without spaces,
inside text that Clean Descriptors or Clean Structured Content keeps (PS3.15 E.3.5, E.3.6),
are not published. Each input is built here; the scrub's grammar (pipeline/scrub/textdates.py)
removes them, the words around them stay, and verify (its own spellings) finds nothing left
over. tests/verify/test_spellings.py plants them back and expects verify's finding."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.profile.plan import compile_plan
from pipeline.runner.discover import SourceFile
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import WorkerConfig, process_one, scrub_bytes
from pipeline.scrub.clean import Identifiers, clean_text
from pipeline.scrub.keys import Keys
from pipeline.scrub.textdates import date_spans
from pipeline.verify.checks import verify_bytes
from tests.conftest import encode, make_dataset, read

KEYS = Keys(key=b"t" * 32)
OPTIONS = ("clean-descriptors", "clean-structured-content")
STUDY_DATE = "20240305"
BIRTH_DATE = "19800215"
# The study date and the birth date as people write them (issue 13, kind 4).
SPELLED_DATES = (
    "5 March 2024", "March 5th, 2024", "5th of March 2024", "5th of March, 2024", "Mar 5 2024", "Mar. 5, 2024",
    "05-MAR-2024", "05MAR2024", "05-MAR-24", "5 Mar '24", "2024 Mar 05", "5 mars 2024",
    "5. März 2024", "5. Maerz 2024", "5 de marzo de 2024", "5 marzo 2024", "5 de março de 2024", "5 maart 2024",
    "5 marca 2024", "5 марта 2024", "2024-03-05", "2024/3/5", "05/03/2024", "03/05/2024",
    "5.3.2024", "5.3.24", "05.03.24", "20240305", "2024-03-05T10:15:00", "5 March 2024 at 10:15",
    "2024年3月5日", "2024年03月05日", "２０２４年３月５日", "二〇二四年三月五日", "令和6年3月5日", "R6.3.5",
    "2024년 3월 5일", "3月5日", "March 5th", "5 March", "15 February 1980", "Feb 15, 1980", "15.02.1980",
    "1980年2月15日", "昭和55年2月15日", "\uff15 March \uff12\uff10\uff12\uff14",  # full-width digits
)
OTHER_DATES = ("1er mars 2024", "5 maj 2024", "31 December 1999", "Dec 31st, 1999", "1999年12月31日", "31.12.99",
               "12/31/1999", "1999-12-31")  # not the original's: the scrub removes them, verify does not look
KEPT_TEXT = ("CT HEAD 5 mm", "T2 FLAIR", "CT HEAD W/O", "5 mg", "slice 3 of 24", "SE 4 IM 12", "3 out of 5",
             "L4-L5", "1.5T", "120/80", "5.00.02", "v10.0.1", "AX T1 POST", "Patient may return", "頭部CT 5mm",
             "뇌 MRI")
# PN with alphabetic, ideographic and phonetic groups (PS3.5 6.2.1.2), and the names as text
# writes them: run together, either order, one-character parts only joined (kind 5).
NAMES = {
    "Yamada^Tarou=山田^太郎=ヤマダ^タロウ": ("山田太郎", "太郎山田", "山田", "ヤマダタロウ", "ﾔﾏﾀﾞﾀﾛｳ", "やまだたろう",
                                          "YAMADATAROU", "\uff39\uff21\uff2d\uff21\uff24\uff21"),  # full-width
    "Li^Ming=李^明": ("李明", "明李", "LiMing"),
    "Kim^Minjun=김^민준": ("김민준", "민준"),
    "Ou Yang^Na Na=欧阳^娜娜": ("欧阳娜娜", "娜娜"),
}


def _dataset(patient: str = "Yamada^Tarou=山田^太郎=ヤマダ^タロウ") -> Dataset:
    ds = make_dataset(patient=patient)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyDate = STUDY_DATE
    ds.PatientBirthDate = BIRTH_DATE
    return ds


def _text_item(text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", text
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121071", "DCM", "Finding"
    item.ConceptNameCodeSequence = Sequence([concept])
    return item


def _scrub(ds: Dataset) -> tuple[bytes, bytes]:
    original = encode(ds)
    return original, scrub_bytes(original, compile_plan("basic", list(OPTIONS)), KEYS).data


def _texts(output: bytes) -> dict[str, str]:
    ds = read(output)
    return {"ImageComments": str(ds.get("ImageComments", "")), "StudyDescription": str(ds.get("StudyDescription", "")),
            "TextValue": str(ds.ContentSequence[0].TextValue) if "ContentSequence" in ds else ""}


@pytest.mark.parametrize("spelling", SPELLED_DATES + OTHER_DATES)
def test_a_spelled_date_is_one_run_of_the_grammar(spelling: str) -> None:
    spelling = unicodedata.normalize("NFKC", spelling)  # as clean_text reads text outside ASCII
    assert (5, 5 + len(spelling)) in date_spans(f"seen {spelling} here")


@pytest.mark.parametrize("text", KEPT_TEXT)
def test_descriptor_text_is_not_read_as_a_date(text: str) -> None:
    assert date_spans(text) == []
    assert clean_text(text, Identifiers.of(_dataset())) == text


@pytest.mark.parametrize("spelling", SPELLED_DATES + OTHER_DATES)
def test_a_spelled_date_in_kept_text_is_not_published(spelling: str) -> None:
    ds = _dataset()
    ds.ImageComments = f"Seen {spelling}; CT HEAD 5 mm"
    ds.StudyDescription = f"T2 FLAIR {spelling}"
    ds.ContentSequence = Sequence([_text_item(f"Compared with {spelling}: 3 out of 5 stable")])
    original, output = _scrub(ds)
    texts = _texts(output)
    assert all(spelling not in text for text in texts.values()), texts
    assert texts["ImageComments"].endswith("; CT HEAD 5 mm") and texts["StudyDescription"].startswith("T2 FLAIR ")
    assert texts["TextValue"].startswith("Compared with ") and texts["TextValue"].endswith(": 3 out of 5 stable")
    assert verify_bytes(output, OPTIONS, original=original) == []


@pytest.mark.parametrize(("patient", "spellings"), list(NAMES.items()))
def test_a_name_written_without_spaces_is_not_published(patient: str, spellings: tuple[str, ...]) -> None:
    for spelling in spellings:
        ds = _dataset(patient)
        ds.ImageComments = f"患者{spelling}様 頭部CT 5mm"
        ds.StudyDescription = f"{spelling} T2 FLAIR"
        ds.ContentSequence = Sequence([_text_item(f"{spelling}さんの所見 CT HEAD")])
        original, output = _scrub(ds)
        texts = _texts(output)
        assert all(spelling not in text for text in texts.values()), (spelling, texts)
        assert texts["ImageComments"].startswith("患者") and texts["ImageComments"].endswith("様 頭部CT 5mm")
        assert texts["StudyDescription"].endswith(" T2 FLAIR") and texts["TextValue"].endswith("さんの所見 CT HEAD")
        assert verify_bytes(output, OPTIONS, original=original) == []


def test_a_one_character_name_part_alone_stays() -> None:
    """李 (a common family name) alone is no identifier; joined to 明 it is."""
    ds = _dataset("Li^Ming=李^明")
    ds.ImageComments = "李 CT HEAD, 明 T2"
    original, output = _scrub(ds)
    assert _texts(output)["ImageComments"] == "李 CT HEAD, 明 T2"
    assert verify_bytes(output, OPTIONS, original=original) == []


def test_a_japanese_character_set_is_cleaned_and_written_back() -> None:
    """The same text in ISO 2022 IR 87 (JIS X 0208): cleaned, then encoded again."""
    ds = _dataset("Yamada^Tarou=山田^太郎=やまだ^たろう")
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.ImageComments = "山田太郎 2024年3月5日 頭部CT"
    original, output = _scrub(ds)
    text = _texts(output)["ImageComments"]
    assert "山田" not in text and "2024" not in text and text.endswith("頭部CT")
    assert verify_bytes(output, OPTIONS, original=original) == []


def _all_text(ds: Dataset) -> str:
    texts: list[str] = []
    for elem in ds.iterall():
        if elem.VR in ("SH", "LO", "ST", "LT", "UT", "UC", "PN", "CS", "DA", "DT", "TM"):
            texts.append(str(elem.value))
    return "\n".join(texts)


@pytest.mark.parametrize("charset", ["ISO_IR 192", ["", "ISO 2022 IR 87"]])
def test_the_runner_publishes_the_kinds_clean(charset: str | list[str], tmp_path: Path) -> None:
    """Through process_one (scrub, verify, publish): every input is written and no spelling of a
    date or a name is left in the release, in its bytes (UTF-8) or its parsed text."""
    cfg = WorkerConfig(tmp_path / "release", tmp_path / "quarantine")
    plan = compile_plan("basic", list(OPTIONS))
    names = {k: v for k, v in NAMES.items() if charset == "ISO_IR 192" or k.startswith("Yamada")}
    planted: list[str] = []
    for index, (patient, spellings) in enumerate(names.items()):
        ds = _dataset(patient)
        ds.SpecificCharacterSet = charset
        dates = [s for s in SPELLED_DATES if charset == "ISO_IR 192" or s.isascii() or "年" in s]
        ds.ImageComments = "; ".join(f"CT HEAD {d}" for d in dates)
        ds.StudyDescription = f"{spellings[0]} T2 FLAIR"
        ds.ContentSequence = Sequence([_text_item(" ".join(f"{s}さん" for s in spellings if charset == "ISO_IR 192"
                                                           or s in ("山田太郎", "山田")))])
        source = tmp_path / f"in{index}.dcm"
        source.write_bytes(encode(ds))
        outcome = process_one(SourceFile(source, source.stat().st_size, index), plan, KEYS, cfg)
        assert outcome.disposition is Disposition.WRITTEN, outcome.reason
        planted += dates + list(spellings)
    released = list((tmp_path / "release").rglob("*.dcm"))
    assert len(released) == len(names)
    for path in released:
        data = path.read_bytes()
        text = _all_text(read(data)).lower()
        data = data.lower()
        assert "ct head" in text and "t2 flair" in text
        assert [s for s in planted if s.lower() in text or s.lower().encode() in data] == []
