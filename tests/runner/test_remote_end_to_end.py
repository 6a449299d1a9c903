"""Issue 17 end to end: sample_data/archive loaded into Orthanc by STOW-RS, then ``deid-pipeline run``
through the command line from that Orthanc (a) into a second Orthanc and (b) into an S3 bucket
(moto_server), against (c) the same archive run from its folder into a local folder with the same
key and options. Every released instance, fetched back by WADO-RS (transfer-syntax=*) or read from
the bucket, is the local run's file of the same SOP Instance UID byte for byte, same count (Orthanc
refuses only archive files the local run quarantines too); the scorer finds 0 leaks in either and
counts what it counts for the local release (the inputs every run quarantines are missing from all
three); ``scan`` of the DICOMweb release and of the bucket reports nothing medium or high.

A second Orthanc (not a second set in the same one) is the destination: the source server holds the
original instances under their own SOP Instance UIDs, and a destination sharing it would be refused
by ``run`` (source and destination apart) and could not be told apart by a ``scan`` of the server.
The servers are real and local (tests/servers.py); the runs are serial (``--workers 0``).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.conftest_destination import (  # noqa: F401 (fixture: key)
    ARCHIVE,
    CLI,
    REPO,
    SEVERE,
    by_sop,
    instance_count,
    instances,
    key_fixture,
    new_bucket,
    objects,
    run,
    s3_env,
)
from tests.conftest_run import release_files
from tests.runner.test_source_remote import stow
from tests.servers import Moto, Orthanc, orthanc, s3  # noqa: F401 (fixture: s3)

ARCHIVE_KEY = REPO / "sample_data" / "archive_key.json"
OPTIONS = ("--option", "clean-descriptors")  # the same on every run


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Orthanc, list[Path]]]:
    """An Orthanc holding every file of the archive it accepts through STOW-RS, one file a request,
    and the archive files it accepted."""
    with orthanc(tmp_path_factory.mktemp("source") / "orthanc") as server:
        accepted = [path for path in sorted(ARCHIVE.rglob("*")) if path.is_file() and stow(server, path.read_bytes())]
        assert 30 < len(accepted) == instance_count(server)
        yield server, accepted


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, key: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """(c): the archive's folder run into a local folder: release by SOP Instance UID, and the UID mapping."""
    folder = tmp_path_factory.mktemp("local")
    result = run(ARCHIVE, str(folder / "release"), key, "--mapping-dir", str(folder / "mapping"), *OPTIONS)
    assert result.returncode == 1  # the archive's bad files and its PDF-like inputs are quarantined
    with (folder / "mapping" / "uid_mapping.csv").open(newline="") as handle:
        mapping = {row["id_old"]: row["id_new"] for row in csv.DictReader(handle)}
    return by_sop(release_files(folder / "release")), mapping


@pytest.fixture(scope="module")
def local_score(tmp_path_factory: pytest.TempPathFactory, local: tuple[dict[str, bytes], dict[str, str]],
                key: Path) -> dict[str, int]:
    """The scorer's counts for the local release: no leak; what it misses is what the run quarantines."""
    folder = tmp_path_factory.mktemp("local-score")
    mapping = folder / "uid_mapping.csv"
    with mapping.open("w", newline="") as handle:
        csv.writer(handle).writerows([("id_old", "id_new"), *local[1].items()])
    scored = score(local[0], folder / "release", mapping)
    assert scored["total_leaks"] == 0 and scored["files_scanned"] == len(local[0])
    return scored


def expected(accepted: list[Path], local: tuple[dict[str, bytes], dict[str, str]]) -> dict[str, bytes]:
    """The local release's files made from the originals Orthanc holds, by SOP Instance UID."""
    released, mapping = local
    sops = {str(pydicom.dcmread(path, stop_before_pixels=True, force=True).SOPInstanceUID) for path in accepted}
    made = {mapping[sop] for sop in sops if sop in mapping} & released.keys()
    return {uid: released[uid] for uid in made}


