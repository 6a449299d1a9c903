"""The C action's identifiers (pipeline/scrub/clean.py): a name written with letters outside
ASCII is also removed where free text spells it in plain ASCII (found by the session's breaker
of issue 16: "ZQWGRUß" kept as "ZQWGRUSS" in Image Comments, present at 2f1591b too)."""

from __future__ import annotations

import io
import re

import pydicom
import pytest
from pydicom._dicom_dict import DicomDictionary, RepeatersDictionary
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.clean import (
    REDACTED,
    Identifiers,
    TokenKind,
    _collectable,
    _collected_vr,
    _tokens,
    ascii_forms,
    clean_text,
)
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from tests.conftest import encode, make_dataset

CLEAN = compile_plan("basic", ["clean-descriptors"])
SPELLED = [
    ("ZQWGRU\u00df^QJXHANS", "ZQWGRUSS"),  # ß as SS
    ("QJX\u00c9MILE^ZQW\u00d8RN", "qjxemile zqworn"),  # É without its accent, Ø as O
    ("M\u00dcLLERQJX^HANS", "MUELLERQJX"),  # Ü as German writes it in ASCII
    ("M\u00dcLLERQJX^HANS", "Mullerqjx"),  # and without its diaeresis
]


@pytest.mark.parametrize(("name", "text"), SPELLED)
def test_a_name_outside_ascii_is_cleaned_where_the_text_spells_it_in_ascii(name: str, text: str, keys: Keys) -> None:
    ds = make_dataset(patient=name)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageComments = f"seen {text} today"
    out = pydicom.dcmread(io.BytesIO(scrub_bytes(encode(ds), CLEAN, keys).data))
    assert text.upper() not in str(out.ImageComments).upper()
    assert "today" in str(out.ImageComments)  # the rest of the text stays


def test_ascii_forms_of_an_ascii_value_are_none_and_a_cjk_name_has_none() -> None:
    assert ascii_forms("SMITH") == set()
    assert ascii_forms("\u674e\u660e") == set()
    assert ascii_forms("Stra\u00dfe") == {"Strasse"}


def test_a_remembered_cleaning_belongs_to_the_identifiers_it_was_made_with() -> None:
    """clean_text remembers short texts by the text and the identifiers' pattern: the same text
    cleaned for two patients keeps each patient's own result, in either order."""
    first, second = make_dataset(), make_dataset()
    first.PatientName, second.PatientName = "TANAKA^OLGA", "SMITH^JOHN"
    tanaka, smith = Identifiers.of(first), Identifiers.of(second)
    for _ in range(2):
        assert "TANAKA" not in clean_text("FOLLOW-UP TANAKA", tanaka)
        assert clean_text("FOLLOW-UP TANAKA", smith) == "FOLLOW-UP TANAKA"
        assert "SMITH" not in clean_text("FOLLOW-UP SMITH", smith)
        assert clean_text("FOLLOW-UP SMITH", tanaka) == "FOLLOW-UP SMITH"


def test_every_element_collected_by_tag_and_vr_is_among_those_the_collection_looks_at() -> None:
    """`_collect` skips an element unless its stored VR is SQ or PN or its tag is `_collectable`:
    every public tag of the dictionary (and of the repeating groups), a private one and an
    unknown one, under every VR, is collected only where that filter lets it through."""
    tags = [*DicomDictionary, *(int(mask.replace("x", digit), 16) for mask in RepeatersDictionary
                                for digit in "0123456789ABCDEF"), 0x00091010, 0x00290020, 0x7FFF0100]
    vrs = [None, "UN", "OB", "OW", "SQ", "PN", "LO", "CS", "UI", "DA", "US"]
    collectable = _collectable()
    missed = [(hex(tag), vr) for tag in tags for vr in vrs
              if _collected_vr(tag, vr) is not None and vr not in ("SQ", "PN") and tag not in collectable]
    assert not missed
    assert 0x50002600 in collectable and 0x501E2600 in collectable  # a repeating group's sequence (50xx,2600)


