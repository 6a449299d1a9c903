"""process_one(src, plan, keys, cfg) -> Outcome: one input file, start to finish, fail-closed.

Read the bytes once; their SHA-256 is the file's name in every record. Scrub
(`pipeline.process.scrub_bytes`), stage the result in the release under a hidden
temporary name, verify the staged bytes independently (`pipeline.verify.verify_bytes`),
then promote. Any error, expected or not, quarantines the file with a reason code
(`PipelineError.code`, or ``unexpected-<ExceptionClass>``), never a message that could
quote a value. A file that is clearly not DICOM (empty; no ``DICM`` prefix and no dataset
at its start) or is a DICOMDIR is skipped, not quarantined.

Outcomes carry no values and no source paths, except the (original, new) identifier pairs
of the confidential mapping, and only when the run asks for it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from pydicom.dataset import Dataset

from pipeline.config import Disposition
from pipeline.dicomfile import read_dataset
from pipeline.discover import SourceFile, location_key
from pipeline.errors import InputError, PipelineError, WriteError
from pipeline.keys import Keys
from pipeline.plan import Plan
from pipeline.process import scrub_bytes, source_id
from pipeline.pseudonyms import patient_pseudonym
from pipeline.uids import is_registered_uid, remap_uid
from pipeline.write import QuarantineMode, discard, promote, quarantine, release_name, stage

log = logging.getLogger(__name__)

DICOMDIR_CLASS = b"1.2.840.10008.1.3.10"
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
    """Read, scrub, stage, verify and promote one file; quarantine it on any error."""
    try:
        data = src.path.read_bytes()
    except OSError:
        return unread_outcome(src, keys, "unreadable-input", cfg)
    sid = source_id(data)
    try:
        return _publish(src, sid, data, plan, keys, cfg)
    except InputError as exc:
        skipped = _not_dicom_reason(data, src.path)
        if skipped is not None:
            return Outcome(sid, src.index, Disposition.SKIPPED, reason=skipped)
        return _quarantined(src, sid, data, exc.code, cfg)
    except PipelineError as exc:
        return _quarantined(src, sid, data, exc.code, cfg)
    except VerifierUnavailableError:
        return _quarantined(src, sid, data, "verify-unavailable", cfg)
    except Exception as exc:
        return _quarantined(src, sid, data, f"unexpected-{type(exc).__name__}", cfg)


def unread_outcome(src: SourceFile, keys: Keys, reason: str, cfg: WorkerConfig | None = None) -> Outcome:
    """A quarantine outcome for a file whose bytes were never read (unreadable, or its
    batch was lost): named by a keyed digest of its location instead of its content."""
    sid = "path-" + location_key(src.path, keys)
    if cfg is not None:
        _keep_original(sid, None, src.path, cfg)
    return Outcome(sid, src.index, Disposition.QUARANTINED, reason=reason)


def _publish(src: SourceFile, sid: str, data: bytes, plan: Plan, keys: Keys, cfg: WorkerConfig) -> Outcome:
    scrubbed = scrub_bytes(data, plan, keys)
    name = release_name(scrubbed.dataset)
    target = cfg.release / Path(*name.parts)
    staged = stage(scrubbed.data, target)
    try:
        findings = VERIFY(staged.read_bytes(), tuple(o.value for o in plan.options), data, name.as_posix())
        if findings:
            discard(staged)
            return _quarantined(src, sid, data, f"verify:{findings[0].rule}", cfg)
        promote(staged, target)
    finally:
        discard(staged)
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
