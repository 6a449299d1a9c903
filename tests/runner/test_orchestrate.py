"""orchestrate and outcome: one file fail-closed, and the same bytes from a plain loop, a local
Dask cluster of one or two workers, and an external scheduler."""

from __future__ import annotations

import contextlib
import hashlib
import operator
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.profile.plan import compile_plan
from pipeline.runner.cluster import DASK_LOG_LENGTH, connect, map_batches
from pipeline.runner.discover import discover
from pipeline.runner.orchestrate import EXIT_QUARANTINED, RunConfig, RunResult, run
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import WorkerConfig, process_one
from pipeline.scrub.keys import Keys
from tests.conftest_run import (
    GOOD_FILES,
    KEY_HEX,
    NOT_DICOM_FILES,
    RAW_FILE,
    TRUNCATED_FILE,
    build_inputs,
    identifying_strings,
    release_files,
)

KEYS = Keys(key=KEY_HEX.encode("ascii"))
DASK = Path(sys.executable).with_name("dask")


def _run(tmp_path: Path, inputs: Path, name: str, **options: object) -> RunResult:
    cfg = RunConfig(inputs=(inputs,), release=tmp_path / name / "release", quiet=True, **options)  # type: ignore[arg-type]
    return run(cfg, compile_plan("basic", []), KEYS)


def test_one_file_is_published_skipped_or_quarantined_by_what_it_holds(tmp_path: Path) -> None:
    inputs = build_inputs(tmp_path / "in", broken=True)
    cfg = WorkerConfig(release=tmp_path / "release", quarantine=tmp_path / "quarantine")
    (tmp_path / "quarantine").mkdir()
    plan = compile_plan("basic", [])
    results = {src.path.relative_to(inputs).as_posix(): (src, process_one(src, plan, KEYS, cfg))
               for src in discover([inputs])}
    for relative in GOOD_FILES:
        src, outcome = results[relative]
        assert outcome.disposition is Disposition.WRITTEN, outcome
        assert outcome.source_id == hashlib.sha256(src.path.read_bytes()).hexdigest()
        assert outcome.output is not None and (tmp_path / "release" / outcome.output).is_file()
        assert dict(outcome.actions)["U"] > 0
        assert outcome.uid_pairs == () and outcome.patient_pair is None
    assert [results[r][1].reason for r in NOT_DICOM_FILES] == ["empty", "not-dicom"]
    assert {results[r][1].disposition for r in NOT_DICOM_FILES} == {Disposition.SKIPPED}
    outcome = results[TRUNCATED_FILE][1]
    assert (outcome.disposition, outcome.reason) == (Disposition.QUARANTINED, "bad-input:length-beyond-file")
    kept = tmp_path / "quarantine" / f"{outcome.source_id}.dcm"
    assert kept.read_bytes() == (inputs / TRUNCATED_FILE).read_bytes()
    outcome = results[RAW_FILE][1]  # no preamble and file meta, implicit VR little endian: published as PS3.10
    assert outcome.disposition is Disposition.WRITTEN and outcome.output is not None, outcome
    published = (tmp_path / "release" / outcome.output).read_bytes()
    assert published[:132] == b"\x00" * 128 + b"DICM"
    text = " ".join(repr(outcome) for _, outcome in results.values())
    assert not [value for value in identifying_strings() if value in text]


def test_a_dicomdir_is_skipped_not_published(tmp_path: Path) -> None:
    from tests.conftest_run import bundled

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "DICOMDIR").write_bytes(bundled("DICOMDIR").read_bytes())
    [src] = list(discover([tmp_path / "in"]))
    outcome = process_one(src, compile_plan("basic", []), KEYS, WorkerConfig(tmp_path / "r", tmp_path / "q"))
    assert (outcome.disposition, outcome.reason) == (Disposition.SKIPPED, "dicomdir")
    assert not (tmp_path / "r").exists()


def test_the_mapping_pairs_come_back_only_when_asked_for(tmp_path: Path) -> None:
    inputs = build_inputs(tmp_path / "in")
    [src] = [s for s in discover([inputs]) if s.path.name == "ct_head_2004.dcm"]
    plan = compile_plan("basic", [])
    outcome = process_one(src, plan, KEYS, WorkerConfig(tmp_path / "r", tmp_path / "q", with_mapping=True))
    originals = {original for original, _ in outcome.uid_pairs}
    assert outcome.patient_pair is not None and outcome.patient_pair[1].startswith("PAT-")
    assert outcome.output is not None
    study, series, instance = outcome.output.removesuffix(".dcm").split("/")[1:]
    assert {new for _, new in outcome.uid_pairs} >= {study, series, instance}
    assert all(not o.startswith("2.25.") or o not in {study, series, instance} for o in originals)
    assert "uid_pairs" not in repr(outcome) and outcome.patient_pair[0] not in repr(outcome)


