"""PS3.15 action C for text: keep the text, remove what identifies.

`Identifiers.of(dataset)` collects the identifying values one dataset carries anywhere
(every person-name component, the components of a name joined without spaces as CJK scripts
and run-together spellings write them, IDs, accession number, institution, addresses, phone
numbers, dates in their common spellings); `clean_text` removes each of them from a text,
case-insensitively and in any order of name components, and also removes anything shaped
like a date (pipeline/scrub/textdates.py, any language or script), a phone number or an
e-mail address. Text outside ASCII is matched in its NFKC form (full-width digits and
letters, half-width katakana), katakana read as hiragana, and the matches are cut from the
text as it was written.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydicom._dicom_dict import DicomDictionary, RepeatersDictionary
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from pipeline.dicom.dictionary import UNKNOWN, dictionary_vr
from pipeline.dicom.sequences import decoded
from pipeline.dicom.stored import stored_values
from pipeline.scrub.textdates import date_spans
from pipeline.scrub.vr import needs_retyping, read_as, retyped

REDACTED = "[removed]"
MIN_TOKEN = 2  # single letters (initials) are too common to remove everywhere; "Li" is a name

# Attributes whose values are identifiers wherever they stand (besides every PN value).
IDENTIFYING_KEYWORDS: tuple[str, ...] = (
    "PatientID",
    "OtherPatientIDs",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PersonTelephoneNumbers",
    "PersonAddress",
    "StationName",
    "DeviceSerialNumber",
    "MedicalRecordLocator",
    "AdmissionID",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "PerformedProcedureStepID",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "MilitaryRank",
    "BranchOfService",
    "RegionOfResidence",
    "CountryOfResidence",
    "EthnicGroup",
    "Occupation",
    # PS3.15 Table E.1-1 rows (X, Z or X/D) whose values name a place, an organisation, a station or an order
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "PatientInstitutionResidence",
    "CurrentPatientLocation",
    "ResponsibleOrganization",
    "ScheduledStationName",
    "ScheduledProcedureStepLocation",
    "PerformedStationName",
    "PerformedLocation",
    "DetectorID",
    "GantryID",
    "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest",
    "PatientTelecomInformation",
    "PersonTelecomInformation",
)
# Of those, the ones whose values are words (places, organisations, ranks): split into words as a
# name is. The others are IDs, numbers and dates, taken whole with any separators ("AB-7731" is also
# "AB 7731" and "AB7731") and by their longer runs, never piece by piece, so that "MR_3T_01" or
# "CT-HEAD-01" does not take MR, 3T, CT or HEAD out of every descriptor (`_id_forms`).
WORD_KEYWORDS: frozenset[str] = frozenset({
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "PatientAddress", "PersonAddress",
    "ReferringPhysicianAddress", "PatientInstitutionResidence", "CurrentPatientLocation", "ResponsibleOrganization",
    "ScheduledProcedureStepLocation", "PerformedLocation", "MilitaryRank", "BranchOfService", "RegionOfResidence",
    "CountryOfResidence", "EthnicGroup", "Occupation", "IssuerOfPatientID",
})


class TokenKind(StrEnum):
    """How a collected value is taken apart (`_tokens`)."""

    NAME = "name"  # a person's name: its words, and its parts joined as scripts without spaces write them
    WORDS = "words"  # a place or an organisation: its words
    ID = "id"  # an ID, a number, a date: whole, with any separators or none, and its longer runs (`_id_forms`)

_PATTERNS = re.compile(
    r"""
      [\w.+-]+@[\w-]+\.[\w.-]+                                  # e-mail
    | (?:\+|\b)\d[\d\s().-]{6,}\d\b                             # phone numbers, long IDs
    """,
    re.IGNORECASE | re.VERBOSE,
)


def date_spellings(value: str) -> set[str]:
    """Common spellings of a DA value YYYYMMDD (textdates.date_spans finds the others)."""
    text = value.strip()
    if len(text) != 8 or not text.isdigit():
        return {text} if text else set()
    y, m, d = text[:4], text[4:6], text[6:]
    return {text, f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{y}.{m}.{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}",
            f"{d}.{m}.{y}", f"{d}-{m}-{y}"}


def joined_names(group: str) -> set[str]:
    """A person's name as scripts without spaces write it: the components of one PN component
    group run together, family then given and given then family (CJK: 李^明 -> 李明, 明李; a
    one-character part is identifying only joined to another), and the same with one space
    between the parts (李 明: a one-character part next to the other, spaced as Latin names are)."""
    parts = [p for p in re.split(r"[\^\s,]+", group) if p]
    if len(parts) < 2:
        return set()
    joined = {"".join(parts), "".join(reversed(parts)), parts[0] + parts[1], parts[1] + parts[0]}
    spaced = {" ".join(parts), " ".join(reversed(parts)), f"{parts[0]} {parts[1]}", f"{parts[1]} {parts[0]}"}
    return {name for name in joined | spaced if len(name) >= MIN_TOKEN}


@functools.lru_cache(maxsize=4096)
def _tokens(value: str, kind: TokenKind = TokenKind.ID) -> frozenset[str]:
    """The value whole and its parts. A name's or a place's words are split at every character
    that is not a letter, a mark or a digit (the ^ and = of PN, and whatever a file writes in
    their place: "SMYTHE_JOHANN", "MULLER/SCHMIDT", "QUENTARO_FELLSWICK", names a UT holds apart by
    backslashes; "Smith-Jones" leaves neither "Smith" nor "Jones"); a person name is also taken
    with its parts joined. An ID is taken whole, each value of a multi-valued one apart, and as
    `_id_forms` says. Remembered: the files of one patient carry the same values."""
    if not value.isascii():
        value = unicodedata.normalize("NFKC", value).translate(_HIRAGANA)
    parts = {value.strip()}
    if kind is TokenKind.ID:
        for each in value.split("\\"):  # the values of a multi-valued ID held in one UT
            parts.add(each.strip())
            parts.update(_id_forms(each))
    elif kind is TokenKind.WORDS:  # a house number alone (20) is no one's; a postcode (02139, SW1A 1AA) is kept
        parts.update(word for word in _words(value) if len(word) >= _MIN_NUMBER or not word.isdigit())
    else:
        parts.update(_words(value))
    if kind is TokenKind.NAME:
        for group in value.split("="):
            parts.update(joined_names(group))
        # a component written without its apostrophes, hyphens or spaces: O'BRIEN as OBRIEN, DE LA CRUZ as
        # DELACRUZ (4 letters or more: initials S R joined are SR, a word of every structured report)
        joined = ("".join(_words(component)) for component in re.split(r"[\^=\\]+", value))
        parts.update(name for name in joined if len(name) >= _MIN_JOINED)
    if not value.isascii():  # "MÜLLER" typed again as "MUELLER" or "MULLER"; "Παπαδόπουλος" as "ΠΑΠΑΔΟΠΟΥΛΟΣ"
        parts.update(spelled for part in list(parts) for spelled in ascii_forms(part))
        parts.update(_unmarked(part) for part in list(parts) if not part.startswith(FLEXIBLE))
    return frozenset(p.strip() for p in parts if len(p.strip().replace(FLEXIBLE, "").replace(ZEROS, "")) >= MIN_TOKEN)


_ASCII_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")
_MIN_JOINED = 4  # letters of a name component taken without its separators
_MAX_ID_PIECES = 8  # an ID's pieces whose runs are taken (its runs grow with their square)
_MIN_ID_PART = 6  # characters (separators aside) of a run, or of a piece alone, that identify
_MIN_NUMBER = 5  # digits of a number left once its leading zeros are dropped
# A token made of an ID's pieces: matched with any separators, or none, between them (FLEXIBLE
# before each piece), a piece of digits also with any leading zeros (ZEROS before it); `_identifiers`.
FLEXIBLE, ZEROS = "\x00", "\x01"


def _id_forms(value: str) -> set[str]:
    """What of an ID (a number, a date) a text may repeat besides the ID as written (module
    `_tokens`; pieces are its runs of letters and digits):
    - the whole ID with any separators or none between its pieces (ORD_5521_KX as ORD-5521-KX,
      ORD 5521 KX, ORD5521KX; AB-7731 as AB 7731), and a number with any leading zeros (0047731
      as 47731 or 047731, when 5 digits or more are left);
    - every shorter run of two or more pieces of 6 characters or more, as written and joined
      (5521-KX, ORD5521), and a piece alone of 6 characters with 4 digits or more (MRN-0047731:
      0047731);
    never a shorter piece alone: MR-2024-001, CT_HEAD_01 or SN 1.25.3 would otherwise take MR,
    2024, HEAD or 1.25 out of every text."""
    spans = [m.span() for m in _PIECE.finditer(value)][:_MAX_ID_PIECES]
    if not spans:
        return set()
    pieces = [value[start:end] for start, end in spans]
    forms = {_flexible(pieces)}
    for i in range(len(pieces)):
        for j in range(i + 1, len(pieces) + 1):
            run = pieces[i:j]
            joined = "".join(run)
            if len(run) == len(pieces) or len(joined) < _MIN_ID_PART:
                continue
            if len(run) == 1:
                if sum(c.isdigit() for c in joined) >= 4:
                    forms.add(_flexible(run))
            else:
                forms.add(joined)
                forms.add(value[spans[i][0]:spans[j - 1][1]])  # as written, its separators included
    return forms


def _flexible(pieces: list[str]) -> str:
    return "".join(FLEXIBLE + (ZEROS + piece.lstrip("0") if _is_padded(piece) else piece) for piece in pieces)


def _is_padded(piece: str) -> bool:
    return piece.isdigit() and len(piece.lstrip("0")) >= _MIN_NUMBER


def _alternative(token: str) -> str:
    """The regular expression of one collected token (FLEXIBLE tokens: `_id_forms`)."""
    if not token.startswith(FLEXIBLE):
        return re.escape(token)
    pieces = token[1:].split(FLEXIBLE)
    return r"[\W_]*".join("0*" + re.escape(p[1:]) if p.startswith(ZEROS) else re.escape(p) for p in pieces)


_PIECE = re.compile(r"[^\W_]+")  # letters and digits: the pieces of an ID


def _words(value: str) -> list[str]:
    """`value` split at every character that is not a letter, a mark or a number (Unicode
    categories L, M, N: a vowel sign stays inside its word)."""
    if value.isascii():
        return _ASCII_SEPARATORS.split(value)
    words, word = [], ""
    for character in value:
        if unicodedata.category(character)[0] in "LMN":
            word += character
        elif word:
            words.append(word)
            word = ""
    return [*words, word] if word else words


# Letters NFKD does not take apart, as ASCII writes them; and the German spelling of the umlauts.
_ASCII_LETTERS = str.maketrans({"ß": "ss", "ẞ": "SS", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe",
                                "Œ": "OE", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "TH",
                                "\u0131": "i", "ð": "d", "Ð": "D"})
_UMLAUTS = str.maketrans({"ä": "ae", "Ä": "AE", "ö": "oe", "Ö": "OE", "ü": "ue", "Ü": "UE",
                          "ø": "oe", "Ø": "OE", "å": "aa", "Å": "AA"})  # and the Nordic ones, as they are typed


def ascii_forms(part: str) -> set[str]:
    """The plain-ASCII forms of a value written with letters outside ASCII: without its
    diacritics, and with German umlauts spelled out; none when a letter has no ASCII form."""
    forms = {_ascii_form(part, spelled) for spelled in (False, True)}
    return {form for form in forms if form is not None and form != part}


def _ascii_form(text: str, spelled: bool) -> str | None:
    """`text` without its diacritics (and with German and Nordic letters spelled out when
    `spelled`), or None when a letter has no ASCII form."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", text.translate(_UMLAUTS) if spelled else text)
                   if not unicodedata.combining(c))
    bare = bare.translate(_ASCII_LETTERS)
    return bare if bare.isascii() else None


