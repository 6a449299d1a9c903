"""Score a de-identified release against the answer key of the sample archive.

The release is any tree of files. Each file is searched, as raw bytes (and
inflated, when deflated), and by its release-relative path, for every
spelling of every planted value in the key; DICOM files are then parsed and
paired with their input, by the key's UID-free signature or by a UID mapping,
to check burned-in boxes, facts that must survive, study/series grouping and
references. Findings name files by release-relative path (a placeholder when
the path itself leaks) and values by key identifier and attribute path: the
planted values themselves are never reported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import struct
import warnings
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import pydicom.datadict
import pydicom.multival
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, MediaStorageDirectoryStorage

__all__ = ["Category", "Finding", "ScoreReport", "load_key", "redact_path", "score"]

_LOSSY_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.203",
})
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_FACTS = ("Rows", "Columns", "PixelSpacing", "SliceThickness", "Modality")
_LOSSY_TOLERANCE = 0.1  # of the full pixel range, between the 1st and 99th percentile


class Category(StrEnum):
    """What a finding is about; the first seven are leaks."""

    IDENTIFIERS_IN_BYTES = "identifiers_in_bytes"
    IDENTIFIERS_IN_PATHS = "identifiers_in_paths"
    UIDS_LEFT = "uids_left"
    DATES_UNSHIFTED = "dates_unshifted"
    PRIVATE_TAGS_LEFT = "private_tags_left"
    BURNED_IN_NOT_CLEANED = "burned_in_not_cleaned"
    BAD_INPUTS_PUBLISHED = "bad_inputs_published"
    GROUPING_BROKEN = "grouping_broken"
    REFERENCES_BROKEN = "references_broken"
    FACTS_LOST = "facts_lost"
    INPUTS_MISSING = "inputs_missing"
    TIMES_KEPT = "times_kept"
    OUTPUTS_UNMATCHED = "outputs_unmatched"


LEAKS = tuple(Category)[:7]
INTEGRITY = (Category.GROUPING_BROKEN, Category.REFERENCES_BROKEN, Category.FACTS_LOST, Category.INPUTS_MISSING)
_BY_IDENTIFIER_CATEGORY = {
    "uid": Category.UIDS_LEFT, "date": Category.DATES_UNSHIFTED, "birth_date": Category.DATES_UNSHIFTED,
    "datetime": Category.DATES_UNSHIFTED, "time": Category.TIMES_KEPT,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: `item` is a key identifier id, tag, keyword or label, never a value."""

    category: Category
    file: str
    item: str
    where: str


@dataclass(frozen=True, slots=True)
class ScoreReport:
    """Per-category counts (one per finding) and the findings themselves."""

    files_scanned: int
    identifiers_in_bytes: int = 0
    identifiers_in_paths: int = 0
    uids_left: int = 0
    dates_unshifted: int = 0
    private_tags_left: int = 0
    burned_in_not_cleaned: int = 0
    bad_inputs_published: int = 0
    grouping_broken: int = 0
    references_broken: int = 0
    facts_lost: int = 0
    inputs_missing: int = 0
    times_kept: int = 0
    outputs_unmatched: int = 0
    findings: tuple[Finding, ...] = field(default=(), repr=False)

    @classmethod
    def from_findings(cls, files_scanned: int, findings: list[Finding]) -> ScoreReport:
        ordered = tuple(sorted(findings, key=lambda f: (f.category, f.file, f.item, f.where)))
        counts = {c.value: sum(1 for f in ordered if f.category is c) for c in Category}
        return cls(files_scanned, findings=ordered, **counts)

    def count(self, category: Category) -> int:
        value: int = getattr(self, category.value)
        return value

    @property
    def total_leaks(self) -> int:
        return sum(self.count(c) for c in LEAKS)

    @property
    def total_integrity_failures(self) -> int:
        return sum(self.count(c) for c in INTEGRITY)

    def to_json(self, *, with_findings: bool = True) -> str:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "findings"}
        data["total_leaks"] = self.total_leaks
        data["total_integrity_failures"] = self.total_integrity_failures
        if with_findings:
            data["findings"] = [
                {"category": f.category.value, "file": f.file, "item": f.item, "where": f.where}
                for f in self.findings
            ]
        return json.dumps(data, sort_keys=True)


