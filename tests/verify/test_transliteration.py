"""verify finds an original name written outside ASCII where the output spells it in plain
ASCII (pipeline/verify/transliteration.py; the breaker of issue 16 found the scrub kept
"ZQWGRUSS" of "ZQWGRUß" and verify said nothing)."""

from __future__ import annotations

import io

import pydicom
import pytest

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import pixel_bound, scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.transliteration import ascii_spellings
from tests.conftest import encode, make_dataset

CLEAN = compile_plan("basic", ["clean-descriptors"])
OPTIONS = tuple(o.value for o in CLEAN.options)


@pytest.mark.parametrize(("name", "text"), [("ZQWGRU\u00df^QJXHANS", "ZQWGRUSS"),
                                            ("QJX\u00c9MILE^ZQW\u00d8RN", "qjxemile zqworn"),
                                            ("M\u00dcLLERQJX^HANS", "MUELLERQJX")])
def test_an_ascii_spelling_of_the_original_name_in_the_output_is_found(name: str, text: str, keys: Keys) -> None:
    ds = make_dataset(patient=name)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageComments = "scan"
    original = encode(ds)
    clean = pydicom.dcmread(io.BytesIO(scrub_bytes(original, CLEAN, keys).data))
    assert verify_bytes(encode(clean), OPTIONS, original=original, pixels=pixel_bound(CLEAN)) == []
    clean.ImageComments = f"seen {text} today"  # what a scrub that missed the spelling would publish
    findings = verify_bytes(encode(clean), OPTIONS, original=original, pixels=pixel_bound(CLEAN))
    assert any(f.path.endswith("ImageComments") for f in findings)


def test_ascii_spellings() -> None:
    assert ascii_spellings("smith") == frozenset()
    assert ascii_spellings("m\u00fcller") == {"muller", "mueller"}
    assert ascii_spellings("\u674e\u660e") == frozenset()