def _values(value: object) -> Iterable[str]:
    if isinstance(value, (MultiValue, list, tuple)):
        for item in value:
            yield str(item)
    elif value is not None and not isinstance(value, (bytes, Sequence)):
        yield str(value)


@dataclass(frozen=True, slots=True)
class Identifiers:
    """The identifying strings of one dataset, longest first, and one regex over them."""

    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, dataset: Dataset) -> Identifiers:
        found: set[str] = set()
        _collect(dataset, found)
        return _identifiers(frozenset(found))


_IDENTIFIERS: dict[frozenset[str], Identifiers] = {}  # the files of one patient: one pattern
_MAX_IDENTIFIERS = 256


def _identifiers(found: frozenset[str]) -> Identifiers:
    """The `Identifiers` of a set of identifying strings, remembered (bounded) by that set."""
    known = _IDENTIFIERS.get(found)
    if known is not None:
        return known
    if not found:
        made = Identifiers(None)
    else:
        ordered = sorted(found, key=len, reverse=True)
        alternatives = "|".join(_alternative(t) for t in ordered)
        made = Identifiers(re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE))
    if len(_IDENTIFIERS) >= _MAX_IDENTIFIERS:
        _IDENTIFIERS.clear()
    _IDENTIFIERS[found] = made
    return made