# ------------------------------------------------------------------ the key
Signature = tuple[str, int | None, tuple[float, ...] | None, int | None, int | None, int | None]


@dataclass(frozen=True, slots=True)
class _Identifier:
    ident: str
    category: str
    text: re.Pattern[str]
    raw: re.Pattern[bytes]
    lowered: tuple[str, ...]  # a cheap prefilter before the (case-insensitive, bounded) patterns
    lowered_raw: tuple[bytes, ...]

    def in_text(self, lowered_text: str, text: str) -> bool:
        return any(s in lowered_text for s in self.lowered) and self.text.search(text) is not None

    def in_bytes(self, lowered_raw: bytes, raw: bytes) -> bool:
        return any(s in lowered_raw for s in self.lowered_raw) and self.raw.search(raw) is not None


@dataclass(frozen=True, slots=True)
class _Box:
    plane: str
    frame: int
    box: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class _KeyFile:
    path: str
    is_bad: bool
    must_publish: bool  # the key's "expect" is "deidentify" (not "quarantine" or "quarantine-or-skip")
    may_publish: bool  # "deidentify" or "deidentify-or-quarantine": published, it is scored as a good file
    defect: str
    label: str
    signature: Signature | None
    sop_instance_uid: str | None
    study: str | None
    series: str | None
    boxes: tuple[_Box, ...]
    facts: dict[str, Any]
    characteristics: dict[str, Any]
    references: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, slots=True)
class Key:
    identifiers: tuple[_Identifier, ...]
    files: dict[str, _KeyFile]


def _patterns(spellings: list[str], bounded: bool, category: str = "") -> tuple[re.Pattern[str], re.Pattern[bytes]]:
    """The search for one identifier's spellings. A bounded value (a number, date or time) must
    not be glued to other digits, except that a time of day may follow an eight-digit date: a
    DT whose date was shifted but whose time part is the original still carries the time."""
    ordered = sorted(set(spellings), key=len, reverse=True)
    body = "|".join(re.escape(s) for s in ordered)
    dated = "(?:[0-9]{8})?" if category == "time" else ""
    text = rf"(?<![0-9.]){dated}(?:{body})(?![0-9])" if bounded else f"(?:{body})"
    return re.compile(text, re.IGNORECASE), re.compile(text.encode("latin-1"), re.IGNORECASE)


def _lowered(spellings: list[str]) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    lowered = tuple(sorted({s.lower() for s in spellings}))
    return lowered, tuple(s.encode("latin-1") for s in lowered)


def _signature(match: dict[str, Any]) -> Signature:
    ipp = match.get("ImagePositionPatient")
    return (str(match["SOPClassUID"]), match.get("InstanceNumber"),
            None if ipp is None else tuple(round(float(v), 4) for v in ipp),
            match.get("Rows"), match.get("Columns"), match.get("NumberOfFrames"))