def test_serial_and_local_dask_runs_of_one_and_two_workers_publish_identical_bytes(tmp_path: Path) -> None:
    inputs = build_inputs(tmp_path / "in", broken=True)
    serial = _run(tmp_path, inputs, "serial", workers=0)
    notices: list[str] = []
    cfg = RunConfig(inputs=(inputs,), release=tmp_path / "one" / "release", quiet=True, workers=1, dashboard=True)
    one = run(cfg, compile_plan("basic", []), KEYS, announce=notices.append)
    two = _run(tmp_path, inputs, "two", workers=2, batch_size=1)
    expected = release_files(tmp_path / "serial" / "release")
    assert len(expected) == len(GOOD_FILES) + 1  # and the dataset stored without file meta
    assert release_files(tmp_path / "one" / "release") == expected
    assert release_files(tmp_path / "two" / "release") == expected
    for result in (serial, one, two):
        assert result.exit_status == EXIT_QUARANTINED
        assert result.processed == {"written": 5, "skipped-not-dicom": 2, "quarantined": 1}
    assert [n for n in notices if n.startswith("Dask dashboard: http")]
    quarantined = {p.name for p in (tmp_path / "two" / "release.quarantine").iterdir()}
    assert quarantined == {p.name for p in (tmp_path / "serial" / "release.quarantine").iterdir()}


def test_dask_keeps_short_debug_logs_so_memory_does_not_grow_with_each_batch() -> None:
    # distributed logs its last messages (each compute-task carries an unpickled plan) and the
    # workers' per-second profiles; at its default length they grew with the archive (issue #7).
    with connect(1, None, "1GiB", lambda _: None) as (client, _):
        scheduler = client.cluster.scheduler
        streams = [stream.recent_message_log.maxlen for stream in scheduler.stream_comms.values()]
        in_client = {client.scheduler_comm.recent_message_log.maxlen, scheduler.transition_log.maxlen, *streams}
        in_workers = client.run(lambda dask_worker: (dask_worker.batched_stream.recent_message_log.maxlen,
                                                     dask_worker.profile_history.maxlen,
                                                     dask_worker.profile_keys_history.maxlen))
    assert len(streams) == 1 and in_client == {DASK_LOG_LENGTH}
    assert list(in_workers.values()) == [(DASK_LOG_LENGTH,) * 3]


def _worker_settings() -> tuple[str | None, bool, str, str]:
    import os

    import dask

    return (os.environ.get("MALLOC_TRIM_THRESHOLD_"), bool(dask.config.get("distributed.worker.profile.enabled")),
            str(dask.config.get("distributed.admin.tick.interval")),
            str(dask.config.get("distributed.admin.system-monitor.interval")))


def test_a_local_cluster_without_dashboard_runs_workers_without_profiler_forced_trimming_or_frequent_monitors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A nanny's MALLOC_TRIM_THRESHOLD_=65536 made every file's buffers be mapped afresh (~1.3 ms a
    # file); the profiler samples the worker every 10 ms for a dashboard that is not there.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    notices: list[str] = []
    with connect(1, None, "1GiB", notices.append, dashboard=False) as (client, _):
        client.submit(sum, [1, 2], pure=False).result()
        settings = client.run(_worker_settings)
    # nor wakes it every 20 ms to time its event loop, nor reads the system's counters twice a second
    assert list(settings.values()) == [(None, False, "1s", "5s")]
    assert notices == []


def test_a_local_cluster_without_dashboard_starts_while_another_holds_the_dashboard_port() -> None:
    # The scheduler's HTTP server defaults to port 8787: with another cluster there, distributed
    # warns (an error under this suite's warnings-as-errors) and the cluster did not start.
    with contextlib.ExitStack() as stack:
        holder = stack.enter_context(socket.socket())
        with contextlib.suppress(OSError):  # already held by another cluster: the same situation
            holder.bind(("127.0.0.1", 8787))
            holder.listen()
        with connect(1, None, "1GiB", lambda _: None, dashboard=False) as (client, _):
            assert client.submit(sum, [1, 2], pure=False).result() == 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def external_scheduler(tmp_path: Path) -> Iterator[str]:
    """A real `dask scheduler` and one `dask worker` on 127.0.0.1, as subprocesses."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    commands = (
        ("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]),
        ("worker", [str(DASK), "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                    "--local-directory", str(logs / "scratch")]),
    )
    with contextlib.ExitStack() as stack:
        processes: list[subprocess.Popen[bytes]] = []
        for name, command in commands:
            log = stack.enter_context((logs / f"{name}.log").open("wb"))
            processes.append(subprocess.Popen(command, cwd=logs, stdout=subprocess.DEVNULL, stderr=log))
            stack.callback(_stop, processes[-1])
        yield address


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_a_run_on_an_external_scheduler_publishes_the_same_bytes(tmp_path: Path, external_scheduler: str) -> None:
    inputs = build_inputs(tmp_path / "in")
    serial = _run(tmp_path, inputs, "serial", workers=0)
    remote = _run(tmp_path, inputs, "remote", scheduler=external_scheduler, batch_size=2)
    assert serial.exit_status == remote.exit_status == 0
    assert remote.processed == {"written": 4, "skipped-not-dicom": 2}
    assert release_files(tmp_path / "remote" / "release") == release_files(tmp_path / "serial" / "release")
    record = (tmp_path / "remote" / "release.run.json").read_text()
    assert '"executor": "scheduler"' in record and external_scheduler not in record


def test_a_local_cluster_for_verify_starts_without_a_dashboard() -> None:
    """`verify` maps its batches on a local cluster (`map_batches`): no dashboard and no "Dask
    dashboard" notice, as the README says of a local cluster (a newcomer saw one printed)."""
    notices: list[str] = []
    results = sorted(map_batches(operator.add, [(1, 2), (3, 4)], 1, None, notices.append))
    assert results == [3, 7]
    assert not [n for n in notices if "dashboard" in n.lower()]
    assert notices == ["Dask: local-cluster, 1 worker thread(s)"]  # what it ran on, said once
