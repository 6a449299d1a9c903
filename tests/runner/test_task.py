"""A run's Dask task (pipeline/runner/task.py): the plan, keys and worker configuration travel as
bytes pickled once, are unpickled once per process while they stay the same, and give the same
outcomes as `process_batch` given the objects themselves; bytes holding anything else are refused.
Batches (pipeline/runner/executors.py `chunked`) hold every input once, in order, and get smaller at
the end when workers share them."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pipeline.profile.plan import compile_plan
from pipeline.runner import task
from pipeline.runner.discover import discover
from pipeline.runner.executors import chunked
from pipeline.runner.process import WorkerConfig, process_batch
from pipeline.scrub.keys import Keys
from tests.conftest_run import KEY_HEX, build_inputs, release_files

KEYS = Keys(key=KEY_HEX.encode("ascii"))


def _cfg(folder: Path) -> WorkerConfig:
    (folder / "quarantine").mkdir(parents=True)
    (folder / "release").mkdir()
    return WorkerConfig(release=folder / "release", quarantine=folder / "quarantine", staging=folder / "staging")


def test_a_packed_batch_has_the_outcomes_and_outputs_of_the_batch_given_as_objects(tmp_path: Path) -> None:
    inputs = build_inputs(tmp_path / "in", broken=True)
    sources = list(discover([inputs]))
    plan = compile_plan("basic", ["retain-patient-characteristics"])
    direct = process_batch(sources, plan, KEYS, _cfg(tmp_path / "direct"))
    packed = task.process_packed(sources, task.pack(plan, KEYS, _cfg(tmp_path / "packed")))
    assert [(o.source_id, o.disposition, o.output, o.reason, o.actions) for o in packed] == [
        (o.source_id, o.disposition, o.output, o.reason, o.actions) for o in direct]
    assert release_files(tmp_path / "packed" / "release") == release_files(tmp_path / "direct" / "release")


def test_the_context_is_unpickled_once_while_the_same_bytes_come_and_again_when_they_change(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    first = task.pack(compile_plan("basic", []), KEYS, cfg)
    assert task.unpack(first) is task.unpack(bytes(bytearray(first)))  # equal bytes, another object: the same context
    other = task.pack(compile_plan("basic", ["retain-patient-characteristics"]), KEYS, cfg)
    plan, keys, worker_cfg = task.unpack(other)
    assert [o.value for o in plan.options] == ["retain-patient-characteristics"]
    assert keys.fingerprint == KEYS.fingerprint and worker_cfg == cfg


def test_bytes_that_do_not_hold_a_plan_keys_and_configuration_are_refused(tmp_path: Path) -> None:
    with pytest.raises(task.ContextError):
        task.unpack(pickle.dumps(("plan", KEYS, _cfg(tmp_path))))


@pytest.mark.parametrize(("count", "workers"), [(0, 2), (1, 2), (10, 2), (500, 2), (2000, 2), (500, 1), (130, 0)])
def test_batches_hold_every_input_once_in_order_and_end_smaller_when_workers_share_them(
        count: int, workers: int) -> None:
    batches = list(chunked(iter(range(count)), 64, workers))
    assert [item for batch in batches for item in batch] == list(range(count))
    assert all(0 < len(batch) <= 64 for batch in batches)
    if workers < 2:
        assert [len(batch) for batch in batches[:-1]] == [64] * (len(batches) - 1)
    elif count > 64 * 4:
        assert max(len(batch) for batch in batches[-4:]) <= 64 // 4  # the last batches: a few files each
