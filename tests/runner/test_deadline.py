"""The per-file time limit (pipeline/runner/deadline.py): one watchdog thread serves every
deadline of a process, a short deadline armed after a long one still fires on time, in the
thread that armed it, and deadlines of several threads fire each in its own thread."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from pipeline.runner.deadline import Deadline, FileTimeLimitError


def _spin(seconds: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        pass


def test_many_deadlines_start_no_thread_each(monkeypatch: pytest.MonkeyPatch) -> None:
    with Deadline(60):
        pass  # the watchdog runs from now on
    started: list[threading.Thread] = []
    start = threading.Thread.start

    def counted(thread: threading.Thread) -> None:
        started.append(thread)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counted)
    for _ in range(200):
        with Deadline(60) as deadline:
            pass
        assert deadline.cancel() is False
    assert started == []


def test_a_short_deadline_armed_under_a_long_one_fires_on_time() -> None:
    started = time.monotonic()
    with Deadline(60) as outer:
        with pytest.raises(FileTimeLimitError), Deadline(0.1):
            _spin(10)
        assert time.monotonic() - started < 5
    assert outer.cancel() is False


def test_deadlines_of_several_threads_fire_each_in_its_own_thread() -> None:
    def one(seconds: float) -> str:
        try:
            with Deadline(seconds):
                _spin(10)
        except FileTimeLimitError:
            return "time-limit"
        return "finished"

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, (0.1, 0.2, 0.3)))
    assert results == ["time-limit"] * 3


def test_a_forked_child_gets_its_own_watchdog() -> None:
    import multiprocessing

    def child(queue: multiprocessing.Queue[str]) -> None:
        try:
            with Deadline(0.1):
                _spin(10)
        except FileTimeLimitError:
            queue.put("time-limit")
            return
        queue.put("finished")

    with Deadline(60):  # the parent's watchdog runs, with a deadline armed, when the child is forked
        context = multiprocessing.get_context("fork")
        queue: multiprocessing.Queue[str] = context.Queue()
        process = context.Process(target=child, args=(queue,))
        process.start()
        assert queue.get(timeout=30) == "time-limit"
        process.join(timeout=30)
