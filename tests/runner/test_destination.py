"""Remote destinations (issue 17 items 1, 3, 5), against real servers on 127.0.0.1: an S3 bucket
(moto_server) and Orthanc with its DICOMweb plugin (tests/servers.py).

Shown here: a release in a bucket is the local release byte for byte (same keys); a release stored
in Orthanc with STOW-RS comes back (WADO-RS) byte for byte; the scan of either reports nothing
severe and the scorer finds no leak; the run's records stay beside the local manifest; a
destination that cannot be reached stops the run before anything is read; an output the verifier
refuses never reaches the bucket; a quarantine in a bucket; --force-replan. Faults (server errors,
kills) are in test_destination_faults.py.

The inputs are a local folder here; Orthanc -> Orthanc end to end needs a DICOMweb source
(pipeline/runner/sources.py as an input of ``run``), added with it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import warnings
from pathlib import Path

import pydicom
import pytest
import s3fs

import pipeline.runner.verdict as verdict_module
from pipeline.errors import InputError
from pipeline.profile.plan import compile_plan
from pipeline.runner import orchestrate
from pipeline.runner.destination import Destination, DestinationKind, anchor, parse_destination
from pipeline.runner.orchestrate import RunConfig
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.pixels import PixelBound
from tests.conftest_destination import (  # noqa: F401 (fixtures: key, small, local, fresh_orthanc)
    ARCHIVE,
    CLI,
    REPO,
    SEVERE,
    by_sop,
    fresh_orthanc_fixture,
    instance_count,
    instances,
    key_fixture,
    local_fixture,
    manifest_rows,
    new_bucket,
    objects,
    published,
    run,
    s3_env,
    small_fixture,
    stores,
)
from tests.conftest_run import (
    GOOD_FILES,
    KEY_HEX,
    OTHER_KEY_HEX,
    TRUNCATED_FILE,
    build_inputs,
    write_key,
)
from tests.servers import S3_ENV, Moto, Orthanc, orthanc, s3  # noqa: F401 (fixture)

# --- parsing ------------------------------------------------------------------------------------------


def test_output_strings_name_a_folder_a_store_or_a_dicomweb_server() -> None:
    assert parse_destination("/data/release") == Destination(DestinationKind.FOLDER, "/data/release")
    assert parse_destination("file:///data/release").kind is DestinationKind.FOLDER
    assert parse_destination("out/run:2") == Destination(DestinationKind.FOLDER, "out/run:2")
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


def test_an_output_the_verifier_refuses_never_reaches_the_bucket(
        s3: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """In process, the real verifier wrapped so it gives no verdict for the CT image: that output is
    quarantined as verify-no-verdict and the bucket never sees it; the others are stored verified."""
    for name, value in s3_env(s3.endpoint).items():
        monkeypatch.setenv(name, value)
    inputs = build_inputs(tmp_path / "inputs")
    real = verdict_module.VERIFY

    def refuse_ct(output: bytes, options: tuple[str, ...], original: bytes | None, path: str | None,
                  pixels: PixelBound | None = None) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            modality = pydicom.dcmread(io.BytesIO(output), force=True).get("Modality")
        return [] if modality == "CT" else real(output, options, original, path, pixels)

    monkeypatch.setattr(verdict_module, "VERIFY", refuse_ct)
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


def test_force_replan_removes_the_old_objects_and_refuses_a_dicomweb_release(
        s3: Moto, tmp_path: Path, key: Path, small: Path, local: dict[Path, dict[str, bytes]]) -> None:  # noqa: F811
    bucket = new_bucket(s3)
    manifest = str(tmp_path / "r.manifest.sqlite")
    run(small, f"s3://{bucket}/release", key, "--manifest", manifest, env=s3_env(s3.endpoint))
    assert objects(s3, f"{bucket}/release") == local[small]
    other = write_key(tmp_path / "other", OTHER_KEY_HEX)
    refused = run(small, f"s3://{bucket}/release", other, "--manifest", manifest, env=s3_env(s3.endpoint),
                  check=False)
    assert refused.returncode == 2 and "--force-replan" in refused.stderr
    run(small, f"s3://{bucket}/release", other, "--manifest", manifest, "--force-replan", env=s3_env(s3.endpoint))
    replanned = objects(s3, f"{bucket}/release")
    assert len(replanned) == len(local[small]) and not set(replanned) & set(local[small])
    with orthanc(tmp_path / "orthanc") as server:
        web = str(tmp_path / "web.manifest.sqlite")
        run(small, server.source, key, "--manifest", web)
        again = run(small, server.source, other, "--manifest", web, "--force-replan", check=False)
        assert again.returncode == 2 and "cannot be replanned" in again.stderr
        assert instance_count(server) == len(local[small])