@pytest.mark.parametrize("claimed", ["LO", "SH", "UT"])
def test_a_name_the_file_claims_as_other_text_is_collected_as_the_name_the_dictionary_says(
    claimed: str, keys: Keys
) -> None:
    """PatientName (PS3.6: PN) written under explicit VR LO, SH or UT: its words are collected as
    a name's, by the dictionary's VR, never the one claimed, so clean-descriptors removes them from
    free text (they were left, and verify quarantined the file: original-value-in-attribute)."""
    ds = make_dataset(patient="QUIXOTIC^ZEBULON")
    del ds.PatientName
    ds.add(DataElement(0x00100010, claimed, "QUIXOTIC^ZEBULON"))
    ds.StudyDescription = "Follow-up for Zebulon Quixotic"
    ds.ImageComments = "zebulon seen, quixotic case"
    data = encode(ds)
    assert claimed == pydicom.dcmread(io.BytesIO(data))["PatientName"].VR  # explicit VR: written as claimed
    scrubbed = scrub_bytes(data, CLEAN, keys, keep_original=True)
    out = pydicom.dcmread(io.BytesIO(scrubbed.data))
    for text in (str(out.get("StudyDescription", "")), str(out.get("ImageComments", ""))):
        assert "QUIXOTIC" not in text.upper() and "ZEBULON" not in text.upper()
    assert "case" in str(out.ImageComments)  # the rest of the text stays
    assert _collected_vr(0x00100010, claimed) == "PN"
    assert not verify_bytes(scrubbed.data, ("clean-descriptors",), original=scrubbed.before, output_path="x.dcm")


def test_a_text_vr_the_dictionary_gives_a_tag_is_kept_and_an_unknown_tag_keeps_the_claimed_one() -> None:
    assert _collected_vr(0x00081030, "LO") is None  # StudyDescription: LO, not an identifier to collect
    assert _collected_vr(0x00100020, "LO") == "LO"  # PatientID: an identifying keyword, collected as LO
    assert _collected_vr(0x00091010, "LO") is None  # a private tag: no dictionary VR, not collected


def _stored(ds: Dataset, tag: int, vr: str, value: bytes) -> None:
    """`value` stored under `vr` as raw bytes, as a file would hold them (pydicom writes them unchanged)."""
    padded = value + b" " * (len(value) % 2)
    ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(padded), padded, 0, False, True)


def _scrubbed_words(stored: tuple[int, str, bytes], text: str, keys: Keys) -> tuple[set[str], bytes, Dataset | None]:
    """A file holding `stored` (tag, VR claimed, bytes) with `text` as StudyDescription and, when
    it fits in 16 characters, RTPlanLabel (an SH), scrubbed with clean-descriptors: the words
    (letters and digits) of both, upper case; the output's bytes; verify's copy of the original."""
    ds = make_dataset(patient="QUORVAL^ZENITHA")
    tag, vr, value = stored
    if Tag(tag) in ds:
        del ds[tag]
    _stored(ds, tag, vr, value)
    ds.StudyDescription = text
    if len(text) <= 16:
        ds.RTPlanLabel = text
    scrubbed = scrub_bytes(encode(ds), CLEAN, keys, keep_original=True)
    out = pydicom.dcmread(io.BytesIO(scrubbed.data))
    written = f"{out.get('StudyDescription', '')} {out.get('RTPlanLabel', '')}".upper()
    return set(re.split(r"[^A-Za-z0-9]+", written)), scrubbed.data, scrubbed.before


# (what the file holds, the text that repeats a part of it, the parts that must not be published); from a
# breaker's leaks with clean-descriptors: names and institutions written with separators other than ^ and
# spaces, several names in one UT, a name stored under a binary VR
SEPARATED = [
    ((0x00100010, "PN", b"SMYTHE_JOHANN"), "Smythe follow-up", ["SMYTHE"]),
    ((0x00100010, "PN", b"SMYTHE/JOHANN"), "seen: Johann", ["JOHANN"]),
    ((0x00100010, "PN", b"SMYTHE:JOHANN"), "Smythe case", ["SMYTHE"]),
    ((0x00100010, "PN", b"SMYTHE&JOHANN"), "Johann again", ["JOHANN"]),
    ((0x00100010, "PN", b'SMYTHE^JOHANN "HANSI"'), "ask for Hansi", ["HANSI"]),
    ((0x00100010, "PN", b"SMYTHE^JOHANN(ANNA)"), "Anna's scan", ["ANNA"]),
    ((0x00080090, "LO", b"MULLER/SCHMIDT^JORG"), "Dr Schmidt", ["SCHMIDT"]),
    ((0x00101001, "UT", b"KESTRELL^BO\\LEE^XU"), "LEE BO", ["LEE", "BO"]),
    ((0x00080090, "FL", b"NG^WU   "), "WU", ["WU"]),
    ((0x00081050, "US", b"NG^WU   "), "assist Wu", ["WU"]),
    ((0x00081050, "AT", b"NG^WU   "), "assist Wu", ["WU"]),
    ((0x00080090, "OD", b"NG^WU   "), "assist Wu", ["WU"]),
    ((0x00080080, "LO", b"QUENTARO_FELLSWICK"), "Transfer from Fellswick", ["FELLSWICK"]),
    ((0x00080080, "LO", b"QUENTARO/FELLSWICK CLINIC"), "Transfer from Fellswick", ["FELLSWICK"]),
    ((0x00080080, "UT", b"QUENTARO\\FELLSWICK"), "Transfer from Fellswick", ["FELLSWICK"]),
    ((0x00081040, "LO", b"NEURO-FELLSWICK"), "Transfer from Fellswick", ["FELLSWICK"]),
]


