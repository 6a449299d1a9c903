"""A DICOMweb server as a source of instances (PS3.18): QIDO-RS finds them, WADO-RS retrieves each
as a PS3.10 file in its stored transfer syntax (``transfer-syntax=*``, PS3.18 8.7.3.5.2).

QIDO-RS goes through dicomweb-client (the [cloud] extra); the WADO-RS retrieval asks the same
session for the instance's multipart/related body and keeps its bytes as the server sent them
(dicomweb-client would parse them into a dataset, and a scan judges the file as stored: preamble,
trailing padding and all; a run hashes and de-identifies the file as stored, so its outputs are the
bytes a run over the same files in a folder publishes). `instance_uids` lists, `retrieve_instance`
fetches one: `scan` does both in turn, a run lists in the client and retrieves in the workers
(pipeline/runner/source_remote.py). Every GET is retried a bounded number of times (`open_session`).

Credentials never come from the command line, and never reach a log, an error or a report: from
the environment, ``DEID_PIPELINE_DICOMWEB_TOKEN`` or ``DEID_PIPELINE_DICOMWEB_TOKEN_FILE`` (a bearer
token), or ``DEID_PIPELINE_DICOMWEB_USER`` with ``DEID_PIPELINE_DICOMWEB_PASSWORD`` or
``DEID_PIPELINE_DICOMWEB_PASSWORD_FILE`` (HTTP basic). TLS certificates are always verified,
against the system's authorities or the file ``DEID_PIPELINE_DICOMWEB_CA_BUNDLE`` names. A server's
error is a `SourceError` naming the endpoint, the transaction and the HTTP status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import InputError, SourceError

ENV_TOKEN = "DEID_PIPELINE_DICOMWEB_TOKEN"
ENV_USER = "DEID_PIPELINE_DICOMWEB_USER"
ENV_PASSWORD = "DEID_PIPELINE_DICOMWEB_PASSWORD"
ENV_CA_BUNDLE = "DEID_PIPELINE_DICOMWEB_CA_BUNDLE"
STUDY_PAGE = 100  # studies per QIDO-RS page (limit/offset, PS3.18 8.3.4.4)
TIMEOUT = (10.0, 120.0)  # seconds to connect, seconds between bytes
# Every GET (QIDO-RS and WADO-RS) is retried by the session's urllib3 adapter on a lost connection
# or one of these statuses, at most RETRIES times, 0, 0.5, 1 and 2 s apart, before the error is raised.
RETRIES, BACKOFF_SECONDS = 4, 0.25
RETRIED_STATUSES = (408, 429, 500, 502, 503, 504)
_CHUNK = 1 << 20
# They log request URLs, which hold the original Study, Series and SOP Instance UIDs (urllib3 even
# at WARNING level, for each retry after a broken connection): they are kept to their errors.
_CHATTY = ("urllib3", "dicomweb_client")
_ENVELOPE = 1 << 16  # room for the multipart/related boundaries and part headers around one instance
_STUDY_UID, _SERIES_UID, _SOP_UID = "0020000D", "0020000E", "00080018"
_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'

T = TypeVar("T")


class ServerError(SourceError):
    """A DICOMweb server refused or failed after the retries: the message names the endpoint, the
    transaction and the HTTP status; `code` (the quarantine reason of an instance that could not be
    retrieved) is ``source-failed:http-<status>``, ``:connection``, ``:timeout``, ``:too-large`` or
    ``:parts``."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.code = f"{SourceError.code}:{kind}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """HTTP basic (user, password) or a bearer token, and the CA bundle TLS verifies against;
    no field is ever printed (repr=False)."""

    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Credentials:
        """The credentials the environment names (each secret from its variable or the file
        ``<variable>_FILE`` names); none when nothing is set."""
        token = _secret(environ, ENV_TOKEN)
        user = environ.get(ENV_USER) or None
        password = _secret(environ, ENV_PASSWORD)
        if token is not None and (user is not None or password is not None):
            raise InputError(f"DICOMweb: set either {ENV_TOKEN} or {ENV_USER} and {ENV_PASSWORD}, not both")
        if (user is None) != (password is None):
            raise InputError(f"DICOMweb basic authentication needs both {ENV_USER} and {ENV_PASSWORD}")
        return cls(user=user, password=password, token=token, ca_bundle=environ.get(ENV_CA_BUNDLE) or None)


