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
"""

from __future__ import annotations

import ctypes
import pickle
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


def pack(plan: Plan, keys: Keys, cfg: WorkerConfig) -> bytes:
    """The run's context as the bytes every task carries."""
    return pickle.dumps((plan, keys, cfg), protocol=pickle.HIGHEST_PROTOCOL)


def unpack(context: bytes) -> Context:
    """The (plan, keys, worker configuration) of `context`, unpickled once per process while the
    same bytes keep coming (a run sends the same bytes with every batch); the first time, the
    process's allocator is tuned for files (`tune_allocator`)."""
    global _last
    with _lock:
        if _last is not None and _last[0] == context:
            return _last[1]
    plan, keys, cfg = pickle.loads(context)  # the client's own bytes, as Dask's own task pickles are
    if not (isinstance(plan, Plan) and isinstance(keys, Keys) and isinstance(cfg, WorkerConfig)):
        raise ContextError("a task's context is not a plan, keys and a worker configuration")
    unpacked: Context = (plan, keys, cfg)
    tune_allocator()
    with _lock:
        _last = (context, unpacked)
    return unpacked


def process_packed(sources: Sequence[SourceFile], context: bytes) -> tuple[Outcome, ...]:
    """`process.process_batch` of `sources` under the packed context: the function a worker runs."""
    plan, keys, cfg = unpack(context)
    return process.process_batch(sources, plan, keys, cfg)


__all__ = ["Context", "ContextError", "pack", "process_packed", "tune_allocator", "unpack"]
