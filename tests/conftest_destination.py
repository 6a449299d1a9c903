"""Helpers shared by the destination tests (imported explicitly, fixtures included): a key, the
inputs and what a local folder run publishes from them, the servers' contents, a proxy in front of a
fresh bucket or Orthanc."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs

from pipeline.runner.dicomweb import Credentials, dicomweb_instances
from pipeline.verify.checks import verify_bytes
from tests.conftest_run import (
    build_inputs,
    release_files,
    write_key,
)
from tests.proxy import Proxy, proxy
from tests.servers import S3_ENV, Moto, Orthanc, orthanc, s3  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO / "sample_data" / "archive"
CLI = Path(sys.executable).parent / "deid-pipeline"
SEVERE = {"medium", "high"}


# --- what a local run publishes -------------------------------------------------------------------


@pytest.fixture(scope="module", name="key")
def key_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key(tmp_path_factory.mktemp("secrets"))


@pytest.fixture(scope="module", name="small")
def small_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four DICOM files, two not DICOM, one cut in half, one without file meta (tests/conftest_run.py)."""
    return build_inputs(tmp_path_factory.mktemp("inputs"), broken=True)


def run(inputs: Path | str, output: str, key: Path, *extra: str, env: dict[str, str] | None = None,
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


@pytest.fixture(scope="module", name="local")
def local_fixture(tmp_path_factory: pytest.TempPathFactory, key: Path, small: Path) -> dict[Path, dict[str, bytes]]:
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


@pytest.fixture(name="fresh_orthanc")
def fresh_orthanc_fixture(tmp_path: Path) -> Iterator[Orthanc]:
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



# --- behind a proxy ---------------------------------------------------------------------------------


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


