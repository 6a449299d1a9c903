"""run(cfg, plan, keys) -> RunResult: inputs -> batches -> Dask -> manifest, at the edge.

The plan is compiled and the key loaded by the caller before anything is read. Then:

1. resolve and check the layout (release, staging folder, manifest, quarantine, mapping
   folder, none of them inside an input or the release inside another; the staging folder
   on the release's file system), take the release's lock, and refuse a release made under
   other settings (unless ``force_replan``);
2. start the executor: a `distributed.LocalCluster` (one single-threaded process per
   worker), an existing scheduler, or, with ``workers=0``, a plain loop in this process;
3. stream the inputs through the manifest (unchanged files already done are not read): `discover`
   for folders, `source_remote.discover_inputs` for object stores and DICOMweb servers,
   cut it into batches and keep at most two batches per worker thread in flight with
   `distributed.as_completed`, so memory stays flat whatever the archive's size;
4. as each batch completes, account for it (`pipeline.runner.accounting`: every input submitted
   gets exactly one outcome; one a batch did not return is quarantined, never dropped), append
   quarantines to the ledger and pairs to the mapping, then commit the batch to the manifest;
   finally write the run record.

Outputs are staged in ``<release>.staging/`` beside the release, never inside it, so whatever
is killed and when, the release holds only verified, published files; each run first sweeps
what a dead one left there (and any ``.partial`` an older version left inside the release).

Workers get paths (or the keys of remote objects, which they fetch themselves), and the plan, the
keys and a `WorkerConfig` pickled once into bytes (`pipeline.runner.task`, ~90 KB) with each task,
never datasets or input bytes. They are not scattered: scattered data lives only on the workers
present when it was scattered, so a worker killed after that took every later task down with it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.errors import InputError, PipelineError
from pipeline.files import make_private_dir
from pipeline.pixels.clean import require_for
from pipeline.profile.plan import PixelMode, Plan
from pipeline.runner.accounting import Accounts
from pipeline.runner.audit import release_event, write_audit_message
from pipeline.runner.destination import (
    Destination,
    DestinationKind,
    check_reachable,
    count_published,
    holds_objects,
    is_retried_on_rerun,
    remove,
)
from pipeline.runner.discover import SourceFile, discover, resolve_roots, source_location_key
from pipeline.runner.executors import Execute, chunked, start_executor
from pipeline.runner.layout import RunPaths, check_layout, check_same_file_system
from pipeline.runner.ledger import Ledger
from pipeline.runner.manifest import Location, Manifest, Settings, settings_of, utc_now
from pipeline.runner.mapping import MappingWriter
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import (
    DEFAULT_MAX_INPUT_BYTES,
    DEFAULT_TIME_LIMIT,
    WorkerConfig,
    unread_outcome,
)
from pipeline.runner.quarantine import QuarantineMode, release_kept
from pipeline.runner.release import clean_partials, clean_staging, prune_empty_dirs, release_lock
from pipeline.runner.run_record import RunRecord, write_run_record
from pipeline.runner.source_remote import check_apart, discover_inputs, is_fetch_failure, place
from pipeline.runner.sources import Source
from pipeline.runner.tally import Summary, Tally, seen_key
from pipeline.scrub.keys import Keys
from pipeline.version import __version__

log = logging.getLogger(__name__)

# The command line's exit codes (pipeline/cli/main.py), as recorded in run.json and the manifest.
EXIT_OK, EXIT_QUARANTINED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One run of the pipeline, as the command line describes it."""

    inputs: tuple[Path, ...]  # local files and folders
    release: Path  # the release folder; for a remote `destination`, the local name its records are kept beside
    manifest: Path | None = None  # default: <release>.manifest.sqlite beside the release
    quarantine: Path | None = None  # default: <release>.quarantine/ beside the release
    staging: Path | None = None  # default: <release>.staging/ beside the release (its file system)
    quarantine_mode: QuarantineMode = QuarantineMode.COPY
    mapping_dir: Path | None = None  # the confidential mapping is written only when given
    workers: int | None = None  # None: one per core; 0: in this process, without Dask
    scheduler: str | None = None  # address of an existing Dask scheduler
    batch_size: int = DEFAULT_BATCH_SIZE
    quiet: bool = False
    force_replan: bool = False
    retry_quarantined: bool = False
    time_limit: float | None = DEFAULT_TIME_LIMIT  # seconds per file
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    preview_dir: Path | None = None  # before/after PNGs of cleaned images, outside the release
    memory_limit: str = "4GiB"  # per local worker: Dask's nanny restarts a worker above it (the batch is quarantined)
    sources: tuple[Source, ...] = ()  # object stores and DICOMweb servers, after the inputs (source_remote.py)
    destination: Destination | None = None  # an object store or DICOMweb server (issue 17); None: the folder
    quarantine_store: str | None = None  # an fsspec URL for the quarantined originals (PHI); the ledger stays local
    dashboard: bool = False  # a local cluster's Dask dashboard (its address is announced)


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run did: its exit status and counts by disposition."""

    exit_status: int
    processed: dict[str, int]  # outcomes of this run
    unchanged: dict[str, int]  # inputs done by an earlier run under the same settings
    partials_removed: int  # staged files a dead run left (and .partial files of older versions)
    paths: RunPaths
    summary: Summary


def _ignore(message: str) -> None:
    del message


def run(cfg: RunConfig, plan: Plan, keys: Keys, announce: Callable[[str], None] = _ignore) -> RunResult:
    """Publish every input of `cfg` into the release; `announce` receives one-line notices
    for the terminal (the dashboard's address). Raises `InputError`, `ProfileError` or
    `KeyMaterialError` before touching the release when the run cannot start."""
    if cfg.batch_size < 1:
        raise InputError("the batch size must be at least 1")
    require_for(plan)
    if cfg.sources and cfg.quarantine_mode is QuarantineMode.REFERENCE:
        raise InputError("--quarantine-mode reference links to local files: an object store's or a DICOMweb "
                         "server's inputs are quarantined as copies")
    paths = RunPaths.of(cfg.release, cfg.manifest, cfg.quarantine, cfg.staging, cfg.mapping_dir, cfg.destination)
    roots = resolve_roots(cfg.inputs)
    check_layout(paths, roots)
    check_apart(cfg.sources, [url for url in (paths.remote.location if paths.remote is not None else None,
                                              cfg.quarantine_store) if url is not None])
    if paths.remote is not None:
        check_reachable(paths.remote)  # a missing bucket, refused credentials: stop before anything is read
    if cfg.quarantine_store is not None:
        check_reachable(Destination(DestinationKind.FSSPEC, cfg.quarantine_store))
    settings = settings_of(plan, keys)
    paths.release.parent.mkdir(parents=True, exist_ok=True)
    with release_lock(paths.lock):
        _check_release(paths, settings, cfg.force_replan)
        preview_dir = cfg.preview_dir.resolve() if cfg.preview_dir is not None else None
        worker_cfg = WorkerConfig(paths.release, paths.quarantine, cfg.quarantine_mode, paths.mapping_dir is not None,
                                  cfg.time_limit, cfg.max_input_bytes, preview_dir, paths.staging, paths.remote,
                                  cfg.quarantine_store)
        with start_executor(cfg.workers, cfg.scheduler, cfg.memory_limit, plan, keys, worker_cfg,
                            announce, cfg.dashboard) as (execute, executor, workers):
            removed = 0
            if paths.remote is None:
                paths.release.mkdir(exist_ok=True)
                make_private_dir(paths.staging)
                check_same_file_system(paths)
                removed += clean_staging(paths.staging) + clean_partials(paths.release)
            make_private_dir(paths.quarantine)
            if preview_dir is not None:
                make_private_dir(preview_dir)
            removed += clean_partials(paths.quarantine)
            with Manifest(paths.manifest, settings) as manifest:
                if cfg.force_replan:
                    _forget_stale(manifest, paths)
                header = _Header(plan, executor, workers, cfg.batch_size)
                accounts = Accounts(lambda src, reason: unread_outcome(src, keys, reason, worker_cfg))
                result = _publish(cfg, paths, roots, keys, manifest, execute, accounts, header, removed)
            with contextlib.suppress(OSError):
                paths.staging.rmdir()  # empty after a run that ended (a worker a dead client left may still stage)
            return result


@dataclass(frozen=True, slots=True)
class _Header:
    plan: Plan
    executor: str
    workers: int
    batch_size: int


# --- before anything is written ----------------------------------------------------------


def _check_release(paths: RunPaths, settings: Settings, force_replan: bool) -> None:
    """Refuse a release made under other settings, and a non-empty folder with no manifest."""
    if not paths.manifest.exists():
        if paths.release.is_dir() and any(paths.release.iterdir()) and paths.remote is None:
            raise InputError("the release folder is not empty and has no manifest: choose a new or empty folder")
        if paths.remote is not None and holds_objects(paths.remote):
            raise InputError("the release prefix holds objects and there is no manifest: choose a new or empty prefix")
        return
    with Manifest(paths.manifest, settings) as manifest:
        manifest.check_settings(force_replan)


def _forget_stale(manifest: Manifest, paths: RunPaths) -> None:
    if paths.remote is not None:
        remove(paths.remote, manifest.stale_outputs())  # refused for DICOMweb, before anything is forgotten
        manifest.forget_other_settings()
        return
    for output in manifest.forget_other_settings():
        (paths.release / output).unlink(missing_ok=True)
    prune_empty_dirs(paths.release)


# --- the run -----------------------------------------------------------------------------


def _publish(
    cfg: RunConfig,
    paths: RunPaths,
    roots: tuple[Path, ...],
    keys: Keys,
    manifest: Manifest,
    execute: Execute,
    accounts: Accounts,
    header: _Header,
    removed: int,
) -> RunResult:
    started = utc_now()
    run_id = manifest.begin_run(started)
    tally = Tally()
    exit_status, completed = EXIT_INTERRUPTED, False
    try:
        with contextlib.ExitStack() as stack:
            ledger = stack.enter_context(Ledger(paths.ledger, run_id))
            mapping = stack.enter_context(MappingWriter(paths.mapping_dir)) if paths.mapping_dir else None
            bar = stack.enter_context(_progress(cfg.quiet or bool(cfg.sources), roots, cfg.quiet))
            pending = _pending(discover_inputs(roots, cfg.sources), manifest, keys, cfg.retry_quarantined, tally, bar)
            done = execute(accounts.track(chunked(pending, cfg.batch_size, header.workers)))
            # Every input submitted gets exactly one outcome: a batch that came back short, or
            # never came back though the executor ended normally, is quarantined, not dropped.
            for batch, returned in itertools.chain(done, accounts.unsettled()):
                outcomes = accounts.settle(batch, returned)
                now = utc_now()
                for (src, _), outcome in zip(batch, outcomes, strict=True):
                    first = manifest.first_seen(seen_key(outcome.disposition, outcome.source_id, outcome.output))
                    tally.count(outcome.disposition, outcome.reason, first, unchanged=False)
                    if outcome.disposition is Disposition.QUARANTINED:
                        ledger.add(outcome, now, place(src, roots))
                    elif outcome.disposition is Disposition.WRITTEN:
                        if mapping is not None:
                            mapping.add(outcome)
                        if (cfg.retry_quarantined or paths.remote is not None) and release_kept(
                                outcome.source_id, paths.quarantine, cfg.quarantine_store):
                            ledger.add(outcome, now, place(src, roots))
                ledger.flush()
                if mapping is not None:
                    mapping.flush()
                manifest.record(zip(outcomes, (location for _, location in batch), strict=True))
                bar.update(len(batch))
                log.debug("recorded a batch of %d inputs", len(batch))
        exit_status = EXIT_QUARANTINED if tally.any_quarantined else EXIT_OK
        completed = True
    except PipelineError:
        exit_status = EXIT_USAGE
        raise
    except Exception:
        exit_status = EXIT_QUARANTINED
        raise
    finally:
        summary = _finish(paths, manifest, run_id, header, started, exit_status, completed, tally)
    return RunResult(exit_status, dict(tally.processed), dict(tally.unchanged), removed, paths, summary)


def _count_remote(destination: Destination, published: int) -> int:
    counted = count_published(destination)
    return published if counted is None else counted


def _finish(
    paths: RunPaths,
    manifest: Manifest,
    run_id: int,
    header: _Header,
    started: str,
    exit_status: int,
    completed: bool,
    tally: Tally,
) -> Summary:
    ended = utc_now()
    summary = tally.summary(paths.release)
    if paths.remote is not None:  # objects under the prefix; a DICOMweb server: what the run stored there
        summary = replace(summary, release_files=_count_remote(paths.remote, summary.published))
    counts = dict(tally.processed)
    manifest.end_run(run_id, ended, exit_status, counts)
    record = RunRecord(
        profile=header.plan.profile,
        options=tuple(o.value for o in header.plan.options),
        recipes=header.plan.recipes,
        plan_digest=manifest.settings.plan_digest,
        key_fingerprint=manifest.settings.key_fingerprint,
        lookup_fingerprint=manifest.settings.lookup_fingerprint,
        executor=header.executor,
        workers=header.workers,
        batch_size=header.batch_size,
        started=started,
        ended=ended,
        exit_status=exit_status,
        completed=completed,
        processed=counts,
        unchanged=dict(tally.unchanged),
        manifest=manifest.counts(),
        summary=asdict(summary),
        pixel_mode=header.plan.pixel_mode.value,
        max_cleaned_fraction=header.plan.max_cleaned_fraction if header.plan.pixel_mode is PixelMode.OCR else None,
    )
    write_run_record(paths.run_record, record)
    counts_now = manifest.counts()
    event = release_event(manifest.released(), counts_now.get(Disposition.QUARANTINED.value, 0), completed,
                          time=datetime.fromisoformat(ended), run_label=f"run-{run_id}",
                          software_version=__version__, host=socket.gethostname(),
                          destination=paths.release.name if paths.remote is None else paths.remote.media_name())
    write_audit_message(paths.audit, event)
    return summary


def _pending(
    sources: Iterable[SourceFile],
    manifest: Manifest,
    keys: Keys,
    retry_quarantined: bool,
    tally: Tally,
    bar: Any,
) -> Iterator[tuple[SourceFile, Location]]:
    """The inputs still to do: not seen unchanged under these settings by an earlier run
    (quarantined ones are redone only on request)."""
    for src in sources:
        location = Location(source_location_key(src, keys), src.size, src.mtime_ns)
        known = manifest.known_at(location)
        if known is None or (known.status is Disposition.QUARANTINED and (
                retry_quarantined or is_fetch_failure(known.reason) or is_retried_on_rerun(known.reason))):
            yield src, location
        else:
            first = manifest.first_seen(seen_key(known.status, known.source_id, known.output))
            tally.count(known.status, known.reason, first, unchanged=True)
            bar.update(1)


# --- progress ----------------------------------------------------------------------------


@contextlib.contextmanager
def _progress(uncounted: bool, roots: tuple[Path, ...], quiet: bool) -> Iterator[Any]:
    """A tqdm bar over files; its total (hence the ETA) arrives when a background walk has
    counted the inputs (not when some are remote: that would list them twice). Disabled when quiet."""
    stop = threading.Event()
    with tqdm(total=None, unit="file", disable=quiet, dynamic_ncols=True, smoothing=0.05) as bar:
        counter = None if uncounted else threading.Thread(target=_count, args=(roots, bar, stop), daemon=True)
        if counter is not None:
            counter.start()
        try:
            yield bar
        finally:
            stop.set()
            if counter is not None:
                counter.join()


def _count(roots: tuple[Path, ...], bar: Any, stop: threading.Event) -> None:
    total = 0
    try:
        for _ in discover(roots):
            if stop.is_set():
                return
            total += 1
    except InputError:
        return  # the main walk reports it
    bar.total = total
    bar.refresh()
