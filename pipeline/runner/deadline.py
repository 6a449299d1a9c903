"""The per-file time limit: a watchdog thread raises `FileTimeLimitError` in the working thread.

It works in Dask's worker threads, where signals cannot be used, as in the serial loop. The
exception stops Python code; a decoder stuck inside one C call is stopped when that call returns.
One watchdog thread per process serves every deadline (a thread started per file cost the
worker ~0.3 ms of waiting for each file, the time `Thread.start` waits for the thread to run).
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import os
import threading
import time


class FileTimeLimitError(BaseException):
    """Raised in the working thread when a file's time is up. A BaseException, so that no
    ``except Exception`` in the scrub or the verifier can swallow it."""

    code = "time-limit"


class _Watchdog:
    """One daemon thread that fires armed deadlines when their time comes, earliest first.
    A cancelled deadline is forgotten; the heap is rebuilt when it holds mostly forgotten ones,
    so it stays as small as the deadlines armed at once."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, Deadline] = {}
        self._numbers = itertools.count()
        self._owner = -1  # the process whose thread runs (a forked child starts its own)

    def arm(self, deadline: Deadline, seconds: float) -> int:
        with self._condition:
            if self._owner != os.getpid():
                self._owner, self._heap, self._armed = os.getpid(), [], {}
                threading.Thread(target=self._loop, name="deadline-watchdog", daemon=True).start()
            number = next(self._numbers)
            self._armed[number] = deadline
            heapq.heappush(self._heap, (time.monotonic() + seconds, number))
            if self._heap[0][1] == number:
                self._condition.notify()
            return number

    def disarm(self, number: int) -> None:
        with self._condition:
            self._armed.pop(number, None)
            if len(self._heap) > 64 and len(self._heap) > 4 * len(self._armed):
                self._heap = [entry for entry in self._heap if entry[1] in self._armed]
                heapq.heapify(self._heap)

    def _loop(self) -> None:
        while True:
            with self._condition:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                when, number = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._condition.wait(delay)
                    continue
                heapq.heappop(self._heap)
                deadline = self._armed.pop(number)
            deadline._fire()


_WATCHDOG = _Watchdog()


def _reset_in_child() -> None:
    """A forked child has no watchdog thread, and its lock may have been held by one: start afresh."""
    global _WATCHDOG
    _WATCHDOG = _Watchdog()


os.register_at_fork(after_in_child=_reset_in_child)


class Deadline:
    """A per-file time limit for the current thread: the watchdog thread raises
    `FileTimeLimitError` in it (`PyThreadState_SetAsyncExc`), which works in Dask's worker
    threads, where signals cannot be used, as in the serial loop. Use as a context manager;
    `expire_or_cancel` ends it where a file must not be interrupted any more."""

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self._state = "idle"  # idle -> armed -> (fired | cancelled)
        self._number: int | None = None

    def __enter__(self) -> Deadline:
        self._thread = threading.get_ident()
        if self._seconds is not None:
            self._state = "armed"
            self._number = _WATCHDOG.arm(self, self._seconds)
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
        if self._number is not None:
            _WATCHDOG.disarm(self._number)
            self._number = None
        if fired:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread), None)
        return fired

    def expire_or_cancel(self) -> None:
        """Past this point nothing interrupts the file: raise `FileTimeLimitError` now if the
        time ran out, else cancel the timer."""
        if self.cancel():
            raise FileTimeLimitError