_WORD_TAGS: frozenset[int] = frozenset(t for t in (tag_for_keyword(k) for k in WORD_KEYWORDS) if t is not None)
_IDENTIFYING_TAGS: frozenset[int] = frozenset(
    t for t in (tag_for_keyword(k) for k in IDENTIFYING_KEYWORDS) if t is not None
)


_TEXT_VRS = frozenset(("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"))
# Stored under these (or implicitly), a name is decoded as before: as text, or retyped from OB, OW, UN
_AS_TEXT = _TEXT_VRS | {None, "PN", "UN", "OB", "OW"}


@functools.lru_cache(maxsize=8192)
def _collected_vr(tag: int, stored: str | None) -> str | None:
    """The VR an element is collected by (the dictionary's when it is stored as None, UN, OB or
    OW, and wherever the dictionary says PN, or a text VR of an identifying keyword, and the file
    claims another VR but SQ: never the one claimed, vr.py), or None when it holds no identifier
    to collect: not a sequence, not a person name, not one of the identifying keywords."""
    vr = stored
    if vr in (None, "UN", "OB", "OW"):
        vr = dictionary_vr(tag)
        if vr == UNKNOWN:  # not in the dictionary
            return None
    elif vr != "SQ":
        dictionary = dictionary_vr(tag)  # e.g. PatientName written as LO, a physician's name or a station as FL
        if dictionary == "PN" or (tag in _IDENTIFYING_TAGS and dictionary in _TEXT_VRS):
            vr = dictionary
    if vr != "SQ" and vr != "PN" and tag not in _IDENTIFYING_TAGS:
        return None
    return vr


