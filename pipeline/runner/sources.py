"""Where a release lives: iterate the instances of a source as (key, bytes), one at a time.

A source is named by one string (issue 17):

- a plain path or ``file://`` URL: a local folder;
- any other fsspec URL (``s3://bucket/prefix``, ``gs://``, ``memory://``): an object store, listed
  lazily prefix by prefix through fsspec; credentials are found the way fsspec and the cloud SDKs
  find them (environment, config files, instance roles), never in the URL;
- ``dicomweb+http://host:port/prefix`` or ``dicomweb+https://``: a DICOMweb server (PS3.18),
  found with QIDO-RS and retrieved with WADO-RS (pipeline/runner/dicomweb.py).

Keys are never an input path's value from outside the source: a file's key is its path relative
to the folder or prefix (the release-relative name scan reports), an instance's key on DICOMweb
is ``StudyInstanceUID/SeriesInstanceUID/SOPInstanceUID``.

Listing order, on which ``sample`` depends (deterministic for an unchanged source): a folder or
prefix lists its files by name, then its sub-folders by name, depth first; a DICOMweb server lists
studies in the order QIDO-RS returns them (each ``--study`` in the order given), the instances of a
study sorted by series and SOP Instance UID. ``sample=N`` takes the first N instances in that order
and stops listing there, so a cap on a very large collection does not list it all.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import InputError, SourceError
from pipeline.runner.dicomweb import Credentials, dicomweb_instances


class SourceKind(StrEnum):
    """How a source is read."""

    FOLDER = "folder"
    FSSPEC = "fsspec"
    DICOMWEB = "dicomweb"


@dataclass(frozen=True, slots=True)
class Instance:
    """One file of a source: its key (release-relative path, or UIDs on DICOMweb) and its bytes."""

    key: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Source:
    """A parsed source: `location` is a folder path, an fsspec URL or a DICOMweb base URL
    (``http(s)://...``); `studies` and `query` filter a DICOMweb server (QIDO-RS)."""

    kind: SourceKind
    location: str
    studies: tuple[str, ...] = ()
    query: tuple[tuple[str, str], ...] = ()


_DICOMWEB_SCHEMES = {"dicomweb+http": "http", "dicomweb+https": "https"}


def parse_source(text: str, studies: tuple[str, ...] = (), query: tuple[tuple[str, str], ...] = ()) -> Source:
    """The source `text` names; `studies` and `query` only for DICOMweb. A URL holding
    credentials (``user:password@``) is refused: they never go on the command line."""
    parts = urlsplit(text)
    if parts.username is not None or parts.password is not None:
        raise InputError("credentials in a source URL are refused: give them by environment variable or file")
    if parts.scheme in _DICOMWEB_SCHEMES:
        if not parts.netloc:
            raise InputError("a DICOMweb source needs a host: dicomweb+http://host:port/prefix")
        if parts.query or parts.fragment:  # it would be repeated in every error message
            raise InputError("a DICOMweb source URL takes no query or fragment: filters go in --query, "
                             "credentials in the environment")
        location = parts._replace(scheme=_DICOMWEB_SCHEMES[parts.scheme]).geturl().rstrip("/")
        return Source(SourceKind.DICOMWEB, location, studies, query)
    if studies or query:
        raise InputError("--study and --query filter a DICOMweb source only")
    if parts.scheme == "file":
        return Source(SourceKind.FOLDER, parts.path)
    if len(parts.scheme) > 1 and "://" in text:  # a one-letter scheme is a Windows drive; "a:b" a file name
        return Source(SourceKind.FSSPEC, text)
    return Source(SourceKind.FOLDER, text)


def describe(source: Source) -> str:
    """The source as the reports name it (no credential is ever part of it)."""
    return source.location


def iter_instances(source: Source, sample: int | None = None, *,
                   storage_options: Mapping[str, Any] | None = None,
                   environ: Mapping[str, str] | None = None) -> Iterator[Instance]:
    """Every instance of `source` in listing order, or the first `sample` of them.

    `storage_options` go to fsspec (e.g. ``client_kwargs={"endpoint_url": ...}`` for s3fs);
    `environ` (default: the process environment) holds the DICOMweb credentials
    (pipeline/runner/dicomweb.py, `Credentials.from_environ`).
    """
    if sample is not None and sample < 1:
        raise InputError("--sample must be at least 1")
    if source.kind is SourceKind.FOLDER:
        instances = _folder(Path(source.location))
    elif source.kind is SourceKind.FSSPEC:
        instances = _fsspec(source.location, dict(storage_options or {}))
    else:
        credentials = Credentials.from_environ(os.environ if environ is None else environ)
        instances = (Instance(key, data) for key, data in
                     dicomweb_instances(source.location, source.studies, source.query, credentials))
    return instances if sample is None else itertools.islice(instances, sample)


def _folder(root: Path) -> Iterator[Instance]:
    if not root.is_dir():
        raise InputError("the directory to scan does not exist")
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            yield Instance(path.relative_to(root).as_posix(), path.read_bytes())


# They log object keys (source paths: identifying) at DEBUG level, some on retries at WARNING.
_CHATTY = ("fsspec", "s3fs", "gcsfs", "botocore", "aiobotocore", "urllib3", "google")


def quiet_store_clients() -> None:
    """Keep the object stores' client libraries to their errors: they log keys and URLs."""
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.ERROR)


def _fsspec(url: str, storage_options: dict[str, Any]) -> Iterator[Instance]:
    import fsspec  # a dependency of dask; s3fs and others come with the [cloud] extra

    quiet_store_clients()
    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
    except (ImportError, ValueError) as exc:
        raise SourceError(f"{url}: no filesystem for this URL ({type(exc).__name__}); "
                          "install deid-pipeline[cloud]") from exc
    fs.invalidate_cache()  # fsspec keeps file systems, and their listings, for the life of the process
    root = root.rstrip("/")
    try:
        if fs.isfile(root):
            yield Instance(root.rsplit("/", 1)[-1], fs.cat_file(root))
            return
        if not fs.isdir(root):
            raise SourceError(f"{url}: no such bucket, prefix or folder")
        for folder, dirs, files in fs.walk(root, topdown=True):
            dirs.sort()
            for name in sorted(files):
                path = f"{folder.rstrip('/')}/{name}"
                yield Instance(path[len(root) + 1:], fs.cat_file(path))
    except SourceError:
        raise
    except Exception as exc:  # permission, credentials, network: named by kind, never by its message
        raise SourceError(f"{url}: the object store failed ({type(exc).__name__})") from exc


__all__ = ["Instance", "Source", "SourceKind", "describe", "iter_instances", "parse_source"]
