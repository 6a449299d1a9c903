"""How a remote destination's requests are retried, and what is left when they keep failing.

A request that fails with HTTP 5xx (500, 502, 503, 504), 408 or 429, or a lost connection, is tried
`ATTEMPTS` times in all with exponential back-off (`BACKOFF` seconds, doubling); then the output
is quarantined as ``store-failed:<status>`` (its original kept, never silently dropped), and the
next run stores it (`is_retried_on_rerun`). Any other failure stops at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pipeline.errors import WriteError
from pipeline.files import DuplicateOutputError

log = logging.getLogger(__name__)

ATTEMPTS = 4  # tries of one request before the output is quarantined as store-failed
BACKOFF = 0.5  # seconds before the second try; doubled before each next one
STORE_FAILED = "store-failed"
RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})

T = TypeVar("T")


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


def is_retried_on_rerun(reason: str | None) -> bool:
    """A store that failed is redone by the next run without ``--retry-quarantined``: the server,
    not the input, was at fault."""
    return reason is not None and reason.startswith(f"{STORE_FAILED}:")


def retrying(what: str, request: Callable[[], T], status_of: Callable[[BaseException], tuple[str, bool]]) -> T:
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


__all__ = ["ATTEMPTS", "BACKOFF", "RETRIED_STATUS", "STORE_FAILED", "InstanceUids", "StoreError",
           "is_retried_on_rerun", "retrying"]
