"""Every input a run submits gets exactly one outcome (issue 18, item 10): a Dask batch whose
task fails is quarantined whole, a batch that comes back short has its missing inputs
quarantined, and outcomes for inputs a batch was not given stop the run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import distributed
import pytest

from pipeline.profile.plan import compile_plan
from pipeline.runner import executors
from pipeline.runner import process as process_module
from pipeline.runner.accounting import OUTCOME_MISSING, AccountingError, Accounts
from pipeline.runner.discover import SourceFile, discover, location_key
from pipeline.runner.manifest import Location
from pipeline.runner.orchestrate import EXIT_QUARANTINED, RunConfig, RunResult, run
from pipeline.runner.outcome import Disposition, Outcome
from pipeline.runner.process import WorkerConfig
from pipeline.scrub.keys import Keys
from tests.conftest_run import KEY_HEX, build_inputs, release_files

KEYS = Keys(key=KEY_HEX.encode("ascii"))
PLAN = compile_plan("basic", [])
DOOMED = "mr_knee.dcm"  # the batch holding this input fails on the worker


def _run(tmp_path: Path, inputs: Path, name: str, **options: object) -> RunResult:
    cfg = RunConfig(inputs=(inputs,), release=tmp_path / name / "release", quiet=True, **options)  # type: ignore[arg-type]
    return run(cfg, PLAN, KEYS)


def _ledger(tmp_path: Path, name: str) -> dict[str, str]:
    lines = (tmp_path / name / "release.quarantine" / "ledger.jsonl").read_text().splitlines()
    return {entry["source_id"]: entry["reason"] for entry in map(json.loads, lines)}


def _manifest(tmp_path: Path, name: str) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(tmp_path / name / "release.manifest.sqlite")) as db:
        return dict(db.execute("SELECT source_id, status FROM inputs").fetchall())


def test_a_dask_batch_whose_task_fails_is_redone_file_by_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real scheduler and worker (a LocalCluster in this process, so the fault injected into
    process_one reaches the worker): the batch holding DOOMED raises on the worker. Its inputs
    are redone one a task: DOOMED is quarantined with the task's error (ledger, manifest, the
    original kept), its batch-mate is recorded as published, and the manifest agrees with the
    release: every published file is a manifest row and nothing else is in the release."""
    inputs = build_inputs(tmp_path / "in", broken=True)
    sources = list(discover([inputs]))
    serial = _run(tmp_path, inputs, "serial", workers=0)
    real = process_module.process_one

    def failing(src: SourceFile, plan: object, keys: Keys, cfg: WorkerConfig, **options: bool) -> Outcome:
        if src.path.name == DOOMED:
            raise RuntimeError("injected fault")
        return real(src, plan, keys, cfg, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(process_module, "process_one", failing)
    in_process = {"n_workers": 1, "threads_per_worker": 1, "processes": False, "dashboard_address": ":0"}
    with distributed.LocalCluster(**in_process) as cluster:
        result = _run(tmp_path, inputs, "dask", scheduler=cluster.scheduler_address, batch_size=2)
    doomed = next(s for s in sources if s.path.name == DOOMED)
    mate = next(s for s in sources if s.index // 2 == doomed.index // 2 and s is not doomed)
    lost = "path-" + location_key(doomed.path, KEYS)
    assert sum(result.processed.values()) == len(sources) == sum(serial.processed.values())
    assert result.exit_status == EXIT_QUARANTINED
    assert _ledger(tmp_path, "dask").get(lost) == "unexpected-RuntimeError"
    statuses = _manifest(tmp_path, "dask")
    assert statuses[lost] == "quarantined"
    assert lost in {p.name.removesuffix(".dcm") for p in (tmp_path / "dask" / "release.quarantine").iterdir()}
    mate_id = hashlib.sha256(mate.path.read_bytes()).hexdigest()
    assert statuses[mate_id] == "written"  # redone alone: recorded as what it is, published
    published, expected = release_files(tmp_path / "dask" / "release"), release_files(tmp_path / "serial" / "release")
    assert set(published) < set(expected) and len(published) == len(expected) - 1  # all but DOOMED's output
    assert all(expected[name] == data for name, data in published.items())
    with contextlib.closing(sqlite3.connect(tmp_path / "dask" / "release.manifest.sqlite")) as db:
        outputs = {o for (o,) in db.execute("SELECT output FROM inputs WHERE status = 'written'")}
    assert outputs == set(published)


def _short(sources: Sequence[SourceFile], plan: object, keys: Keys, cfg: WorkerConfig) -> tuple[Outcome, ...]:
    """A process_batch that loses the last outcome of every batch of two or more."""
    outcomes = process_module.process_batch(sources, plan, keys, cfg)  # type: ignore[arg-type]
    return outcomes[:-1] if len(outcomes) > 1 else outcomes


def test_a_batch_that_returns_too_few_outcomes_has_the_missing_inputs_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = build_inputs(tmp_path / "in", broken=True)
    sources = list(discover([inputs]))
    monkeypatch.setattr(executors, "process_batch", _short)
    result = _run(tmp_path, inputs, "short", workers=0, batch_size=3)
    assert sum(result.processed.values()) == len(sources) == 8
    missing = {"path-" + location_key(s.path, KEYS) for s in sources if s.index % 3 == 2}
    assert {sid: r for sid, r in _ledger(tmp_path, "short").items() if sid in missing} == dict.fromkeys(
        missing, OUTCOME_MISSING)
    assert len(_manifest(tmp_path, "short")) == len(sources)


def _batch(tmp_path: Path, *names: str) -> tuple[tuple[SourceFile, Location], ...]:
    return tuple((SourceFile(tmp_path / name, 1, i), Location(name, 1, 0)) for i, name in enumerate(names))


def _quarantined(src: SourceFile, reason: str) -> Outcome:
    return Outcome(f"path-{src.index}", src.index, Disposition.QUARANTINED, reason=reason)


def test_outcomes_for_inputs_a_batch_was_not_given_stop_the_run(tmp_path: Path) -> None:
    accounts = Accounts(_quarantined)
    batch = _batch(tmp_path, "a", "b")
    written = Outcome("x", 0, Disposition.WRITTEN, output="o.dcm")
    with pytest.raises(AccountingError):
        accounts.settle(batch, (written, written))
    with pytest.raises(AccountingError):
        accounts.settle(batch, (Outcome("y", 7, Disposition.WRITTEN, output="p.dcm"),))


def test_a_batch_that_never_comes_back_is_quarantined_whole(tmp_path: Path) -> None:
    accounts = Accounts(_quarantined)
    first, second = _batch(tmp_path, "a", "b"), tuple(
        (SourceFile(tmp_path / n, 1, i), Location(n, 1, 0)) for i, n in ((2, "c"), (3, "d")))
    submitted = list(accounts.track(iter([first, second])))
    assert submitted == [first, second]
    settled = accounts.settle(second, (Outcome("d", 3, Disposition.WRITTEN, output="d.dcm"),))
    assert [(o.index, o.reason) for o in settled] == [(2, OUTCOME_MISSING), (3, None)]
    [(batch, outcomes)] = list(accounts.unsettled())
    assert batch == first and [(o.index, o.reason) for o in outcomes] == [(0, OUTCOME_MISSING), (1, OUTCOME_MISSING)]
    assert list(accounts.unsettled()) == []
