"""PS3.15 action U: keyed, stable UID remapping under the 2.25 (UUID-derived) arc."""

from __future__ import annotations

import functools
import uuid

from pydicom._uid_dict import UID_dictionary

from pipeline.scrub.keys import REMEMBERED, Keys, derive


def remap_uid(uid: str, keys: Keys) -> str:
    """Return the pseudonym of `uid`: the same original gives the same new UID in every file,
    run and worker under one key; different keys give unrelated UIDs."""
    return _remapped(keys.key, uid.strip().rstrip("\x00"))


@functools.lru_cache(maxsize=REMEMBERED)
def _remapped(key: bytes, uid: str) -> str:
    """Remembered (bounded) by key and UID: the files of a series repeat their study's, series'
    and frame of reference's UIDs."""
    digest = derive(key, "uid", uid)
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


def is_registered_uid(uid: str) -> bool:
    """True for UIDs the standard registers (SOP classes, transfer syntaxes, coding schemes):
    they name kinds of things, not patients, and are kept."""
    return uid.strip().rstrip("\x00") in UID_dictionary