def load_key(path: Path) -> Key:
    """Parse the answer key written by ``sample_data/generate.py``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    identifiers = tuple(
        _Identifier(ident, item["category"], *_patterns(item["spellings"], bool(item["bounded"]), item["category"]),
                    *_lowered(item["spellings"]))
        for ident, item in sorted(data["identifiers"].items())
    )
    files = {}
    for rel, e in data["files"].items():
        match = e.get("match")
        label = f"{e.get('series') or 'bad:' + str(e.get('defect'))}/{(match or {}).get('InstanceNumber')}"
        files[rel] = _KeyFile(
            path=rel, is_bad=e["kind"] != "good", must_publish=e.get("expect", "deidentify") == "deidentify",
            may_publish=e.get("expect", "deidentify") in ("deidentify", "deidentify-or-quarantine"),
            defect=str(e.get("defect")), label=label,
            signature=None if not match else _signature(match), sop_instance_uid=e.get("sop_instance_uid"),
            study=e.get("study"), series=e.get("series"),
            boxes=tuple(_Box(b["plane"], int(b["frame"]), (b["box"][0], b["box"][1], b["box"][2], b["box"][3]))
                        for b in e.get("burned_in", [])),
            facts=dict(e.get("facts", {})), characteristics=dict(e.get("patient_characteristics", {})),
            references=tuple((r["where"], r["target_file"], r["target_attribute"]) for r in e.get("references", [])),
        )
    return Key(identifiers, files)


# ------------------------------------------------------------------ one output file
def redact_path(rel: str) -> str:
    """The placeholder shown instead of a release path that itself holds a planted value."""
    return f"[redacted-path-{hashlib.sha256(rel.encode()).hexdigest()[:12]}]"


def _read(raw: bytes) -> FileDataset | None:
    try:
        return pydicom.dcmread(io.BytesIO(raw))
    except Exception:  # any unreadable output is, for scoring, "not DICOM"
        return None


def _inflated(raw: bytes) -> bytes:
    if raw[128:132] != b"DICM" or len(raw) < 144:
        return b""
    (meta_len,) = struct.unpack("<I", raw[140:144])
    start = 144 + meta_len
    if DeflatedExplicitVRLittleEndian.encode() not in raw[132:start]:
        return b""
    try:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw[start:])
    except zlib.error:
        return b""


def _walk(ds: Dataset, prefix: str = "") -> Iterator[tuple[str, int, str]]:
    """Yield (attribute path, tag, value text) for every element at every depth."""
    for tag in list(ds.keys()):
        name = "trailing-padding" if tag == 0xFFFCFFFC else prefix + (
            pydicom.datadict.keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})")
        try:
            elem = ds[tag]
            value = elem.value
        except Exception:
            yield name, int(tag), ""
            continue
        if elem.VR == "SQ":
            yield name, int(tag), ""
            for i, item in enumerate(value or []):
                yield from _walk(item, f"{name}[{i}].")
        elif elem.VR in _BINARY_VRS or isinstance(value, bytes):
            yield name, int(tag), bytes(value or b"").decode("latin-1")
        elif isinstance(value, list | pydicom.multival.MultiValue):
            yield name, int(tag), "\\".join(str(v) for v in value)
        else:
            yield name, int(tag), "" if value is None else str(value)


def _places(ds: FileDataset) -> list[tuple[str, str]]:
    places = [("preamble", (ds.preamble or b"").decode("latin-1"))]
    places += [(f"file-meta.{name}", text) for name, _, text in _walk(ds.file_meta)]
    places += [(name, text) for name, _, text in _walk(ds)]
    return places


def _output_signature(ds: Dataset) -> Signature | None:
    try:
        ipp = ds.get("ImagePositionPatient")
        number, frames = ds.get("InstanceNumber"), ds.get("NumberOfFrames")
        return (str(ds.SOPClassUID), None if number in (None, "") else int(number),
                None if not ipp else tuple(round(float(v), 4) for v in ipp),
                ds.get("Rows"), ds.get("Columns"), None if frames in (None, "") else int(frames))
    except Exception:
        return None


def _box_is_clean(ds: Dataset, box: _Box) -> bool:
    """True when the box holds a single value (or nearly, under a lossy syntax)."""
    try:
        if box.plane == "pixels":
            if "PixelData" not in ds:
                return True
            arr: npt.NDArray[Any] = ds.pixel_array
            if int(ds.get("NumberOfFrames") or 1) > 1:
                if box.frame >= arr.shape[0]:
                    return True
                arr = arr[box.frame]
            bits = int(ds.BitsStored)
        else:
            group = int(box.plane.rsplit("-", 1)[1], 16)
            if (group << 16 | 0x3000) not in ds:
                return True
            arr = ds.overlay_array(group)
            bits = 1
    except Exception:
        return False  # undecodable: the text cannot be shown to be gone
    x0, y0, x1, y1 = box.box
    lossy = str(getattr(ds.file_meta, "TransferSyntaxUID", "")) in _LOSSY_SYNTAXES
    margin = 2 if lossy else 0
    region = np.asarray(arr[y0 + margin:y1 - margin, x0 + margin:x1 - margin], dtype=np.float64)
    if region.size == 0:
        return True
    if not lossy:
        return bool(region.min() == region.max())
    low, high = np.percentile(region, [1, 99])
    return bool(high - low <= _LOSSY_TOLERANCE * (2**bits - 1))


def _same(expected: Any, actual: Any) -> bool:
    try:
        if isinstance(expected, list):
            many = isinstance(actual, list | pydicom.multival.MultiValue)
            values = [float(v) for v in (actual if many else [actual])]
            if len(values) != len(expected):
                return False
            return all(abs(a - b) < 1e-4 for a, b in zip(values, expected, strict=True))
        if isinstance(expected, float):
            return abs(float(actual) - expected) < 1e-4
        if isinstance(expected, int):
            return int(actual) == expected
        return str(actual).strip() == str(expected)
    except (TypeError, ValueError):
        return False


def _resolve(ds: Dataset, path: str) -> str | None:
    """The value at an attribute path like ``A[0].B[2].C``, or None."""
    node: Any = ds
    for step in path.split("."):
        m = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", step)
        if m is None or not isinstance(node, Dataset) or m.group(1) not in node:
            return None
        node = node[m.group(1)].value
        if m.group(2) is not None:
            index = int(m.group(2))
            node = node[index] if index < len(node) else None
    return None if node is None else str(node)


@dataclass(slots=True)
class _Matched:
    display: str
    key_file: _KeyFile
    uids: dict[str, str]
    refs: dict[str, str | None]


class _Scorer:
    def __init__(self, key: Key, mapping: dict[str, str], retain_characteristics: bool) -> None:
        self.key = key
        self.mapping = mapping
        self.retain = retain_characteristics
        self.by_signature = {f.signature: f for f in key.files.values() if f.signature is not None}
        self.by_sop = {f.sop_instance_uid: f for f in key.files.values() if f.sop_instance_uid}
        self.findings: list[Finding] = []
        self.matched: list[_Matched] = []

    def add(self, category: Category, file: str, item: str, where: str) -> None:
        self.findings.append(Finding(category, file, item, where))

    def file(self, rel: str, raw: bytes) -> None:
        path_hits = [i for i in self.key.identifiers if i.in_text(rel.lower(), rel)]
        display = redact_path(rel) if path_hits else rel
        for ident in path_hits:
            if ident.category != "time":
                self.add(Category.IDENTIFIERS_IN_PATHS, display, ident.ident, "path")
        ds = _read(raw)
        haystack = raw + b"\0" + _inflated(raw)
        lowered = haystack.lower()
        hits = [i for i in self.key.identifiers if i.in_bytes(lowered, haystack)]
        places = [(n, t.lower(), t) for n, t in _places(ds)] if ds is not None and hits else []
        for ident in hits:
            where = sorted({name for name, low, text in places if ident.in_text(low, text)}) or ["bytes"]
            category = _BY_IDENTIFIER_CATEGORY.get(ident.category, Category.IDENTIFIERS_IN_BYTES)
            self.add(category, display, ident.ident, ";".join(where))
        if ds is None:
            self.add(Category.BAD_INPUTS_PUBLISHED, display, "not-dicom", "file")
            return
        if str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")) == MediaStorageDirectoryStorage:
            self.add(Category.BAD_INPUTS_PUBLISHED, display, "dicomdir", "file")
            return
        for name, tag, _ in _walk(ds):
            if (tag >> 16) % 2 == 1 and tag != 0xFFFCFFFC:
                self.add(Category.PRIVATE_TAGS_LEFT, display, f"({tag >> 16:04X},{tag & 0xFFFF:04X})", name)
        self.pair(display, ds)

    def pair(self, display: str, ds: Dataset) -> None:
        sop = str(ds.get("SOPInstanceUID", ""))
        key_file = self.by_sop.get(self.mapping.get(sop, ""))
        if key_file is None:
            sig = _output_signature(ds)
            key_file = None if sig is None else self.by_signature.get(sig)
        if key_file is None:
            self.add(Category.OUTPUTS_UNMATCHED, display, "no-input", "signature")
            return
        if key_file.is_bad and not key_file.may_publish:
            self.add(Category.BAD_INPUTS_PUBLISHED, display, "matches-bad-input", key_file.defect)
            return
        for box in key_file.boxes:
            if not _box_is_clean(ds, box):
                self.add(Category.BURNED_IN_NOT_CLEANED, display, f"{box.plane}[frame {box.frame}]",
                         ",".join(str(v) for v in box.box))
        facts = dict(key_file.facts)
        if self.retain:
            facts.update(key_file.characteristics)
        for keyword, expected in sorted(facts.items()):
            if not _same(expected, ds.get(keyword)):
                self.add(Category.FACTS_LOST, display, keyword, keyword)
        uids = {k: str(ds.get(k, "")) for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID",
                                                 "FrameOfReferenceUID")}
        refs = {where: _resolve(ds, where) for where, _, _ in key_file.references}
        self.matched.append(_Matched(display, key_file, uids, refs))

    def cross_file(self) -> None:
        outputs: dict[str, list[_Matched]] = defaultdict(list)
        for m in self.matched:
            outputs[m.key_file.path].append(m)
        for kf in sorted(self.key.files.values(), key=lambda f: f.label):
            if kf.must_publish and kf.path not in outputs:
                self.add(Category.INPUTS_MISSING, "-", kf.label, "release")
        for level, attribute in (("study", "StudyInstanceUID"), ("series", "SeriesInstanceUID")):
            groups: dict[str, set[str]] = defaultdict(set)
            owners: dict[str, set[str]] = defaultdict(set)
            for m in self.matched:
                label = str(getattr(m.key_file, level))
                groups[label].add(m.uids[attribute])
                owners[m.uids[attribute]].add(label)
            for label, new in sorted(groups.items()):
                if len(new) != 1 or len(owners[next(iter(new))]) != 1:
                    self.add(Category.GROUPING_BROKEN, "-", label, attribute)
        for m in self.matched:
            for where, target, attribute in m.key_file.references:
                targets = outputs.get(target)
                if targets and m.refs[where] != targets[0].uids[attribute]:
                    self.add(Category.REFERENCES_BROKEN, m.display, where, attribute)


def _load_mapping(path: Path | None) -> dict[str, str]:
    """New UID -> original UID, from a CSV with columns ``original,new`` or MIDI-B's ``id_old,id_new``."""
    if path is None:
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    old, new = ("id_old", "id_new") if rows and "id_old" in rows[0] else ("original", "new")
    return {row[new].strip(): row[old].strip() for row in rows}


