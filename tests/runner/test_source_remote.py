"""`run` over inputs where the data is (issue 17 items 1, 2 and 5, the source side): an S3 bucket
(moto_server) and a DICOMweb server (Orthanc, loaded through STOW-RS) give the release a run over
the same files in a folder gives, byte for byte; a rerun fetches nothing it has done; a server
that fails some requests is retried, one that keeps failing quarantines only what it would not
give, names endpoint and status, and the rerun completes. The servers are real and local
(tests/servers.py); the failing one is a small proxy in front of Orthanc (`Proxy`)."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import logging
import re
import signal
import sqlite3
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pytest
import requests
import s3fs

from pipeline.cli import main
from pipeline.cli.run import inputs_of
from pipeline.errors import InputError, SourceError
from pipeline.profile.plan import compile_plan
from pipeline.runner.dicomweb import RETRIES, Credentials, instance_uids, open_session, retrieve_instance
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import WorkerConfig, process_one
from pipeline.runner.source_remote import check_apart, discover_inputs, fetch, is_fetch_failure, place, version_stamp
from pipeline.runner.sources import Source, SourceKind
from pipeline.scrub.keys import Keys
from tests.conftest import REPO, bundled
from tests.conftest_run import KEY_HEX, release_files, write_key
from tests.runner.test_faults import CLI, Cluster
from tests.servers import S3_ENV, Moto, Orthanc, orthanc, s3  # noqa: F401 (fixtures)

ARCHIVE = REPO / "sample_data" / "archive"
TOKEN = "bearer-secret-4711"
WADO = re.compile(r"/studies/[^/]+/series/[^/]+/instances/[^/?]+$")  # a WADO-RS Retrieve Instance


# --- servers and helpers ------------------------------------------------------------------------


@pytest.fixture
def s3_env(s3: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:  # noqa: F811
    """The command line and its workers find the bucket the way boto finds any endpoint: the environment."""
    for name, value in {**S3_ENV, "AWS_ENDPOINT_URL_S3": s3.endpoint}.items():
        monkeypatch.setenv(name, value)
    return s3


def upload(server: Moto, files: dict[str, bytes], bucket: str | None = None) -> str:
    """`files` (key -> bytes) under the prefix ``data`` of a bucket; returns the s3:// URL of the prefix."""
    bucket = bucket or f"b-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(**server.s3_options)
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    for key, data in files.items():
        fs.pipe_file(f"{bucket}/data/{key}", data)
    return f"s3://{bucket}/data"


def stow(server: Orthanc, data: bytes) -> bool:
    """STOW-RS one PS3.10 file as it is (multipart/related, PS3.18 10.5); True when stored."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data
            + f"\r\n--{boundary}--\r\n".encode())
    answer = requests.post(f"{server.dicomweb}/studies", data=body, timeout=30, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json"})
    return answer.status_code == 200


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Orthanc, Path]]:
    """An Orthanc of its own holding every file of sample_data/archive it accepts through STOW-RS,
    and a folder of those instances as WADO-RS gives them back (the bytes stored: checked)."""
    base = tmp_path_factory.mktemp("held")
    uploaded = {p.read_bytes() for p in ARCHIVE.rglob("*") if p.is_file()}
    with orthanc(base / "orthanc") as server:
        stored = sum(stow(server, data) for data in sorted(uploaded))
        folder = base / "as-held"
        folder.mkdir()
        with open_session(Credentials()) as session:
            for number, uids in enumerate(instance_uids(session, server.dicomweb, (), ())):
                data = retrieve_instance(session, server.dicomweb, uids)
                assert data in uploaded  # Orthanc keeps and gives back the bytes it was sent
                (folder / f"{number:03}.dcm").write_bytes(data)
        assert 30 < stored == len(list(folder.iterdir())) < len(uploaded)  # the empty and cut files are refused
        yield server, folder


def run(inputs: list[str], release: Path, *extra: str) -> int:
    """`deid-pipeline run` in this process (no Dask unless `extra` says --workers), with a fixed key."""
    key = write_key(release.parent / "secrets")
    workers = () if "--workers" in extra else ("--workers", "0")
    return main(["run", *inputs, "--output", str(release), "--key-file", str(key), "--quiet", *workers, *extra])


def rows(release: Path) -> set[tuple[str, str, str | None, str | None]]:
    """(source id, status, output, reason) of every input the release's manifest holds: not the
    run index, which follows listing order."""
    with contextlib.closing(sqlite3.connect(release.parent / f"{release.name}.manifest.sqlite")) as db:
        return set(db.execute("SELECT source_id, status, output, reason FROM inputs"))


def this_run(text: str) -> dict[str, dict[str, int]]:
    """The summary's "this run" and "unchanged" counts."""
    found: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        head, _, counts = line.partition(":")
        if head in ("this run", "unchanged since an earlier run"):
            found[head] = {k: int(v) for k, v in (part.strip().rsplit(" ", 1) for part in counts.split(","))}
    return found