def test_a_name_in_a_script_with_vowel_signs_stays_one_word() -> None:
    """Marks (Unicode category M) are part of the word they follow: राम^शर्मा gives राम and शर्मा."""
    assert {"राम", "शर्मा"} <= _tokens("राम^शर्मा", TokenKind.NAME)


# (what the file holds, the text repeating it, the words that must go); a second breaker's leaks with
# clean-descriptors: an ID written without its separators, identifying keywords stored under a binary VR,
# Table E.1-1 attributes C did not read
MORE_IDENTIFIERS = [
    ((0x00100020, "LO", b"AB-7731"), "ref AB7731", ["AB7731"]),
    ((0x00080050, "SH", b"RZ/20/5518"), "acc RZ205518", ["RZ205518"]),
    ((0x00080080, "FL", b"QUENTARO FELLSWICK CLINIC   "), "Fellswick protocol, Quentaro", ["FELLSWICK", "QUENTARO"]),
    ((0x00081010, "US", b"CTFELLS01 "), "done on CTFELLS01", ["CTFELLS01"]),
    ((0x00181000, "OD", b"SN77QX41"), "serial SN77QX41", ["SN77QX41"]),
    ((0x00080092, "ST", b"12 BRAMBLECOTE LANE"), "from Bramblecote", ["BRAMBLECOTE"]),
    ((0x00402016, "LO", b"ORD-5521-KX"), "order ORD5521KX", ["ORD5521KX"]),
    ((0x00400242, "SH", b"CTVORNAK2"), "on CTVORNAK2 today", ["CTVORNAK2"]),
    ((0x00380300, "LO", b"WARD 7 VORNAKIS WING"), "Vornakis wing", ["VORNAKIS"]),
    ((0x00100021, "LO", b"Larkspur General"), "prior at Larkspur", ["LARKSPUR"]),  # an issuer is an organisation
]


# (what the file holds, a descriptor, the words of it that must stay): an ID, a date or a number is not
# split into its pieces, which would take clinical words out of every descriptor (the breaker's table)
KEPT_WORDS = [
    ((0x00081010, "SH", b"MR_3T_01"), "MR BRAIN 3T series 01", ["MR", "BRAIN", "3T", "01"]),
    ((0x00401001, "SH", b"CT-HEAD-01"), "CT HEAD W/O", ["CT", "HEAD"]),
    ((0x00100030, "DA", b"1985-03-12"), "slice 03 of 12", ["03", "12"]),
    ((0x00102154, "SH", b"+44 (0)20 7946-0958"), "Contrast 20 ml at 44 s", ["20", "44"]),
    ((0x00100020, "LO", b"MR-2024-001"), "MR 2024 protocol", ["MR", "2024"]),
    ((0x00200010, "SH", b"CT.ABD.5"), "CT ABD", ["CT", "ABD"]),
    ((0x00181000, "LO", b"T1-PLUS.3"), "T1 PLUS", ["T1", "PLUS"]),
]


@pytest.mark.parametrize(("stored", "text", "kept"), KEPT_WORDS)
def test_an_id_is_not_taken_apart_into_words_that_descriptors_need(
    stored: tuple[int, str, bytes], text: str, kept: list[str], keys: Keys
) -> None:
    words, data, before = _scrubbed_words(stored, text, keys)
    assert set(kept) <= words, words
    assert not verify_bytes(data, ("clean-descriptors",), original=before, output_path="x.dcm")


# a third round: what a text repeats of an ID, and names written without their apostrophes or spaces
RUNS_AND_PARTICLES = [
    ((0x00402016, "LO", b"ORD-5521-KX"), "order / 5521-KX", ["5521", "KX"]),
    ((0x00100020, "LO", b"0047731"), "MRN 47731 prior", ["47731"]),
    ((0x00100010, "PN", b"O'BRIEN^SEAN"), "Pt OBrien", ["OBRIEN"]),
    ((0x00100010, "PN", b"D'ANGELO^LUCA"), "Pt Dangelo", ["DANGELO"]),
    ((0x00100010, "PN", b"DE LA CRUZ^ANA"), "Pt Delacruz", ["DELACRUZ"]),
]


