"""verify given the original as read (`as_read`: the runner's copy of the dataset it parsed once,
taken before the scrub) finds exactly what it finds given the original's bytes, leaks included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from pipeline.profile.plan import compile_plan
from pipeline.runner import verdict as verdict_module
from pipeline.runner.discover import discover
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import WorkerConfig, process_one, scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify.before import as_read
from pipeline.verify.checks import verify_file
from pipeline.verify.findings import VerifyRule
from pipeline.verify.pixels import PixelBound
from tests.conftest import read
from tests.conftest_run import build_inputs
from tests.verify.test_checks import KEY, NAME, _encoded_names, mutate, planted

MODIFIED = ("retain-longitudinal-modified-dates",)


def _both_paths(original: bytes, change: Callable[[Dataset], None], options: tuple[str, ...] = ()) -> tuple[
        list[object], list[object]]:
    """(findings given the original's bytes, findings given the runner's copy as read)."""
    scrubbed = scrub_bytes(original, compile_plan("basic", list(options)), Keys(key=KEY), keep_original=True)
    output = mutate(scrubbed.data, change)
    path = "release/2.25.1/2.25.2.dcm"
    from_bytes = verify_file(output, options, original, path)
    from_copy = verify_file(output, options, scrubbed.before, path)
    assert from_copy.original_searched and from_bytes.elements_checked == from_copy.elements_checked
    return list(from_bytes.findings), list(from_copy.findings)


def _nested(text: str) -> Callable[[Dataset], None]:
    def put_back(ds: Dataset) -> None:
        ds.ReferencedInstanceSequence[0].ProcedureCodeSequence[0].CodeMeaning = text
    return put_back


def _private(ds: Dataset) -> None:
    ds.private_block(0x0009, "SOMEVENDOR 1", create=True).add_new(0x10, "LO", NAME)


LEAKS: dict[str, tuple[bytes, Callable[[Dataset], None], str]] = {
    "name-in-a-sequence-item": (planted(), _nested(f"head of {NAME}"), "person-name"),
    "name-in-a-private-tag": (planted(), _private, "person-name"),
    "latin-1-name": (_encoded_names("ISO_IR 100", "Müller^Jürgen"), _nested("Müller"), "person-name"),
    "iso-2022-jp-name": (_encoded_names("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎"), _nested("山田太郎"),
                         "person-name"),
    "utf-8-name": (_encoded_names("ISO_IR 192", "Wang^XiaoDong=王^小東"), _nested("王小東"), "person-name"),
}


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_a_leak_is_found_alike_from_the_bytes_and_from_the_copy_as_read(leak: str) -> None:
    original, change, kind = LEAKS[leak]
    from_bytes, from_copy = _both_paths(original, change)
    assert from_copy == from_bytes
    assert any(getattr(f, "detail", "") == kind and getattr(f, "rule", "") in (
        VerifyRule.ORIGINAL_VALUE_IN_BYTES, VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE) for f in from_copy)


def test_an_unshifted_date_and_time_are_found_alike_from_the_copy() -> None:
    original = planted()
    before = read(original)

    def put_back(ds: Dataset) -> None:
        ds.StudyDate, ds.StudyTime = before.StudyDate, before.get("StudyTime", "101500")

    from_bytes, from_copy = _both_paths(original, put_back, MODIFIED)
    assert from_copy == from_bytes
    assert {VerifyRule.DATE_NOT_SHIFTED} <= {getattr(f, "rule", None) for f in from_copy}


def test_the_copy_as_read_does_not_follow_the_scrub() -> None:
    """The scrub changes its dataset in place (values, sequence items, private blocks, file
    meta); the copy taken before keeps the original, equal to a fresh read of its bytes."""
    original = planted()
    scrubbed = scrub_bytes(original, compile_plan("basic", []), Keys(key=KEY), keep_original=True)
    assert scrubbed.before is not None
    fresh = read(original)
    assert scrubbed.before == fresh
    assert scrubbed.before.file_meta == fresh.file_meta
    nested = scrubbed.before.ReferencedInstanceSequence[0].ProcedureCodeSequence[0]
    assert nested.ContentCreatorName == NAME


def test_a_copy_as_read_shares_nothing_a_change_reaches() -> None:
    ds = read(planted())
    copied = as_read(ds)
    ds.PatientName = "Changed^Name"
    ds.ReferencedInstanceSequence[0].ProcedureCodeSequence[0].ContentCreatorName = "Changed^Name"
    del ds[0x00410010]
    ds.file_meta.MediaStorageSOPInstanceUID = "2.25.1"
    assert copied.PatientName == NAME
    assert copied.ReferencedInstanceSequence[0].ProcedureCodeSequence[0].ContentCreatorName == NAME
    assert 0x00410010 in copied
    assert copied.file_meta.MediaStorageSOPInstanceUID != "2.25.1"


def test_keeping_the_copy_changes_no_output_byte() -> None:
    plan = compile_plan("basic", list(MODIFIED))
    for original in (planted(), LEAKS["iso-2022-jp-name"][0]):
        kept = scrub_bytes(original, plan, Keys(key=KEY), keep_original=True)
        assert kept.data == scrub_bytes(original, plan, Keys(key=KEY)).data


def test_the_runner_gives_verify_its_copy_as_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """process_one parses the input once: verify gets the copy, not the bytes to parse again."""
    seen: list[object] = []
    real = verdict_module.VERIFY

    def recording(output: bytes, options: tuple[str, ...], original: bytes | Dataset | None, path: str | None,
                  pixels: PixelBound | None = None) -> object:
        seen.append(original)
        return real(output, options, original, path, pixels)

    monkeypatch.setattr(verdict_module, "VERIFY", recording)
    inputs = build_inputs(tmp_path / "in")
    (tmp_path / "quarantine").mkdir()
    cfg = WorkerConfig(tmp_path / "release", tmp_path / "quarantine")
    [src] = [s for s in discover([inputs]) if s.path.name == "ct_head_2004.dcm"]
    outcome = process_one(src, compile_plan("basic", []), Keys(key=KEY), cfg)
    assert outcome.disposition is Disposition.WRITTEN, outcome
    assert len(seen) == 1 and isinstance(seen[0], Dataset)