def ledger(release: Path) -> list[dict[str, object]]:
    path = release.parent / f"{release.name}.quarantine" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Proxy:
    """A DICOMweb endpoint on 127.0.0.1 in front of a server: it answers `fail(number, path)` (an
    HTTP status) instead of forwarding when that is not None, and, with a `token`, 401 to any request
    without ``Authorization: Bearer <token>``. Logs (path, status answered) of every request."""

    def __init__(self, upstream: str, fail: Callable[[int, str], int | None] = lambda n, p: None,
                 token: str | None = None, hold: Callable[[int, str], bool] = lambda n, p: False) -> None:
        self.upstream, self.fail, self.token, self.hold = upstream, fail, token, hold
        self.log: list[tuple[str, int]] = []
        self.holding, self.let_go = threading.Event(), threading.Event()  # a request `hold` picked is held
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = proxy.answer(self.path, self.headers)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                del args

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def source(self) -> str:
        return f"dicomweb+http://127.0.0.1:{self._server.server_address[1]}/dicom-web"

    @property
    def dicomweb(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/dicom-web"

    def answer(self, path: str, headers: object) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            number = len(self.log) + 1
            held = self.hold(number, path)
            status = 503 if held else self.fail(number, path)
            if status is None and self.token is not None and \
                    getattr(headers, "get")("Authorization") != f"Bearer {self.token}":  # noqa: B009
                status = 401
            self.log.append((path, status or 200))
        if held:  # until the test lets it go: whoever asked may be dead by then
            self.holding.set()
            self.let_go.wait(timeout=120)
        if status is not None:
            return status, {"Content-Type": "text/plain"}, b"failed on purpose\n"
        accept = getattr(headers, "get")("Accept") or "*/*"  # noqa: B009
        request = urllib.request.Request(self.upstream + path.removeprefix("/dicom-web"), headers={"Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, {"Content-Type": response.headers["Content-Type"]}, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, {"Content-Type": "text/plain"}, exc.read()

    def retrievals(self) -> list[str]:
        """Paths of the WADO-RS instance retrievals forwarded (answered 200)."""
        return [path for path, status in self.log if WADO.search(path) and status == 200]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def proxy_for(server: Orthanc, fail: Callable[[int, str], int | None] = lambda n, p: None,
              token: str | None = None, hold: Callable[[int, str], bool] = lambda n, p: False) -> Iterator[Proxy]:
    proxy = Proxy(server.dicomweb, fail, token, hold)
    try:
        yield proxy
    finally:
        proxy.let_go.set()
        proxy.close()


@pytest.fixture(scope="module")
def folder_release(held: tuple[Orthanc, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release a run over the folder of what Orthanc holds makes."""
    release = tmp_path_factory.mktemp("folder") / "release"
    assert run([str(held[1])], release) == 1  # the archive's bad files are quarantined
    return release


# --- inputs on the command line --------------------------------------------------------------


def test_inputs_are_split_into_local_folders_and_remote_sources_with_filters_for_dicomweb_only() -> None:
    local, remote = inputs_of(["/data/a", "file:///data/b", "s3://bucket/p", "dicomweb+https://pacs/dicom-web"],
                              ("1.2.3",), (("Modality", "CT"),))
    assert local == (Path("/data/a"), Path("/data/b"))
    assert remote == (Source(SourceKind.FSSPEC, "s3://bucket/p"),
                      Source(SourceKind.DICOMWEB, "https://pacs/dicom-web", ("1.2.3",), (("Modality", "CT"),)))
    assert inputs_of(["scan:2004"], (), ()) == ((Path("scan:2004"),), ())  # a file name with a colon
    with pytest.raises(InputError, match="DICOMweb"):
        inputs_of(["s3://bucket/p"], ("1.2.3",), ())


def test_a_version_stamp_follows_the_etag_and_only_a_fetch_failure_is_redone_unasked() -> None:
    first, same, other = version_stamp({"ETag": '"a1"'}), version_stamp({"ETag": '"a1"', "size": 3}), \
        version_stamp({"ETag": '"b2"'})
    assert first == same != other and 0 < first < 2**63
    assert version_stamp({"size": 3}) == 0
    assert is_fetch_failure("source-failed:http-503") and is_fetch_failure("source-failed")
    assert not is_fetch_failure("bad-input:truncated-header") and not is_fetch_failure(None)


def test_a_remote_source_holding_or_inside_an_output_is_refused() -> None:
    bucket, server = Source(SourceKind.FSSPEC, "s3://bucket/archive"), Source(SourceKind.DICOMWEB, "https://pacs/dw")
    for output in ("s3://bucket/archive/release", "s3://bucket", "s3://bucket/archive/", "https://pacs/dw"):
        with pytest.raises(InputError, match="must not"):
            check_apart((bucket, server), (output,))
    check_apart((bucket, server), ("s3://bucket/archive-release", "s3://other/archive", "https://pacs/dw2"))


def test_a_server_named_by_another_name_or_with_its_default_port_is_the_same_server() -> None:
    """``localhost`` resolves to 127.0.0.1 (/etc/hosts): a release stored there is the source's server."""
    local = Source(SourceKind.DICOMWEB, "http://127.0.0.1:8042/dicom-web")
    for output in ("http://localhost:8042/dicom-web", "http://LOCALHOST:8042/dicom-web/studies",
                   "http://127.0.0.1:8042"):
        with pytest.raises(InputError, match="must not"):
            check_apart((local,), (output,))
    with pytest.raises(InputError, match="must not"):
        check_apart((Source(SourceKind.DICOMWEB, "https://pacs.example/dw"),), ("https://PACS.example:443/dw/x",))
    check_apart((local,), ("http://localhost:8043/dicom-web", "https://127.0.0.1:8042/dicom-web",
                           "http://localhost:8042/dicom-web2", "s3://127.0.0.1/dicom-web"))


def test_reference_quarantine_is_refused_for_remote_inputs(s3_env: Moto, tmp_path: Path) -> None:
    url = upload(s3_env, {"a.dcm": bundled("CT_small.dcm").read_bytes()})
    assert run([url], tmp_path / "out" / "release", "--quarantine-mode", "reference") == 2
    assert not (tmp_path / "out" / "release").exists()


def test_local_and_remote_inputs_are_numbered_in_one_stream(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a.dcm", "b.dcm"):
        (tmp_path / "in" / name).write_bytes(b"local")
    fs = fsspec.filesystem("memory")
    prefix = f"/{uuid.uuid4().hex}"
    fs.pipe({f"{prefix}/x/1.dcm": b"one", f"{prefix}/2.dcm": b"two"})
    try:
        found = list(discover_inputs((tmp_path / "in",), (Source(SourceKind.FSSPEC, f"memory://{prefix}"),)))
    finally:
        fs.rm(prefix, recursive=True)
    assert [src.index for src in found] == [0, 1, 2, 3]
    assert [src.remote is None for src in found] == [True, True, False, False]
    assert [place(src, (tmp_path / "in",)) for src in found[2:]] == [(2, "2.dcm"), (2, "x/1.dcm")]  # files first
    assert found[2].size == 3 and found[2].remote is not None and found[2].remote.url == f"memory://{prefix}/2.dcm"


def test_an_object_gone_since_it_was_listed_is_quarantined_unread_and_nothing_is_kept(
        s3_env: Moto, tmp_path: Path) -> None:
    url = upload(s3_env, {"a.dcm": bundled("CT_small.dcm").read_bytes()})
    [src] = discover_inputs((), (Source(SourceKind.FSSPEC, url),))
    s3fs.S3FileSystem(**s3_env.s3_options).rm(url.removeprefix("s3://") + "/a.dcm")
    cfg = WorkerConfig(tmp_path / "release", tmp_path / "quarantine")
    cfg.quarantine.mkdir()
    outcome = process_one(src, compile_plan("basic", []), Keys(key=bytes.fromhex(KEY_HEX)), cfg)
    assert (outcome.disposition, outcome.reason) == (Disposition.QUARANTINED, "source-failed:not-found")
    assert outcome.source_id.startswith("path-") and list(cfg.quarantine.iterdir()) == []
    assert src.remote is not None
    upload(s3_env, {"a.dcm": b"x" * 11}, url.split("/")[2])  # back, and larger than a file may be
    with pytest.raises(SourceError) as caught:
        fetch(src.remote, 10)
    assert caught.value.code == "source-failed:too-large"


# --- an object store ----------------------------------------------------------------------------


def test_a_bucket_gives_the_release_of_the_same_folder_byte_for_byte(s3_env: Moto, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    files = {p.relative_to(ARCHIVE).as_posix(): p.read_bytes() for p in ARCHIVE.rglob("*") if p.is_file()}
    url = upload(s3_env, files)
    caplog.set_level(logging.DEBUG)  # of the runs
    local, remote = tmp_path / "local" / "release", tmp_path / "remote" / "release"
    assert run([str(ARCHIVE)], local) == run([url], remote) == 1  # the archive's bad files are quarantined
    assert release_files(remote) == release_files(local) and len(release_files(local)) > 20
    assert rows(remote) == rows(local)  # same content hashes, outcomes, outputs and reasons
    names = {(line["root"], line["input"], line["reason"]) for line in ledger(remote)}
    assert names == {(line["root"], line["input"], line["reason"]) for line in ledger(local)}  # prefix-relative
    patients = {path.name for path in ARCHIVE.iterdir()} - {"bad"}
    assert len(patients) == 3 and not any(patient in caplog.text for patient in patients)  # keys are not logged


def test_a_prefix_of_more_than_a_page_is_listed_whole_in_order(s3_env: Moto) -> None:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(**s3_env.s3_options)
    fs.mkdir(bucket)
    names = [f"flat/{number:05}.dcm" for number in range(1003)]  # ListObjectsV2 gives 1000 keys a page
    fs.pipe({f"{bucket}/data/{name}": b"" for name in [*names, "z.dcm"]})
    found = list(discover_inputs((), (Source(SourceKind.FSSPEC, f"s3://{bucket}/data"),)))
    assert [place(src, ())[1] for src in found] == ["z.dcm", *names]  # a folder's objects, then its sub-folders
    assert [src.index for src in found] == list(range(len(names) + 1))


def test_a_rerun_over_a_bucket_fetches_only_new_and_changed_objects(
        s3_env: Moto, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    url = upload(s3_env, {"a.dcm": bundled("CT_small.dcm").read_bytes(), "b.dcm": bundled("MR_small.dcm").read_bytes()},
                 bucket)
    release = tmp_path / "out" / "release"
    assert run([url], release) == 0
    assert this_run(capsys.readouterr().out)["this run"]["written"] == 2
    upload(s3_env, {"b.dcm": bundled("rtplan.dcm").read_bytes(), "c.dcm": bundled("test-SR.dcm").read_bytes()}, bucket)
    assert run([url], release) == 0
    counts = this_run(capsys.readouterr().out)
    assert counts["this run"]["written"] == 2  # b.dcm has a new ETag, c.dcm is new
    assert counts["unchanged since an earlier run"]["written"] == 1  # a.dcm: not fetched again
    assert len(release_files(release)) == 4


# --- a DICOMweb server ----------------------------------------------------------------------------


def test_a_dicomweb_server_gives_the_release_of_a_folder_of_what_it_holds(
        held: tuple[Orthanc, Path], folder_release: Path, tmp_path: Path) -> None:
    server, _ = held
    release = tmp_path / "out" / "release"
    assert run([server.source], release, "--workers", "1") == 1  # a Dask worker retrieves its batches
    assert release_files(release) == release_files(folder_release)
    assert rows(release) == rows(folder_release)
    assert {line["input"].count("/") for line in ledger(release)} == {2}  # Study/Series/SOP Instance UIDs


def test_study_selects_one_study_of_the_server(held: tuple[Orthanc, Path], folder_release: Path,
                                               tmp_path: Path) -> None:
    server, _ = held
    with open_session(Credentials()) as session:
        listed = list(instance_uids(session, server.dicomweb, (), ()))
    study = listed[0][0]
    release = tmp_path / "out" / "release"
    run([server.source, "--study", study], release)
    published = release_files(release)
    assert 0 < len(published) <= sum(uids[0] == study for uids in listed) < len(listed)
    assert published.items() <= release_files(folder_release).items()
    assert len({name.split("/")[1] for name in published}) == 1  # one (new) Study Instance UID


def test_a_server_failing_every_third_request_is_retried_and_a_rerun_fetches_nothing(
        held: tuple[Orthanc, Path], folder_release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    server, _ = held
    release = tmp_path / "out" / "release"
    caplog.set_level(logging.DEBUG)
    with proxy_for(server, lambda number, path: (503 if number % 2 else 500) if number % 3 == 0 else None) as proxy:
        assert run([proxy.source], release) == 1
        first = this_run(capsys.readouterr().out)
        assert sum(status >= 500 for _, status in proxy.log) > 10
        assert release_files(release) == release_files(folder_release)
        assert rows(release) == rows(folder_release)
        retrieved = len(proxy.retrievals())
        assert retrieved == len(rows(folder_release))  # each instance retrieved once
        assert run([proxy.source], release) == 1
        again = this_run(capsys.readouterr().out)
        assert len(proxy.retrievals()) == retrieved  # the rerun listed, and retrieved nothing
    assert sum(again["this run"].values()) == 0
    assert again["unchanged since an earlier run"] == first["this run"]
    with open_session(Credentials()) as session:
        uids = {uid for triple in instance_uids(session, server.dicomweb, (), ()) for uid in triple}
    assert "/studies/" not in caplog.text and not any(uid in caplog.text for uid in uids)  # not even retries


def test_an_instance_the_server_keeps_refusing_is_quarantined_alone_and_the_rerun_completes(
        held: tuple[Orthanc, Path], folder_release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, folder = held
    published = {source for source, status, _, _ in rows(folder_release) if status == "written"}
    with open_session(Credentials()) as session:  # the folder holds the instances in listing order
        listed = enumerate(instance_uids(session, server.dicomweb, (), ()))
        study, series, refused = next(uids for number, uids in listed
                                      if _sha256(folder / f"{number:03}.dcm") in published)
    failing = True
    release = tmp_path / "out" / "release"

    def fail(number: int, path: str) -> int | None:
        return 503 if failing and WADO.search(path) and path.endswith(refused) else None

    with proxy_for(server, fail) as proxy:
        assert run([proxy.source], release) == 1
        tries = [path for path, status in proxy.log if path.endswith(refused)]
        assert len(tries) == RETRIES + 1  # bounded
        [line] = [line for line in ledger(release) if line["input"] == f"{study}/{series}/{refused}"]
        assert line["reason"] == "source-failed:http-503"
        assert len(release_files(release)) == len(release_files(folder_release)) - 1  # nothing else lost
        assert release_files(release).items() < release_files(folder_release).items()
        capsys.readouterr()
        failing = False
        before = len(proxy.retrievals())
        run([proxy.source], release)
        counts = this_run(capsys.readouterr().out)
        assert proxy.retrievals()[before:] == [f"/dicom-web/studies/{study}/series/{series}/instances/{refused}"]
    assert counts["this run"]["written"] == 1
    assert release_files(release) == release_files(folder_release)
    assert rows(release) == rows(folder_release)  # the row of the unread instance went when it was read


def test_a_listing_the_server_refuses_is_an_error_naming_endpoint_and_status(
        held: tuple[Orthanc, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, _ = held
    with proxy_for(server, lambda number, path: 500) as proxy:
        assert run([proxy.source], tmp_path / "out" / "release") == 2
        assert len(proxy.log) == RETRIES + 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: DICOMweb {proxy.dicomweb}: QIDO-RS studies answered HTTP 500 Internal Server Error")
    assert release_files(tmp_path / "out" / "release") == {}


def test_a_bearer_token_from_a_file_reaches_the_server_from_every_worker_and_is_written_nowhere(
        held: tuple[Orthanc, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    server, _ = held
    (tmp_path / "token").write_text(TOKEN + "\n")
    monkeypatch.setenv("DEID_PIPELINE_DICOMWEB_TOKEN_FILE", str(tmp_path / "token"))
    study = next(iter(instance_uids(open_session(Credentials()), server.dicomweb, (), ())))[0]
    release = tmp_path / "out" / "release"
    with proxy_for(server, token=TOKEN) as proxy:
        run([proxy.source, "--study", study], release, "--workers", "1")
        assert proxy.retrievals() and all(status == 200 for _, status in proxy.log)
    written = capsys.readouterr()
    assert TOKEN not in written.out + written.err
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path.name
    with proxy_for(server, token="another") as proxy:
        assert run([proxy.source], tmp_path / "refused" / "release") == 2
    assert capsys.readouterr().err.strip().endswith("QIDO-RS studies answered HTTP 401 Unauthorized")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_worker_killed_while_it_retrieves_loses_nothing_and_publishes_nothing_twice(
        held: tuple[Orthanc, Path], folder_release: Path, tmp_path: Path) -> None:
    """The only worker is killed (SIGKILL) while its WADO-RS retrieval hangs; another takes its
    batch over: the release is the folder run's, each input has one row, and a rerun does nothing."""
    server, _ = held
    cluster = Cluster(tmp_path / "dask")
    release = tmp_path / "out" / "release"
    command = [str(CLI), "run", "", "--output", str(release), "--key-file", str(write_key(tmp_path / "secrets")),
               "--quiet", "--batch-size", "4", "--scheduler", cluster.address]
    wado = iter(range(1, 1000))
    try:
        with proxy_for(server, hold=lambda number, path: bool(WADO.search(path)) and next(wado) == 6) as proxy:
            command[2] = proxy.source
            cluster.scheduler()
            doomed = cluster.worker("worker-a")
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert proxy.holding.wait(timeout=120)
            cluster.worker("worker-b")
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=10)
            proxy.let_go.set()
            _out, err = process.communicate(timeout=240)
            assert process.returncode == 1, err.decode()[-2000:]  # the archive's bad files are quarantined
            assert release_files(release) == release_files(folder_release)
            assert rows(release) == rows(folder_release)
            retrieved = len(proxy.retrievals())
            again = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
            assert len(proxy.retrievals()) == retrieved
    finally:
        cluster.stop()
    assert sum(this_run(again.stdout)["this run"].values()) == 0
    assert release_files(release) == release_files(folder_release)