def score(release: Path, key_path: Path, uid_mapping: Path | None = None, *,
          retain_patient_characteristics: bool = False) -> ScoreReport:
    """Score every file under `release` against the key at `key_path`."""
    scorer = _Scorer(load_key(key_path), _load_mapping(uid_mapping), retain_patient_characteristics)
    files = sorted(p for p in release.rglob("*") if p.is_file())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # outputs may be anything; their warnings are not ours
        for path in files:
            scorer.file(path.relative_to(release).as_posix(), path.read_bytes())
    scorer.cross_file()
    return ScoreReport.from_findings(len(files), scorer.findings)


def table(report: ScoreReport) -> str:
    lines = [f"{'category':<24} {'count':>6}"]
    for c in Category:
        note = "" if c in LEAKS else ("  (integrity)" if c in INTEGRITY else "  (info)")
        lines.append(f"{c.value:<24} {report.count(c):>6}{note}")
    lines.append(f"{'total_leaks':<24} {report.total_leaks:>6}")
    lines.append(f"{'total_integrity_failures':<24} {report.total_integrity_failures:>6}")
    lines.append(f"files scanned: {report.files_scanned}")
    for f in report.findings:
        lines.append(f"  {f.category.value:<22} {f.file}  {f.item}  @ {f.where}")
    return "\n".join(lines)



