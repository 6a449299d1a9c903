"""Dask at the edge, for run and verify: `connect` to an existing scheduler or start a
LocalCluster of single-threaded worker processes, and `map_batches` over it with at most a few
batches per worker in flight, results in completion order. A client that loses its scheduler
raises `SchedulerLostError` instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

from pipeline.errors import InputError

R = TypeVar("R")
T = TypeVar("T")

BATCHES_PER_WORKER = 2
WORKER_WAIT_SECONDS = 60

POLL_SECONDS = 0.02  # how often a waiting client checks that its scheduler is still there
# distributed keeps, for its developers, the last `distributed.admin.low-level-log-length`
# (default 1000) messages of every batched connection, scheduler transitions and per-second
# worker profiles. Every task carries the plan (~90 KB pickled, ~400 KB once the scheduler, which
# a LocalCluster runs in this process, has unpickled it), so those logs grew with every batch until
# 1000: ~0.5 MB per batch in the client, and the worker profiles by the second. Kept this short,
# they are full after a few batches and memory stays flat whatever the archive's size.
DASK_LOG_LENGTH = 16
# A worker's statistical profiler samples its threads every 10 ms for the dashboard's profile
# page: CPU taken from the files, and of no use without the dashboard, where it stays off.
# Its system monitor (CPU, memory, network and disk counters read every 0.5 s, in the scheduler's
# process and every worker's) feeds the dashboard's plots: without them, every 5 s is enough for
# the scheduler's view of its workers' memory.
NO_DASHBOARD_CONFIG = {"distributed.worker.profile.enabled": False,
                       "distributed.admin.system-monitor.interval": "5s"}
# Every server (the scheduler, each nanny and worker) wakes every 20 ms to measure how late its
# event loop runs, which only feeds a warning after 3 s: half of an idle worker's CPU, and 50 GIL
# requests a second in the thread that runs the files. Once a second still catches a 3 s stall.
TICK_CONFIG = {"distributed.admin.tick.interval": "1s"}
# A nanny starts its worker with MALLOC_TRIM_THRESHOLD_=65536, so glibc hands every freed buffer
# above 64 KB back to the system at once: each file's bytes (its input, output and the copies a
# read and a write make) were then mapped and faulted in afresh, ~1.3 ms of a worker's CPU per
# file of the benchmark (~500 KB). Left to glibc's own sliding threshold, freed memory was mostly
# reused (100 to 250 faults a file remained); a worker now also sets fixed thresholds at its first
# task (`pipeline.runner.task.tune_allocator`), which holds for workers a scheduler of ours did not
# start too. A worker's peak stays that of the files it holds (the benchmark checks it stays flat).
WORKER_ENVIRONMENT_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextlib.contextmanager
def connect(workers: int | None, scheduler: str | None, memory_limit: str,
            announce: Callable[[str], None], dashboard: bool = False) -> Iterator[tuple[Any, str]]:
    """A Dask client: on the scheduler at `scheduler`, or on a LocalCluster of `workers` single-
    threaded processes (one per core when None). Yields (client, "scheduler" | "local-cluster").
    Without `dashboard` (the default; `run --dashboard` asks for it), a local cluster starts no
    dashboard (its web server and plots cost the client about a second of start-up) and its
    workers no profiler."""
    import distributed
    from dask import config as dask_config

    dask: Any = distributed  # untyped: every call below goes through Any
    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_logger("distributed"))
        # Set for the cluster's whole life: a connection opened later (a restarted worker's) reads it too.
        stack.enter_context(dask_config.set({"distributed.admin.low-level-log-length": DASK_LOG_LENGTH,
                                             **WORKER_ENVIRONMENT_CONFIG, **TICK_CONFIG,
                                             **({} if dashboard else NO_DASHBOARD_CONFIG)}))
        if scheduler is not None:
            try:
                client = stack.enter_context(dask.Client(scheduler, timeout="30s"))
                client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot use the Dask scheduler ({type(exc).__name__})") from None
            executor = "scheduler"
        else:
            count = workers if workers is not None else (os.cpu_count() or 1)
            cluster = stack.enter_context(dask.LocalCluster(
                n_workers=count, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                # the scheduler's HTTP server (its health routes) runs either way: on a free port, not
                # on 8787, which another cluster may hold; the dashboard's pages only when asked for
                dashboard_address=":0", scheduler_kwargs={"dashboard": dashboard}))
            client = stack.enter_context(dask.Client(cluster))
            executor = "local-cluster"
        if (dashboard or scheduler is not None) and client.dashboard_link:
            announce(f"Dask dashboard: {client.dashboard_link}")
        yield client, executor


def map_batches(function: Callable[..., R], batches: Iterable[tuple[Any, ...]], workers: int | None,
                scheduler: str | None, announce: Callable[[str], None], memory_limit: str = "4GiB") -> Iterator[R]:
    """`function(*batch)` for every batch, in a Dask cluster (serially in this process when
    `workers` is 0), results in completion order, with at most a few batches per worker in flight."""
    if scheduler is None and workers == 0:
        for batch in batches:
            yield function(*batch)
        return
    with connect(workers, scheduler, memory_limit, announce) as (client, executor):
        threads = max(1, sum(client.nthreads().values()))
        announce(f"Dask: {executor}, {threads} worker thread(s)")
        for _, future in submit_bounded(client, function, batches, lambda batch: batch, threads):
            result: R = future.result()
            yield result


def submit_bounded(client: Any, function: Callable[..., Any], items: Iterable[T],
                   arguments: Callable[[T], tuple[Any, ...]], threads: int) -> Iterator[tuple[T, Any]]:
    """Submit `function(*arguments(item))` for every item, at most BATCHES_PER_WORKER per worker
    thread in flight, and yield (item, future) as each completes. When the caller asks for the
    next one, the future is released and the next item submitted: memory stays flat whatever
    the number of items. A lost scheduler raises `SchedulerLostError` (see wait_for_done)."""
    import distributed

    iterator = iter(items)
    in_flight: dict[str, T] = {}
    completed: Any = cast(Any, distributed).as_completed()

    def submit(item: T) -> None:
        future = client.submit(function, *arguments(item), pure=False)
        in_flight[future.key] = item
        completed.add(future)

    for item in itertools.islice(iterator, BATCHES_PER_WORKER * threads):
        submit(item)
    for future in wait_for_done(completed, client):
        yield in_flight.pop(future.key), future
        future.release()
        following = next(iterator, None)
        if following is not None:
            submit(following)


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Dask's own INFO chatter (cluster start and stop) stays off the terminal."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


class SchedulerLostError(InputError):
    """The Dask client lost its scheduler mid-run: the run stops; what is done is recorded
    and a rerun resumes from the manifest."""

    code = "scheduler-lost"


def is_connected(client: Any) -> bool:
    return str(getattr(client, "status", "running")) in ("running", "connecting", "newly-created")


def wait_for_done(completed: Any, client: Any) -> Iterator[Any]:
    """Yield futures as they complete; raise `SchedulerLostError` instead of waiting forever
    when the client has given up on its scheduler (distributed's as_completed would block)."""
    while not completed.is_empty():
        if completed.has_ready():
            yield next(completed)
        elif not is_connected(client):
            raise SchedulerLostError("the Dask scheduler was lost mid-run: rerun to resume from the manifest")
        else:
            time.sleep(POLL_SECONDS)


__all__ = ["BATCHES_PER_WORKER", "DASK_LOG_LENGTH", "SchedulerLostError", "connect", "map_batches", "submit_bounded",
           "wait_for_done"]
