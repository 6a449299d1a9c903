"""The VR an attribute is judged by: the data dictionary's, never the one a file claims.

PS3.5 7.1.2 / 7.1.3: the VR of a standard attribute is the one PS3.6 gives it; a file that
stores a Person Name as explicit VR OB (or UN) has not made it binary. PS3.15 E.1.1 asks the
de-identifier to act on what an attribute *is*, so the scrub decides every attribute on the
dictionary VR of its tag, and on the private dictionary's where the creator is known.
"""

from __future__ import annotations

import functools

from pydicom.datadict import dictionary_VR, private_dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

UNKNOWN = "UN"
STORED_AS_BYTES = frozenset({"OB", "OW", "UN"})
# VRs whose value is not bytes to pydicom: an element stored as OB/OW/UN with one of these
# dictionary VRs is decoded again under it before an action that reads or replaces its value.
_TYPED_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL",
                        "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UR", "US", "UT", "UV"})


@functools.lru_cache(maxsize=8192)
def decided_vr(tag: int, creator: str | None, stored: str | None) -> str:
    """The VR the profile's defaults are applied by (PS3.5 7.1.2, PS3.6 section 6).

    | attribute                                  | VR                                          |
    |--------------------------------------------|---------------------------------------------|
    | public, in the dictionary with one VR      | the dictionary's                            |
    | public, dictionary VR "OB or OW", "US or SS"| the stored VR when it is one of them, else  |
    |                                            | the dictionary's text (judged as such)      |
    | private, creator in the private dictionary | that dictionary's (same rule for choices)   |
    | anything else                              | UN: what cannot be looked up is not judged  |
    |                                            | by what the file claims                     |
    """
    try:
        if tag >> 16 & 1:
            if creator is None:
                return UNKNOWN
            vr = str(private_dictionary_VR(tag, creator))
        else:
            vr = str(dictionary_VR(tag))
    except KeyError:
        return UNKNOWN
    if " or " in vr:
        return stored if stored is not None and stored in vr.split(" or ") else vr
    return vr


def needs_retyping(stored: str, vr: str) -> bool:
    """Whether an element stored as bytes (OB, OW, UN) has a typed dictionary VR."""
    return stored in STORED_AS_BYTES and vr in _TYPED_VRS and stored != vr


def retyped(ds: Dataset, elem: DataElement, vr: str) -> DataElement:
    """`elem`'s stored bytes decoded under `vr` (the dataset's character set for text), so that
    an action reads and writes the value the dictionary says it is."""
    value = elem.value
    return read_as(ds, elem.tag, value if isinstance(value, bytes) else b"", vr)


def read_as(ds: Dataset, tag: BaseTag, data: bytes, vr: str) -> DataElement:
    """The stored bytes `data` of `tag` decoded under `vr` (the dataset's character set for
    text), without putting the result in `ds`."""
    raw = RawDataElement(tag, vr, len(data), data, 0, False, True)
    return convert_raw_data_element(raw, encoding=ds._character_set, ds=ds)


# PS3.5 Table 6.2-1: the most characters one value of a VR may hold (PN: per component group).
MAX_LENGTHS: dict[str, int] = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
                               "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64}


def fit_length(value: str, vr: str) -> str:
    """`value` cut to its VR's length limit (PS3.5 Table 6.2-1; each PN component group apart):
    cleaning (C) may lengthen a text, since REDACTED can be longer than what it replaces."""
    limit = MAX_LENGTHS.get(vr)
    if limit is None:
        return value
    if vr == "PN":
        return "=".join(group[:limit].rstrip() for group in value.split("="))
    return value[:limit].rstrip() if len(value) > limit else value
