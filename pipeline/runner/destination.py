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

Requests are retried on transient failures, then the output is quarantined as
``store-failed:<status>`` and the next run stores it (`pipeline.runner.destination_retry`). Errors
name the endpoint and the HTTP status, never a credential, a key of the release or a value.
Credentials: for fsspec the way fsspec and the cloud SDKs find them (environment, config files,
instance roles), never on the command line; for DICOMweb see `pipeline.runner.destination_stow`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from pipeline.errors import InputError, SourceError, WriteError
from pipeline.files import DuplicateOutputError
from pipeline.runner.destination_retry import (
    RETRIED_STATUS,
    InstanceUids,
    StoreError,
    is_retried_on_rerun,
    retrying,
)
from pipeline.runner.destination_stow import check_server, stow
from pipeline.runner.sources import SourceKind, parse_source

log = logging.getLogger(__name__)

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


def parse_destination(text: str) -> Destination:
    """The destination `text` names (see the module's docstring); a URL holding credentials is
    refused without repeating them."""
    if "://" not in text:  # a folder, whatever its name holds ("run:2" is no URL scheme)
        return Destination(DestinationKind.FOLDER, text)
    source = parse_source(text)
    kind = {SourceKind.FOLDER: DestinationKind.FOLDER, SourceKind.FSSPEC: DestinationKind.FSSPEC,
            SourceKind.DICOMWEB: DestinationKind.DICOMWEB}[source.kind]
    location = source.location if kind is DestinationKind.FOLDER else source.location.rstrip("/")
    if kind is DestinationKind.FSSPEC and location.partition("://")[2].strip("/") == "":
        raise InputError("an object-store release needs a bucket (and a prefix): s3://bucket/release")
    return Destination(kind, location)


# --- on the worker: publish one verified output --------------------------------------------------


def publish(destination: Destination, name: PurePosixPath, data: bytes, uids: InstanceUids) -> None:
    """Store `data` (verified bytes) as the release's `name` at a remote `destination`; return only
    when the destination confirmed it, or it already held the output. Raises `StoreError` after the
    retries, `DuplicateOutputError` when a different object has the name."""
    if destination.kind is DestinationKind.FSSPEC:
        put_object(destination, name, data)
    elif destination.kind is DestinationKind.DICOMWEB:
        stow(destination.location, data, uids)
    else:
        raise WriteError("a local folder is published by stage and promote, not by publish")


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

    retrying(what, put, _fsspec_status)


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
        return str(status), status in RETRIED_STATUS
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return type(exc).__name__, False  # no bucket, no permission: not transient
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
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
            retrying(f"object store {destination.location}: HEAD", probe, _fsspec_status)
        except StoreError as exc:
            status = exc.code.partition(":")[2]
            if status in ("FileNotFoundError", "404"):
                raise SourceError(f"object store {destination.location}: no such bucket or folder") from None
            raise SourceError(f"object store {destination.location}: cannot be reached ({status})") from None
    elif destination.kind is DestinationKind.DICOMWEB:
        check_server(destination.location)


def _on_client(destination: Destination, what: str, request: Callable[[], T]) -> T:
    """An object-store request of the client, retried like a worker's; a `SourceError` at the end."""
    try:
        return retrying(f"object store {destination.location}: {what}", request, _fsspec_status)
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


__all__ = ["Destination", "DestinationKind", "InstanceUids", "StoreError", "anchor", "check_reachable",
           "count_published", "filesystem", "holds_objects", "is_retried_on_rerun", "parse_destination", "publish",
           "put_object", "remove"]
