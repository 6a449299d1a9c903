"""The ASCII spellings of a name written with letters outside ASCII (verify's own).

A name stored as "MÜLLER", "ZQWGRUß" or "ÉMILE" is often typed again in plain ASCII in free
text: "MUELLER" or "MULLER", "ZQWGRUSS", "EMILE". Each such spelling of an original identifier
is searched for in the output as the identifier itself is. Two spellings: the letters without
their diacritics (NFKD, combining marks dropped, PS3.5 leaves the transliteration to the
writer), and the German one (Ä, Ö, Ü as AE, OE, UE). Letters that do not decompose (ß, Ø, Æ,
Œ, Ł, Đ, Þ, dotless i) have their usual ASCII spellings.
"""

from __future__ import annotations

import functools
import unicodedata

_LETTERS = {"ß": "ss", "ẞ": "SS", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ł": "l",
            "Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "TH", "\u0131": "i", "ð": "d", "Ð": "D"}
_GERMAN = {"ä": "ae", "Ä": "AE", "ö": "oe", "Ö": "OE", "ü": "ue", "Ü": "UE"}


@functools.lru_cache(maxsize=4096)
def ascii_spellings(text: str) -> frozenset[str]:
    """The plain-ASCII spellings of `text` (empty when `text` is ASCII, or when a letter has no
    ASCII spelling: a CJK name is searched as written)."""
    if text.isascii():
        return frozenset()
    spelled = set()
    for table in ({}, _GERMAN):
        letters = "".join(table.get(c, c) for c in text)
        letters = "".join(_LETTERS.get(c, c) for c in unicodedata.normalize("NFKD", letters)
                          if not unicodedata.combining(c))
        if letters.isascii():
            spelled.add(letters)
    return frozenset(spelled)


__all__ = ["ascii_spellings"]
