"""What a value means, judged by scan without originals: is its attribute free text that can
hold a person's name, and is the value itself a placeholder or pseudonym a de-identifier wrote.

Free text (where the name-in-text rule looks) is decided by the attribute, never by the value:

- an attribute with a C in a Clean option column of PS3.15 Table E.1-1 (Clean Descriptors,
  Clean Structured Content, Clean Graphics): the standard's own list of descriptions,
  comments and text values that may hold identifying text; read from the recipes in
  `profiles/` through `pipeline.verify.profile`, like every other rule of scan;
- any other attribute of VR LT, ST or UT (PS3.5 6.2: text for prose, paragraphs);
- any other attribute whose dictionary name says it is a description, comment, remark or note
  (OverlayDescription: the masked groups 60xx are outside the Clean columns).

Attributes of VR SH, LO or UC that no Clean column names are labels, codes and equipment
settings (FilterType, PlateType, MultiplexGroupLabel, ...): not free text. Person names (PN)
are judged by the person-name rule, private blocks by private-tag, unnamed text by the profile.

A placeholder (PS3.15 E.3 dummies as de-identifiers write them) is a value that identifies
nobody: empty or only "^" / "=" separators; a word such as ANONYMOUS, ANONYMIZED, REMOVED,
REDACTED, UNKNOWN, DUMMY, NONE, NA; a run of one masking character (XXXXXX, ****, 000000);
a pseudonym of 12 or more hex digits, one a letter (with or without a short prefix); the date 19000101 and
1 January dates (year-only dates, XXXX0101).
"""

from __future__ import annotations

import functools
import re

from pydicom.datadict import dictionary_keyword

from pipeline.verify.profile import Expect, load_profile

# The options whose column of Table E.1-1 holds C for text attributes, by CID 7050 code.
CLEAN_OPTIONS = {
    "113105": "clean-descriptors",
    "113104": "clean-structured-content",
    "113103": "clean-graphics",
}
PROSE_VRS = frozenset({"LT", "ST", "UT"})
_FREE_TEXT_NAMES = ("Description", "Comments", "Comment", "Remarks", "Notes")
TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})

_PLACEHOLDER_WORDS = frozenset({
    "ANONYMOUS", "ANONYMIZED", "ANONYMISED", "ANON", "REMOVED", "[REMOVED]", "REDACTED", "[REDACTED]",
    "UNKNOWN", "DUMMY", "NONE", "NA", "N/A", "DELETED", "DEIDENTIFIED", "DE-IDENTIFIED", "CLEANED",
})
_MASK = re.compile(r"([X*#0?_-])\1{2,}", re.IGNORECASE)  # XXXXXX, ******, 000000
# 12 or more hex digits, at least one a-f among them (an all-digit number is an ID, not a digest)
_HEX_PSEUDONYM = re.compile(r"(?:[A-Z]{1,8}[-_]?)?(?=[0-9]*[A-F])[0-9A-F]{12,}", re.IGNORECASE)
_PLACEHOLDER_DATE = re.compile(r"(?:19000101|[0-9X]{4}0101)(?:[0-9.+-]*)?", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def _clean_columns(tag: int) -> frozenset[str]:
    """The codes of the Clean options whose column gives `tag` C (exact tags and the masked
    groups 50xx/60xx alike, as the recipes resolve them)."""
    basic = load_profile(()).rule_for(tag, None)
    if basic is not None and basic.expect is Expect.CLEAN:
        return frozenset(CLEAN_OPTIONS)
    found = set()
    for code, option in CLEAN_OPTIONS.items():
        rule = load_profile((option,)).rule_for(tag, None)
        if rule is not None and rule.expect is Expect.CLEAN:
            found.add(code)
    return frozenset(found)


def is_free_text(tag: int, vr: str) -> bool:
    """Whether the attribute can hold a person's name in free text (module docstring)."""
    if vr not in TEXT_VRS:
        return False
    return vr in PROSE_VRS or _dictionary_keyword(tag).endswith(_FREE_TEXT_NAMES) or bool(_clean_columns(tag))


def _dictionary_keyword(tag: int) -> str:
    """The keyword of `tag` in the data dictionary, repeating groups (60xx) included; '' if none."""
    try:
        return dictionary_keyword(tag)
    except KeyError:
        return ""


def cleaned_by_declared_option(tag: int, codes: frozenset[str]) -> bool:
    """Whether the file declares (DeidentificationMethodCodeSequence, CID 7050) a Clean option
    whose column gives this attribute C: its text was cleaned by a de-identifier that says so."""
    return bool(_clean_columns(tag) & codes)


def is_placeholder(value: str) -> bool:
    """Whether a text, ID or name value is a placeholder or pseudonym (module docstring)."""
    text = value.strip()
    bare = text.strip("^= ").upper()
    if not bare:
        return True
    if bare in _PLACEHOLDER_WORDS or "ANONYM" in bare:
        return True
    if _MASK.fullmatch(bare) or (len(set(bare)) == 1 and bare[0] in "X*#"):
        return True
    return _HEX_PSEUDONYM.fullmatch(bare) is not None


def is_placeholder_date(value: str) -> bool:
    """19000101 or a 1 January date (a year-only date written as yyyy0101), as DA or DT."""
    return _PLACEHOLDER_DATE.fullmatch(value.strip()) is not None
