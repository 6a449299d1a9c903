"""process_one(src, plan, keys, cfg) -> Outcome: one input file, start to finish, fail-closed.

Read the bytes once; their SHA-256 is the file's name in every record. Scrub
(`pipeline.process.scrub_bytes`), stage the result in the release under a hidden
temporary name, verify the staged bytes independently (`pipeline.verify.verify_bytes`),
then promote. Any error, expected or not, quarantines the file with a reason code
(`PipelineError.code`, or ``unexpected-<ExceptionClass>``), never a message that could
quote a value. A file that is clearly not DICOM (empty; no ``DICM`` prefix and no dataset
at its start) or is a DICOMDIR is skipped, not quarantined.

Every file runs under limits, in a Dask worker and in the serial loop alike: a file larger
than ``max_input_bytes`` is not read (``too-large``); one that declares more than it holds
or more than a file may allocate is refused before pydicom reads it (`pipeline.dicomfile`:
``bad-input``, ``too-large``); one that takes longer than ``time_limit`` seconds is stopped
and quarantined (``time-limit``). The time limit is an exception raised in the working
thread by a timer thread, so it stops Python code; a decoder stuck inside one C call is
stopped when that call returns.

Outcomes carry no values and no source paths, except the (original, new) identifier pairs
of the confidential mapping, and only when the run asks for it.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException

from pipeline.config import Disposition
from pipeline.dicomfile import TooLargeError, read_dataset
from pipeline.discover import SourceFile, location_key
from pipeline.errors import InputError, PipelineError, WriteError
from pipeline.keys import Keys
from pipeline.pixels import write_preview
from pipeline.plan import Plan
from pipeline.process import scrub_bytes, source_id
from pipeline.pseudonyms import patient_pseudonym
from pipeline.uids import is_registered_uid, remap_uid
from pipeline.write import QuarantineMode, discard, promote, quarantine, release_name, stage

log = logging.getLogger(__name__)

DICOMDIR_CLASS = b"1.2.840.10008.1.3.10"
DEFAULT_TIME_LIMIT = 300.0  # seconds per file
DEFAULT_MAX_INPUT_BYTES = 4 << 30  # a file is read whole into memory
# The first tag of a DICOM dataset stored without preamble: group 0002 or 0008, either byte order.
_RAW_DATASET_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


class Finding(Protocol):
    """What the verifier reports; only the rule is used here (pipeline/verify.py)."""

    @property
    def rule(self) -> str: ...


# (output bytes, options, original bytes, release-relative output path) -> findings
Verifier = Callable[[bytes, tuple[str, ...], "bytes | None", "str | None"], Sequence[Finding]]


class VerifierUnavailableError(Exception):
    """pipeline.verify cannot be imported: nothing is published unverified."""


def verify_with_pipeline_verify(
    output: bytes, options: tuple[str, ...], original: bytes | None, output_path: str | None
) -> Sequence[Finding]:
    """The default verifier, imported when first called so a missing module fails closed."""
    try:
        module = importlib.import_module("pipeline.verify")
        verify_bytes = module.verify_bytes
    except (ImportError, AttributeError):
        raise VerifierUnavailableError from None
    return cast(Sequence[Finding], verify_bytes(output, options, original=original, output_path=output_path))


# Resolved at call time, so another verifier can be installed for a whole process.
VERIFY: Verifier = verify_with_pipeline_verify


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What a worker needs besides the plan and keys: where outputs and quarantined originals
    go, and whether to return the identifier mapping."""

    release: Path
    quarantine: Path
    quarantine_mode: QuarantineMode = QuarantineMode.COPY
    with_mapping: bool = False
    time_limit: float | None = DEFAULT_TIME_LIMIT  # seconds per file; None: no limit
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    preview_dir: Path | None = None  # --pixel-preview: before/after PNGs of cleaned images (identifying)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one input: named by content hash and run index, never by path."""

    source_id: str
    index: int
    disposition: Disposition
    output: str | None = None  # release-relative path of the published file
    reason: str | None = None  # a reason code, never a value
    actions: tuple[tuple[str, int], ...] = ()  # scrub action counts
    uid_pairs: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # mapping runs only
    patient_pair: tuple[str, str] | None = field(default=None, repr=False)  # mapping runs only


def process_batch(sources: Sequence[SourceFile], plan: Plan, keys: Keys, cfg: WorkerConfig) -> tuple[Outcome, ...]:
    """The unit of work sent to a worker: `process_one` over a batch of files."""
    return tuple(process_one(src, plan, keys, cfg) for src in sources)


def process_one(src: SourceFile, plan: Plan, keys: Keys, cfg: WorkerConfig) -> Outcome:
    """Read, scrub, stage, verify and promote one file within the time limit; quarantine it
    on any error."""
    deadline = Deadline(cfg.time_limit)
    try:
        with deadline:
            return _process_one(src, plan, keys, cfg, deadline)
    except FileTimeLimitError:  # before the bytes were read, or while quarantining
        return unread_outcome(src, keys, FileTimeLimitError.code, cfg)


