"""Faults at a remote destination (issue 17): an S3 bucket (moto_server) or Orthanc behind a proxy
(tests/proxy.py) that fails requests with 500 or 503, or holds the answer to one store while the test
kills the run or a Dask worker (SIGKILL).

After each: the destination holds only verified outputs, byte for byte those of a local run;
nothing is stored twice (counted from what the server really did, whatever the client was told);
a store that keeps failing is quarantined as ``store-failed:<status>`` (original kept) and the next
run stores it, without --retry-quarantined; the rerun completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest_destination import (  # noqa: F401 (fixtures: key, small, local, fresh_orthanc)
    ARCHIVE,
    CLI,
    behind_proxy,
    by_sop,
    fresh_orthanc_fixture,
    key_fixture,
    local_fixture,
    manifest_rows,
    only_verified,
    published,
    run,
    small_fixture,
    stores,
)
from tests.proxy import every
from tests.runner.test_faults import Cluster
from tests.servers import S3_ENV, Moto, Orthanc, orthanc, s3  # noqa: F401 (fixture)


@pytest.mark.parametrize("kind", ["s3", "dicomweb"])
def test_server_errors_are_retried_and_nothing_is_stored_twice(
        kind: str, s3: Moto, tmp_path: Path, key: Path, local: dict[Path, dict[str, bytes]]) -> None:  # noqa: F811
    """Every third write fails with 503 after the server handled it (the client hears failure), every
    fourth read fails with 500 before it: the run completes, each output stored exactly once."""
    writes = every(3, 503, methods=("PUT", "POST"), after=True)
    reads = every(4, 500, methods=("GET", "HEAD"))

    def faults(method: str, path: str, seen: int) -> tuple[int, bool] | None:
        return writes(method, path, seen) or reads(method, path, seen)

    with behind_proxy(kind, s3, tmp_path) as (front, output, env):
        front.policy = faults
        result = run(ARCHIVE, output, key, "--manifest", str(tmp_path / "r.manifest.sqlite"), env=env)
        held = published(kind, front, output, s3)
        expected = local[ARCHIVE] if kind == "s3" else by_sop(local[ARCHIVE])
        assert held == expected
        failed = [e for e in front.log if e.answered >= 500]
        print(f"{kind}: {len(front.log)} requests, {len(failed)} failed by the proxy, exit {result.returncode}")
        assert len([e for e in failed if e.upstream is not None]) >= 3  # stored, yet told it failed
        assert len(stores(kind, front)) == len(expected)  # each stored once
        assert "store-failed" not in json.dumps(manifest_rows(tmp_path / "r.manifest.sqlite"))


@pytest.mark.parametrize("kind", ["s3", "dicomweb"])
def test_a_store_that_keeps_failing_is_quarantined_and_the_next_run_stores_it(
        kind: str, s3: Moto, tmp_path: Path, key: Path, small: Path,  # noqa: F811
        local: dict[Path, dict[str, bytes]]) -> None:
    manifest = tmp_path / "r.manifest.sqlite"
    with behind_proxy(kind, s3, tmp_path) as (front, output, env):
        front.policy = lambda method, path, seen: (503, True) if method in ("PUT", "POST") else None
        failing = run(small, output, key, "--manifest", str(manifest), env=env)
        assert failing.returncode == 1
        reasons = [reason for status, _, reason in manifest_rows(manifest) if status == "quarantined"]
        assert reasons.count("store-failed:503") == len(local[small])
        assert "503" in failing.stderr and (kind == "s3" or front.url in failing.stderr)
        assert published(kind, front, output, s3) == {}
        kept = tmp_path / "r.quarantine"
        assert len(list(kept.glob("*.dcm"))) == reasons.count("store-failed:503") + 1  # + the broken input
        front.policy = lambda method, path, seen: None
        rerun = run(small, output, key, "--manifest", str(manifest), env=env)  # no --retry-quarantined
        expected = local[small] if kind == "s3" else by_sop(local[small])
        assert published(kind, front, output, s3) == expected
        assert len(stores(kind, front)) == len(expected)
        assert f"this run: written {len(expected)}" in rerun.stdout
        assert len(list(kept.glob("*.dcm"))) == 1  # only the broken input stays quarantined


# --- killed mid-run: stored, not recorded -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["s3", "dicomweb"])
def test_a_run_killed_after_a_store_and_before_its_record_does_not_store_it_again(
        kind: str, s3: Moto, tmp_path: Path, key: Path, local: dict[Path, dict[str, bytes]]) -> None:  # noqa: F811
    """The proxy holds the answer to the fifth store after the server made it; the run is killed
    with SIGKILL meanwhile. The destination holds only verified outputs; the manifest does not know
    the held one; the rerun finds it there and does not store it again."""
    manifest = tmp_path / "r.manifest.sqlite"
    expected = local[ARCHIVE] if kind == "s3" else by_sop(local[ARCHIVE])
    with behind_proxy(kind, s3, tmp_path) as (front, output, env):
        count = iter(range(1000))
        front.hold = lambda method, path: ((method == "PUT" and ".dcm" in path) or method == "POST") and next(
            count) == 4
        command = [str(CLI), "run", str(ARCHIVE), "--output", output, "--key-file", str(key), "--quiet",
                   "--workers", "0", "--batch-size", "2", "--manifest", str(manifest)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, **env})
        try:
            assert front.held.wait(timeout=120), "the fifth store never came"
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        front.release.set()
        held = published(kind, front, output, s3)
        only_verified(held, expected)
        assert len(held) == 5
        recorded = {o.rsplit("/", 1)[-1].removesuffix(".dcm") for s, o, _ in manifest_rows(manifest) if s == "written"}
        assert len(recorded) < 5  # the held store (at least) was never recorded
        run(ARCHIVE, output, key, "--manifest", str(manifest), env=env)
        assert published(kind, front, output, s3) == expected
        writes = stores(kind, front)  # S3: one PUT per key; DICOMweb: one POST per instance, to /studies
        assert len(writes) == len(expected)  # each output stored once, over both runs
        assert kind == "dicomweb" or len(set(writes)) == len(writes)


def test_a_dask_worker_killed_while_its_store_is_answered_does_not_store_it_twice(
        s3: Moto, tmp_path: Path, key: Path, local: dict[Path, dict[str, bytes]],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On an external Dask cluster, the proxy holds the answer to the third PUT after S3 stored the
    object; that worker is killed (SIGKILL) and a second one started: Dask reruns the batch there,
    which finds the object and does not PUT it again. Every output stored once, all verified."""
    cluster = Cluster(tmp_path / "dask")
    with behind_proxy("s3", s3, tmp_path) as (front, output, env):
        for name, value in env.items():  # the workers find the bucket the way the client does
            monkeypatch.setenv(name, value)
        count = iter(range(1000))
        front.hold = lambda method, path: method == "PUT" and ".dcm" in path and next(count) == 2
        command = [str(CLI), "run", str(ARCHIVE), "--output", output, "--key-file", str(key), "--quiet",
                   "--scheduler", cluster.address, "--batch-size", "2",
                   "--manifest", str(tmp_path / "r.manifest.sqlite")]
        process = None
        try:
            cluster.scheduler()
            doomed = cluster.worker("worker-a")
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert front.held.wait(timeout=180), "the third store never came"
            only_verified(published("s3", front, output, s3), local[ARCHIVE])
            cluster.worker("worker-b")
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=10)
            front.release.set()
            out, err = process.communicate(timeout=300)
            assert process.returncode in (0, 1) and "Traceback" not in err, err[-3000:]
        finally:
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
            cluster.stop()
        assert published("s3", front, output, s3) == local[ARCHIVE]
        writes = stores("s3", front)
        assert len(writes) == len(set(writes)) == len(local[ARCHIVE])
        assert f"release files: {len(local[ARCHIVE])}" in out


