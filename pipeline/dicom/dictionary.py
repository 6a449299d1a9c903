"""The data dictionary's VR of a standard tag (PS3.6), as the scrub, the pixel rules and the
mapping read it: the VR an attribute *is*, whatever a file claims (PS3.5 7.1.2). verify keeps a
reading of its own (`pipeline.verify.walk.dictionary_vr`): a mistake here must not hide there.
"""

from __future__ import annotations

import functools

from pydicom.datadict import dictionary_VR

UNKNOWN = "UN"


@functools.lru_cache(maxsize=8192)
def dictionary_vr(tag: int) -> str:
    """The dictionary's VR of `tag` as it gives it ("OB or OW" included; repeating groups
    too), "UN" for a tag it lacks (a private one, an unknown one)."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return UNKNOWN