def _process_one(src: SourceFile, plan: Plan, keys: Keys, cfg: WorkerConfig, deadline: Deadline) -> Outcome:
    if src.size > cfg.max_input_bytes:
        return unread_outcome(src, keys, TooLargeError.code, cfg)
    try:
        with src.path.open("rb") as handle:
            data = handle.read(cfg.max_input_bytes + 1)
    except OSError:
        return unread_outcome(src, keys, "unreadable-input", cfg)
    if len(data) > cfg.max_input_bytes:  # it grew since it was listed
        return unread_outcome(src, keys, TooLargeError.code, cfg)
    sid = source_id(data)
    try:
        return _publish(src, sid, data, plan, keys, cfg, deadline)
    except FileTimeLimitError:
        deadline.cancel()
        return _quarantined(src, sid, data, FileTimeLimitError.code, cfg)
    except InputError as exc:
        skipped = _not_dicom_reason(data, src.path)
        if skipped is not None:
            return Outcome(sid, src.index, Disposition.SKIPPED, reason=skipped)
        return _quarantined(src, sid, data, exc.code, cfg)
    except PipelineError as exc:
        return _quarantined(src, sid, data, exc.code, cfg)
    except VerifierUnavailableError:
        return _quarantined(src, sid, data, "verify-unavailable", cfg)
    except MemoryError:
        return _quarantined(src, sid, data, TooLargeError.code, cfg)
    except BytesLengthException:  # a value whose length does not fit its VR, found when decoded
        return _quarantined(src, sid, data, InputError.code, cfg)
    except Exception as exc:
        return _quarantined(src, sid, data, f"unexpected-{type(exc).__name__}", cfg)


# --- the per-file time limit -----------------------------------------------------------------


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


def unread_outcome(src: SourceFile, keys: Keys, reason: str, cfg: WorkerConfig | None = None) -> Outcome:
    """A quarantine outcome for a file whose bytes were never read (unreadable, or its
    batch was lost): named by a keyed digest of its location instead of its content."""
    sid = "path-" + location_key(src.path, keys)
    if cfg is not None:
        _keep_original(sid, None, src.path, cfg)
    return Outcome(sid, src.index, Disposition.QUARANTINED, reason=reason)


def _publish(
    src: SourceFile, sid: str, data: bytes, plan: Plan, keys: Keys, cfg: WorkerConfig, deadline: Deadline
) -> Outcome:
    scrubbed = scrub_bytes(data, plan, keys, preview=cfg.preview_dir is not None)
    name = release_name(scrubbed.dataset)
    target = cfg.release / Path(*name.parts)
    staged = stage(scrubbed.data, target)
    try:
        findings = VERIFY(staged.read_bytes(), tuple(o.value for o in plan.options), data, name.as_posix())
        if findings:
            discard(staged)
            return _quarantined(src, sid, data, f"verify:{findings[0].rule}", cfg)
        deadline.expire_or_cancel()  # a promoted file is published: it must not be reported otherwise
        promote(staged, target)
    finally:
        discard(staged)
    if cfg.preview_dir is not None and scrubbed.pixels is not None and scrubbed.pixels.preview is not None:
        write_preview(*scrubbed.pixels.preview, cfg.preview_dir / f"{sid[:16]}.png")
    uid_pairs: tuple[tuple[str, str], ...] = ()
    patient_pair: tuple[str, str] | None = None
    if cfg.with_mapping:
        uid_pairs, patient_pair = _mapping(read_dataset(data), scrubbed.dataset, keys)
    return Outcome(sid, src.index, Disposition.WRITTEN, output=name.as_posix(), actions=scrubbed.log.actions,
                   uid_pairs=uid_pairs, patient_pair=patient_pair)


def _quarantined(src: SourceFile, sid: str, data: bytes, reason: str, cfg: WorkerConfig) -> Outcome:
    _keep_original(sid, data, src.path, cfg)
    return Outcome(sid, src.index, Disposition.QUARANTINED, reason=reason)


def _keep_original(sid: str, data: bytes | None, path: Path, cfg: WorkerConfig) -> None:
    try:
        quarantine(sid, data, path, cfg.quarantine, cfg.quarantine_mode)
    except (OSError, WriteError) as exc:
        log.error("input %s: the quarantined original could not be kept (%s)", sid[:16], type(exc).__name__)


def _not_dicom_reason(data: bytes, path: Path) -> str | None:
    """Why a file that failed to read is skipped rather than quarantined, or None: empty; a
    DICOMDIR; or no DICM prefix and no data element at its start."""
    if not data:
        return "empty"
    if path.name.upper() == "DICOMDIR" or DICOMDIR_CLASS + b"\x00" in data[:1024]:
        return "dicomdir"
    if data[128:132] == b"DICM" or data[:2] in _RAW_DATASET_STARTS:
        return None
    return "not-dicom"


# --- the confidential mapping -------------------------------------------------------------


def _mapping(
    original: Dataset, scrubbed: Dataset, keys: Keys
) -> tuple[tuple[tuple[str, str], ...], tuple[str, str] | None]:
    """(original, new) for every UID the scrub replaced, and (PatientID, pseudonym) when the
    scrub replaced the PatientID with its keyed pseudonym."""
    published = set(_uid_values(scrubbed))
    pairs: set[tuple[str, str]] = set()
    for uid in _uid_values(original):
        if not is_registered_uid(uid):
            new = remap_uid(uid, keys)
            if new in published:
                pairs.add((uid, new))
    patient: tuple[str, str] | None = None
    original_id = str(original.get("PatientID", "") or "").strip()
    if original_id:
        pseudonym = patient_pseudonym(original_id, keys)
        if str(scrubbed.get("PatientID", "") or "").strip() == pseudonym:
            patient = (original_id, pseudonym)
    return tuple(sorted(pairs)), patient


def _uid_values(ds: Dataset) -> list[str]:
    values: list[str] = []
    meta = getattr(ds, "file_meta", None)
    elements = list(meta) if meta is not None else []
    elements += list(ds.iterall())
    for elem in elements:
        if elem.VR != "UI" or elem.value is None:
            continue
        items = [elem.value] if isinstance(elem.value, str) else list(elem.value)
        values.extend(text for text in (str(v).strip().rstrip("\x00") for v in items) if text)
    return values
