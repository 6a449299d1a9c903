"""One Dask task of a run: a batch of inputs and the run's context, pickled once by the client.

The plan, the keys and the `WorkerConfig` are the same for every batch of a run. Given to
`client.submit` as objects, they were serialized again with every task: ~15 ms of the client's
CPU a batch (the plan is ~90 KB pickled), in the process that also records every outcome.
`pack` pickles them once into bytes; each task carries those bytes, which distributed copies
without walking them, and `process_packed` unpickles them once per worker process and keeps the
result while the bytes stay the same. Nothing is scattered: every task still carries its whole
context, so a worker restarted by its nanny, or one that joined later, needs nothing else.
"""

from __future__ import annotations

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


class ContextError(TypeError):
    """The bytes a task carries do not hold a plan, keys and a worker configuration."""


def pack(plan: Plan, keys: Keys, cfg: WorkerConfig) -> bytes:
    """The run's context as the bytes every task carries."""
    return pickle.dumps((plan, keys, cfg), protocol=pickle.HIGHEST_PROTOCOL)


def unpack(context: bytes) -> Context:
    """The (plan, keys, worker configuration) of `context`, unpickled once per process while the
    same bytes keep coming (a run sends the same bytes with every batch)."""
    global _last
    with _lock:
        if _last is not None and _last[0] == context:
            return _last[1]
    plan, keys, cfg = pickle.loads(context)  # the client's own bytes, as Dask's own task pickles are
    if not (isinstance(plan, Plan) and isinstance(keys, Keys) and isinstance(cfg, WorkerConfig)):
        raise ContextError("a task's context is not a plan, keys and a worker configuration")
    unpacked: Context = (plan, keys, cfg)
    with _lock:
        _last = (context, unpacked)
    return unpacked


def process_packed(sources: Sequence[SourceFile], context: bytes) -> tuple[Outcome, ...]:
    """`process.process_batch` of `sources` under the packed context: the function a worker runs."""
    plan, keys, cfg = unpack(context)
    return process.process_batch(sources, plan, keys, cfg)


__all__ = ["Context", "ContextError", "pack", "process_packed", "unpack"]
