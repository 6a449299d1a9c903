"""A run's inputs where the data is (issue 17): object stores through fsspec, DICOMweb servers.

The client lists, lazily; each worker fetches the bytes of its own batch (the client ships keys,
never bytes):

- an fsspec URL (``s3://bucket/prefix``, ``gs://...``): the prefix is listed one "folder" at a time,
  on S3 a ListObjectsV2 page at a time (`_entries`), elsewhere with ``fs.ls`` (dropped from fsspec's
  cache once read): a folder's objects by name, then its sub-folders by name, depth first. A worker
  reads an object with ``fs.cat_file``; credentials are found the way fsspec and the cloud SDKs find
  them (environment, config files, instance roles), in the client and in every worker alike, never
  on the command line;
- a DICOMweb server (``dicomweb+https://host/prefix``, ``--study``, ``--query``): QIDO-RS lists the
  instances (pipeline/runner/dicomweb.py), a worker retrieves each with WADO-RS in its stored
  transfer syntax, through one retrying session per worker process, with the credentials the
  worker's environment names (`Credentials.from_environ`).

Resume without fetching again: the manifest keeps, per location, a keyed digest of the object's
URL (never the URL) with its size and a version stamp; an object listed again with the same
size and version is not fetched. The stamp of an object is a 63-bit digest of its ETag (S3),
generation (GCS) or modification time, whichever the listing gives first; a DICOMweb instance
has neither size nor version before it is retrieved and is known by its URL alone, i.e. by its
Study, Series and SOP Instance UIDs: an instance whose content changes must change its SOP
Instance UID (PS3.3 C.12.1.1.1). The manifest's rows stay keyed by content hash.

A fetch that fails after the retries quarantines the input as ``source-failed:<kind>`` (nothing is
kept of it: its bytes were never read, and the ledger names it by key); such an input is fetched
again by the next run, without ``--retry-quarantined`` (`is_fetch_failure`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import socket
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, SourceError
from pipeline.runner.dicomweb import Credentials, instance_uids, open_session, retrieve_instance
from pipeline.runner.discover import RemoteKind, RemoteObject, SourceFile, discover
from pipeline.runner.ledger import relative_input
from pipeline.runner.sources import Source, SourceKind, quiet_store_clients

FETCH_FAILED = SourceError.code  # the prefix of the quarantine reason of an input that could not be fetched
_VERSION_FIELDS = ("ETag", "etag", "generation", "VersionId", "md5Hash", "mtime", "LastModified", "created")
_sessions: dict[tuple[str, Credentials], Any] = {}  # (DICOMweb base URL, credentials) -> a retrying session
_stores: dict[tuple[str, str], Any] = {}  # (protocol, digest of the SDKs' environment) -> file system
_SDK_ENVIRONMENT = ("AWS_", "GOOGLE_", "GCE_", "GCSFS_", "FSSPEC_", "AZURE_", "BOTO_")


class FetchError(SourceError):
    """An object the store would not give: `code` is ``source-failed:<kind>``."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.code = f"{SourceError.code}:{kind}"


def is_fetch_failure(reason: str | None) -> bool:
    """True for the quarantine reason of an input whose bytes could not be fetched (redone by a rerun)."""
    return reason is not None and (reason == FETCH_FAILED or reason.startswith(FETCH_FAILED + ":"))


# --- the client: listing ----------------------------------------------------------------------


def discover_inputs(roots: tuple[Path, ...], sources: Iterable[Source]) -> Iterator[SourceFile]:
    """Every input of a run, numbered from 0: the files under the local `roots` (input numbers 1 to
    n), then the objects or instances of each remote source in turn (input numbers n+1, ...)."""
    following = 0
    for src in discover(roots):
        yield src
        following = src.index + 1
    for number, source in enumerate(sources, start=len(roots) + 1):
        for size, version, remote in _remote(source, number):
            yield SourceFile(path=Path(posixpath.basename(remote.key) or "object"), size=size, index=following,
                             mtime_ns=version, remote=remote)
            following += 1