@functools.cache
def _collectable() -> frozenset[int]:
    """Every tag `_collected_vr` may collect when it is stored under a VR other than SQ or PN: the
    identifying keywords, and every tag the dictionary gives SQ or PN (repeating groups included:
    the `x` of a mask stands for any hex digit, PS3.6)."""
    tags = set(_IDENTIFYING_TAGS)
    tags.update(tag for tag, entry in DicomDictionary.items() if entry[0] in _ALWAYS_COLLECTED)
    for mask, entry in RepeatersDictionary.items():
        if entry[0] in _ALWAYS_COLLECTED:
            digits = [("0123456789ABCDEF" if c in "xX" else c) for c in mask]
            tags.update(int("".join(spelled), 16) for spelled in itertools.product(*digits))
    return frozenset(tags)


_ALWAYS_COLLECTED = ("SQ", "PN")  # stored under these VRs an element is collected whatever its tag


def _kind(tag: int, vr: str) -> TokenKind:
    """How a value collected under `vr` is taken apart: a PN as a name, an identifying keyword of
    WORD_KEYWORDS as words, anything else as an ID."""
    if vr == "PN":
        return TokenKind.NAME
    return TokenKind.WORDS if tag in _WORD_TAGS else TokenKind.ID


def _collect(dataset: Dataset, found: set[str]) -> None:
    """Gather identifiers, decoding only PN values, sequences and the identifying keywords."""
    collectable = _collectable()
    for tag, raw in list(dataset.items()):  # as stored: raw until decoded
        if raw.VR not in _ALWAYS_COLLECTED and tag not in collectable:
            continue  # `_collected_vr` is None: nothing to collect, judged without a call
        vr = _collected_vr(int(tag), raw.VR)
        if vr is None:
            continue
        values = stored_values(raw, vr, dataset)
        if values is not None:
            for value in values:
                found.update(_tokens(value, _kind(tag, vr)))
                if vr == "DA":
                    found.update(date_spellings(value))
            continue
        if raw.VR not in _AS_TEXT and vr != raw.VR and isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
            elem = read_as(dataset, tag, raw.value, vr)  # a name or an ID stored as FL, US, AT...: its bytes
        else:
            elem = decoded(dataset, tag)
            if needs_retyping(elem.VR, vr):  # a name stored as OB or UN: read as the text it is
                elem = retyped(dataset, elem, vr)
        if elem.VR == "SQ":
            for item in elem.value or ():
                _collect(item, found)
            continue
        for value in _values(elem.value):  # read as `vr` says: a name claimed as LO is split as a name
            found.update(_tokens(value, _kind(tag, vr)))
            if vr == "DA":
                found.update(date_spellings(value))


