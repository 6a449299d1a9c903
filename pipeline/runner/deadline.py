"""The per-file time limit: a timer thread raises `FileTimeLimitError` in the working thread.

It works in Dask's worker threads, where signals cannot be used, as in the serial loop. The
exception stops Python code; a decoder stuck inside one C call is stopped when that call returns.
"""

from __future__ import annotations

import ctypes
import threading


class FileTimeLimitError(BaseException):
    """Raised in the working thread when a file's time is up. A BaseException, so that no
    ``except Exception`` in the scrub or the verifier can swallow it."""

    code = "time-limit"


class Deadline:
    """A per-file time limit for the current thread: a timer thread raises
    `FileTimeLimitError` in it (`PyThreadState_SetAsyncExc`), which works in Dask's worker
    threads, where signals cannot be used, as in the serial loop. Use as a context manager;
    `expire_or_cancel` ends it where a file must not be interrupted any more."""

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self._state = "idle"  # idle -> armed -> (fired | cancelled)
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Deadline:
        self._thread = threading.get_ident()
        if self._seconds is not None:
            self._state = "armed"
            self._timer = threading.Timer(self._seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._state != "armed":
                return
            self._state = "fired"
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread),
                                                       ctypes.py_object(FileTimeLimitError))

    def cancel(self) -> bool:
        """Stop the timer; True when the time had run out (a pending exception is dropped)."""
        with self._lock:
            fired = self._state == "fired"
            if self._state == "armed":
                self._state = "cancelled"
        if self._timer is not None:
            self._timer.cancel()
        if fired:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread), None)
        return fired

    def expire_or_cancel(self) -> None:
        """Past this point nothing interrupts the file: raise `FileTimeLimitError` now if the
        time ran out, else cancel the timer."""
        if self.cancel():
            raise FileTimeLimitError