def _secret(environ: Mapping[str, str], name: str) -> str | None:
    value, path = environ.get(name), environ.get(f"{name}_FILE")
    if value and path:
        raise InputError(f"set {name} or {name}_FILE, not both")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"{name}_FILE cannot be read ({type(exc).__name__})") from exc
        if not value:
            raise InputError(f"{name}_FILE is empty")
    return value or None


def authorized(session: Any, credentials: Credentials) -> Any:
    """`session` (a requests Session) with `credentials` set: a bearer token or HTTP basic, and TLS
    verified against the system's authorities or the CA bundle, never off."""
    session.verify = credentials.ca_bundle or True
    if credentials.token is not None:
        session.headers["Authorization"] = f"Bearer {credentials.token}"
    elif credentials.user is not None and credentials.password is not None:
        session.auth = (credentials.user, credentials.password)
    return session


def open_session(credentials: Credentials) -> Any:
    """A requests session for one DICOMweb server: TLS verified (never off), the credentials set,
    and every GET retried by urllib3 on a lost connection or HTTP 408/429/500/502/503/504, at most
    `RETRIES` times with exponential back-off (0, 0.5, 1, 2 s), before the error is raised."""
    try:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry
    except ImportError as exc:
        raise SourceError("a DICOMweb source needs dicomweb-client: install deid-pipeline[cloud]") from exc
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.ERROR)
    session = authorized(requests.Session(), credentials)
    retry = Retry(total=RETRIES, connect=RETRIES, read=RETRIES, status=RETRIES, backoff_factor=BACKOFF_SECONDS,
                  status_forcelist=RETRIED_STATUSES, allowed_methods=frozenset({"GET"}), raise_on_status=False)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def instance_uids(session: Any, base_url: str, studies: tuple[str, ...],
                  query: tuple[tuple[str, str], ...]) -> Iterator[tuple[str, str, str]]:
    """(StudyUID, SeriesUID, SOPUID) of every instance of the server at `base_url`, or of the
    studies named (each must exist), matching `query` (QIDO-RS attribute=value pairs), lazily:
    studies a page at a time, a study's instances sorted by series and SOP Instance UID."""
    try:
        from dicomweb_client.api import DICOMwebClient
    except ImportError as exc:
        raise SourceError("a DICOMweb source needs dicomweb-client: install deid-pipeline[cloud]") from exc
    client = DICOMwebClient(base_url, session=session, timeout=TIMEOUT)
    client.set_http_retry_params(retry=False)  # the session's adapter retries (open_session)
    filters: dict[str, Any] = dict(query)
    study_uids = iter(studies) if studies else _all_studies(client, base_url, filters)
    for number, study in enumerate(study_uids, start=1):
        found: list[dict[str, Any]] = _call(base_url, "QIDO-RS instances", partial(
            client.search_for_instances, study_instance_uid=study, fields=[_SERIES_UID],
            search_filters=filters if studies else None))
        if studies and not found:
            raise SourceError(f"DICOMweb {base_url}: no instance of the study given by --study #{number}")
        for series, sop in sorted((_uid(item, _SERIES_UID), _uid(item, _SOP_UID)) for item in found):
            yield study, series, sop


def dicomweb_instances(base_url: str, studies: tuple[str, ...], query: tuple[tuple[str, str], ...],
                       credentials: Credentials) -> Iterator[tuple[str, bytes]]:
    """(StudyUID/SeriesUID/SOPUID, PS3.10 bytes) of every instance `instance_uids` lists."""
    with open_session(credentials) as session:
        for study, series, sop in instance_uids(session, base_url, studies, query):
            yield f"{study}/{series}/{sop}", retrieve_instance(session, base_url, (study, series, sop))


