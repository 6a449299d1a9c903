"""Case-insensitive text as Python's ``re.IGNORECASE`` reads it, for the automaton search of text
outside ASCII (pipeline/verify/search.py), so that no regular expression is compiled per file.

Under ``re.IGNORECASE`` a character matches another when their simple lower cases are equal, or
are among re's extra equivalences (the Kelvin sign and k, long s and s, dotless i and i, micro and
mu, ...). `fold` replaces each character by one representative of its class: one character for one,
so a position in the folded text is the position in the text, and a character class such as
``[0-9A-Za-z]`` under ``re.IGNORECASE`` holds exactly the characters that fold into it (U+0130,
U+0131, U+017F and U+212A fold to i, i, s and k). The table is built from re's own lower-case
function and equivalences, once per process, at the first text outside ASCII.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from typing import cast

# Past the last script with letter case (Adlam, U+1E900-1E95F) every character is its own
# representative; tests/verify/test_casefold.py checks the whole of Unicode.
CASED_BELOW = 0x20000


@functools.lru_cache(maxsize=1)
def fold_table() -> dict[int, int]:
    """Code point -> its representative, for every character that is not its own."""
    to_lower = cast(Callable[[int], int], importlib.import_module("_sre").unicode_tolower)
    extra = cast(Mapping[int, tuple[int, ...]], importlib.import_module("re._casefix")._EXTRA_CASES)
    table: dict[int, int] = {}
    for code in range(CASED_BELOW):
        lower = to_lower(code)
        if lower == code and code not in extra:
            continue  # its own representative: no case, or the lower case of a class of one
        representative = min((lower, *extra.get(lower, ())))
        if representative != code:
            table[code] = representative
    return table


def fold(text: str) -> str:
    """`text` with each character replaced by its representative (`fold_table`)."""
    return text.translate(fold_table())


__all__ = ["CASED_BELOW", "fold", "fold_table"]
