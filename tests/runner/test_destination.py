"""Remote destinations (issue 17 items 1, 3, 5), against real servers on 127.0.0.1: an S3 bucket
(moto_server) and Orthanc with its DICOMweb plugin, each behind a proxy (tests/proxy.py) that can fail
requests or hold an answer while the test kills the run.

Shown here: a release in a bucket is the local release byte for byte (same keys); a release stored
in Orthanc with STOW-RS comes back (WADO-RS) byte for byte; the scan of either reports nothing
severe and the scorer finds no leak; the run's records stay beside the local manifest; server errors
are retried and nothing is stored twice; a store that keeps failing is quarantined as
``store-failed:<status>`` (the original kept) and the next run stores it; a run killed after the
server stored an output and before the manifest recorded it does not store it again.

The inputs are a local folder here; Orthanc -> Orthanc end to end needs a DICOMweb source
(pipeline/runner/sources.py as an input of ``run``), added with it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import s3fs

import pipeline.runner.process as process_module
from pipeline.errors import InputError
from pipeline.profile.plan import compile_plan
from pipeline.runner import orchestrate
from pipeline.runner.destination import Destination, DestinationKind, anchor, parse_destination
from pipeline.runner.dicomweb import Credentials, dicomweb_instances
from pipeline.runner.orchestrate import RunConfig
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from tests.conftest_run import GOOD_FILES, KEY_HEX, TRUNCATED_FILE, build_inputs, release_files, write_key
from tests.proxy import Proxy, every, proxy
from tests.runner.test_faults import Cluster
from tests.servers import S3_ENV, Moto, Orthanc, orthanc, s3  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
ARCHIVE = REPO / "sample_data" / "archive"
CLI = Path(sys.executable).parent / "deid-pipeline"
SEVERE = {"medium", "high"}


# --- what a local run publishes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key(tmp_path_factory.mktemp("secrets"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four DICOM files, two not DICOM, one cut in half, one without file meta (tests/conftest_run.py)."""
    return build_inputs(tmp_path_factory.mktemp("inputs"), broken=True)


def run(inputs: Path, output: str, key: Path, *extra: str, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """``deid-pipeline run`` in this process's environment plus `env`, serial unless told."""
    workers = () if "--workers" in extra or "--scheduler" in extra else ("--workers", "0")
    result = subprocess.run([str(CLI), "run", str(inputs), "--output", output, "--key-file", str(key), "--quiet",
                             *workers, *extra], capture_output=True, text=True, timeout=300,
                            env={**os.environ, **(env or {})}, check=False)
    if check:
        assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: the broken inputs are quarantined
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, key: Path, small: Path) -> dict[Path, dict[str, bytes]]:
    """What a local folder run publishes, by input tree: release-relative path -> bytes."""
    made = {}
    for inputs in (small, ARCHIVE):
        folder = tmp_path_factory.mktemp("local")
        run(inputs, str(folder / "release"), key, "--mapping-dir", str(folder / "mapping"))
        made[inputs] = release_files(folder / "release")
        assert made[inputs]
    return made


def by_sop(files: dict[str, bytes]) -> dict[str, bytes]:
    """Release files by SOP Instance UID (the last part of a release name)."""
    return {name.rsplit("/", 1)[-1].removesuffix(".dcm"): data for name, data in files.items()}


# --- the servers ------------------------------------------------------------------------------------


def s3_env(endpoint: str) -> dict[str, str]:
    """What the command line needs to find the bucket: the environment, as boto reads it."""
    return {**S3_ENV, "AWS_ENDPOINT_URL_S3": endpoint}


def new_bucket(server: Moto) -> str:
    bucket = f"release-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**server.s3_options).mkdir(bucket)
    return bucket


