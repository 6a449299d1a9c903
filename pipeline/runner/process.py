"""One input file of a run, start to finish, fail-closed: `process_one` (and `process_batch`).

`process_one(src, plan, keys, cfg) -> Outcome` reads the bytes once (their SHA-256 is the
file's name in every record), scrubs them (`pipeline.runner.scrubbed.scrub_bytes`, the heart of
the pipeline), verifies the output's bytes independently (`pipeline.verify.checks.verify_file`,
given the very bytes that are written next, which it parses itself, and verify's own copy of the
original as read, `pipeline.verify.before.as_read`, taken before the scrub: the input is parsed
once), and publishes them only on a positive `Verdict` (`pipeline.runner.verdict`: anything
else, or no verifier at all, publishes nothing). Published bytes are staged in the staging
folder beside the release (never inside it; unnamed where the file system allows,
`pipeline.files.StagingFolder`) and linked into the release once they are on disk. Any error,
expected or not, quarantines the file with a reason code that names the cause
(`PipelineError.code`, e.g. ``bad-input:unknown-vr``; pydicom's own errors while a value is
decoded by their kind, `pipeline.dicom.file.decode_cause`; else ``unexpected-<Class>``), never a
message that could quote a value. A file that is clearly not DICOM (empty; no ``DICM`` prefix and
no dataset at its start) or is a DICOMDIR is skipped, not quarantined.

Every file runs under limits, in a Dask worker and in the serial loop alike: a file larger
than ``max_input_bytes`` is not read (``too-large``); one that declares more than it holds
or more than a file may allocate is refused before pydicom reads it (`pipeline.dicom`:
``bad-input``, ``too-large``); one that takes longer than ``time_limit`` seconds is stopped
and quarantined (``time-limit``, `pipeline.runner.deadline`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from pydicom.dataset import Dataset

from pipeline.dicom.file import decode_cause
from pipeline.dicom.lengths import TooLargeError
from pipeline.errors import Cause, InputError, PipelineError, SourceError, WriteError, is_codec_failure
from pipeline.files import StagingFolder, sync_directories
from pipeline.pixels.clean import PixelLog
from pipeline.pixels.preview import write_preview
from pipeline.pixels.review import PixelsNeedReview
from pipeline.profile.plan import Plan
from pipeline.runner.deadline import Deadline, FileTimeLimitError
from pipeline.runner.destination import Destination, InstanceUids, publish
from pipeline.runner.discover import SourceFile, source_location_key
from pipeline.runner.mapping import mapping_pairs
from pipeline.runner.outcome import Disposition, Outcome
from pipeline.runner.publisher import Publisher, publish_now, release_folders
from pipeline.runner.quarantine import QuarantineMode, quarantine
from pipeline.runner.release import release_name, staging_folder
from pipeline.runner.scrubbed import Scrubbed, scrub_bytes
from pipeline.runner.source_remote import fetch
from pipeline.runner.verdict import VERIFY_UNAVAILABLE, VerifierUnavailableError, verify_output
from pipeline.runner.verdict import pixel_bound as pixel_bound  # bench/digests.py and the tests read it from here
from pipeline.scrub.keys import Keys

log = logging.getLogger(__name__)

DICOMDIR_CLASS = b"1.2.840.10008.1.3.10"
DEFAULT_TIME_LIMIT = 300.0  # seconds per file
DEFAULT_MAX_INPUT_BYTES = 4 << 30  # a file is read whole into memory
_READ_CHUNK = 1 << 30  # at most this much a read, once the file's size is passed (one read gives < 2 GiB)
# The first tag of a DICOM dataset stored without preamble: group 0002 or 0008, either byte order.
_RAW_DATASET_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def source_id(data: bytes) -> str:
    """The identity of an input in logs, manifests and reports: its content hash."""
    return hashlib.sha256(data).hexdigest()


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
    staging: Path | None = None  # where outputs are staged; None: <release>.staging beside the release
    # A remote release (object store, DICOMweb): outputs are verified in memory and published there;
    # `release` is then only the local name the run's records are kept beside. None: the folder `release`.
    destination: Destination | None = None
    quarantine_store: str | None = None  # an fsspec URL the originals go to instead of `quarantine` (PHI)

    @property
    def remote(self) -> Destination | None:
        """The remote destination, or None when the release is the local folder `release`."""
        return self.destination if self.destination is not None and self.destination.is_remote else None

    @property
    def staging_dir(self) -> Path:
        """The staging folder: outside the release tree, on its file system."""
        return self.staging if self.staging is not None else staging_folder(self.release)


# What the background publisher needs to quarantine a file whose output it could not publish.
_Job = tuple[int, SourceFile, str, bytes]


def process_batch(sources: Sequence[SourceFile], plan: Plan, keys: Keys, cfg: WorkerConfig) -> tuple[Outcome, ...]:
    """The unit of work sent to a worker: `process_one` over a batch of files, each verified
    output staged, fsynced and linked into the release by background threads while the next
    file is scrubbed (`pipeline.runner.publisher`: an output's data are on disk before its name
    is). The release folders that received names, and those above them, are fsynced once, at the
    end of the batch, before the outcomes are returned (and so before the client records any of
    them as published). A crash before that loses at most names of unrecorded files, whose
    durable, identical bytes a rerun links again. An output the publisher could not stage or
    link quarantines its input."""
    outcomes: list[Outcome] = []
    with Publisher[_Job](cfg.staging_dir) as publisher:
        for src in sources:
            outcomes.append(process_one(src, plan, keys, cfg, sync_directory=False, publisher=publisher,
                                        position=len(outcomes)))
            _settle(publisher.settled(), outcomes, cfg)
        _settle(publisher.drain(), outcomes, cfg)
    if cfg.remote is None:
        sync_directories(release_folders(cfg.release, [PurePosixPath(o.output) for o in outcomes
                                                       if o.disposition is Disposition.WRITTEN and o.output]))
    return tuple(outcomes)


def _settle(results: Iterable[tuple[_Job, BaseException | None]], outcomes: list[Outcome], cfg: WorkerConfig) -> None:
    for (position, src, sid, data), error in results:
        if error is not None:
            reason = error.code if isinstance(error, PipelineError) else f"unexpected-{type(error).__name__}"
            outcomes[position] = _quarantined(src, sid, data, reason, cfg)


def process_one(src: SourceFile, plan: Plan, keys: Keys, cfg: WorkerConfig, *, sync_directory: bool = True,
                publisher: Publisher[_Job] | None = None, position: int = 0) -> Outcome:
    """Read, scrub, verify, stage and publish one file within the time limit; quarantine it
    on any error. With `sync_directory` False the caller fsyncs the release folders; with a
    `publisher` the output is staged, fsynced and linked in its background threads, and the caller
    settles its result (see `process_batch`; `position` is the outcome's place in its list)."""
    deadline = Deadline(cfg.time_limit)
    try:
        with deadline:
            return _process_one(src, plan, keys, cfg, deadline, sync_directory, publisher, position)
    except FileTimeLimitError:  # before the bytes were read, or while quarantining
        return unread_outcome(src, keys, FileTimeLimitError.code, cfg)


def _process_one(src: SourceFile, plan: Plan, keys: Keys, cfg: WorkerConfig, deadline: Deadline,
                 sync_directory: bool, publisher: Publisher[_Job] | None = None, position: int = 0) -> Outcome:
    if src.size > cfg.max_input_bytes:
        return unread_outcome(src, keys, f"{TooLargeError.code}:{Cause.FILE_SIZE}", cfg)
    try:
        if src.remote is None:
            data = _read_local(src.path, cfg.max_input_bytes)
        else:  # an object store's or a DICOMweb server's: this worker fetches it
            data = fetch(src.remote, cfg.max_input_bytes)
    except OSError:
        return unread_outcome(src, keys, "unreadable-input", cfg)
    except SourceError as exc:
        return unread_outcome(src, keys, exc.code, cfg)
    if len(data) > cfg.max_input_bytes:  # it grew since it was listed
        return unread_outcome(src, keys, f"{TooLargeError.code}:{Cause.FILE_SIZE}", cfg)
    sid = source_id(data)
    try:
        return _publish(src, sid, data, plan, keys, cfg, deadline, sync_directory, publisher, position)
    except FileTimeLimitError:
        deadline.cancel()
        return _quarantined(src, sid, data, FileTimeLimitError.code, cfg)
    except InputError as exc:
        skipped = _not_dicom_reason(data, src.path)
        if skipped is not None:
            return Outcome(sid, src.index, Disposition.SKIPPED, reason=skipped)
        return _quarantined(src, sid, data, exc.code, cfg)
    except PixelsNeedReview as exc:  # never published; the reviewer sees what cleaning would do
        if cfg.preview_dir is not None and exc.preview is not None:
            write_preview(*exc.preview, cfg.preview_dir / f"{sid[:16]}.png")
        return replace(_quarantined(src, sid, data, exc.code, cfg), actions=(("pixels-ocr", 1),))
    except PipelineError as exc:
        return _quarantined(src, sid, data, exc.code, cfg)
    except VerifierUnavailableError:
        return _quarantined(src, sid, data, VERIFY_UNAVAILABLE, cfg)
    except MemoryError:
        return _quarantined(src, sid, data, f"{TooLargeError.code}:{Cause.OUT_OF_MEMORY}", cfg)
    except Exception as exc:  # values are decoded when first used: pydicom's errors surface in the scrub
        cause = decode_cause(exc)
        reason = f"{InputError.code}:{cause}" if cause is not None else f"unexpected-{type(exc).__name__}"
        return _quarantined(src, sid, data, reason, cfg)
    except BaseException as exc:  # a Rust codec's panic is a BaseException (errors.is_codec_failure)
        if not is_codec_failure(exc):
            raise
        return _quarantined(src, sid, data, f"unexpected-{type(exc).__name__}", cfg)


def _read_local(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the file (more than `limit`: too large), read into a buffer of
    the file's size (`read(limit + 1)` first allocated the limit: 0.2 ms a file) by one read of
    its descriptor (a buffered file object cost an isatty ioctl, a seek and a second fstat); one
    that read short or grew since its size was taken is read on, to its end or the limit."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(descriptor).st_size
        data = os.read(descriptor, min(size, limit) + 1)
        if len(data) == size:
            return data
        parts, total = [data], len(data)
        while total <= limit and (more := os.read(descriptor, min(limit + 1 - total, _READ_CHUNK))):
            parts.append(more)
            total += len(more)
        return b"".join(parts)
    finally:
        os.close(descriptor)


def unread_outcome(src: SourceFile, keys: Keys, reason: str, cfg: WorkerConfig | None = None) -> Outcome:
    """A quarantine outcome for a file whose bytes were never read (unreadable, or its
    batch was lost): named by a keyed digest of its location instead of its content."""
    sid = "path-" + source_location_key(src, keys)
    if cfg is not None and src.remote is None:  # of a remote input never read, the ledger keeps its key
        _keep_original(sid, None, src.path, cfg)
    return Outcome(sid, src.index, Disposition.QUARANTINED, reason=reason)


def _publish(
    src: SourceFile, sid: str, data: bytes, plan: Plan, keys: Keys, cfg: WorkerConfig, deadline: Deadline,
    sync_directory: bool, publisher: Publisher[_Job] | None, position: int,
) -> Outcome:
    scrubbed = scrub_bytes(data, plan, keys, preview=cfg.preview_dir is not None, ids=cfg.with_mapping,
                           keep_original=True)
    original = scrubbed.before if scrubbed.before is not None else data  # parsed once, by scrub_bytes
    name = release_name(scrubbed.dataset)
    if cfg.remote is not None:
        refused = _publish_remote(cfg.remote, scrubbed, name, original, plan, deadline)
        if refused is not None:
            return _quarantined(src, sid, data, refused, cfg)
    else:
        target = cfg.release / Path(*name.parts)
        # verify reads the very bytes that are written next (never the scrubber's dataset); an
        # output it refuses is never written at all
        refused = verify_output(scrubbed, original, name, plan)
        if refused is not None:
            return _quarantined(src, sid, data, refused, cfg)
        deadline.expire_or_cancel()  # a promoted file is published: it must not be reported otherwise
        if publisher is None:
            with StagingFolder(cfg.staging_dir) as staging:
                publish_now(staging, scrubbed.data, target)
            if sync_directory:
                sync_directories(release_folders(cfg.release, [name]))
        else:
            publisher.submit((position, src, sid, data), scrubbed.data, target)
    if cfg.preview_dir is not None and scrubbed.pixels is not None and scrubbed.pixels.preview is not None:
        write_preview(*scrubbed.pixels.preview, cfg.preview_dir / f"{sid[:16]}.png")
    uid_pairs: tuple[tuple[str, str], ...] = ()
    patient_pair: tuple[str, str] | None = None
    if scrubbed.original is not None:
        uid_pairs, patient_pair = mapping_pairs(scrubbed.original, scrubbed.dataset, keys)
    return Outcome(sid, src.index, Disposition.WRITTEN, output=name.as_posix(),
                   actions=scrubbed.log.actions + pixel_actions(scrubbed.pixels),
                   uid_pairs=uid_pairs, patient_pair=patient_pair, released=_released(scrubbed.dataset))


def _publish_remote(destination: Destination, scrubbed: Scrubbed, name: PurePosixPath, original: bytes | Dataset,
                    plan: Plan, deadline: Deadline) -> str | None:
    """A remote release has no rename: verify the output's bytes in memory and store exactly those
    bytes (`pipeline.runner.destination.publish`); the reason it is refused, or None once stored."""
    refused = verify_output(scrubbed, original, name, plan)
    if refused is not None:
        return refused
    deadline.expire_or_cancel()  # the store may take its retries; once confirmed, it is published
    uids = InstanceUids(*(str(scrubbed.dataset.get(keyword, "") or "").strip()
                          for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")))
    publish(destination, name, scrubbed.data, uids)
    return None


def _released(ds: Dataset) -> tuple[str, str, str]:
    """(PatientID, StudyInstanceUID, SOPClassUID) of the published dataset."""
    return tuple(str(ds.get(keyword, "") or "").strip() for keyword in  # type: ignore[return-value]
                 ("PatientID", "StudyInstanceUID", "SOPClassUID"))


def pixel_actions(pixels: PixelLog | None) -> tuple[tuple[str, int], ...]:
    """Counts of the pixel step for `Outcome.actions`: "pixels-ocr" (the image was read by
    OCR), "pixels-ocr-lines" (text lines blanked), "pixels-cleaned" (pixels were blanked),
    "pixels-changed-ppm" (the share of its pixels cleaning changed, in parts per million)."""
    if pixels is None:
        return ()
    counts = {"pixels-ocr": int(pixels.ocr), "pixels-ocr-lines": pixels.ocr_lines,
              "pixels-cleaned": int(pixels.cleaned), "pixels-changed-ppm": round(pixels.changed * 1_000_000)}
    return tuple((name, count) for name, count in counts.items() if count)


def _quarantined(src: SourceFile, sid: str, data: bytes, reason: str, cfg: WorkerConfig) -> Outcome:
    _keep_original(sid, data, src.path, cfg)
    return Outcome(sid, src.index, Disposition.QUARANTINED, reason=reason)


def _keep_original(sid: str, data: bytes | None, path: Path, cfg: WorkerConfig) -> None:
    try:
        quarantine(sid, data, path, cfg.quarantine, cfg.quarantine_mode, cfg.quarantine_store)
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
