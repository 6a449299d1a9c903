"""verify's search for the original's identifiers (pipeline/verify/original.py): the original's
PatientID, OtherPatientIDs and AccessionNumber, planted into an otherwise clean scrubbed output
(a private value, a descriptor the profile keeps, the release path), are each reported as an
identifier, at the place they were planted (issue 18, item 10)."""

from __future__ import annotations

import warnings

import pydicom
import pytest
from pydicom.dataset import Dataset

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.findings import Finding, Severity, VerifyRule
from tests.conftest import bundled, encode, read

KEY = b"k" * 32
OPTIONS = ("clean-descriptors",)  # SeriesDescription is C: kept, so only the search can catch a value in it
FILLER = "ZQZQZQZQZQ"  # ten letters no original holds, kept by the cleaning
IDS = {"PatientID": "MRN7654321", "OtherPatientIDs": "OPN1357924", "AccessionNumber": "ACC2468013"}


def original() -> bytes:
    ds = read(bundled("CT_small.dcm").read_bytes())
    for keyword, value in IDS.items():
        setattr(ds, keyword, value)
    ds.SeriesDescription = f"HEAD ROUTINE {FILLER}"
    return encode(ds)


def scrubbed() -> bytes:
    return scrub_bytes(original(), compile_plan("basic", list(OPTIONS)), Keys(key=KEY)).data


def searched(output: bytes, path: str = "release/2.25.1/2.25.2.dcm") -> list[Finding]:
    return [f for f in verify_bytes(output, OPTIONS, original(), path)
            if f.rule in (VerifyRule.ORIGINAL_VALUE_IN_BYTES, VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE,
                          VerifyRule.VALUE_IN_PATH)]


def test_the_clean_output_keeps_the_descriptor_and_passes() -> None:
    output = scrubbed()
    assert FILLER.encode() in output and not [v for v in IDS.values() if v.encode() in output]
    assert verify_bytes(output, OPTIONS, original(), "release/2.25.1/2.25.2.dcm") == []


@pytest.mark.parametrize("keyword", sorted(IDS))
def test_an_id_patched_into_a_kept_descriptor_is_found_as_an_identifier(keyword: str) -> None:
    """A raw byte patch (same length, nothing else changes): SeriesDescription is allowed by the
    profile, so the attribute checks pass it; only the search for the original's values sees it."""
    output = scrubbed()
    patched = output.replace(FILLER.encode(), IDS[keyword].encode())
    assert len(patched) == len(output) and patched != output
    findings = searched(patched)
    assert Finding(VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, "SeriesDescription", Severity.HIGH,
                   detail="identifier") in findings
    in_bytes = [f for f in findings if f.rule == VerifyRule.ORIGINAL_VALUE_IN_BYTES]
    assert [(f.severity, f.detail) for f in in_bytes] == [(Severity.HIGH, "identifier")]
    assert in_bytes[0].path == f"bytes@{output.index(FILLER.encode())}"


@pytest.mark.parametrize("keyword", sorted(IDS))
def test_an_id_in_a_private_value_is_found_as_an_identifier(keyword: str) -> None:
    def plant(ds: Dataset) -> None:
        ds.private_block(0x0009, "SOMEVENDOR 1", create=True).add_new(0x10, "LO", f"ref {IDS[keyword]}")

    ds = read(scrubbed())
    plant(ds)
    findings = searched(encode(ds))
    private = Finding(VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE, "(0009,1010)", Severity.HIGH, detail="identifier")
    assert private in findings
    assert [(f.severity, f.detail) for f in findings if f.rule == VerifyRule.ORIGINAL_VALUE_IN_BYTES] == [
        (Severity.HIGH, "identifier")]


@pytest.mark.parametrize("keyword", sorted(IDS))
def test_an_id_in_the_release_path_is_found_as_an_identifier(keyword: str) -> None:
    findings = searched(scrubbed(), f"release/{IDS[keyword]}/2.25.2.dcm")
    assert findings == [Finding(VerifyRule.VALUE_IN_PATH, "path", Severity.HIGH, detail="identifier")]


# ----------------------------------------------------------------------------- recorded collection
_RECORD_FILES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "reportsi.dcm", "nested_priv_SQ.dcm",
                 "rtdose.dcm", "CT_small.dcm")


@pytest.mark.parametrize("options", [(), ("clean-descriptors",), ("clean-structured-content",)])
def test_identifiers_from_records_are_those_collected_afresh(options: tuple[str, ...],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """What `_collect_recorded` replays (a second pass over the same values, and values shared
    across files) is exactly what `_collect` collects, in the same order."""


    from pipeline.verify import original as module
    from pipeline.verify.checks import load_profile

    profile = load_profile(options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datasets = [pydicom.dcmread(bundled(name), force=True) for name in _RECORD_FILES]
        named = pydicom.dcmread(bundled("CT_small.dcm"))  # a name outside ASCII, a code naming a person
        named.SpecificCharacterSet, named.PatientName = "ISO_IR 100", "Müller^Jürgen"
        named.OperatorsName, named.StudyDescription = "Ab", "Müller's follow-up HEADSCAN"
        datasets.append(named)
        written = pydicom.dcmread(bundled("MR_small.dcm"))  # a name written without spaces (its spellings)
        written.SpecificCharacterSet, written.PatientName = "ISO_IR 192", "山田^太郎"
        datasets.append(written)
        module._RECORDS.clear()
        recorded = [module.original_identifiers(ds, profile) for ds in datasets]  # records made
        replayed = [module.original_identifiers(ds, profile) for ds in datasets]  # records replayed
        monkeypatch.setattr(module, "_collect_recorded", module._collect)
        fresh = [module.original_identifiers(ds, profile) for ds in datasets]
    assert any(found.short for found in fresh) and any("山田太郎" in found.spelled for found in fresh)
    for one, two, three in zip(recorded, replayed, fresh, strict=True):
        for got in (one, two):
            assert list(got.identifiers.items()) == list(three.identifiers.items())
            assert got.short == three.short and list(got.spelled.items()) == list(three.spelled.items())
            assert got.values == three.values