@pytest.mark.parametrize(("stored", "text", "parts"), SEPARATED + MORE_IDENTIFIERS + RUNS_AND_PARTICLES)
def test_the_words_of_an_identifier_are_collected_whatever_separates_them_and_whatever_vr_holds_a_name(
    stored: tuple[int, str, bytes], text: str, parts: list[str], keys: Keys
) -> None:
    """C collects an identifier's words split at every character that is not a letter, a mark or
    a digit, and a name by the dictionary's PN whatever VR the file claims (PS3.6; PS3.5 7.1.2):
    free text repeating a part is cleaned, and verify clears the output."""
    words, data, before = _scrubbed_words(stored, text, keys)
    assert not words & set(parts), (words, stored[1])
    assert not verify_bytes(data, ("clean-descriptors",), original=before, output_path="x.dcm")


# a fourth round (IDs): the ID as any separators write it, a padded number without its zeros ...
ID_FORMS = [
    ((0x00100020, "LO", b"MRN-0047731"), "MRN 0047731 prior", ["0047731"]),
    ((0x00100020, "LO", b"MRN-0047731"), "MRN:47731", ["47731"]),
    ((0x00402016, "LO", b"ORD_5521_KX"), "order ORD-5521-KX", ["ORD", "5521", "KX"]),
    ((0x00402016, "LO", b"ORD-5521-KX"), "order ORD 5521 KX", ["ORD", "5521", "KX"]),
    ((0x00080050, "SH", b"A2024-0001"), "acc A2024/0001", ["A2024", "0001"]),
    ((0x00100020, "LO", b"AB-7731"), "ref AB 7731", ["AB", "7731"]),
    ((0x00100020, "LO", b"47731"), "MRN 0047731", ["0047731"]),
]
# ... and what an ID must not take out of a descriptor: a piece that is also a number or a term
ID_KEPT = [
    ((0x00100020, "LO", b"0002024"), "follow-up 2024", ["2024"]),
    ((0x00080050, "SH", b"0001024"), "CT CHEST 1024 x 1024 matrix", ["1024", "CT", "CHEST"]),
    ((0x00181000, "LO", b"SN 1.25.3"), "CT CHEST 1.25 mm", ["1", "25", "CHEST"]),
    ((0x00181000, "LO", b"B-1000-7731"), "DWI B1000 ADC", ["B1000"]),
    ((0x00081010, "SH", b"MR-3T-01"), "MR3T BRAIN; 3T01", ["MR3T", "3T01"]),
    ((0x00400242, "SH", b"MR 1.5T"), "MR BRAIN 1.5T", ["MR", "BRAIN"]),
    ((0x00181008, "LO", b"GANTRY 3T"), "MR BRAIN 3T", ["3T"]),
    ((0x00080094, "SH", b"617 555 0123 ext 20"), "Contrast 20 ml, 555 series", ["20", "555"]),
    ((0x00081010, "SH", b"CT 01"), "CT CHEST", ["CT"]),
    ((0x00100020, "PN", b"MR-2024-001"), "MR BRAIN follow-up 2024 T1", ["MR", "2024", "T1"]),
]


@pytest.mark.parametrize(("stored", "text", "parts"), ID_FORMS)
def test_an_id_is_cleaned_however_a_text_separates_or_pads_it(
    stored: tuple[int, str, bytes], text: str, parts: list[str], keys: Keys
) -> None:
    words, data, before = _scrubbed_words(stored, text, keys)
    assert not words & set(parts), words
    assert not verify_bytes(data, ("clean-descriptors",), original=before, output_path="x.dcm")


@pytest.mark.parametrize(("stored", "text", "kept"), ID_KEPT)
def test_an_ids_pieces_stay_in_a_descriptor_that_uses_them_otherwise(
    stored: tuple[int, str, bytes], text: str, kept: list[str], keys: Keys
) -> None:
    words, data, before = _scrubbed_words(stored, text, keys)
    assert set(kept) <= words, words
    assert not verify_bytes(data, ("clean-descriptors",), original=before, output_path="x.dcm")


def test_a_house_number_alone_is_not_taken_from_a_descriptor_but_a_postcode_is() -> None:
    """A place's words (WORD_KEYWORDS) without its short numbers: 20 Chest Road takes no 20 out of
    "Contrast 20 ml"; its postcode's parts (SW1A, 1AA; 02139) still count."""
    words = _tokens("20 Chest Road, SW1A 1AA", TokenKind.WORDS)
    assert "20" not in words and {"Chest", "Road", "SW1A", "1AA"} <= words
    assert "02139" in _tokens("Boston 02139", TokenKind.WORDS)


