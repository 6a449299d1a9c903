"""Where a run publishes its verified outputs: a local folder, an object store, a DICOMweb server.

``--output`` names one destination (issue 17):

- a plain path or ``file://`` URL: a local folder. Outputs are staged beside it, fsynced, verified
  and linked in (`pipeline.files.stage` and `promote`), as before;
- any other fsspec URL (``s3://bucket/prefix``, ``gs://``, ``memory://``): an object store. Object
  stores have no rename, so nothing is staged there: the worker verifies the output's bytes in memory
  and puts exactly those bytes to their final key in one PUT (atomic per object), created
  exclusively where the store supports it (S3 ``If-None-Match: *``). No staged or unverified object
  is ever written under the release prefix;
- ``dicomweb+http(s)://host/prefix``: a DICOMweb server. Each verified output is stored with
  STOW-RS (PS3.18 10.5), its bytes as verified, in a multipart/related request of its own.

Workers publish; the client never ships bytes. An output is published when the destination
confirmed it (the PUT or the STOW-RS answered success); only then does the worker return it as
written, and only then does the client record it in the manifest. Before storing, a worker asks
whether the output is there already (a crash between the store and the manifest's commit): an
object with the same bytes, or a DICOMweb instance with its SOP Instance UID (QIDO-RS). Then it is
not stored again. A different object under the key is refused as ``duplicate-sop-instance``, as in
a folder.

A request that fails with HTTP 5xx, 408 or 429, or a lost connection, is retried `ATTEMPTS` times in
all with exponential back-off (`BACKOFF` seconds, doubling); then the output is quarantined as
``store-failed:<status>`` (its original kept, never silently dropped), and a rerun stores it
(`is_retried_on_rerun`). Any other answer fails at once. Errors name the endpoint and the HTTP status,
never a credential, a key of the release or a value.

Credentials: for fsspec the way fsspec and the cloud SDKs find them (environment, config files,
instance roles), never on the command line. For DICOMweb from the environment, as for a DICOMweb
source (`pipeline.runner.dicomweb.Credentials`); variables spelled ``DEID_PIPELINE_DESTINATION_DICOMWEB_*``
(``_TOKEN``, ``_TOKEN_FILE``, ``_USER``, ``_PASSWORD``, ``_PASSWORD_FILE``, ``_CA_BUNDLE``) take
precedence for the destination, so a source and a destination may use different accounts. Workers
read them from their own environment: they never travel with the tasks. TLS is always verified.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import quote

from pipeline.errors import InputError, SourceError, WriteError
from pipeline.files import DuplicateOutputError
from pipeline.runner.dicomweb import TIMEOUT, Credentials
from pipeline.runner.sources import SourceKind, parse_source

log = logging.getLogger(__name__)

ATTEMPTS = 4  # tries of one request before the output is quarantined as store-failed
BACKOFF = 0.5  # seconds before the second try; doubled before each next one
ENV_PREFIX = "DEID_PIPELINE_DESTINATION_DICOMWEB_"
STORE_FAILED = "store-failed"
_RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_DICOM_JSON = "application/dicom+json"
_FAILED_SOP_SEQUENCE = "00081198"

T = TypeVar("T")


class DestinationKind(StrEnum):
    """How a release is published."""

    FOLDER = "folder"
    FSSPEC = "fsspec"
    DICOMWEB = "dicomweb"


@dataclass(frozen=True, slots=True)
class Destination:
    """A parsed ``--output``: `location` is a folder path, an fsspec URL (no trailing slash) or a
    DICOMweb base URL (``http(s)://...``, as dicomweb-client takes it)."""

    kind: DestinationKind
    location: str

    @property
    def is_remote(self) -> bool:
        """True when the release is not a local folder: it has no staging folder, and the run's
        records (manifest, run record, report, audit message, quarantine) stay local."""
        return self.kind is not DestinationKind.FOLDER

    def describe(self) -> str:
        """The destination as records name it: never a credential (URLs holding one are refused)."""
        return self.location

    def media_name(self) -> str:
        """The destination as one name without separators, for the audit message's Destination
        Media (PS3.15 A.5.3.4), which names no path: ``s3:bucket:release``,
        ``dicomweb+https:pacs.example:8443:dicom-web``."""
        scheme, _, rest = self.location.partition("://")
        if self.kind is DestinationKind.DICOMWEB:
            scheme = f"dicomweb+{scheme}"
        return ":".join(part for part in (scheme, *rest.replace("\\", "/").split("/")) if part)


@dataclass(frozen=True, slots=True)
class InstanceUids:
    """The new identifiers of a published instance, as a DICOMweb server files it."""

    study: str
    series: str
    sop: str


class StoreError(WriteError):
    """The destination did not confirm an output after the retries: quarantined as
    ``store-failed:<HTTP status>`` (or ``store-failed:connection`` / ``:<error class>``)."""

    code = STORE_FAILED

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.code = f"{STORE_FAILED}:{status}"


def parse_destination(text: str) -> Destination:
    """The destination `text` names (see the module's docstring); a URL holding credentials is
    refused without repeating them."""
    source = parse_source(text)
    kind = {SourceKind.FOLDER: DestinationKind.FOLDER, SourceKind.FSSPEC: DestinationKind.FSSPEC,
            SourceKind.DICOMWEB: DestinationKind.DICOMWEB}[source.kind]
    location = source.location if kind is DestinationKind.FOLDER else source.location.rstrip("/")
    if kind is DestinationKind.FSSPEC and location.partition("://")[2].strip("/") == "":
        raise InputError("an object-store release needs a bucket (and a prefix): s3://bucket/release")
    return Destination(kind, location)


def is_retried_on_rerun(reason: str | None) -> bool:
    """A store that failed is redone by the next run without ``--retry-quarantined``: the server,
    not the input, was at fault."""
    return reason is not None and reason.startswith(f"{STORE_FAILED}:")


def credentials(environ: Mapping[str, str]) -> Credentials:
    """The DICOMweb destination's credentials: the ``DEID_PIPELINE_DESTINATION_DICOMWEB_*`` variables
    when any is set, else those of a DICOMweb source (`Credentials.from_environ`)."""
    own = {f"DEID_PIPELINE_DICOMWEB_{name[len(ENV_PREFIX):]}": value
           for name, value in environ.items() if name.startswith(ENV_PREFIX)}
    return Credentials.from_environ(own or environ)


# --- on the worker: publish one verified output --------------------------------------------------


def publish(destination: Destination, name: PurePosixPath, data: bytes, uids: InstanceUids) -> None:
    """Store `data` (verified bytes) as the release's `name` at a remote `destination`; return only
    when the destination confirmed it, or it already held the output. Raises `StoreError` after the
    retries, `DuplicateOutputError` when a different object has the name."""
    if destination.kind is DestinationKind.FSSPEC:
        put_object(destination, name, data)
    elif destination.kind is DestinationKind.DICOMWEB:
        _stow(destination, data, uids)
    else:
        raise WriteError("a local folder is published by stage and promote, not by publish")


def _retrying(what: str, request: Callable[[], T], status_of: Callable[[BaseException], tuple[str, bool]]) -> T:
    """`request()` retried while it fails transiently (`status_of` gives the status to report and
    whether it is transient), then a `StoreError`; a failure that is not transient at once."""
    delay = BACKOFF
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return request()
        except (StoreError, DuplicateOutputError):
            raise
        except Exception as exc:
            status, transient = status_of(exc)
            if not transient or attempt == ATTEMPTS:
                tries = f" after {attempt} tries" if transient else ""
                log.error("%s failed%s: %s", what, tries, status)
                raise StoreError(f"{what} failed{tries}: {status}", status) from None
            log.warning("%s failed (%s): try %d of %d in %.1f s", what, status, attempt + 1, ATTEMPTS, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


# --- fsspec ------------------------------------------------------------------------------------------

_local = threading.local()


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, root path without trailing slash) of `url`, one per thread and URL."""
    cache: dict[str, tuple[Any, str]] = _local.__dict__.setdefault("filesystems", {})
    if url not in cache:
        import fsspec  # a dependency of dask; s3fs and the others come with the [cloud] extra

        # s3fs: botocore's own retries off, so a request is tried ATTEMPTS times in all, not ATTEMPTS x 5
        options = {"config_kwargs": {"retries": {"total_max_attempts": 1}}} if url.startswith(("s3://", "s3a://")) \
            else {}
        try:
            fs, root = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as exc:
            raise InputError(f"{url}: no filesystem for this URL ({type(exc).__name__}); "
                             "install deid-pipeline[cloud]") from None
        cache[url] = fs, root.rstrip("/")
    return cache[url]


def put_object(destination: Destination, name: PurePosixPath, data: bytes) -> None:
    fs, root = filesystem(destination.location)
    key = f"{root}/{name.as_posix()}"
    what = f"object store {destination.location}: PUT"

    def put() -> None:
        if _same_object(fs, key, data):
            return  # stored by a run that died before recording it: not stored twice
        try:
            _exclusive_put(fs, key, data)
        except FileExistsError:  # another worker, or a retry whose first PUT did land
            if not _same_object(fs, key, data):
                raise DuplicateOutputError("a different object already has this release name") from None

    _retrying(what, put, _fsspec_status)


def _same_object(fs: Any, key: str, data: bytes) -> bool:
    """True when `key` holds `data`; False when it holds nothing; a different object is refused.
    One GET, never a HEAD: s3fs answers a failed HEAD by listing, and could take a key for a folder."""
    fs.invalidate_cache(key)
    try:
        stored = fs.cat_file(key)
    except FileNotFoundError:
        return False
    if stored == data:
        return True
    raise DuplicateOutputError("a different object already has this release name")


def _exclusive_put(fs: Any, key: str, data: bytes) -> None:
    """One PUT of the whole object; exclusive (``If-None-Match: *``) where the store offers it."""
    if type(fs).__module__.startswith("s3fs"):
        try:
            fs.pipe_file(key, data, mode="create")
        except OSError as exc:
            if _http_status(exc) == 412:  # Precondition Failed: the key exists
                raise FileExistsError(key) from None
            raise
        return
    if hasattr(fs, "makedirs") and fs.protocol in ("file", ("file", "local")):
        fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(key, data)


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status a botocore error (wrapped by s3fs) carries, if any."""
    for error in (exc, exc.__cause__, exc.__context__):
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(status, int):
                return status
    return None


def _fsspec_status(exc: BaseException) -> tuple[str, bool]:
    status = _http_status(exc)
    if status is not None:
        return str(status), status in _RETRIED_STATUS
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return type(exc).__name__, False  # no bucket, no permission: not transient
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        return "connection", True
    return type(exc).__name__, False


# --- DICOMweb STOW-RS -------------------------------------------------------------------------------


def session(base_url: str) -> Any:
    """A requests session for the DICOMweb server at `base_url`, one per thread: its credentials from
    this process's environment (`credentials`), TLS verified against the system or the CA bundle."""
    cache: dict[str, Any] = _local.__dict__.setdefault("sessions", {})
    if base_url not in cache:
        try:
            import requests
        except ImportError as exc:
            raise InputError("a DICOMweb destination needs dicomweb-client: install deid-pipeline[cloud]") from exc
        found = credentials(os.environ)
        http = requests.Session()
        http.verify = found.ca_bundle or True  # never off
        if found.token is not None:
            http.headers["Authorization"] = f"Bearer {found.token}"
        elif found.user is not None and found.password is not None:
            http.auth = (found.user, found.password)
        cache[base_url] = http
    return cache[base_url]


class _HttpStatus(Exception):
    """An answer that is not success, with its status (internal: becomes a StoreError)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _stow(destination: Destination, data: bytes, uids: InstanceUids) -> None:
    base = destination.location
    http = session(base)

    def store() -> None:
        if is_stored(http, base, uids):
            return  # stored by a run that died before recording it: not stored twice
        boundary = uuid.uuid4().hex  # cannot occur in the data but by a 2**-122 chance
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii") + data
                + f"\r\n--{boundary}--\r\n".encode("ascii"))
        response = http.post(f"{base}/studies", data=body, timeout=TIMEOUT,
                             headers={"Content-Type": content_type, "Accept": _DICOM_JSON})
        if response.status_code == 409 and is_stored(http, base, uids):
            return  # the server refused it as a duplicate of what it holds: stored
        if response.status_code not in (200, 202) or _failed_sops(response):
            raise _HttpStatus(response.status_code)

    _retrying(f"DICOMweb {base}: STOW-RS", store, _dicomweb_status)


def is_stored(http: Any, base: str, uids: InstanceUids) -> bool:
    """QIDO-RS: does the server hold the instance with this SOP Instance UID in this study?"""
    response = http.get(f"{base}/studies/{quote(uids.study, safe='')}/instances", params={"SOPInstanceUID": uids.sop},
                        headers={"Accept": _DICOM_JSON}, timeout=TIMEOUT)
    if response.status_code in (204, 404):
        return False
    if response.status_code != 200:
        raise _HttpStatus(response.status_code)
    found = response.json() if response.content else []
    return any(((item.get("00080018") or {}).get("Value") or [None])[0] == uids.sop for item in found)


def _failed_sops(response: Any) -> bool:
    """True when a STOW-RS answer lists a failed instance (Failed SOP Sequence, PS3.18 10.5.3)."""
    if not response.content or _DICOM_JSON not in str(response.headers.get("Content-Type", "")):
        return False
    try:
        answer = response.json()
    except ValueError:
        return False
    return bool(isinstance(answer, dict) and (answer.get(_FAILED_SOP_SEQUENCE) or {}).get("Value"))


def _dicomweb_status(exc: BaseException) -> tuple[str, bool]:
    import requests

    if isinstance(exc, _HttpStatus):
        return str(exc.status), exc.status in _RETRIED_STATUS
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return "connection", True
    return type(exc).__name__, False


# --- on the client: before and after a run --------------------------------------------------------


def check_reachable(destination: Destination) -> None:
    """Fail before anything is read (`SourceError` naming the endpoint and status) when a remote
    destination cannot be reached: a missing bucket, refused credentials, a server that is down."""
    if destination.kind is DestinationKind.FSSPEC:
        fs, root = filesystem(destination.location)
        bucket = root.split("/", 1)[0]

        def probe() -> None:
            fs.invalidate_cache(bucket)
            fs.info(bucket)

        try:
            _retrying(f"object store {destination.location}: HEAD", probe, _fsspec_status)
        except StoreError as exc:
            status = exc.code.partition(":")[2]
            if status in ("FileNotFoundError", "404"):
                raise SourceError(f"object store {destination.location}: no such bucket or folder") from None
            raise SourceError(f"object store {destination.location}: cannot be reached ({status})") from None
    elif destination.kind is DestinationKind.DICOMWEB:
        credentials(os.environ)  # refuses ambiguous or unreadable credentials here, not in every worker
        base = destination.location

        def search() -> None:
            response = session(base).get(f"{base}/studies", params={"limit": "1"},
                                         headers={"Accept": _DICOM_JSON}, timeout=TIMEOUT)
            if response.status_code not in (200, 204):
                raise _HttpStatus(response.status_code)

        try:
            _retrying(f"DICOMweb {base}: QIDO-RS", search, _dicomweb_status)
        except StoreError as exc:
            status = exc.code.partition(":")[2]
            answered = f"answered HTTP {status}" if status.isdigit() else f"failed ({status})"
            raise SourceError(f"DICOMweb {base}: QIDO-RS {answered}") from None


def _on_client(destination: Destination, what: str, request: Callable[[], T]) -> T:
    """An object-store request of the client, retried like a worker's; a `SourceError` at the end."""
    try:
        return _retrying(f"object store {destination.location}: {what}", request, _fsspec_status)
    except StoreError as exc:
        raise SourceError(f"object store {destination.location}: {what} failed ({exc.code.partition(':')[2]})") \
            from None


def _objects(destination: Destination) -> list[str]:
    fs, root = filesystem(destination.location)

    def listing() -> list[str]:
        fs.invalidate_cache(root)
        try:
            return list(fs.find(root, withdirs=False))
        except FileNotFoundError:
            return []

    return _on_client(destination, "listing", listing)


def holds_objects(destination: Destination) -> bool:
    """True when an object-store release prefix holds any object (a DICOMweb server: False)."""
    return destination.kind is DestinationKind.FSSPEC and bool(_objects(destination))


def count_published(destination: Destination) -> int | None:
    """Objects under an object-store release prefix; None for a DICOMweb server (it holds more
    than one release: the manifest's count stands)."""
    return len(_objects(destination)) if destination.kind is DestinationKind.FSSPEC else None


def remove(destination: Destination, outputs: list[str]) -> int:
    """Remove published outputs (``--force-replan``), or a kept original: objects of an object store;
    a DICOMweb server offers no standard removal, so a replan there is refused. Returns how many
    were there."""
    if not outputs:
        return 0
    if destination.kind is DestinationKind.DICOMWEB:
        raise InputError("a DICOMweb release cannot be replanned (DICOMweb has no standard removal): "
                         "publish the new settings to another server or prefix")
    fs, root = filesystem(destination.location)

    def rm() -> int:
        present = []
        for output in outputs:
            fs.invalidate_cache(f"{root}/{output}")
            if fs.exists(f"{root}/{output}"):
                present.append(f"{root}/{output}")
        if present:
            fs.rm(present)
        return len(present)

    return _on_client(destination, "removal", rm)


def anchor(manifest: Path) -> Path:
    """The local name a remote release's records are kept beside: the manifest's path without
    ``.manifest.sqlite`` (``work/ct.manifest.sqlite`` -> ``work/ct``: ``work/ct.run.json``,
    ``work/ct.report/``, ``work/ct.audit.xml``, ``work/ct.quarantine/``)."""
    name = manifest.name
    suffix = ".manifest.sqlite"
    if not name.endswith(suffix) or name == suffix:
        raise InputError("the manifest of a remote release must be named NAME.manifest.sqlite: its run record, "
                         "report, audit message and quarantine are kept beside it as NAME.*")
    return manifest.with_name(name[: -len(suffix)])


__all__ = ["ATTEMPTS", "Destination", "DestinationKind", "InstanceUids", "StoreError", "anchor",
           "check_reachable", "count_published", "credentials", "holds_objects", "is_retried_on_rerun",
           "is_stored", "parse_destination", "publish", "put_object", "remove"]
