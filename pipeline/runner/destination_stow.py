"""A DICOMweb server as the destination of a release: STOW-RS (PS3.18 10.5), one instance a request.

Each verified output is sent as it was verified, in a multipart/related request of its own; the
server's 200 or 202 without a Failed SOP Sequence confirms it. Before storing, the worker asks
(QIDO-RS, by Study and SOP Instance UID) whether the server holds the instance already (stored by a
run that died before recording it, or an earlier try whose answer was lost): then it is not stored
again; a 409 for an instance the server then holds counts as stored. Whether the instance the server
holds has the same bytes is not checked: the UIDs are keyed, so the same SOP Instance UID under the
same settings comes from the same original (Orthanc keeps the bytes as sent: tests/runner).

Credentials from the environment, as for a DICOMweb source (`pipeline.runner.dicomweb.Credentials`);
variables spelled ``DEID_PIPELINE_DESTINATION_DICOMWEB_*`` (``_TOKEN``, ``_TOKEN_FILE``, ``_USER``,
``_PASSWORD``, ``_PASSWORD_FILE``, ``_CA_BUNDLE``) take precedence, so a source and a destination
may use different accounts. Workers read them from their own environment: they never travel with
the tasks. TLS is always verified. Errors name the endpoint and the HTTP status, never a credential.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pipeline.errors import InputError, SourceError
from pipeline.runner.destination_retry import RETRIED_STATUS, InstanceUids, StoreError, retrying
from pipeline.runner.dicomweb import TIMEOUT, Credentials, authorized

ENV_PREFIX = "DEID_PIPELINE_DESTINATION_DICOMWEB_"
_DICOM_JSON = "application/dicom+json"
_FAILED_SOP_SEQUENCE = "00081198"
_local = threading.local()


def credentials(environ: Mapping[str, str]) -> Credentials:
    """The DICOMweb destination's credentials: the ``DEID_PIPELINE_DESTINATION_DICOMWEB_*`` variables
    when any is set, else those of a DICOMweb source (`Credentials.from_environ`)."""
    own = {f"DEID_PIPELINE_DICOMWEB_{name[len(ENV_PREFIX):]}": value
           for name, value in environ.items() if name.startswith(ENV_PREFIX)}
    return Credentials.from_environ(own or environ)


def session(base_url: str) -> Any:
    """A requests session for the DICOMweb server at `base_url`, one per thread: its credentials from
    this process's environment (`credentials`), TLS verified against the system or the CA bundle."""
    cache: dict[str, Any] = _local.__dict__.setdefault("sessions", {})
    if base_url not in cache:
        try:
            import requests
        except ImportError as exc:
            raise InputError("a DICOMweb destination needs dicomweb-client: install deid-pipeline[cloud]") from exc
        cache[base_url] = authorized(requests.Session(), credentials(os.environ))
    return cache[base_url]


class _HttpStatus(Exception):
    """An answer that is not success, with its status (internal: becomes a StoreError)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def stow(base: str, data: bytes, uids: InstanceUids) -> None:
    """Store `data` (verified bytes) on the DICOMweb server at `base` with STOW-RS, unless it holds the
    instance already (`is_stored`); return once the server confirmed it. `StoreError` after the retries."""
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

    retrying(f"DICOMweb {base}: STOW-RS", store, _dicomweb_status)


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
        return str(exc.status), exc.status in RETRIED_STATUS
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return "connection", True
    return type(exc).__name__, False


def check_server(base: str) -> None:
    """Fail before anything is read (`SourceError` naming the endpoint and status) when the server at
    `base` cannot be reached or refuses the credentials."""
    credentials(os.environ)  # refuses ambiguous or unreadable credentials here, not in every worker

    def search() -> None:
        response = session(base).get(f"{base}/studies", params={"limit": "1"},
                                     headers={"Accept": _DICOM_JSON}, timeout=TIMEOUT)
        if response.status_code not in (200, 204):
            raise _HttpStatus(response.status_code)

    try:
        retrying(f"DICOMweb {base}: QIDO-RS", search, _dicomweb_status)
    except StoreError as exc:
        status = exc.code.partition(":")[2]
        answered = f"answered HTTP {status}" if status.isdigit() else f"failed ({status})"
        raise SourceError(f"DICOMweb {base}: QIDO-RS {answered}") from None


__all__ = ["ENV_PREFIX", "check_server", "credentials", "is_stored", "session", "stow"]
