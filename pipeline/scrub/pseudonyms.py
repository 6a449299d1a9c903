"""Pseudonymous patient identity: one research ID and name per original patient."""

from __future__ import annotations

import base64
import functools

from pipeline.scrub.keys import REMEMBERED, Keys, derive


def patient_pseudonym(original_id: str, keys: Keys) -> str:
    """Return the research ID for `original_id`: the user's lookup table first, else keyed."""
    original = original_id.strip()
    if original in keys.lookup:
        return keys.lookup[original]
    return _keyed(keys.key, original)


@functools.lru_cache(maxsize=REMEMBERED)
def _keyed(key: bytes, original: str) -> str:
    """The keyed research ID, remembered (bounded) by key and original: a patient's files repeat it."""
    digest = derive(key, "patient-id", original)
    return "PAT-" + base64.b32encode(digest[:10]).decode("ascii")


def patient_name_pseudonym(pseudonym_id: str) -> str:
    """The PN value written for a patient: the research ID as family name."""
    return f"{pseudonym_id}^ANONYMIZED"