def _all_studies(client: Any, base_url: str, filters: dict[str, Any]) -> Iterator[str]:
    offset = 0
    while True:
        page: list[dict[str, Any]] = _call(base_url, "QIDO-RS studies", partial(
            client.search_for_studies, search_filters=filters, offset=offset, limit=STUDY_PAGE))
        yield from (_uid(item, _STUDY_UID) for item in page)
        if len(page) < STUDY_PAGE:
            return
        offset += len(page)


def _uid(item: Mapping[str, Any], tag: str) -> str:
    values = (item.get(tag) or {}).get("Value") or []
    if not values:
        raise SourceError(f"a QIDO-RS result lacks ({tag[:4]},{tag[4:]})")
    return str(values[0])


def _call(base_url: str, transaction: str, request: Callable[[], T]) -> T:
    """`request()`, its HTTP or connection error turned into a `ServerError` naming the endpoint,
    the transaction and the status (the URL of the request is not repeated: it may hold UIDs)."""
    import requests

    try:
        return request()
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        reason = exc.response.reason if exc.response is not None else ""
        raise ServerError(f"DICOMweb {base_url}: {transaction} answered HTTP {status} {reason}".rstrip(),
                          f"http-{status}") from exc
    except requests.RequestException as exc:
        kind = "timeout" if isinstance(exc, requests.Timeout) else "connection"
        raise ServerError(f"DICOMweb {base_url}: {transaction} failed ({type(exc).__name__})", kind) from exc


def retrieve_instance(session: Any, base_url: str, uids: tuple[str, str, str], limit: int | None = None) -> bytes:
    """WADO-RS Retrieve Instance (PS3.18 10.4): the single part of the multipart/related answer,
    as sent, in the stored transfer syntax; a `SourceError` for a body over `limit` bytes."""
    study, series, sop = uids
    url = f"{base_url}/studies/{study}/series/{series}/instances/{sop}"

    def get() -> tuple[str, bytes]:
        with session.get(url, headers={"Accept": _ACCEPT}, timeout=TIMEOUT, stream=True) as response:
            response.raise_for_status()
            body = bytearray()
            for chunk in response.iter_content(_CHUNK):
                body += chunk
                if limit is not None and len(body) > limit + _ENVELOPE:
                    raise ServerError(f"DICOMweb {base_url}: WADO-RS instance is larger than a file may be",
                                      "too-large")
            return str(response.headers.get("Content-Type", "")), bytes(body)

    content_type, body = _call(base_url, "WADO-RS instance", get)
    parts = multipart_parts(content_type, body)
    if len(parts) != 1:
        raise ServerError(f"DICOMweb {base_url}: WADO-RS instance answered {len(parts)} parts, not 1", "parts")
    return parts[0]


def multipart_parts(content_type: str, body: bytes) -> list[bytes]:
    """The bodies of a multipart/related message (RFC 2387); a body sent bare as
    application/dicom is taken whole (some servers do)."""
    media, *params = (p.strip() for p in content_type.split(";"))
    if media.lower() == "application/dicom":
        return [body]
    boundary = next((p.partition("=")[2].strip('"') for p in params if p.lower().startswith("boundary=")), "")
    if media.lower() != "multipart/related" or not boundary:
        raise SourceError(f"a WADO-RS answer of type {media or 'none'}: expected multipart/related")
    delimiter = b"\r\n--" + boundary.encode("ascii")
    pieces = (b"\r\n" + body).split(delimiter)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break  # the close delimiter
        _, separator, content = piece.partition(b"\r\n\r\n")
        if not separator:
            raise SourceError("a WADO-RS part without headers")
        parts.append(content)
    return parts


__all__ = ["Credentials", "ServerError", "dicomweb_instances", "instance_uids", "multipart_parts", "open_session",
           "retrieve_instance"]
