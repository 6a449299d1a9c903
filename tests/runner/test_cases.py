"""The failing inputs of issue 13 (tests/runner/cases/, kinds 1 and 2) and varied shapes of the
same kinds go through `process_one` and are published clean: none of the planted values, in any
of their encodings, in any release byte or path."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pipeline.profile.plan import compile_plan
from pipeline.runner.discover import SourceFile
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import WorkerConfig, process_one
from pipeline.scrub.keys import Keys
from tests.conftest import TEST_KEY, encode
from tests.identification import identified_dataset, planted_values

CASES = Path(__file__).resolve().parent / "cases"
KEYS = Keys(key=TEST_KEY)


def _planted(folder: Path) -> list[bytes]:
    spellings: list[bytes] = []
    for line in (folder / "planted.txt").read_text(encoding="utf-8").splitlines():
        value, _, encodings = line.partition("|")
        if value.strip():
            for encoding in ["utf-8", *[e for e in encodings.split(",") if e]]:
                spellings.append(value.strip().encode(encoding).lower())
    return spellings


def _publish(inputs: list[Path], root: Path, options: tuple[str, ...] = ()) -> Path:
    cfg = WorkerConfig(root / "release", root / "quarantine")
    plan = compile_plan("basic", list(options))
    for index, path in enumerate(inputs):
        outcome = process_one(SourceFile(path, path.stat().st_size, index), plan, KEYS, cfg)
        assert outcome.disposition is Disposition.WRITTEN, (path.name, outcome.reason)
    return root / "release"


def _leaks(release: Path, spellings: list[bytes]) -> list[str]:
    files = [p for p in release.rglob("*") if p.is_file()]
    assert files
    return [f"{spelling!r} in {path.relative_to(release)}" for path in files for spelling in spellings
            if spelling in path.read_bytes().lower() or spelling in str(path.relative_to(release)).lower().encode()]


@pytest.mark.parametrize("case", ["case01", "case13"])
def test_a_shared_case_is_published_clean(case: str, tmp_path: Path) -> None:
    folder = CASES / case
    release = _publish(sorted(folder.glob("*.dcm")), tmp_path)
    assert len(list(release.rglob("*.dcm"))) == len(list(folder.glob("*.dcm")))
    assert _leaks(release, _planted(folder)) == []


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("options", [(), ("retain-uids", "retain-device-identity")])
def test_code_only_identification_is_published_clean(syntax: str, options: tuple[str, ...],
                                                     tmp_path: Path) -> None:
    ds = identified_dataset()
    ds.file_meta.TransferSyntaxUID = syntax
    for tag, value in ((0x00142006, b"Vintrosk^Halemar"), (0x00143099, b"noted by Grashenko ")):
        ds.add_new(tag, "OB", value)  # EvaluatorName (PN), CalibrationNotes (LT) claimed as bytes
    source = tmp_path / "in.dcm"
    source.write_bytes(encode(ds))
    release = _publish([source], tmp_path, options)
    assert _leaks(release, [v.lower().encode() for v in planted_values()]) == []


def test_the_cases_are_what_the_issue_describes() -> None:
    ds = pydicom.dcmread(io.BytesIO((CASES / "case13" / "a_text_as_OB.dcm").read_bytes()))
    assert ds["SecondaryReviewerName"].VR == "OB"
    codes_only = pydicom.dcmread(CASES / "case01" / "rtrecord_codes_only.dcm")
    assert "OperatorsName" not in codes_only
    assert codes_only.OperatorIdentificationSequence[0].PersonIdentificationCodeSequence[0].CodeValue
