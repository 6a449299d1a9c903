"""Inside a sequence an option cleans (C: Clean Descriptors, Clean Structured Content), every text
is cleaned, safe-listed text included: a CodeMeaning of Scheduled Protocol Code Sequence inside
Request Attributes Sequence carried the patient's name into releases made with clean-descriptors
(the sample archive's scorer found 33 such leaks). Scrub cleans it; verify, by its own reading,
flags it when it is put back."""

from __future__ import annotations

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.findings import VerifyRule
from tests.conftest import bundled, encode, read

KEYS = Keys(key=b"k" * 32)
OPTIONS = ("clean-descriptors",)
NAME = ("QUILLANE", "OSTERVIK")


def _original() -> bytes:
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    ds.PatientName = f"{NAME[0]}^{NAME[1]}^T"  # a middle initial: the text holds the parts, not the whole name
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "P1", "99LOCAL"
    code.CodeMeaning = f"MR BRAIN {NAME[0]} {NAME[1]}"
    request = Dataset()
    request.ScheduledProcedureStepID = "SPS1"
    other = Dataset()  # a second coded text with the name, in the same cleaned sequence
    other.CodeValue, other.CodingSchemeDesignator = "P2", "99LOCAL"
    other.CodeMeaning = f"CT HEAD {NAME[0]} {NAME[1]}"
    request.ScheduledProtocolCodeSequence = Sequence([code, other])
    ds.RequestAttributesSequence = Sequence([request])
    return encode(ds)


def _meaning(data: bytes) -> str:
    ds = read(data)
    return str(ds.RequestAttributesSequence[0].ScheduledProtocolCodeSequence[0].CodeMeaning)


def test_a_name_in_a_code_meaning_of_a_cleaned_sequence_is_cleaned() -> None:
    original = _original()
    output = scrub_bytes(original, compile_plan("basic", list(OPTIONS)), KEYS).data
    meaning = _meaning(output)
    assert "MR BRAIN" in meaning  # the descriptor's words stay
    assert not any(part in output.upper() for part in (n.encode() for n in NAME))
    assert verify_bytes(output, OPTIONS, original=original) == []


def test_verify_flags_the_name_put_back_into_the_code_meaning() -> None:
    original = _original()
    ds = read(scrub_bytes(original, compile_plan("basic", list(OPTIONS)), KEYS).data)
    ds.RequestAttributesSequence[0].ScheduledProtocolCodeSequence[0].CodeMeaning = f"MR BRAIN {NAME[0]} {NAME[1]}"
    findings = verify_bytes(encode(ds), OPTIONS, original=original)
    assert any(f.rule in (VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, VerifyRule.ORIGINAL_VALUE_IN_BYTES)
               and "RequestAttributesSequence" in f.path for f in findings), findings
