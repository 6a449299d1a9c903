"""A run's Dask task (pipeline/runner/task.py): the plan, keys and worker configuration travel as
bytes pickled once, are unpickled once per process while they stay the same, and give the same
outcomes as `process_batch` given the objects themselves; bytes holding anything else are refused.
A process that runs files keeps the memory it frees for the next (`tune_allocator`) and lets a
thread waiting for the GIL have it sooner (`tune_switch_interval`).
Batches (pipeline/runner/executors.py `chunked`) hold every input once, in order, and get smaller at
the end when workers share them."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
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


_REUSE_PROBE = """
import resource, sys
from pipeline.runner import task
applied = task.tune_allocator() if sys.argv[1] == "tuned" else None
def faults_of_fresh_buffers() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        buffer = bytearray(4 << 20)  # 4 MB, touched (zeroed) and freed, as a file's bytes are
        del buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_fresh_buffers()
print(applied, faults_of_fresh_buffers())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator: Linux")
def test_a_tuned_process_reuses_the_memory_it_frees_even_under_a_nannys_trim_threshold() -> None:
    # A Dask nanny starts its worker with MALLOC_TRIM_THRESHOLD_=65536: every freed buffer was
    # given back and the next file's faulted in afresh, page by page (~1000 faults for 4 MB).
    def probe(mode: str) -> tuple[str, int]:
        done = subprocess.run([sys.executable, "-c", _REUSE_PROBE, mode], capture_output=True, text=True, check=True,
                              env={**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"})
        applied, faults = done.stdout.split()
        return applied, int(faults)

    untuned, tuned = probe("untuned"), probe("tuned")
    assert untuned[1] > 20 * 500  # each 4 MB buffer faulted in again
    assert tuned == ("True", tuned[1]) and tuned[1] < 20 * 50


_SWITCH_PROBE = """
import sys
from pathlib import Path
from pipeline.profile.plan import compile_plan
from pipeline.runner import task
from pipeline.runner.process import WorkerConfig
from pipeline.scrub.keys import Keys
before = sys.getswitchinterval()
cfg = WorkerConfig(release=Path(sys.argv[1]) / "release", quarantine=Path(sys.argv[1]) / "quarantine")
task.unpack(task.pack(compile_plan("basic", []), Keys(key=sys.argv[2].encode("ascii")), cfg))
print(before, sys.getswitchinterval())
"""


def test_a_process_that_runs_files_lets_a_waiting_thread_have_the_gil_after_a_millisecond(tmp_path: Path) -> None:
    """Its first context shortens the switch interval from Python's 5 ms to `SWITCH_INTERVAL`,
    so the publisher's threads get the GIL back soon after each system call (`tune_switch_interval`)."""
    done = subprocess.run([sys.executable, "-c", _SWITCH_PROBE, str(tmp_path), KEY_HEX], capture_output=True,
                          text=True, check=True)
    before, after = (float(value) for value in done.stdout.split())
    assert before == 0.005 and after == task.SWITCH_INTERVAL == 0.001
