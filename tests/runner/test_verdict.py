"""process: a staged file is published only on a positive verdict of the verifier. A verifier
that cannot be imported, or that returns anything but a `Verdict` which checked the file and
searched its original (an empty list above all), publishes nothing (issue 18, item 10)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.profile.plan import compile_plan
from pipeline.runner import verdict as verdict_module
from pipeline.runner.discover import discover
from pipeline.runner.orchestrate import EXIT_QUARANTINED, RunConfig, run
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import WorkerConfig, process_one
from pipeline.runner.verdict import VERIFY_NO_VERDICT, VERIFY_UNAVAILABLE
from pipeline.scrub.keys import Keys
from pipeline.verify.findings import Verdict
from tests.conftest_run import GOOD_FILES, KEY_HEX, build_inputs

KEYS = Keys(key=KEY_HEX.encode("ascii"))
PLAN = compile_plan("basic", [])


def _one_good_file(tmp_path: Path) -> tuple[Path, WorkerConfig]:
    inputs = build_inputs(tmp_path / "in")
    (tmp_path / "quarantine").mkdir()
    return inputs, WorkerConfig(tmp_path / "release", tmp_path / "quarantine")


def _published(release: Path) -> list[Path]:
    return [p for p in release.rglob("*") if p.is_file()] if release.exists() else []


def test_the_real_verifier_publishes_a_good_file(tmp_path: Path) -> None:
    """The control for the tests below: the same file, the default verifier, published."""
    inputs, cfg = _one_good_file(tmp_path)
    [src] = [s for s in discover([inputs]) if s.path.name == "ct_head_2004.dcm"]
    outcome = process_one(src, PLAN, KEYS, cfg)
    assert outcome.disposition is Disposition.WRITTEN, outcome
    assert len(_published(cfg.release)) == 1


def test_an_unimportable_verifier_quarantines_every_file_and_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sys.modules[name] = None`` makes every import of pipeline.verify.checks fail, as a
    missing or broken module would; a whole serial run then publishes nothing."""
    monkeypatch.setitem(sys.modules, "pipeline.verify.checks", None)
    inputs = build_inputs(tmp_path / "in")
    release = tmp_path / "out" / "release"
    result = run(RunConfig(inputs=(inputs,), release=release, quiet=True, workers=0), PLAN, KEYS)
    assert result.exit_status == EXIT_QUARANTINED
    assert result.processed == {"quarantined": len(GOOD_FILES), "skipped-not-dicom": 2}
    assert _published(release) == []
    ledger = (tmp_path / "out" / "release.quarantine" / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["reason"] for line in ledger] == [VERIFY_UNAVAILABLE] * len(GOOD_FILES)


def _verdict(findings: tuple[object, ...] = (), checked: int = 10, searched: bool = True) -> Verdict:
    return Verdict(findings, checked, searched)  # type: ignore[arg-type]


NO_VERDICTS = {
    "empty-list": lambda *_: [],
    "empty-tuple": lambda *_: (),
    "none": lambda *_: None,
    "true": lambda *_: True,
    "look-alike": lambda *_: SimpleNamespace(findings=(), elements_checked=10, original_searched=True,
                                             verified=True),
    "nothing-checked": lambda *_: _verdict(checked=0),
    "original-not-searched": lambda *_: _verdict(searched=False),
}


@pytest.mark.parametrize("name", sorted(NO_VERDICTS))
def test_a_verifier_that_returns_no_positive_verdict_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(verdict_module, "VERIFY", NO_VERDICTS[name])
    inputs, cfg = _one_good_file(tmp_path)
    [src] = [s for s in discover([inputs]) if s.path.name == "ct_head_2004.dcm"]
    outcome = process_one(src, PLAN, KEYS, cfg)
    assert (outcome.disposition, outcome.reason) == (Disposition.QUARANTINED, VERIFY_NO_VERDICT)
    assert _published(cfg.release) == []
    assert (cfg.quarantine / f"{outcome.source_id}.dcm").read_bytes() == src.path.read_bytes()