_HIRAGANA = {code: code - 0x60 for code in range(0x30A1, 0x30F7)}  # katakana as hiragana: a name in either
_JOINING = frozenset("\uff9e\uff9f")  # half-width (semi-)voiced sound marks: NFKC joins them to the kana before


class Plain(StrEnum):
    """How `_fold` also writes a text's letters, so that an identifier the header writes one way is
    found where the text writes it another."""

    BARE = "bare"  # a letter with a plain-ASCII form as that form: "Jörg Müller" as "Jorg Muller"
    SPELLED = "spelled"  # the same, German and Nordic letters spelled out: "Joerg Mueller"
    UNMARKED = "unmarked"  # without marks and format characters (`_unmarked`): Greek, Arabic, Indic


def _fold(text: str, plain: Plain | None = None) -> tuple[str, list[tuple[int, int]]]:
    """`text` in NFKC form, katakana as hiragana, and for each folded character the span of
    `text` it came from (a character with the combining marks after it is folded as one); with
    `plain`, its letters also written as `Plain` says."""
    folded: list[str] = []
    origin: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and (unicodedata.combining(text[j]) or text[j] in _JOINING):
            j += 1
        piece = unicodedata.normalize("NFKC", text[i:j]).translate(_HIRAGANA)
        if plain is Plain.UNMARKED:
            piece = _unmarked(piece)
        elif plain is not None and not piece.isascii():
            piece = _ascii_form(piece, spelled=plain is Plain.SPELLED) or piece
        folded.append(piece)
        origin.extend([(i, j)] * len(piece))
        i = j
    return "".join(folded), origin


def _unmarked(text: str) -> str:
    """`text` without its marks and format characters (Unicode categories M and Cf: Greek and
    Latin accents, Arabic vowel marks, Indic vowel signs, the zero-width (non-)joiner), so a
    name written with them on one side and without them on the other is still the same name."""
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if unicodedata.category(c)[0] != "M" and unicodedata.category(c) != "Cf")


def _spans(text: str, identifiers: Identifiers) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if identifiers.pattern is not None:
        spans += [m.span() for m in identifiers.pattern.finditer(text)]
    spans += date_spans(text)
    spans += [m.span() for m in _PATTERNS.finditer(text)]
    return sorted(spans)


_CLEANED: dict[tuple[str, str | None], str] = {}  # (text, identifiers' pattern) -> cleaned: a series repeats
_MAX_CLEANED = 4096  # its descriptions; bounded, short texts only, so memory stays flat
_REMEMBERED_LENGTH = 256


def clean_text(text: str, identifiers: Identifiers) -> str:
    """Return `text` with every identifier of the dataset and every date-, phone- or
    e-mail-shaped run replaced by REDACTED (overlapping runs by one REDACTED). A short text is
    remembered by the text and the identifiers' pattern (its source: what it matches), which
    decide it."""
    if len(text) > _REMEMBERED_LENGTH:
        return _clean_text(text, identifiers)
    key = (text, None if identifiers.pattern is None else identifiers.pattern.pattern)
    cleaned = _CLEANED.get(key)
    if cleaned is None:
        cleaned = _clean_text(text, identifiers)
        if len(_CLEANED) >= _MAX_CLEANED:
            _CLEANED.clear()
        _CLEANED[key] = cleaned
    return cleaned


def _clean_text(text: str, identifiers: Identifiers) -> str:
    if text.isascii():
        spans = _spans(text, identifiers)
    else:
        spans = []
        # as written, with its letters in plain ASCII, and without its marks (accents, vowel signs, joiners)
        for plain in (None, *Plain):
            folded, origin = _fold(text, plain)
            spans += [(origin[a][0], origin[b - 1][1]) for a, b in _spans(folded, identifiers) if b > a]
        spans.sort()
    merged: list[tuple[int, int]] = []
    for start, stop in spans:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    pieces: list[str] = []
    cursor = 0
    for start, stop in merged:
        pieces += [text[cursor:start], REDACTED]
        cursor = stop
    pieces.append(text[cursor:])
    return "".join(pieces)