def objects(server: Moto, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` (``bucket/path``), by key relative to it."""
    fs = s3fs.S3FileSystem(**server.s3_options)
    fs.invalidate_cache()
    return {path[len(prefix) + 1:]: fs.cat_file(path) for path in sorted(fs.find(prefix))}


def instances(server: Orthanc) -> dict[str, bytes]:
    """Every instance Orthanc holds, retrieved with WADO-RS as stored, by SOP Instance UID."""
    return {name.rsplit("/", 1)[-1]: data
            for name, data in dicomweb_instances(server.dicomweb, (), (), Credentials())}


def instance_count(server: Orthanc) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/statistics")
    if server.users:
        user, password = next(iter(server.users.items()))
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(json.load(answer)["CountInstances"])


@pytest.fixture
def fresh_orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    with orthanc(tmp_path / "orthanc") as server:
        yield server


def manifest_rows(manifest: Path) -> list[tuple[str, str | None, str | None]]:
    with contextlib.closing(sqlite3.connect(manifest)) as db:
        return list(db.execute("SELECT status, output, reason FROM inputs"))


def only_verified(files: dict[str, bytes], reference: dict[str, bytes]) -> None:
    """Every object at the destination is one a local run publishes, byte for byte, and verifies."""
    for name, data in files.items():
        assert reference.get(name) == data, name
        assert verify_bytes(data, ()) == [], name


# --- parsing ------------------------------------------------------------------------------------------


def test_output_strings_name_a_folder_a_store_or_a_dicomweb_server() -> None:
    assert parse_destination("/data/release") == Destination(DestinationKind.FOLDER, "/data/release")
    assert parse_destination("file:///data/release").kind is DestinationKind.FOLDER
    assert parse_destination("s3://bucket/release/") == Destination(DestinationKind.FSSPEC, "s3://bucket/release")
    web = parse_destination("dicomweb+https://pacs.example:8443/dicom-web/")
    assert web == Destination(DestinationKind.DICOMWEB, "https://pacs.example:8443/dicom-web")
    assert web.media_name() == "dicomweb+https:pacs.example:8443:dicom-web"
    assert parse_destination("s3://bucket/a/b").media_name() == "s3:bucket:a:b"
    with pytest.raises(InputError) as caught:
        parse_destination("dicomweb+https://alice:secret@pacs.example/dicom-web")
    assert "secret" not in str(caught.value)
    with pytest.raises(InputError, match="bucket"):
        parse_destination("s3://")


def test_a_remote_release_keeps_its_records_beside_a_manifest_named_for_them(tmp_path: Path, key: Path,
                                                                            small: Path) -> None:
    assert anchor(Path("/work/ct.manifest.sqlite")) == Path("/work/ct")
    with pytest.raises(InputError, match=r"NAME\.manifest\.sqlite"):
        anchor(Path("/work/ct.sqlite"))
    result = run(small, "s3://bucket/release", key, check=False)
    assert result.returncode == 2 and "--manifest" in result.stderr


# --- an S3 bucket -------------------------------------------------------------------------------------


def test_a_release_in_a_bucket_is_the_local_release_byte_for_byte_and_scans_and_scores_clean(
        s3: Moto, tmp_path: Path, key: Path, local: dict[Path, dict[str, bytes]]) -> None:  # noqa: F811
    bucket = new_bucket(s3)
    records = tmp_path / "records"
    manifest = records / "archive.manifest.sqlite"
    result = run(ARCHIVE, f"s3://{bucket}/release", key, "--manifest", str(manifest),
                 "--mapping-dir", str(tmp_path / "mapping"), env=s3_env(s3.endpoint))
    released = objects(s3, f"{bucket}/release")
    assert released == local[ARCHIVE]
    assert f"release files: {len(released)}" in result.stdout
    # the run's records stay local, beside the manifest; the quarantine too, owner-only
    record = json.loads((records / "archive.run.json").read_text())
    assert record["completed"] is True and record["summary"]["release_files"] == len(released)
    assert (records / "archive.report" / "report.html").is_file()
    assert f"s3:{bucket}:release" in (records / "archive.audit.xml").read_text()
    assert (records / "archive.quarantine").stat().st_mode & 0o077 == 0
    assert not [p for p in records.iterdir() if p.name.endswith(".staging")]
    # the scan of the bucket reports nothing severe; the scorer finds no leak in what it holds
    scan = subprocess.run([str(CLI), "scan", f"s3://{bucket}/release", "--json", str(tmp_path / "scan.json")],
                          capture_output=True, text=True, env={**os.environ, **s3_env(s3.endpoint)}, check=False)
    assert scan.returncode == 0, scan.stderr
    found = json.loads((tmp_path / "scan.json").read_text())
    assert found["dicom_files"] == len(released) > 20
    assert [f for f in found["findings"] if f["severity"] in SEVERE] == []
    folder = tmp_path / "downloaded"
    for name, data in released.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    score = subprocess.run([str(CLI), "score", str(folder), "--key", str(REPO / "sample_data" / "archive_key.json"),
                            "--uid-mapping", str(tmp_path / "mapping" / "uid_mapping.csv"), "--json"],
                           capture_output=True, text=True, check=False)
    assert json.loads(score.stdout)["total_leaks"] == 0, score.stdout[:2000]
    # a rerun finds everything done and stores nothing
    again = run(ARCHIVE, f"s3://{bucket}/release", key, "--manifest", str(manifest), env=s3_env(s3.endpoint))
    assert f"unchanged since an earlier run: written {len(released)}" in again.stdout
    assert objects(s3, f"{bucket}/release") == released


def test_a_missing_bucket_stops_the_run_before_anything_is_read(s3: Moto, tmp_path: Path, key: Path,  # noqa: F811
                                                                small: Path) -> None:
    manifest = tmp_path / "r.manifest.sqlite"
    result = run(small, "s3://no-such-bucket-here/release", key, "--manifest", str(manifest),
                 env=s3_env(s3.endpoint), check=False)
    assert result.returncode == 2 and "no such bucket" in result.stderr
    assert "Traceback" not in result.stderr
    assert not manifest.exists()


def test_a_prefix_holding_objects_without_a_manifest_is_refused(s3: Moto, tmp_path: Path, key: Path,  # noqa: F811
                                                                small: Path) -> None:
    bucket = new_bucket(s3)
    s3fs.S3FileSystem(**s3.s3_options).pipe_file(f"{bucket}/release/other.dcm", b"someone else's")
    result = run(small, f"s3://{bucket}/release", key, "--manifest", str(tmp_path / "r.manifest.sqlite"),
                 env=s3_env(s3.endpoint), check=False)
    assert result.returncode == 2 and "holds objects" in result.stderr


# --- Orthanc (DICOMweb STOW-RS) ----------------------------------------------------------------------


def test_a_release_stored_in_orthanc_comes_back_byte_for_byte_and_scans_clean(
        fresh_orthanc: Orthanc, tmp_path: Path, key: Path, local: dict[Path, dict[str, bytes]]) -> None:
    """Orthanc keeps an instance as STOW-RS sent it: WADO-RS (transfer-syntax=*) returns the bytes."""
    manifest = tmp_path / "records" / "archive.manifest.sqlite"
    result = run(ARCHIVE, fresh_orthanc.source, key, "--manifest", str(manifest))
    expected = by_sop(local[ARCHIVE])
    assert instances(fresh_orthanc) == expected
    assert instance_count(fresh_orthanc) == len(expected)
    assert f"release files: {len(expected)}" in result.stdout
    record = json.loads(manifest.with_name("archive.run.json").read_text())
    assert record["summary"]["release_files"] == record["summary"]["published"] == len(expected)
    scan = subprocess.run([str(CLI), "scan", fresh_orthanc.source, "--json", str(tmp_path / "scan.json")],
                          capture_output=True, text=True, check=False)
    assert scan.returncode == 0, scan.stderr
    found = json.loads((tmp_path / "scan.json").read_text())
    assert found["dicom_files"] == len(expected)
    assert [f for f in found["findings"] if f["severity"] in SEVERE] == []


def test_an_unreachable_or_refusing_dicomweb_server_is_named_with_its_status(tmp_path: Path, key: Path,
                                                                             small: Path) -> None:
    with orthanc(tmp_path / "guarded", {"uploader": "correct-horse-battery"}) as server:
        manifest = tmp_path / "r.manifest.sqlite"
        refused = run(small, server.source, key, "--manifest", str(manifest), check=False)
        assert refused.returncode == 2 and f"DICOMweb {server.dicomweb}" in refused.stderr
        assert "401" in refused.stderr and not manifest.exists()
        secrets = tmp_path / "password"
        secrets.write_text("correct-horse-battery\n")
        allowed = run(small, server.source, key, "--manifest", str(manifest),
                      env={"DEID_PIPELINE_DESTINATION_DICOMWEB_USER": "uploader",
                           "DEID_PIPELINE_DESTINATION_DICOMWEB_PASSWORD_FILE": str(secrets)})
        assert "correct-horse-battery" not in allowed.stdout + allowed.stderr
        assert instance_count(server) == sum(1 for status, _, _ in manifest_rows(manifest) if status == "written")
        assert instance_count(server) > 0


# --- server errors: retried, never stored twice ------------------------------------------------------


@contextlib.contextmanager
def behind_proxy(kind: str, s3_server: Moto, tmp_path: Path) -> Iterator[tuple[Proxy, str, dict[str, str]]]:
    """(proxy, --output, environment) for a fresh bucket or Orthanc behind a proxy."""
    if kind == "s3":
        bucket = new_bucket(s3_server)
        with proxy(s3_server.endpoint) as front:
            yield front, f"s3://{bucket}/release", s3_env(front.url)
    else:
        with orthanc(tmp_path / "orthanc") as server, proxy(server.dicomweb) as front:
            front.server = server  # type: ignore[attr-defined]
            yield front, f"dicomweb+{front.url}", {}


def published(kind: str, front: Proxy, output: str, s3_server: Moto) -> dict[str, bytes]:
    """What the destination holds, by release-relative name (S3) or SOP Instance UID (Orthanc)."""
    if kind == "s3":
        return objects(s3_server, output.removeprefix("s3://"))
    return instances(front.server)  # type: ignore[attr-defined]


def stores(kind: str, front: Proxy) -> list[str]:
    """The paths of the writes the server performed (whatever the client was told)."""
    method = "PUT" if kind == "s3" else "POST"
    return [e.path for e in front.stored(method) if kind != "s3" or ".dcm" in e.path]


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


def test_an_output_the_verifier_refuses_never_reaches_the_bucket(
        s3: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """In process, the real verifier wrapped so it gives no verdict for the CT image: that output is
    quarantined as verify-no-verdict and the bucket never sees it; the others are stored verified."""
    for name, value in s3_env(s3.endpoint).items():
        monkeypatch.setenv(name, value)
    inputs = build_inputs(tmp_path / "inputs")
    real = process_module.VERIFY

    def refuse_ct(output: bytes, options: tuple[str, ...], original: bytes | None, path: str | None) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            modality = pydicom.dcmread(io.BytesIO(output), force=True).get("Modality")
        return [] if modality == "CT" else real(output, options, original, path)

    monkeypatch.setattr(process_module, "VERIFY", refuse_ct)
    bucket = new_bucket(s3)
    cfg = RunConfig(inputs=(inputs,), release=tmp_path / "r", manifest=tmp_path / "r.manifest.sqlite", quiet=True,
                    workers=0, destination=parse_destination(f"s3://{bucket}/release"))
    result = orchestrate.run(cfg, compile_plan("basic", []), Keys(key=KEY_HEX.encode("ascii")))
    assert result.exit_status == 1 and result.processed["quarantined"] == 1
    stored = objects(s3, f"{bucket}/release")
    assert len(stored) == len(GOOD_FILES) - 1 == result.summary.release_files
    for name, data in stored.items():
        assert verify_bytes(data, ()) == [], name
        assert pydicom.dcmread(io.BytesIO(data)).Modality != "CT"


# --- a quarantine in a bucket ---------------------------------------------------------------------------


def test_a_quarantine_in_a_bucket_holds_the_originals_and_the_ledger_stays_local(
        s3: Moto, tmp_path: Path, key: Path, small: Path) -> None:  # noqa: F811
    bucket = new_bucket(s3)
    release = tmp_path / "release"
    result = run(small, str(release), key, "--quarantine", f"s3://{bucket}/quarantine", env=s3_env(s3.endpoint))
    assert result.returncode == 1 and "hold PHI" in result.stderr
    kept = objects(s3, f"{bucket}/quarantine")
    cut = (small / TRUNCATED_FILE).read_bytes()
    assert kept == {f"{hashlib.sha256(cut).hexdigest()}.dcm": cut}
    local_folder = tmp_path / "release.quarantine"
    assert (local_folder / "ledger.jsonl").is_file() and not list(local_folder.glob("*.dcm"))
    refused = run(small, str(tmp_path / "other"), key, "--quarantine", f"s3://{bucket}/q2", "--quarantine-mode",
                  "reference", env=s3_env(s3.endpoint), check=False)
    assert refused.returncode == 2 and "local quarantine folder" in refused.stderr


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