def check_apart(sources: Iterable[Source], outputs: Iterable[str]) -> None:
    """Refuse (`InputError`) a remote source that is, holds or lies inside one of `outputs` (the URL of a
    release or quarantine in an object store, or of a DICOMweb server stored to): a rerun would read
    the run's own outputs as inputs. Local inputs are checked by `layout.check_layout`."""
    wanted = [_place(output) for output in outputs]
    for source in sources:
        server, location = _place(source.location)
        for output_server, output in wanted:
            if server[0] != output_server[0] or not server[1] & output_server[1]:
                continue
            if location == output or output.startswith(location + "/") or location.startswith(output + "/"):
                raise InputError("an input must not be, hold or lie inside the release or the quarantine")


def _place(url: str) -> tuple[tuple[str, frozenset[str]], str]:
    """((scheme and port, names of the server), path) of a URL. An http(s) server is named by its host in
    lower case and every address it resolves to, its port made explicit (RFC 3986 6.2.3), so that
    ``localhost`` and ``127.0.0.1`` are one server; any other URL is compared as written."""
    url = url.rstrip("/")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return ("", frozenset({""})), url
    port = parts.port or (443 if scheme == "https" else 80)
    names = {parts.hostname.lower()}
    with contextlib.suppress(OSError, UnicodeError):  # a name that does not resolve is compared as written
        names |= {str(info[4][0]) for info in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)}
    return (f"{scheme}:{port}", frozenset(names)), parts.path.rstrip("/")


def place(src: SourceFile, roots: tuple[Path, ...]) -> tuple[int, str]:
    """(input number, name relative to that input) of an input, for the ledger."""
    if src.remote is not None:
        return src.remote.root, src.remote.name
    return relative_input(src.path, roots)


def _remote(source: Source, number: int) -> Iterator[tuple[int, int, RemoteObject]]:
    if source.kind is SourceKind.FSSPEC:
        return _objects(source.location, number)
    if source.kind is SourceKind.DICOMWEB:
        return _instances(source, number)
    raise InputError("a folder is a local input, not a remote source")


def _objects(url: str, number: int) -> Iterator[tuple[int, int, RemoteObject]]:
    fs, root = _filesystem(url)
    fs.invalidate_cache()  # fsspec keeps file systems, and their listings, for the life of the process
    root = root.rstrip("/")
    try:
        if fs.isfile(root):
            info = fs.info(root)
            yield _object(fs, info, posixpath.basename(root), number)
            return
        if not fs.isdir(root):
            raise SourceError(f"{url}: no such bucket, prefix or folder")
        pending = [root]
        while pending:
            folder = pending.pop()
            folders = []
            for info in _entries(fs, folder):
                name = str(info["name"]).rstrip("/")
                if info.get("type") == "directory":
                    if name != folder:
                        folders.append(name)
                elif name != folder:
                    yield _object(fs, info, name[len(root) + 1:], number)
            pending.extend(sorted(folders, reverse=True))
    except SourceError:
        raise
    except Exception as exc:  # permission, credentials, network: named by kind, never by its message
        raise SourceError(f"{url}: the object store failed ({type(exc).__name__})") from exc


def _entries(fs: Any, folder: str) -> Iterator[dict[str, Any]]:
    """The objects and sub-folders of one folder: on S3 a page (1000 keys) at a time, as ListObjectsV2
    returns them, objects in key order (s3fs's `_iterdir`, each page retried like any request), so a
    flat prefix of millions is never held in memory; elsewhere the folder's listing, sorted by name."""
    if type(fs).__name__ == "S3FileSystem" and hasattr(fs, "_iterdir") and not fs.version_aware:
        from fsspec.asyn import sync

        bucket, key, _ = fs.split_path(folder)
        pages = fs._iterdir(bucket, prefix=f"{key}/" if key else "")
        while True:
            try:
                yield sync(fs.loop, pages.__anext__)
            except StopAsyncIteration:
                return
    entries = fs.ls(folder, detail=True)
    fs.invalidate_cache(folder)  # listed once: fsspec need not keep it
    yield from sorted(entries, key=lambda entry: str(entry["name"]))


