"""Real servers for the source tests, on 127.0.0.1 and free ports, started and stopped by the tests.

- Orthanc (Debian packages orthanc and orthanc-dicomweb, installed by `make system-deps`) with a
  configuration generated in a temporary folder: HTTP only (no DICOM port), remote access off,
  the DICOMweb plugin at /dicom-web/, and, when asked, HTTP basic authentication (RegisteredUsers).
- moto_server (moto[server], in the dev extra): an S3 endpoint; buckets are made by the tests, and
  s3fs finds it through `s3_options` (client_kwargs endpoint_url) or AWS_ENDPOINT_URL_S3, with the
  dummy credentials of `S3_ENV`.

Each fixture waits until its server answers and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
MOTO_SERVER = str(Path(sys.executable).parent / "moto_server")
START_TIMEOUT = 60.0  # seconds a server may take to answer before the fixture fails
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def dicomweb_plugin() -> str:
    """The DICOMweb plugin's shared library, as the Debian package orthanc-dicomweb lists it."""
    listed = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True, check=False)
    found = [line for line in listed.stdout.splitlines() if line.endswith("/libOrthancDicomWeb.so")]
    if not found:
        pytest.fail("orthanc-dicomweb is not installed: run `make system-deps`")
    return found[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> float:
    """Poll `url` until any HTTP answer (401 counts); seconds it took. Fails with the server's log
    when the process exits or the time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"{url}: the server exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return time.monotonic() - started
        except urllib.error.HTTPError:
            return time.monotonic() - started
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{url}: no answer within {START_TIMEOUT} s:\n{log.read_text(errors='replace')[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server this module started (by its own process handle) and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Orthanc:
    """A running Orthanc: its DICOMweb root, the user it accepts (if any), its process."""

    port: int
    process: subprocess.Popen[bytes]
    startup_seconds: float
    users: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def dicomweb(self) -> str:
        """The http:// DICOMweb root (for dicomweb-client)."""
        return f"http://127.0.0.1:{self.port}/dicom-web"

    @property
    def source(self) -> str:
        """The same root as the scan command names it."""
        return f"dicomweb+http://127.0.0.1:{self.port}/dicom-web"

    def stop(self) -> None:
        stop(self.process)


@contextlib.contextmanager
def orthanc(folder: Path, users: dict[str, str] | None = None) -> Iterator[Orthanc]:
    """Run Orthanc with its storage and generated configuration under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict[str, Any] = {
        "Name": "deid-pipeline-tests",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": bool(users),
        "RegisteredUsers": dict(users or {}),
        "Plugins": [dicomweb_plugin()],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StableAge": 1,
    }
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = folder / "orthanc.log"
    with log.open("wb") as out:
        process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=out, stderr=subprocess.STDOUT,
                                   cwd=folder)
    try:
        seconds = wait_until_answering(f"http://127.0.0.1:{port}/system", process, log)
        yield Orthanc(port, process, seconds, dict(users or {}))
    finally:
        stop(process)


@dataclass
class Moto:
    """A running moto_server: its endpoint and the s3fs options that reach it."""

    endpoint: str
    process: subprocess.Popen[bytes]
    startup_seconds: float

    @property
    def s3_options(self) -> dict[str, Any]:
        return {"client_kwargs": {"endpoint_url": self.endpoint}, "key": S3_ENV["AWS_ACCESS_KEY_ID"],
                "secret": S3_ENV["AWS_SECRET_ACCESS_KEY"]}


@contextlib.contextmanager
def moto_server(folder: Path) -> Iterator[Moto]:
    """Run moto_server (S3 and the rest of its fake AWS) on 127.0.0.1."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                   stderr=subprocess.STDOUT, env={**os.environ, **S3_ENV})
    endpoint = f"http://127.0.0.1:{port}"
    try:
        seconds = wait_until_answering(f"{endpoint}/moto-api/", process, log)
        yield Moto(endpoint, process, seconds)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """One moto_server for the session; every test makes its own bucket."""
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def orthanc_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """One Orthanc without authentication for the session."""
    with orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server
