"""`deid-pipeline scan` where the data is (issue 17 item 4): a release in an S3 bucket (moto_server)
and on a DICOMweb server (Orthanc, loaded through STOW-RS) is streamed to the same checks as a
folder; `--sample N` checks N instances and lists them; DICOMweb credentials come from the
environment or a file and never show; a server's refusal or failure is a clear error naming the
endpoint and what it answered. The servers are real and local (tests/servers.py)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import s3fs
from dicomweb_client.api import DICOMwebClient

from pipeline.cli import main
from pipeline.errors import SourceError
from pipeline.runner.sources import iter_instances, parse_source
from pipeline.scan.tree import scan_instances, scan_tree
from tests.conftest import REPO
from tests.conftest_run import write_key
from tests.servers import S3_ENV, Moto, Orthanc, orthanc, orthanc_open, s3  # noqa: F401 (fixtures)
from tests.verify.test_recall import CLI

ARCHIVE = REPO / "sample_data" / "archive"
PASSWORD = "correct-horse-battery"
SEVERE = {"medium", "high"}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline release of sample_data/archive (basic profile, in process)."""
    base = tmp_path_factory.mktemp("release")
    out = base / "release"
    result = subprocess.run([str(CLI), "run", str(ARCHIVE), "--output", str(out), "--key-file",
                             str(write_key(base / "secrets")), "--workers", "0", "--quiet"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode in (0, 1), result.stderr  # 1: the archive's bad files are quarantined
    return out


def dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.dcm") if p.is_file())


def upload(server: Moto, folder: Path) -> str:
    """`folder` copied to a new bucket, keys relative to it; returns the s3:// URL of its prefix."""
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(**server.s3_options)
    fs.mkdir(bucket)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        fs.pipe_file(f"{bucket}/data/{path.relative_to(folder).as_posix()}", path.read_bytes())
    return f"s3://{bucket}/data"


def store(server: Orthanc, files: list[Path]) -> None:
    """STOW-RS every file to `server` (with its user, if it has one)."""
    client = DICOMwebClient(server.dicomweb)
    if server.users:
        client._session.auth = next(iter(server.users.items()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.store_instances([pydicom.dcmread(p) for p in files])


@pytest.fixture
def s3_env(s3: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:  # noqa: F811
    """The command line finds the bucket the way boto finds any endpoint: the environment."""
    for name, value in {**S3_ENV, "AWS_ENDPOINT_URL_S3": s3.endpoint}.items():
        monkeypatch.setenv(name, value)
    return s3


@pytest.fixture(scope="module")
def loaded(orthanc_open: Orthanc, release: Path) -> Orthanc:  # noqa: F811
    store(orthanc_open, dicom_files(release))
    return orthanc_open


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, release: Path) -> Iterator[Orthanc]:
    """An Orthanc with HTTP basic authentication, three instances of the release stored."""
    with orthanc(tmp_path_factory.mktemp("guarded"), {"scanner": PASSWORD}) as server:
        store(server, dicom_files(release)[:3])
        yield server


def scan_json(tmp_path: Path, *args: str) -> tuple[int, dict[str, object]]:
    path = tmp_path / f"{uuid.uuid4().hex}.json"
    code = main(["scan", *args, "--json", str(path)])
    return code, json.loads(path.read_text())


def severe(data: dict[str, object]) -> list[object]:
    findings = data["findings"]
    assert isinstance(findings, list)
    return [f for f in findings if f["severity"] in SEVERE]


# --- a clean release reports nothing, wherever it is ----------------------------------------------


def test_a_clean_release_in_a_bucket_reports_no_medium_or_high_finding(
        s3_env: Moto, release: Path, tmp_path: Path) -> None:
    url = upload(s3_env, release)
    code, data = scan_json(tmp_path, url)
    assert code == 0
    assert data["files"] == len([p for p in release.rglob("*") if p.is_file()])
    assert data["dicom_files"] == len(dicom_files(release)) > 20
    assert severe(data) == []


def test_a_clean_release_in_orthanc_reports_no_medium_or_high_finding(loaded: Orthanc, release: Path,
                                                                      tmp_path: Path) -> None:
    code, data = scan_json(tmp_path, loaded.source)
    assert code == 0
    assert data["files"] == data["dicom_files"] == len(dicom_files(release))
    assert severe(data) == []


# --- the raw archive in a bucket is judged as it is in a folder ----------------------------------


def test_the_raw_archive_in_a_bucket_gets_the_finding_counts_of_the_same_folder(s3: Moto) -> None:  # noqa: F811
    url = upload(s3, ARCHIVE)
    remote = scan_instances((i.key, i.data) for i in iter_instances(parse_source(url), storage_options=s3.s3_options))
    local = scan_tree(ARCHIVE)
    assert (remote.files, remote.dicom_files) == (local.files, local.dicom_files)
    assert remote.counts() == local.counts()
    assert Counter(remote.findings) == Counter(local.findings)  # the same files, paths and rules
    assert remote.has_high


# --- --sample ------------------------------------------------------------------------------------


def test_sample_checks_exactly_n_instances_of_a_bucket_and_lists_them(s3_env: Moto, tmp_path: Path) -> None:
    url = upload(s3_env, ARCHIVE)
    code, data = scan_json(tmp_path, url, "--sample", "5")
    expected = [i.key for i in iter_instances(parse_source(str(ARCHIVE)), sample=5)]
    assert code == 1  # raw files: high findings
    assert data["files"] == 5 and data["sampled"] == expected
    findings = data["findings"]
    assert isinstance(findings, list) and {f["file"] for f in findings} <= set(expected)


def test_sample_checks_exactly_n_instances_of_orthanc_by_their_uids(loaded: Orthanc, tmp_path: Path) -> None:
    code, data = scan_json(tmp_path, loaded.source, "--sample", "3")
    sampled = data["sampled"]
    assert code == 0 and data["files"] == 3 and isinstance(sampled, list) and len(set(sampled)) == 3
    assert all(len(key.split("/")) == 3 and all(p.startswith("2.25.") for p in key.split("/")) for key in sampled)
    report = tmp_path / "report"
    assert main(["scan", loaded.source, "--sample", "3", "--report", str(report)]) == 0
    assert json.loads((report / "report.json").read_text())["sampled"] == sampled


def test_study_and_query_filters_select_what_qido_finds(loaded: Orthanc, release: Path, tmp_path: Path) -> None:
    by_study: dict[str, int] = {}
    for path in dicom_files(release):
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)
        by_study[uid] = by_study.get(uid, 0) + 1
    study, count = sorted(by_study.items())[0]
    code, data = scan_json(tmp_path, loaded.source, "--study", study)
    assert (code, data["files"]) == (0, count)
    assert "sampled" not in data
    ct = [p for p in dicom_files(release) if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT"]
    ct_studies = {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in ct}
    expected = sum(by_study[uid] for uid in ct_studies)
    code, data = scan_json(tmp_path, loaded.source, "--query", "ModalitiesInStudy=CT")
    assert (code, data["files"]) == (0, expected)


# --- credentials and errors ----------------------------------------------------------------------


def test_basic_auth_from_a_variable_or_a_file_reaches_a_guarded_server(
        guarded: Orthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEID_PIPELINE_DICOMWEB_USER", "scanner")
    monkeypatch.setenv("DEID_PIPELINE_DICOMWEB_PASSWORD", PASSWORD)
    assert scan_json(tmp_path, guarded.source)[1]["files"] == 3
    monkeypatch.delenv("DEID_PIPELINE_DICOMWEB_PASSWORD")
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("DEID_PIPELINE_DICOMWEB_PASSWORD_FILE", str(secret))
    assert scan_json(tmp_path, guarded.source)[1]["files"] == 3


@pytest.mark.parametrize("password", [None, "wrong-" + PASSWORD])
def test_a_wrong_or_missing_password_is_an_error_naming_endpoint_and_status_not_the_password(
        guarded: Orthanc, password: str | None) -> None:
    env = {**os.environ}
    if password is not None:
        env.update(DEID_PIPELINE_DICOMWEB_USER="scanner", DEID_PIPELINE_DICOMWEB_PASSWORD=password)
    result = subprocess.run([str(CLI), "-v", "scan", guarded.source], capture_output=True, text=True,
                            timeout=120, check=False, env=env)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error == f"error: DICOMweb {guarded.dicomweb}: QIDO-RS studies answered HTTP 401 Unauthorized"
    assert PASSWORD not in result.stdout + result.stderr


def test_a_missing_study_is_an_error_naming_the_endpoint(loaded: Orthanc, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", loaded.source, "--study", "2.25.1234"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: DICOMweb {loaded.dicomweb}: no instance of the study given by --study #1")


def test_a_server_that_stops_mid_scan_is_an_error_naming_the_endpoint(tmp_path: Path, release: Path) -> None:
    studies: dict[str, list[Path]] = {}
    for path in dicom_files(release):
        studies.setdefault(str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID), []).append(path)
    with orthanc(tmp_path / "orthanc") as server:
        store(server, max(studies.values(), key=len))  # one study: its instances are listed before the stop
        instances = iter_instances(parse_source(server.source))
        first = next(instances)
        server.stop()
        with pytest.raises(SourceError) as caught:
            list(instances)
    assert len(first.key.split("/")) == 3 and first.data[128:132] == b"DICM"
    assert str(caught.value) == f"DICOMweb {server.dicomweb}: WADO-RS instance failed (ConnectionError)"