# the header in plain ASCII, the text with its letters' accents (a breaker's leaks: C folded the
# header's accented values to ASCII, never the text)
ACCENTED_IN_TEXT = [
    ("MUELLER^JOERG", "Patient Jörg Müller seen", ["JÖRG", "MÜLLER"]),
    ("MULLER^JORG", "Patient Jörg Müller seen", ["JÖRG", "MÜLLER"]),
    ("GARCIA^JOSE", "José García seen", ["JOSÉ", "GARCÍA"]),
    ("LEFEVRE^FRANCOIS", "François Lefèvre seen", ["FRANÇOIS", "LEFÈVRE"]),
    ("YILMAZ^ISIK", "I\u015f\u0131k Y\u0131lmaz seen", ["I\u015eIK", "YILMAZ"]),  # dotless i
    ("NGUYEN^THI HUONG", "Nguyễn Thị Hương seen", ["NGUYỄN", "HƯƠNG"]),
    ("SØRENSEN^KÅRE", "Soerensen Kaare seen", ["SOERENSEN", "KAARE"]),
]


@pytest.mark.parametrize(("name", "text", "parts"), ACCENTED_IN_TEXT)
def test_a_name_the_header_writes_in_ascii_is_cleaned_where_the_text_writes_its_accents(
    name: str, text: str, parts: list[str], keys: Keys
) -> None:
    ds = make_dataset(patient=name)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyDescription = text
    scrubbed = scrub_bytes(encode(ds), CLEAN, keys, keep_original=True)
    out = str(pydicom.dcmread(io.BytesIO(scrubbed.data)).StudyDescription)
    assert not {w.upper() for w in re.split(r"\W+", out)} & set(parts), out
    assert out.endswith("seen")  # the rest of the text stays
    assert not verify_bytes(scrubbed.data, ("clean-descriptors",), original=scrubbed.before, output_path="x.dcm")


# marks on one side only: Greek accents, Arabic vowel marks, a Tamil vowel sign written as two code
# points, a Persian zero-width non-joiner (a breaker's leaks)
MARKED = [
    ("\u03a0\u03b1\u03c0\u03b1\u03b4\u03cc\u03c0\u03bf\u03c5\u03bb\u03bf\u03c2^\u0393\u03b9\u03ce\u03c1\u03b3\u03bf\u03c2",
     "\u03a0\u0391\u03a0\u0391\u0394\u039f\u03a0\u039f\u03a5\u039b\u039f\u03a3 seen"),
    ("\u03a0\u0391\u03a0\u0391\u0394\u039f\u03a0\u039f\u03a5\u039b\u039f\u03a3^\u0393\u0399\u03a9\u03a1\u0393\u039f\u03a3",
     "\u03a0\u03b1\u03c0\u03b1\u03b4\u03cc\u03c0\u03bf\u03c5\u03bb\u03bf\u03c2 seen"),
    ("\u0645\u064f\u062d\u064e\u0645\u0651\u064e\u062f^\u0639\u064e\u0644\u0650\u064a\u0651",
     "\u0645\u062d\u0645\u062f seen"),
    ("\u0645\u062d\u0645\u062f^\u0639\u0644\u064a",
     "\u0645\u064f\u062d\u064e\u0645\u0651\u064e\u062f seen"),
    ("\u0645\u062d\u0645\u062f\u0631\u0636\u0627^\u0627\u062d\u0645\u062f\u06cc",
     "\u0645\u062d\u0645\u062f\u200c\u0631\u0636\u0627 seen"),
    ("\u0b95\u0bca\u0baa\u0bbe\u0bb2\u0bcd^\u0bb0\u0bbe\u0b9c\u0bcd",
     "Dr \u0b95\u0bc6\u0bbe\u0baa\u0bbe\u0bb2\u0bcd seen"),
]


@pytest.mark.parametrize(("name", "text"), MARKED)
def test_a_name_is_cleaned_where_only_one_side_writes_its_marks(name: str, text: str, keys: Keys) -> None:
    ds = make_dataset(patient=name)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyDescription = text
    scrubbed = scrub_bytes(encode(ds), CLEAN, keys, keep_original=True)
    out = str(pydicom.dcmread(io.BytesIO(scrubbed.data)).StudyDescription)
    assert out.endswith(f"{REDACTED} seen"), out
    assert not verify_bytes(scrubbed.data, ("clean-descriptors",), original=scrubbed.before, output_path="x.dcm")