def _object(fs: Any, info: dict[str, Any], name: str, number: int) -> tuple[int, int, RemoteObject]:
    url = str(fs.unstrip_protocol(str(info["name"]).rstrip("/")))
    return int(info.get("size") or 0), version_stamp(info), RemoteObject(RemoteKind.FSSPEC, url, url, name, number)


def version_stamp(info: dict[str, Any]) -> int:
    """A 63-bit digest of the first version field a listing gives (ETag, generation, mtime...); 0
    when it gives none (then size alone tells a changed object)."""
    for field in _VERSION_FIELDS:
        value = info.get(field)
        if value not in (None, ""):
            digest = hashlib.sha256(f"{field}={value}".encode()).digest()
            return int.from_bytes(digest[:8], "big") >> 1
    return 0


def _instances(source: Source, number: int) -> Iterator[tuple[int, int, RemoteObject]]:
    credentials = Credentials.from_environ(os.environ)
    with open_session(credentials) as session:
        for uids in instance_uids(session, source.location, source.studies, source.query):
            key = "/".join(uids)
            yield 0, 0, RemoteObject(RemoteKind.DICOMWEB, source.location, key, key, number)


def _filesystem(url: str) -> tuple[Any, str]:
    """The file system of `url` and the path in it: one per protocol and process, made afresh when the
    environment the cloud SDKs read (``AWS_*``, ``GOOGLE_*``, ``FSSPEC_*``...) has changed, where
    fsspec's own cache would keep a client made under the old one (an endpoint, rotated credentials)."""
    import fsspec  # a dependency of dask; s3fs, gcsfs and others come with the [cloud] extra

    quiet_store_clients()
    try:
        if "::" in url:  # a chained URL (e.g. simplecache::s3://...): fsspec builds the chain
            fs, path = fsspec.core.url_to_fs(url)
            return fs, str(path)
        protocol = url.split("://", 1)[0]
        key = (protocol, _environment_digest())
        fs = _stores.get(key)
        if fs is None:
            fs = _stores.setdefault(key, fsspec.filesystem(protocol, skip_instance_cache=True))
        return fs, str(fs._strip_protocol(url))
    except (ImportError, ValueError) as exc:
        raise SourceError(f"{url.split('://')[0]}://: no filesystem for this URL ({type(exc).__name__}); "
                          "install deid-pipeline[cloud] (gcsfs for gs://)") from exc


def _environment_digest() -> str:
    settings = sorted((name, value) for name, value in os.environ.items() if name.startswith(_SDK_ENVIRONMENT))
    return hashlib.sha256(repr(settings).encode("utf-8", "surrogatepass")).hexdigest()


# --- the worker: fetching ---------------------------------------------------------------------


def fetch(remote: RemoteObject, limit: int) -> bytes:
    """The bytes of a remote input, read by the worker; a `SourceError` (``source-failed:<kind>``)
    when the store or server will not give them after its retries, or they exceed `limit`."""
    if remote.kind is RemoteKind.DICOMWEB:
        credentials = Credentials.from_environ(os.environ)  # read again: a token may be rotated mid-run
        session = _sessions.get((remote.url, credentials))
        if session is None:
            session = _sessions.setdefault((remote.url, credentials), open_session(credentials))
        study, series, sop = remote.key.split("/")
        return retrieve_instance(session, remote.url, (study, series, sop), limit)
    fs, path = _filesystem(remote.url)
    try:
        data = bytes(fs.cat_file(path))
    except FileNotFoundError as exc:
        raise FetchError("an object listed is gone", "not-found") from exc
    except PermissionError as exc:
        raise FetchError("an object could not be read (permission denied)", "permission") from exc
    except Exception as exc:  # network, throttling after the SDK's retries: named by kind only
        raise FetchError(f"an object could not be read ({type(exc).__name__})", "object-store") from exc
    if len(data) > limit:
        raise FetchError("an object is larger than a file may be", "too-large")
    return data


__all__ = ["FETCH_FAILED", "FetchError", "check_apart", "discover_inputs", "fetch", "is_fetch_failure", "place",
           "version_stamp"]
