"""One Dask task of a run: a batch of inputs and the run's context, pickled once by the client.

The plan, the keys and the `WorkerConfig` are the same for every batch of a run. Given to
`client.submit` as objects, they were serialized again with every task: ~15 ms of the client's
CPU a batch (the plan is ~90 KB pickled), in the process that also records every outcome.
`pack` pickles them once into bytes; each task carries those bytes, which distributed copies
without walking them, and `process_packed` unpickles them once per worker process and keeps the
result while the bytes stay the same. Nothing is scattered: every task still carries its whole
context, so a worker restarted by its nanny, or one that joined later, needs nothing else.

A process that runs files first sets glibc's allocator to keep the memory it frees
(`tune_allocator`): every file's bytes, the dataset's values and the output's bytes (~0.5 MB
each on the benchmark's files, a few MB for the larger ones) were otherwise given back to the
system when freed and faulted in afresh, page by page, for the next file: 100 to 250 page
faults a file, ~0.25 ms of a worker's system time, and the cache lines the zeroing evicted.

It also shortens the interval after which a thread waiting for the GIL makes the running one give
it up (`tune_switch_interval`: 1 ms, Python's default is 5 ms). The working thread runs Python
almost all the time; the publisher's threads (`pipeline.runner.publisher`) need the GIL back after
each of their ~8 system calls an output, and so does the working thread after each of its own
(reading the input, hashing it, numpy): each waited up to the whole interval when the wrong thread
was woken. With 5 ms, the outputs waited in the publisher's queue until the worker stalled in
`submit` (16% of its time in a one-worker run, py-spy), and reading an input took 0.4-0.7 ms
against 0.07 alone; with 1 ms, 0.27-0.38 (a loop of 2 ms Python steps that submits the bench
corpus's outputs: 4.1 ms a file with 5 ms, 3.8 with 1 ms, medians of 4).
"""

from __future__ import annotations

import ctypes
import pickle
import sys
import threading
from collections.abc import Sequence

from pipeline.profile.plan import Plan
from pipeline.runner import process
from pipeline.runner.discover import SourceFile
from pipeline.runner.outcome import Outcome
from pipeline.runner.process import WorkerConfig
from pipeline.scrub.keys import Keys

Context = tuple[Plan, Keys, WorkerConfig]

_lock = threading.Lock()
_last: tuple[bytes, Context] | None = None  # the context this process unpickled last

# glibc's mallopt parameters (malloc.h) and the values set. Blocks below MMAP_THRESHOLD come from
# the heap (glibc's own ceiling for its sliding threshold; a larger file's buffers are mapped and
# unmapped as before), and up to TRIM_THRESHOLD of free memory at the heap's top is kept for reuse:
# a worker's peak stays that of the files it holds at once, whatever the number of files.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20
SWITCH_INTERVAL = 0.001  # seconds (Python's default: 0.005)


class ContextError(TypeError):
    """The bytes a task carries do not hold a plan, keys and a worker configuration."""


def tune_allocator() -> bool:
    """Keep the memory this process frees for its next file (glibc's `mallopt`: see the module's
    docstring; it overrides MALLOC_TRIM_THRESHOLD_, which a Dask nanny sets to 64 KB). True when
    set; False where the C library has no mallopt (not glibc), which changes nothing else."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def tune_switch_interval() -> None:
    """Let a thread waiting for the GIL have it after `SWITCH_INTERVAL` seconds of another
    thread's Python (`sys.setswitchinterval`; see the module's docstring)."""
    sys.setswitchinterval(SWITCH_INTERVAL)


def pack(plan: Plan, keys: Keys, cfg: WorkerConfig) -> bytes:
    """The run's context as the bytes every task carries."""
    return pickle.dumps((plan, keys, cfg), protocol=pickle.HIGHEST_PROTOCOL)


def unpack(context: bytes) -> Context:
    """The (plan, keys, worker configuration) of `context`, unpickled once per process while the
    same bytes keep coming (a run sends the same bytes with every batch); the first time, the
    process's allocator and switch interval are tuned for files (`tune_allocator`,
    `tune_switch_interval`)."""
    global _last
    with _lock:
        if _last is not None and _last[0] == context:
            return _last[1]
    plan, keys, cfg = pickle.loads(context)  # the client's own bytes, as Dask's own task pickles are
    if not (isinstance(plan, Plan) and isinstance(keys, Keys) and isinstance(cfg, WorkerConfig)):
        raise ContextError("a task's context is not a plan, keys and a worker configuration")
    unpacked: Context = (plan, keys, cfg)
    tune_allocator()
    tune_switch_interval()
    with _lock:
        _last = (context, unpacked)
    return unpacked


def process_packed(sources: Sequence[SourceFile], context: bytes) -> tuple[Outcome, ...]:
    """`process.process_batch` of `sources` under the packed context: the function a worker runs."""
    plan, keys, cfg = unpack(context)
    return process.process_batch(sources, plan, keys, cfg)


__all__ = ["Context", "ContextError", "pack", "process_packed", "tune_allocator", "tune_switch_interval", "unpack"]