def score(files: dict[str, bytes], folder: Path, mapping: Path) -> dict[str, int]:
    """The counts of ``deid-pipeline score`` over a local copy of a release (files by any name), called
    as `make run` calls it. Exit 3 (integrity failures) is allowed: the inputs the run quarantines are
    missing from any release; the tests compare the counts with the local release's."""
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / f"{name.replace('/', '_')}.dcm").write_bytes(data)
    done = subprocess.run([str(CLI), "score", str(folder), "--key", str(ARCHIVE_KEY), "--uid-mapping", str(mapping),
                           "--json"], capture_output=True, text=True, check=False)
    assert done.returncode in (0, 3), done.stderr[-2000:]
    return {name: value for name, value in json.loads(done.stdout).items() if isinstance(value, int)}


def scan(location: str, report: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run([str(CLI), "scan", location, "--json", str(report)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, object] = json.loads(report.read_text())
    return found


def test_orthanc_to_a_second_orthanc_is_the_local_release_byte_for_byte_and_scans_and_scores_clean(
        source: tuple[Orthanc, list[Path]], local: tuple[dict[str, bytes], dict[str, str]],
        local_score: dict[str, int], key: Path,
        tmp_path: Path) -> None:
    server, accepted = source
    want = expected(accepted, local)
    assert len(want) == len(local[0]) > 20  # Orthanc holds every original the local run releases
    with orthanc(tmp_path / "destination") as destination:
        result = run(server.source, destination.source, key, "--manifest", str(tmp_path / "o.manifest.sqlite"),
                     "--mapping-dir", str(tmp_path / "mapping"), *OPTIONS)
        assert "Traceback" not in result.stderr
        released = instances(destination)
        assert instance_count(destination) == len(released)
        assert released == want
        assert f"release files: {len(want)}" in result.stdout
        found = scan(destination.source, tmp_path / "scan.json")
        assert found["dicom_files"] == len(want)
        assert [f for f in found["findings"] if f["severity"] in SEVERE] == []  # type: ignore[attr-defined]
        # a rerun finds everything done (the manifest is local): nothing fetched is stored again
        again = run(server.source, destination.source, key, "--manifest", str(tmp_path / "o.manifest.sqlite"),
                    *OPTIONS)
        assert f"unchanged since an earlier run: written {len(want)}" in again.stdout
        assert "this run: written 0, quarantined 0" in again.stdout
        assert instances(destination) == want
    scored = score(released, tmp_path / "fetched", tmp_path / "mapping" / "uid_mapping.csv")
    assert scored["total_leaks"] == 0, scored
    assert scored == local_score


def test_orthanc_to_a_bucket_is_the_local_release_byte_for_byte_and_scans_and_scores_clean(
        source: tuple[Orthanc, list[Path]], local: tuple[dict[str, bytes], dict[str, str]],
        local_score: dict[str, int], key: Path,
        s3: Moto, tmp_path: Path) -> None:  # noqa: F811
    server, accepted = source
    want = expected(accepted, local)
    bucket = new_bucket(s3)
    result = run(server.source, f"s3://{bucket}/release", key, "--manifest", str(tmp_path / "b.manifest.sqlite"),
                 "--mapping-dir", str(tmp_path / "mapping"), *OPTIONS, env=s3_env(s3.endpoint))
    assert "Traceback" not in result.stderr
    released = objects(s3, f"{bucket}/release")
    assert by_sop(released) == want
    assert len(released) == len(want)
    found = scan(f"s3://{bucket}/release", tmp_path / "scan.json", s3_env(s3.endpoint))
    assert found["dicom_files"] == len(want)
    assert [f for f in found["findings"] if f["severity"] in SEVERE] == []  # type: ignore[attr-defined]
    scored = score(released, tmp_path / "fetched", tmp_path / "mapping" / "uid_mapping.csv")
    assert scored["total_leaks"] == 0, scored
    assert scored == local_score
