"""The confidential mapping: (original, new) identifier pairs, computed in the worker for each
published file, and written by the client into ``uid_mapping.csv`` and ``patient_mapping.csv``.

Both files have MIDI-B's columns id_old,id_new and are written only into a folder the user
names, owner-only, never into the release. Rows are appended as results arrive; a pair may
repeat, never contradict.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset

from pipeline.dicom.dictionary import dictionary_vr
from pipeline.files import make_private_dir
from pipeline.runner.outcome import Outcome
from pipeline.scrub.keys import Keys
from pipeline.scrub.pseudonyms import patient_pseudonym
from pipeline.scrub.uids import is_registered_uid, remap_uid


@dataclass(frozen=True, slots=True)
class OriginalIds:
    """What the mapping needs of an input, read before the scrub changes it: its UID values and PatientID."""

    uids: tuple[str, ...]
    patient_id: str


def original_ids(ds: Dataset) -> OriginalIds:
    """The UID values (file meta and every depth) and PatientID of a dataset as read, collected
    before the scrub changes it in place, so the mapping needs no second parse of the input.
    Elements are decoded only where they are, or may be, UIs; a UI kept as stored stays raw
    (the output's bytes are unchanged), sequences are decoded in place (the scrub does so too)."""
    return OriginalIds(tuple(_uid_values(ds)), str(ds.get("PatientID", "") or "").strip())


def mapping_pairs(
    original: OriginalIds, scrubbed: Dataset, keys: Keys
) -> tuple[tuple[tuple[str, str], ...], tuple[str, str] | None]:
    """(original, new) for every UID the scrub replaced, and (PatientID, pseudonym) when the
    scrub replaced the PatientID with its keyed pseudonym."""
    published = set(_uid_values(scrubbed))
    pairs: set[tuple[str, str]] = set()
    for uid in original.uids:
        if not is_registered_uid(uid):
            new = remap_uid(uid, keys)
            if new in published:
                pairs.add((uid, new))
    patient: tuple[str, str] | None = None
    original_id = original.patient_id
    if original_id:
        pseudonym = patient_pseudonym(original_id, keys)
        if str(scrubbed.get("PatientID", "") or "").strip() == pseudonym:
            patient = (original_id, pseudonym)
    return tuple(sorted(pairs)), patient


_MAYBE_UI = frozenset({"UI", "SQ", "UN", None})


def _uid_values(ds: Dataset) -> list[str]:
    values: list[str] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _collect_uids(meta, values)
    _collect_uids(ds, values)
    return values


def _collect_uids(ds: Dataset, values: list[str]) -> None:
    for tag, stored in list(ds.items()):
        if isinstance(stored, RawDataElement):
            if stored.VR not in _MAYBE_UI:
                continue  # decoding keeps a stored VR other than UN: not a UI, not a sequence
            if stored.VR == "SQ" or (stored.VR is None and dictionary_vr(int(tag)) == "SQ"):
                elem = ds[tag]  # decoded in place, as the scrub does
            else:
                encoding = ds.original_character_set or ds._character_set
                elem = convert_raw_data_element(stored, encoding=encoding, ds=ds)  # the dataset keeps it raw
        else:
            elem = stored
        if elem.VR == "SQ":
            for item in elem.value or ():
                _collect_uids(item, values)
            continue
        if elem.VR != "UI" or elem.value is None:
            continue
        items = [elem.value] if isinstance(elem.value, str) else list(elem.value)
        values.extend(text for text in (str(v).strip().rstrip("\x00") for v in items) if text)


UID_MAPPING = "uid_mapping.csv"


PATIENT_MAPPING = "patient_mapping.csv"


_SEEN_LIMIT = 1_000_000  # remembered pairs, to keep repeats rare without unbounded memory


class MappingWriter:
    """Appends (original, new) UID pairs and (PatientID, pseudonym) pairs to owner-only
    CSV files in the mapping folder. Use as a context manager."""

    def __init__(self, folder: Path) -> None:
        make_private_dir(folder)
        # Columns id_old,id_new: the layout the MIDI-B validation script reads for both mappings.
        self._uids = _open_private(folder / UID_MAPPING, ("id_old", "id_new"))
        self._patients = _open_private(folder / PATIENT_MAPPING, ("id_old", "id_new"))
        self._seen: set[tuple[str, str]] = set()
        self._dirty = True  # rows (at first, the headers) written since the last flush

    def __enter__(self) -> MappingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, outcome: Outcome) -> None:
        uid_writer = csv.writer(self._uids)
        for pair in outcome.uid_pairs:
            if self._first_time(pair):
                uid_writer.writerow(pair)
                self._dirty = True
        if outcome.patient_pair is not None and self._first_time(outcome.patient_pair):
            csv.writer(self._patients).writerow(outcome.patient_pair)
            self._dirty = True

    def flush(self) -> None:
        """Make the rows added so far durable (nothing to do, no fsync, when none were)."""
        if not self._dirty:
            return
        self._dirty = False
        for handle in (self._uids, self._patients):
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        self.flush()
        self._uids.close()
        self._patients.close()

    def _first_time(self, pair: tuple[str, str]) -> bool:
        if pair in self._seen:
            return False
        if len(self._seen) >= _SEEN_LIMIT:
            self._seen.clear()
        self._seen.add(pair)
        return True


def _open_private(path: Path, header: tuple[str, str]) -> TextIO:
    """Open a CSV for appending with mode 0600, writing the header when it is new."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(descriptor, 0o600)
    handle = os.fdopen(descriptor, "a", newline="", encoding="utf-8")
    if handle.tell() == 0:
        csv.writer(handle).writerow(header)
    return handle

