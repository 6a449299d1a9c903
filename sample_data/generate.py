#!/usr/bin/env python3
"""Generate the synthetic DICOM sample archive and its answer key.

Usage: ``python sample_data/generate.py --out DIR --patients N --seed S``.

The archive looks like a hospital export (patient folders, accession-named
files) and plants identifiers everywhere a de-identifier has to look. The key
(``<DIR>_key.json`` beside ``DIR``) lists every planted value with all its
spellings, where each one was planted, the burned-in text boxes, the facts that
must survive, and a UID-free signature per file. Every name, ID, date, UID and
pixel is derived from the seed and no clock is read: the same seed gives
byte-identical files (for the same versions of pydicom, Pillow and the codecs).
All people, places and numbers are invented.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import itertools
import json
import random
import re
import shutil
import struct
import sys
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pydicom
import pydicom.datadict
import pydicom.multival
import pydicom.valuerep
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    MediaStorageDirectoryStorage,
    MRImageStorage,
    RLELossless,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    TwelveLeadECGWaveformStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

DEFAULT_SEED = 1729
DEFAULT_PATIENTS = 3
KEY_SCHEMA = "deid-sample-archive-key/1"
COMPREHENSIVE_SR = UID("1.2.840.10008.5.1.4.1.1.88.33")
STUDY_COMPONENT_MANAGEMENT = UID("1.2.840.10008.3.1.2.3.1")
MULTI_FRAME_TEXT_FRAME = 4  # 0-based frame that carries burned-in text

_FAMILY = [
    "ZORVATH", "QUILLERBY", "MARSHVANE", "PELLINGRAD", "KASSOWIK", "DRUMMELTON",
    "VELLACORT", "THISTLEWICK", "BRANNOCKE", "OSTERVELD", "FENWARDINE",
    "GALLOWMERE", "HOLLIBRAND", "JESPERANZ", "KILDRAVEN", "LOCKSPURRE",
]
_GIVEN = [
    "MARGOLENE", "THEODRIC", "ALVERINE", "CASSIMER", "BELLAMINA", "ORSWALDO",
    "PERPETUA", "GUNNHILDE", "LEOFRANC", "MIRABETH", "SEVRANTIN", "WINIFREDA",
    "ABELARDO", "ROSALIEKA", "TOBIASZEK", "ESMERALDA",
]
_FAMILY_PARTS = (
    ["ZOR", "QUIL", "MARSH", "PELL", "KASS", "DRUM", "VELL", "THIS", "BRAN", "OSTER", "FEN", "GALL", "HOLLI",
     "JESP", "KIL", "LOCK"],
    ["VA", "LER", "IN", "O", "EL", "AM", "IS", "UR"],
    ["TH", "BY", "VANE", "GRAD", "WIK", "TON", "CORT", "WICK"],
)
_GIVEN_PARTS = (
    ["MAR", "THEO", "ALV", "CASS", "BELL", "ORS", "PERP", "GUNN", "LEOF", "MIRA", "SEV", "WIN", "ABEL", "ROS",
     "TOB", "ESM"],
    ["GO", "DRI", "ERI", "IME", "AMI", "WAL", "ETU", "HIL"],
    ["LENE", "C", "NE", "R", "NA", "DO", "A", "DE"],
)
_STAFF = [
    "HALVORSTEEN^BRIDGETTA^^DR", "CRANDELLOW^ALASTAIRE^^DR", "PIMBERTON^PRUDENTIA",
    "WEXFORTH^CORNELIAN", "DUNSMORRIE^MAXIMILIA^^DR", "ABERNATHOL^DESMONDO",
    "FITZWARRIN^HORTENSIA^^DR", "GRIMSHOLT^LEOPOLDINE",
]
_STREETS = [
    "QUELLBROOK LANE", "MIDDENSHAW CLOSE", "TARNWICK AVENUE", "ASHCOMBE DRIFT",
    "PRENDERGAST ROW", "WILLOWMERE WAY", "CASTLEBRIGG ROAD", "FOXHOLLOW COURT",
]
_CITIES = [
    "MARROWDALE", "SPINDLETON", "HARKSBURY", "WEYLANDMOOR",
    "ELDERSTOKE", "QUINTONHAM", "BRACKENRIDGE", "TULLOCHVALE",
]
_INSTITUTIONS = [
    ("QUARRYMOOR GENERAL HOSPITAL", "88 FENWHISTLE ROAD, OAKENSHAWE ZX9 4QT"),
    ("BLACKWATTLE IMAGING CLINIC", "3 CORVELLAN SQUARE, PENDRAGO ZX2 7LB"),
]
_CT_TS = [ExplicitVRLittleEndian, JPEGLosslessSV1, JPEG2000Lossless]
_MR_TS = [ImplicitVRLittleEndian, JPEGLSLossless, RLELossless]
_USMF_TS = [RLELossless, JPEGLSLossless, ExplicitVRLittleEndian]
_SC_TS = [JPEG2000Lossless, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian]
_SR_TS = [DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian]
_RT_TS = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]
_ECG_TS = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRLittleEndian]
_SC_BIA = [None, "NO", "YES"]  # wrongly absent / wrongly NO / correct
_USMF_BIA = ["NO", None, "NO"]
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
_SKIPPED_BULK = {0x7FE00010, 0x54001010}  # pixel and waveform samples


# ---------------------------------------------------------------- identifiers
@dataclass
class Identifier:
    """One planted value and every spelling under which it may leak."""

    category: str
    value: str
    spellings: list[str]
    bounded: bool
    patient: str | None

    def pattern(self) -> re.Pattern[str]:
        body = "|".join(re.escape(s) for s in sorted(set(self.spellings), key=len, reverse=True))
        if self.bounded:
            return re.compile(rf"(?<![0-9.])(?:{body})(?![0-9])", re.IGNORECASE)
        return re.compile(f"(?:{body})", re.IGNORECASE)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(s for s in items if s))


def _cased(items: list[str]) -> list[str]:
    return _unique([v for s in items for v in (s, s.upper(), s.lower())])


def person_spellings(pn: str) -> list[str]:
    parts = [p for p in pn.split("^")]
    family, given = parts[0], parts[1]
    words = " ".join(p for p in parts if p)
    return _cased([pn, pn.rstrip("^"), words, f"{family}^{given}", f"{family} {given}",
                   f"{given} {family}", f"{family}, {given}", f"{family}_{given}",
                   family, given])


def date_spellings(d: dt.date) -> list[str]:
    return _unique([d.strftime(f) for f in ("%Y%m%d", "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%Y.%m.%d")])


def time_spellings(t: str) -> list[str]:
    return [t, f"{t[0:2]}:{t[2:4]}:{t[4:6]}"]


def phone_spellings(phone: str) -> list[str]:
    digits = re.sub(r"\D", "", phone)
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return _unique([phone, digits, f"{a}-{b}-{c}", f"{a} {b} {c}", f"{a}.{b}.{c}", f"({a}) {b}-{c}"])


def address_spellings(address: str) -> list[str]:
    parts = [p.strip() for p in address.split(",")]
    street_words = [w for w in parts[0].split() if w.isalpha() and len(w) >= 6]
    return _cased([address, *parts, *street_words])


class Registry:
    """Identifiers by id; one id per (patient, category, value)."""

    def __init__(self) -> None:
        self.items: dict[str, Identifier] = {}
        self._by_value: dict[tuple[str | None, str, str], str] = {}

    def add(self, ident: str, category: str, value: str, spellings: list[str],
            *, bounded: bool = False, patient: str | None = None) -> str:
        existing = self._by_value.get((patient, category, value))
        if existing is not None:
            return existing
        if ident in self.items:
            raise ValueError(f"identifier id {ident} reused for another value")
        self.items[ident] = Identifier(category, value, spellings, bounded, patient)
        self._by_value[(patient, category, value)] = ident
        return ident

    def date(self, ident: str, d: dt.date, patient: str | None, category: str = "date") -> str:
        return self.add(ident, category, d.strftime("%Y%m%d"), date_spellings(d), bounded=True, patient=patient)

    def time(self, ident: str, t: str, patient: str | None) -> str:
        return self.add(ident, "time", t, time_spellings(t), bounded=True, patient=patient)

    def datetime(self, ident: str, value: str, patient: str | None) -> str:
        return self.add(ident, "datetime", value, [value], bounded=True, patient=patient)

    def uid(self, ident: str, value: str, patient: str | None) -> str:
        return self.add(ident, "uid", value, [value], bounded=True, patient=patient)

    def person(self, ident: str, pn: str, patient: str | None, category: str) -> str:
        return self.add(ident, category, pn, person_spellings(pn), patient=patient)

    def plain(self, ident: str, value: str, patient: str | None, category: str) -> str:
        return self.add(ident, category, value, _cased([value]), patient=patient)


# -------------------------------------------------------------- the world
@dataclass
class Patient:
    label: str
    index: int
    name: str
    pid: str
    other_pid: str
    birth: dt.date
    sex: str
    address: str
    phone: str
    institution: int
    staff: list[str]

    @property
    def family(self) -> str:
        return self.name.split("^")[0]

    @property
    def given(self) -> str:
        return self.name.split("^")[1]

    @property
    def spaced(self) -> str:
        return f"{self.family} {self.given}"

    @property
    def folder(self) -> str:
        return f"{self.family}_{self.given}"

    def age_at(self, d: dt.date) -> str:
        years = d.year - self.birth.year - ((d.month, d.day) < (self.birth.month, self.birth.day))
        return f"{years:03d}Y"


@dataclass
class Study:
    label: str
    uid: str
    date: dt.date
    time: str
    accession: str
    requested_procedure_id: str
    sps_id: str
    description: str
    code: tuple[str, str]
    series_count: int = 0

    @property
    def da(self) -> str:
        return self.date.strftime("%Y%m%d")

    @property
    def folder(self) -> str:
        return f"{self.da}_{self.accession}"


@dataclass
class Series:
    label: str
    uid: str
    number: int
    modality: str
    description: str
    time: str
    folder: str


@dataclass
class FileRecord:
    path: str
    kind: str
    iod: str
    patient: str | None
    study: str | None = None
    series: str | None = None
    defect: str | None = None
    match: dict[str, Any] | None = None
    burned_in: list[dict[str, Any]] = field(default_factory=list)
    extra_plants: list[tuple[str, str]] = field(default_factory=list)
    references: list[dict[str, str]] = field(default_factory=list)
    burned_in_annotation: str | None = None


class Archive:
    """Builds the files; everything random comes from the seed."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.seed = seed
        self.rng = random.Random(seed)
        self.reg = Registry()
        self.records: dict[str, FileRecord] = {}
        self.written: dict[str, Dataset] = {}
        self.ct_paths: dict[str, list[str]] = {}
        self._used: set[str] = set()
        self.font = ImageFont.load_default(size=10)

    # deterministic helpers
    def _digest(self, label: str) -> bytes:
        return hashlib.sha256(f"{self.seed}/{label}".encode()).digest()

    def make_uid(self, label: str) -> str:
        return f"2.25.{int.from_bytes(self._digest(label)[:16], 'big')}"

    def np_rng(self, label: str) -> np.random.Generator:
        return np.random.default_rng(int.from_bytes(self._digest(label)[:8], "big"))

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def _fresh(self, draw: Any) -> Any:
        """A value not drawn before (while that is easy), so spellings stay unambiguous."""
        value = draw()
        for _ in range(20):
            if str(value) not in self._used:
                break
            value = draw()
        self._used.add(str(value))
        return value

    def clock(self) -> str:
        return str(self._fresh(lambda: f"{self.rng.randint(7, 18):02d}{self.rng.randint(0, 59):02d}"
                                        f"{self.rng.randint(0, 59):02d}"))

    def day(self, start: int, end: int) -> dt.date:
        first = dt.date(start, 1, 1)
        span = (dt.date(end, 1, 1) - first).days
        day: dt.date = self._fresh(lambda: first + dt.timedelta(days=self.rng.randrange(span)))
        return day

    # writing
    def write(self, ds: Dataset, record: FileRecord, ts: str, *, preamble: bytes | None = None) -> None:
        if not hasattr(ds, "file_meta"):
            ds.file_meta = FileMetaDataset()
        meta = ds.file_meta
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ts
        meta.SourceApplicationEntityTitle = "QMGH_PACS"
        ds.preamble = preamble if preamble is not None else b"\0" * 128
        target = self.root / record.path
        target.parent.mkdir(parents=True, exist_ok=True)
        pydicom.dcmwrite(target, ds, enforce_file_format=True)
        record.match = signature(ds)
        self.records[record.path] = record
        for bulk in ("PixelData", "EncapsulatedDocument", "WaveformSequence"):
            if bulk in ds:
                delattr(ds, bulk)  # keep memory flat on large archives; the key needs headers only
        self.written[record.path] = ds


def signature(ds: Dataset) -> dict[str, Any]:
    """The UID-free pairing signature (same fields as pipeline.evaluate.score)."""
    ipp = ds.get("ImagePositionPatient")
    frames = ds.get("NumberOfFrames")
    number = ds.get("InstanceNumber")
    return {
        "SOPClassUID": str(ds.SOPClassUID),
        "InstanceNumber": None if number in (None, "") else int(number),
        "ImagePositionPatient": None if not ipp else [round(float(v), 4) for v in ipp],
        "Rows": ds.get("Rows"),
        "Columns": ds.get("Columns"),
        "NumberOfFrames": None if frames in (None, "") else int(frames),
    }


# -------------------------------------------------------------- module helpers
def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _sop_common(ds: Dataset, sop_class: str, sop_uid: str, study: Study, number: int) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = study.da
    ds.InstanceCreationTime = study.time
    ds.InstanceNumber = number


def _patient_module(ds: Dataset, p: Patient) -> None:
    ds.PatientName = p.name
    ds.PatientID = p.pid
    ds.IssuerOfPatientID = "QMGH"
    ds.PatientBirthDate = p.birth.strftime("%Y%m%d")
    ds.PatientSex = p.sex
    ds.PatientAddress = p.address
    ds.PatientTelephoneNumbers = p.phone
    other = Dataset()
    other.PatientID = p.other_pid
    other.IssuerOfPatientID = "QMGH_LEGACY"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])


def _study_module(ds: Dataset, p: Patient, st: Study) -> None:
    ds.StudyInstanceUID = st.uid
    ds.StudyDate = st.da
    ds.StudyTime = st.time
    ds.AccessionNumber = st.accession
    ds.StudyID = st.requested_procedure_id
    ds.StudyDescription = st.description
    ds.ReferringPhysicianName = p.staff[0]
    ident = Dataset()
    person = _code(f"QS{p.index:02d}01", "99QMGH", p.staff[0])
    ident.PersonIdentificationCodeSequence = Sequence([person])
    ident.InstitutionName = _INSTITUTIONS[p.institution][0]
    ds.ReferringPhysicianIdentificationSequence = Sequence([ident])
    ds.PatientAge = p.age_at(st.date)
    ds.AdditionalPatientHistory = (
        f"Referred by {p.staff[0].split('^')[0]}; legacy MRN {p.other_pid}; "
        f"call {p.phone}; symptoms since {st.date.strftime('%m/%d/%Y')}"
    )


def _series_module(ds: Dataset, p: Patient, st: Study, se: Series) -> None:
    ds.Modality = se.modality
    ds.SeriesInstanceUID = se.uid
    ds.SeriesNumber = se.number
    ds.SeriesDate = st.da
    ds.SeriesTime = se.time
    ds.SeriesDescription = se.description
    ds.PerformingPhysicianName = p.staff[1]
    ds.OperatorsName = p.staff[2]
    request = Dataset()
    request.AccessionNumber = st.accession
    request.RequestedProcedureID = st.requested_procedure_id
    request.ScheduledProcedureStepID = st.sps_id
    request.ScheduledProcedureStepDescription = f"{st.code[1]} for {p.family}"
    protocol = _code(st.code[0], "99QMGH", f"{st.code[1]} {p.spaced}")
    request.ScheduledProtocolCodeSequence = Sequence([protocol])
    ds.RequestAttributesSequence = Sequence([request])


def _equipment(ds: Dataset, p: Patient, station: str) -> None:
    name, address = _INSTITUTIONS[p.institution]
    ds.Manufacturer = "SYNTHETICA"
    ds.ManufacturerModelName = "SAMPLER 3"
    ds.SoftwareVersions = "3.0"
    ds.InstitutionName = name
    ds.InstitutionAddress = address
    ds.StationName = station
    ds.InstitutionalDepartmentName = "RADIOLOGY"


def _private_tags(ds: Dataset, p: Patient, st: Study) -> None:
    """A private block with its creator, an orphan element, a private sequence."""
    ds.add_new(0x00090010, "LO", "QMGH PACS 2.1")
    ds.add_new(0x00091001, "LO", p.name)
    ds.add_new(0x00091002, "LO", p.pid)
    ds.add_new(0x00111010, "LO", f"MRN {p.pid}")  # orphan: no (0011,0010) creator
    item = Dataset()
    item.PatientName = p.name
    other = Dataset()
    other.PatientID = p.other_pid
    item.OtherPatientIDsSequence = Sequence([other])
    item.add_new(0x00130010, "LO", "QMGH WORKLIST")
    item.add_new(0x00131011, "LO", st.accession)
    ds.add_new(0x00130010, "LO", "QMGH WORKLIST")
    ds.add_new(0x00131010, "SQ", Sequence([item]))


def _image_pixel(ds: Dataset, rows: int, cols: int, bits: int, samples: int = 1) -> None:
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0


def _set_pixels(ds: Dataset, arr: np.ndarray, ts: str) -> None:
    """Store `arr` in `ds` under transfer syntax `ts`."""
    if ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        ds.PixelData = arr.tobytes()
    elif ts == JPEGLosslessSV1:
        frames = arr if "NumberOfFrames" in ds else arr[None]
        ds.PixelData = encapsulate([
            imagecodecs.jpeg8_encode(f, lossless=True, bitspersample=ds.BitsStored, predictor=1)
            for f in frames
        ])
    elif ts == JPEGBaseline8Bit:
        frames = arr if "NumberOfFrames" in ds else arr[None]
        encoded = []
        for f in frames:
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="JPEG", quality=90, subsampling=1)
            encoded.append(buf.getvalue())
        ds.PixelData = encapsulate(encoded)
        ds.PhotometricInterpretation = "YBR_FULL_422" if ds.SamplesPerPixel == 3 else "MONOCHROME2"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        plugin = {JPEG2000Lossless: "pylibjpeg", JPEGLSLossless: "pyjpegls", RLELossless: "pydicom"}[ts]
        ds.compress(ts, arr, encoding_plugin=plugin, generate_instance_uid=False)


def _draw_text(img: Image.Image, lines: list[str], origin: tuple[int, int], font: Any,
               fill: int | tuple[int, int, int]) -> list[int]:
    """Draw `lines` and return their union box [x0, y0, x1, y1) with a 1 px margin."""
    draw = ImageDraw.Draw(img)
    x, y = origin
    boxes = []
    for line in lines:
        draw.text((x, y), line, font=font, fill=fill)
        boxes.append(draw.textbbox((x, y), line, font=font))
        y += 11
    x0 = max(0, min(b[0] for b in boxes) - 1)
    y0 = max(0, min(b[1] for b in boxes) - 1)
    x1 = min(img.width, max(b[2] for b in boxes) + 1)
    y1 = min(img.height, max(b[3] for b in boxes) + 1)
    if x1 >= img.width or y1 >= img.height:
        raise ValueError("burned-in text does not fit the image")
    return [x0, y0, x1, y1]


# ------------------------------------------------------------------ one patient
class PatientBuilder:
    def __init__(self, archive: Archive, p: Patient) -> None:
        self.a = archive
        self.p = p
        self.reg = archive.reg
        self._register_patient()

    def _register_patient(self) -> None:
        p, reg, lab = self.p, self.reg, self.p.label
        reg.person(f"{lab}.name", p.name, lab, "patient_name")
        reg.plain(f"{lab}.id", p.pid, lab, "patient_id")
        reg.plain(f"{lab}.other_id", p.other_pid, lab, "other_patient_id")
        reg.date(f"{lab}.birth_date", p.birth, lab, "birth_date")
        reg.add(f"{lab}.address", "address", p.address, address_spellings(p.address), patient=lab)
        reg.add(f"{lab}.phone", "phone", p.phone, phone_spellings(p.phone), patient=lab)

    def study(self, n: int, code: tuple[str, str], description: str) -> Study:
        lab = f"{self.p.label}-ST{n}"
        st = Study(lab, self.a.make_uid(lab), self.a.day(2015, 2024), self.a.clock(),
                   f"QA{self.a.digits(8)}", f"RP{self.a.digits(7)}", f"SPS{self.a.digits(6)}",
                   description, code)
        self.reg.uid(f"{lab}.uid", st.uid, self.p.label)
        self.reg.date(f"{lab}.date", st.date, self.p.label)
        self.reg.time(f"{lab}.time", st.time, self.p.label)
        self.reg.plain(f"{lab}.accession", st.accession, self.p.label, "accession")
        self.reg.plain(f"{lab}.rp_id", st.requested_procedure_id, self.p.label, "request_id")
        self.reg.plain(f"{lab}.sps_id", st.sps_id, self.p.label, "request_id")
        return st

    def series(self, st: Study, modality: str, description: str) -> Series:
        st.series_count += 1
        lab = f"{st.label}-SE{st.series_count}"
        hh, mm, ss = int(st.time[:2]), int(st.time[2:4]) + 3 * st.series_count, int(st.time[4:])
        time = f"{hh + mm // 60:02d}{mm % 60:02d}{ss:02d}"
        se = Series(lab, self.a.make_uid(lab), st.series_count, modality, description, time,
                    f"{modality}_{st.series_count}")
        self.reg.uid(f"{lab}.uid", se.uid, self.p.label)
        self.reg.time(f"{lab}.time", se.time, self.p.label)
        return se

    def base(self, sop_class: str, st: Study, se: Series, number: int, label: str, station: str) -> Dataset:
        ds = Dataset()
        sop_uid = self.a.make_uid(label)
        self.reg.uid(f"{label}.uid", sop_uid, self.p.label)
        _sop_common(ds, sop_class, sop_uid, st, number)
        _patient_module(ds, self.p)
        _study_module(ds, self.p, st)
        _series_module(ds, self.p, st, se)
        _equipment(ds, self.p, station)
        return ds

    def record(self, st: Study, se: Series, name: str, iod: str) -> FileRecord:
        path = f"{self.p.folder}/{st.folder}/{se.folder}/{name}"
        return FileRecord(path, "good", iod, self.p.label, st.label, se.label)

    def acquisition(self, ds: Dataset, st: Study, se: Series) -> None:
        ds.AcquisitionDate = st.da
        ds.AcquisitionTime = se.time
        ds.ContentDate = st.da
        ds.ContentTime = se.time
        ds.AcquisitionDateTime = f"{st.da}{se.time}"
        self.reg.datetime(f"{se.label}.acq_datetime", ds.AcquisitionDateTime, self.p.label)

    def pixel_plants(self, record: FileRecord, plane: str, frame: int, box: list[int], idents: list[str]) -> None:
        record.burned_in.append({"plane": plane, "frame": frame, "box": box, "identifiers": idents})
        record.extra_plants.extend((i, plane) for i in idents)

    # --------------------------------------------------------------- IODs
    def ct_series(self, st: Study, slices: int) -> list[str]:
        p = self.p
        ts = _CT_TS[p.index % 3]
        se = self.series(st, "CT", f"AXIAL 5MM {st.accession}")
        for_uid = self.a.make_uid(f"{se.label}.for")
        self.reg.uid(f"{se.label}.for", for_uid, p.label)
        paths = []
        rng = self.a.np_rng(se.label)
        yy, xx = np.mgrid[0:64, 0:64]
        for i in range(slices):
            label = f"{se.label}-IM{i + 1}"
            ds = self.base(CTImageStorage, st, se, i + 1, label, "QMGH-CT01")
            self.acquisition(ds, st, se)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.FrameOfReferenceUID = for_uid
            ds.PositionReferenceIndicator = ""
            z = -40.0 - 200.0 * p.index - 5.0 * i
            ds.ImagePositionPatient = ["-160.0", "-160.0", f"{z:.1f}"]
            ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
            ds.SliceLocation = f"{z:.1f}"
            ds.SliceThickness = "5.0"
            ds.PixelSpacing = ["5.0", "5.0"]
            ds.KVP = "120"
            ds.RescaleIntercept = "-1024"
            ds.RescaleSlope = "1"
            ds.RescaleType = "HU"
            ds.BurnedInAnnotation = "NO"
            ds.ImageComments = f"Pt {p.given} {p.family} DOB {p.birth.strftime('%d/%m/%Y')}"
            _image_pixel(ds, 64, 64, 12)
            hu = np.full((64, 64), -1000.0)
            hu[((yy - 32) / 20) ** 2 + ((xx - 32) / 27) ** 2 <= 1] = 40
            lung_r = 6 + i
            hu[((yy - 30) / (lung_r + 4)) ** 2 + ((xx - 20) / lung_r) ** 2 <= 1] = -820
            hu[((yy - 30) / (lung_r + 4)) ** 2 + ((xx - 44) / lung_r) ** 2 <= 1] = -820
            hu[(yy - 46) ** 2 + (xx - 32) ** 2 <= 16] = 700
            hu += rng.normal(0, 8, (64, 64))
            arr = np.clip(hu + 1024, 0, 4095).astype(np.uint16)
            _private_tags(ds, p, st)
            if i == 0:
                ds.IconImageSequence = Sequence([self.icon()])
            _set_pixels(ds, arr, ts)
            record = self.record(st, se, f"{st.accession}_{i + 1:04d}.dcm", "CT Image Storage")
            record.burned_in_annotation = "NO"
            self.a.write(ds, record, ts)
            paths.append(record.path)
        self.a.ct_paths.setdefault(p.label, paths)
        return paths

    def icon(self) -> Dataset:
        icon = Dataset()
        _image_pixel(icon, 16, 16, 8)
        icon.PixelData = bytes(range(0, 256, 1))
        icon.ImageComments = f"thumbnail {self.p.name}"
        return icon

    def mr_series(self, st: Study, slices: int) -> None:
        p = self.p
        ts = _MR_TS[p.index % 3]
        se = self.series(st, "MR", "T2 AX")
        for_uid = self.a.make_uid(f"{se.label}.for")
        self.reg.uid(f"{se.label}.for", for_uid, p.label)
        rng = self.a.np_rng(se.label)
        rows, cols = 96, 80
        yy, xx = np.mgrid[0:rows, 0:cols]
        for i in range(slices):
            label = f"{se.label}-IM{i + 1}"
            ds = self.base(MRImageStorage, st, se, i + 1, label, "QMGH-MR02")
            self.acquisition(ds, st, se)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "2D"
            ds.EchoTime = "90"
            ds.RepetitionTime = "4000"
            ds.MagneticFieldStrength = "1.5"
            ds.FrameOfReferenceUID = for_uid
            ds.PositionReferenceIndicator = ""
            z = 10.0 - 200.0 * p.index + 4.0 * i
            ds.ImagePositionPatient = ["-100.0", "-120.0", f"{z:.1f}"]
            ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
            ds.SliceThickness = "4.0"
            ds.PixelSpacing = ["2.5", "2.6"]
            _image_pixel(ds, rows, cols, 12)
            head = ((yy - 48) / 40) ** 2 + ((xx - 40) / 32) ** 2 <= 1
            img = np.where(head, 600.0, 0.0)
            img[((yy - 48) / 10) ** 2 + ((xx - 40) / (6 + i)) ** 2 <= 1] = 1500
            img += np.abs(rng.normal(0, 20, (rows, cols)))
            arr = np.clip(img, 0, 4095).astype(np.uint16)
            ds.add_new(0x00111010, "LO", f"MRN {p.pid}")  # orphan private element
            ds.add_new(0x00190010, "LO", "QMGH MR 1.0")
            ds.add_new(0x00191005, "LO", f"{p.family} {st.accession}")
            record = self.record(st, se, f"{st.accession}_{se.number}{i + 1:03d}.dcm", "MR Image Storage")
            if i == 0:
                self.overlay(ds, record, rows, cols)
            _set_pixels(ds, arr, ts)
            self.a.write(ds, record, ts)

    def overlay(self, ds: Dataset, record: FileRecord, rows: int, cols: int) -> None:
        img = Image.new("1", (cols, rows), 0)
        box = _draw_text(img, [self.p.family], (3, 70), ImageFont.load_default(size=9), 1)
        mask = np.asarray(img, dtype=np.uint8)
        ds.add_new(0x60000010, "US", rows)
        ds.add_new(0x60000011, "US", cols)
        ds.add_new(0x60000022, "LO", f"annotation {self.p.name}")
        ds.add_new(0x60000040, "CS", "G")
        ds.add_new(0x60000050, "SS", [1, 1])
        ds.add_new(0x60000100, "US", 1)
        ds.add_new(0x60000102, "US", 0)
        ds.add_new(0x60001500, "LO", self.p.family)
        ds.add_new(0x60003000, "OW", pack_bits(mask))
        self.pixel_plants(record, "overlay-6000", 0, box, [f"{self.p.label}.name"])

    def text_lines(self, st: Study) -> tuple[list[str], list[str]]:
        lab = self.p.label
        lines = [self.p.name, f"ID {self.p.pid}", st.date.strftime("%d/%m/%Y")]
        return lines, [f"{lab}.name", f"{lab}.id", self.reg.date(f"{st.label}.date", st.date, lab)]

    def us_single(self, st: Study) -> None:
        p = self.p
        se = self.series(st, "US", "ABDOMEN")
        label = f"{se.label}-IM1"
        ds = self.base(UltrasoundImageStorage, st, se, p.index + 1, label, "QMGH-US03")
        self.acquisition(ds, st, se)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
        ds.BurnedInAnnotation = "YES"
        rows, cols = 144, 192
        _image_pixel(ds, rows, cols, 8, samples=3)
        rng = self.a.np_rng(label)
        yy, xx = np.mgrid[0:rows, 0:cols]
        fan = (np.hypot(yy - 20, xx - 96) < 120) & (np.abs(xx - 96) < (yy - 20) * 0.9) & (yy > 40)
        gray = np.where(fan, rng.integers(20, 160, (rows, cols)), 0).astype(np.uint8)
        img = Image.fromarray(np.stack([gray] * 3, axis=-1), "RGB")
        lines, idents = self.text_lines(st)
        box = _draw_text(img, lines, (4, 2), self.a.font, (255, 255, 0))
        arr = np.asarray(img).copy()
        _set_pixels(ds, arr, JPEGBaseline8Bit)
        ds.add_new(0xFFFCFFFC, "OB", f"{p.name}\0".encode())
        record = self.record(st, se, f"{st.accession}_US1.dcm", "Ultrasound Image Storage")
        record.burned_in_annotation = "YES"
        self.pixel_plants(record, "pixels", 0, box, idents)
        self.a.write(ds, record, JPEGBaseline8Bit)

    def us_multiframe(self, st: Study) -> None:
        p = self.p
        ts = _USMF_TS[p.index % 3]
        se = self.series(st, "US", "ABDOMEN CINE")
        label = f"{se.label}-IM1"
        ds = self.base(UltrasoundMultiFrameImageStorage, st, se, p.index + 1, label, "QMGH-US03")
        self.acquisition(ds, st, se)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
        bia = _USMF_BIA[p.index % 3]
        if bia is not None:
            ds.BurnedInAnnotation = bia
        rows, cols, frames = 96, 160, 10
        _image_pixel(ds, rows, cols, 8)
        ds.NumberOfFrames = frames
        ds.FrameTime = "33.3"
        ds.FrameIncrementPointer = 0x00181063
        rng = self.a.np_rng(label)
        yy, xx = np.mgrid[0:rows, 0:cols]
        stack = []
        box: list[int] = []
        lines, idents = self.text_lines(st)
        for f in range(frames):
            blob = np.hypot(yy - 60, xx - 60 - 4 * f) < 18
            gray = np.where(blob, 140, rng.integers(10, 60, (rows, cols))).astype(np.uint8)
            gray[:36] = 0
            img = Image.fromarray(gray, "L")
            if f == MULTI_FRAME_TEXT_FRAME:
                box = _draw_text(img, lines, (3, 1), self.a.font, 230)
            stack.append(np.asarray(img))
        _set_pixels(ds, np.stack(stack), ts)
        record = self.record(st, se, f"{st.accession}_US2.dcm", "Ultrasound Multi-frame Image Storage")
        record.burned_in_annotation = bia
        self.pixel_plants(record, "pixels", MULTI_FRAME_TEXT_FRAME, box, idents)
        self.a.write(ds, record, ts)

    def secondary_capture(self, st: Study) -> None:
        p = self.p
        ts = _SC_TS[p.index % 3]
        se = self.series(st, "OT", f"SCREEN CAPTURE {p.spaced}")
        label = f"{se.label}-IM1"
        ds = self.base(SecondaryCaptureImageStorage, st, se, p.index + 1, label, "QMGH-WS09")
        ds.ConversionType = "WSD"
        ds.ContentDate = st.da
        ds.ContentTime = se.time
        bia = _SC_BIA[p.index % 3]
        if bia is not None:
            ds.BurnedInAnnotation = bia
        rows, cols = 128, 160
        _image_pixel(ds, rows, cols, 8)
        rng = self.a.np_rng(label)
        gray = rng.integers(90, 110, (rows, cols)).astype(np.uint8)
        gray[80:] = 0
        img = Image.fromarray(gray, "L")
        lines, idents = self.text_lines(st)
        box = _draw_text(img, lines, (4, 84), self.a.font, 255)
        _set_pixels(ds, np.asarray(img).copy(), ts)
        ds.add_new(0xFFFCFFFC, "OB", f"PADDING {p.name} {p.pid}".encode())
        record = self.record(st, se, f"{st.accession}_SC1.dcm", "Secondary Capture Image Storage")
        record.burned_in_annotation = bia
        self.pixel_plants(record, "pixels", 0, box, idents)
        self.a.write(ds, record, ts)

    def rt_structure_set(self, st: Study, ct_paths: list[str]) -> None:
        p = self.p
        ts = _RT_TS[p.index % 3]
        se = self.series(st, "RTSTRUCT", "PLANNING CONTOURS")
        cts = [self.a.written[path] for path in ct_paths]
        label = f"{se.label}-IM1"
        ds = self.base(RTStructureSetStorage, st, se, p.index + 1, label, "QMGH-TPS1")
        del ds.RequestAttributesSequence
        rt_date = st.date + dt.timedelta(days=2)
        ds.StructureSetLabel = "CHEST PLAN"
        ds.StructureSetName = p.spaced
        ds.StructureSetDescription = f"Contours for {p.pid}"
        ds.StructureSetDate = rt_date.strftime("%Y%m%d")
        ds.StructureSetTime = se.time
        self.reg.date(f"{se.label}.date", rt_date, p.label)

        def image_ref(ct: Dataset) -> Dataset:
            ref = Dataset()
            ref.ReferencedSOPClassUID = ct.SOPClassUID
            ref.ReferencedSOPInstanceUID = ct.SOPInstanceUID
            return ref

        series_ref = Dataset()
        series_ref.SeriesInstanceUID = cts[0].SeriesInstanceUID
        series_ref.ContourImageSequence = Sequence([image_ref(ct) for ct in cts])
        study_ref = Dataset()
        study_ref.ReferencedSOPClassUID = STUDY_COMPONENT_MANAGEMENT
        study_ref.ReferencedSOPInstanceUID = cts[0].StudyInstanceUID
        study_ref.RTReferencedSeriesSequence = Sequence([series_ref])
        for_ref = Dataset()
        for_ref.FrameOfReferenceUID = cts[0].FrameOfReferenceUID
        for_ref.RTReferencedStudySequence = Sequence([study_ref])
        ds.ReferencedFrameOfReferenceSequence = Sequence([for_ref])
        roi = Dataset()
        roi.ROINumber = 1
        roi.ReferencedFrameOfReferenceUID = cts[0].FrameOfReferenceUID
        roi.ROIName = "GTV"
        roi.ROIGenerationAlgorithm = "MANUAL"
        ds.StructureSetROISequence = Sequence([roi])
        contours = []
        for ct in cts:
            c = Dataset()
            c.ContourImageSequence = Sequence([image_ref(ct)])
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = 4
            z = float(ct.ImagePositionPatient[2])
            c.ContourData = [f"{v:.1f}" for pt in ((-20, -20), (20, -20), (20, 20), (-20, 20)) for v in (*pt, z)]
            contours.append(c)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = 1
        roi_contour.ROIDisplayColor = [255, 0, 0]
        roi_contour.ContourSequence = Sequence(contours)
        ds.ROIContourSequence = Sequence([roi_contour])
        obs = Dataset()
        obs.ObservationNumber = 1
        obs.ReferencedROINumber = 1
        obs.RTROIInterpretedType = "GTV"
        obs.ROIInterpreter = p.staff[1]
        ds.RTROIObservationsSequence = Sequence([obs])
        record = self.record(st, se, f"{st.accession}_RS.dcm", "RT Structure Set Storage")
        base = "ReferencedFrameOfReferenceSequence[0]"
        study_path = f"{base}.RTReferencedStudySequence[0]"
        series_path = f"{study_path}.RTReferencedSeriesSequence[0]"
        refs = [(f"{base}.FrameOfReferenceUID", ct_paths[0], "FrameOfReferenceUID"),
                (f"{study_path}.ReferencedSOPInstanceUID", ct_paths[0], "StudyInstanceUID"),
                (f"{series_path}.SeriesInstanceUID", ct_paths[0], "SeriesInstanceUID"),
                ("StructureSetROISequence[0].ReferencedFrameOfReferenceUID", ct_paths[0], "FrameOfReferenceUID")]
        for i, path in enumerate(ct_paths):
            refs.append((f"{series_path}.ContourImageSequence[{i}].ReferencedSOPInstanceUID", path, "SOPInstanceUID"))
            refs.append((f"ROIContourSequence[0].ContourSequence[{i}].ContourImageSequence[0].ReferencedSOPInstanceUID",
                         path, "SOPInstanceUID"))
        record.references = [{"where": w, "target_file": t, "target_attribute": a} for w, t, a in refs]
        self.a.write(ds, record, ts)

    def structured_report(self, st: Study, ct_paths: list[str]) -> None:
        p = self.p
        ts = _SR_TS[p.index % 3]
        se = self.series(st, "SR", "RADIOLOGY REPORT")
        cts = [self.a.written[path] for path in ct_paths]
        label = f"{se.label}-IM1"
        ds = self.base(COMPREHENSIVE_SR, st, se, p.index + 1, label, "QMGH-RIS")
        report_date = st.date + dt.timedelta(days=1)
        self.reg.date(f"{se.label}.date", report_date, p.label)
        verified = f"{report_date.strftime('%Y%m%d')}{se.time}"
        self.reg.datetime(f"{se.label}.verified", verified, p.label)
        ds.ContentDate = report_date.strftime("%Y%m%d")
        ds.ContentTime = se.time
        ds.CompletionFlag = "COMPLETE"
        ds.VerificationFlag = "VERIFIED"
        observer = Dataset()
        observer.VerifyingObserverName = p.staff[3]
        observer.VerifyingObserverIdentificationCodeSequence = Sequence()
        observer.VerifyingOrganization = _INSTITUTIONS[p.institution][0]
        observer.VerificationDateTime = verified
        ds.VerifyingObserverSequence = Sequence([observer])
        ds.ReferencedPerformedProcedureStepSequence = Sequence()
        ds.PerformedProcedureCodeSequence = Sequence()
        request = Dataset()
        request.StudyInstanceUID = st.uid
        request.AccessionNumber = st.accession
        request.RequestedProcedureID = st.requested_procedure_id
        request.RequestedProcedureDescription = st.code[1]
        request.RequestedProcedureCodeSequence = Sequence()
        request.PlacerOrderNumberImagingServiceRequest = ""
        request.FillerOrderNumberImagingServiceRequest = ""
        ds.ReferencedRequestSequence = Sequence([request])
        evidence_series = Dataset()
        evidence_series.SeriesInstanceUID = cts[0].SeriesInstanceUID
        sops = []
        for ct in cts:
            ref = Dataset()
            ref.ReferencedSOPClassUID = ct.SOPClassUID
            ref.ReferencedSOPInstanceUID = ct.SOPInstanceUID
            sops.append(ref)
        evidence_series.ReferencedSOPSequence = Sequence(sops)
        evidence = Dataset()
        evidence.StudyInstanceUID = st.uid
        evidence.ReferencedSeriesSequence = Sequence([evidence_series])
        ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
        ds.ValueType = "CONTAINER"
        ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic Imaging Report")])
        ds.ContinuityOfContent = "SEPARATE"
        template = Dataset()
        template.MappingResource = "DCMR"
        template.TemplateIdentifier = "2000"
        ds.ContentTemplateSequence = Sequence([template])

        def item(rel: str, vt: str, concept: Dataset, **values: Any) -> Dataset:
            it = Dataset()
            it.RelationshipType = rel
            it.ValueType = vt
            it.ConceptNameCodeSequence = Sequence([concept])
            for key, value in values.items():
                setattr(it, key, value)
            return it

        image = Dataset()
        image.ReferencedSOPClassUID = cts[0].SOPClassUID
        image.ReferencedSOPInstanceUID = cts[0].SOPInstanceUID
        findings = item("CONTAINS", "CONTAINER", _code("121070", "DCM", "Findings"), ContinuityOfContent="SEPARATE")
        findings.ContentSequence = Sequence([
            item("CONTAINS", "TEXT", _code("121071", "DCM", "Finding"),
                 TextValue=(f"{p.given} {p.family} (MRN {p.pid}, DOB {p.birth.strftime('%m/%d/%Y')}) "
                            f"scanned {st.date.isoformat()} at {_INSTITUTIONS[p.institution][0]}. "
                            f"Lives at {p.address}; phone {p.phone}. No acute findings.")),
            item("CONTAINS", "PNAME", _code("121029", "DCM", "Subject Name"), PersonName=p.name),
            item("CONTAINS", "IMAGE", _code("121112", "DCM", "Source of Measurement"),
                 ReferencedSOPSequence=Sequence([image])),
        ])
        ds.ContentSequence = Sequence([
            item("HAS OBS CONTEXT", "PNAME", _code("121008", "DCM", "Person Observer Name"), PersonName=p.staff[3]),
            item("HAS OBS CONTEXT", "PNAME", _code("121029", "DCM", "Subject Name"), PersonName=p.name),
            item("HAS OBS CONTEXT", "TEXT", _code("121030", "DCM", "Subject ID"), TextValue=p.pid),
            item("HAS OBS CONTEXT", "DATE", _code("121031", "DCM", "Subject Birth Date"),
                 Date=p.birth.strftime("%Y%m%d")),
            findings,
            item("CONTAINS", "TEXT", _code("121077", "DCM", "Conclusion"),
                 TextValue=f"Discussed with {p.staff[0].split('^')[0]} by phone."),
        ])
        record = self.record(st, se, f"{st.accession}_SR.dcm", "Comprehensive SR Storage")
        ev = "CurrentRequestedProcedureEvidenceSequence[0]"
        refs = [(f"{ev}.StudyInstanceUID", ct_paths[0], "StudyInstanceUID"),
                (f"{ev}.ReferencedSeriesSequence[0].SeriesInstanceUID", ct_paths[0], "SeriesInstanceUID"),
                ("ContentSequence[4].ContentSequence[2].ReferencedSOPSequence[0].ReferencedSOPInstanceUID",
                 ct_paths[0], "SOPInstanceUID"),
                ("ReferencedRequestSequence[0].StudyInstanceUID", ct_paths[0], "StudyInstanceUID")]
        refs += [(f"{ev}.ReferencedSeriesSequence[0].ReferencedSOPSequence[{i}].ReferencedSOPInstanceUID",
                  path, "SOPInstanceUID") for i, path in enumerate(ct_paths)]
        record.references = [{"where": w, "target_file": t, "target_attribute": a} for w, t, a in refs]
        self.a.write(ds, record, ts)

    def ecg(self, st: Study) -> None:
        p = self.p
        ts = _ECG_TS[p.index % 3]
        se = self.series(st, "ECG", "RESTING 12 LEAD")
        label = f"{se.label}-IM1"
        ds = self.base(TwelveLeadECGWaveformStorage, st, se, p.index + 1, label, "QMGH-ECG5")
        self.acquisition(ds, st, se)
        samples, rate = 500, 500
        t = np.arange(samples) / rate
        rng = self.a.np_rng(label)
        leads = [("1", "Lead I"), ("2", "Lead II"), ("61", "Lead III"), ("62", "aVR"), ("63", "aVL"),
                 ("64", "aVF"), ("3", "Lead V1"), ("4", "Lead V2"), ("5", "Lead V3"), ("6", "Lead V4"),
                 ("7", "Lead V5"), ("8", "Lead V6")]
        channels = []
        data = np.zeros((samples, len(leads)), dtype=np.int16)
        for c, (code, meaning) in enumerate(leads):
            beat = np.exp(-(((t % 0.8) - 0.3) ** 2) / 0.0004) * (600 + 40 * c)
            data[:, c] = (beat + 60 * np.sin(2 * np.pi * 1.25 * t) + rng.normal(0, 5, samples)).astype(np.int16)
            ch = Dataset()
            ch.ChannelSourceSequence = Sequence([_code(f"5.6.3-9-{code}", "SCPECG", meaning)])
            ch.ChannelSensitivity = "1"
            ch.ChannelSensitivityUnitsSequence = Sequence([_code("uV", "UCUM", "microvolt")])
            ch.ChannelSensitivityCorrectionFactor = "1"
            ch.ChannelBaseline = "0"
            ch.ChannelTimeSkew = "0"
            ch.WaveformBitsStored = 16
            channels.append(ch)
        wave = Dataset()
        wave.MultiplexGroupTimeOffset = "0"
        wave.WaveformOriginality = "ORIGINAL"
        wave.NumberOfWaveformChannels = len(leads)
        wave.NumberOfWaveformSamples = samples
        wave.SamplingFrequency = str(rate)
        wave.MultiplexGroupLabel = "RHYTHM"
        wave.ChannelDefinitionSequence = Sequence(channels)
        wave.WaveformBitsAllocated = 16
        wave.WaveformSampleInterpretation = "SS"
        wave.WaveformData = data.tobytes()
        ds.WaveformSequence = Sequence([wave])
        note = Dataset()
        note.UnformattedTextValue = f"Recorded for {p.spaced}, MRN {p.pid}"
        note.ReferencedWaveformChannels = [1, 0]
        ds.WaveformAnnotationSequence = Sequence([note])
        record = self.record(st, se, f"{st.accession}_ECG.dcm", "12-lead ECG Waveform Storage")
        self.a.write(ds, record, ts)

    def encapsulated_pdf(self, st: Study) -> None:
        p = self.p
        se = self.series(st, "DOC", "ECG REPORT")
        label = f"{se.label}-IM1"
        ds = self.base(EncapsulatedPDFStorage, st, se, p.index + 1, label, "QMGH-ECG5")
        self.acquisition(ds, st, se)
        ds.ConversionType = "SD"
        ds.BurnedInAnnotation = "YES"
        ds.DocumentTitle = f"ECG report {p.family}"
        ds.ConceptNameCodeSequence = Sequence()
        pdf = make_pdf([f"Patient: {p.name}", f"MRN: {p.pid}", f"DOB: {p.birth.isoformat()}",
                        f"Physician: {p.staff[0]}"], author=p.staff[0])
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
        ds.EncapsulatedDocumentLength = len(pdf)
        record = self.record(st, se, f"{st.accession}_DOC.dcm", "Encapsulated PDF Storage")
        preamble = f"QMGH EXPORT {p.pid} {p.family}".encode().ljust(128, b"\0")
        record.extra_plants.append((f"{p.label}.id", "preamble"))
        self.a.write(ds, record, ExplicitVRLittleEndian, preamble=preamble)

    def build(self, ct_slices: int, mr_slices: int) -> None:
        p = self.p
        ct = self.study(1, ("CTCHEST", "CT CHEST"), f"CT CHEST {p.family}")
        ct_paths = self.ct_series(ct, ct_slices)
        self.rt_structure_set(ct, ct_paths)
        self.structured_report(ct, ct_paths)
        mr = self.study(2, ("MRBRAIN", "MR BRAIN"), f"MR BRAIN {p.pid}")
        self.mr_series(mr, mr_slices)
        self.secondary_capture(mr)
        us = self.study(3, ("USABD", "US ABDOMEN"), "US ABDOMEN")
        self.us_single(us)
        self.us_multiframe(us)
        ecg = self.study(4, ("ECGREST", "RESTING ECG"), f"RESTING ECG {p.name}")
        self.ecg(ecg)
        self.encapsulated_pdf(ecg)


def make_pdf(lines: list[str], author: str) -> bytes:
    """A one-page PDF with `lines` as uncompressed text (so the bytes hold them)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    text = "BT /F1 11 Tf 20 120 Td " + " 0 -16 Td ".join(f"({esc(x)}) Tj" for x in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 320 150] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(text)} >>\nstream\n{text}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title (ECG report) /Author ({esc(author)}) >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


# ------------------------------------------------------------------ bad inputs
def build_bad_inputs(a: Archive, patients: list[Patient]) -> None:
    bad = a.root / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    p0 = patients[0]
    p1 = patients[1 % len(patients)]
    p2 = patients[2 % len(patients)]

    def record(name: str, defect: str, patient: Patient, iod: str) -> FileRecord:
        return FileRecord(f"bad/{name}", "bad", iod, patient.label, defect=defect)

    (bad / "empty.dcm").write_bytes(b"")
    a.records["bad/empty.dcm"] = record("empty.dcm", "empty", p0, "none")

    notes = (f"Export notes\nPatient {p0.name} ({p0.pid}), born {p0.birth.isoformat()}\n"
             f"Requested by {p0.staff[0]}\n").encode()
    (bad / "export_notes.txt").write_bytes(notes)
    a.records["bad/export_notes.txt"] = record("export_notes.txt", "not-dicom-text", p0, "none")

    # A CT instance cut off inside its pixel data.
    ds = _bad_image(a, p0, CTImageStorage, "bad-truncated", 901)
    ds.ImagePositionPatient = ["-160.0", "-160.0", "999.0"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["5.0", "5.0"]
    ds.SliceThickness = "5.0"
    buf = _to_bytes(ds, ExplicitVRLittleEndian)
    (bad / "truncated.dcm").write_bytes(buf[: len(buf) - 3000])
    rec = record("truncated.dcm", "truncated", p0, "CT Image Storage")
    rec.match = signature(ds)
    a.records[rec.path] = rec

    # A bare dataset: no preamble, no DICM prefix, no file meta.
    ds = _bad_image(a, p1, SecondaryCaptureImageStorage, "bad-raw", 902)
    raw = io.BytesIO()
    pydicom.dcmwrite(raw, ds, implicit_vr=True, little_endian=True)
    (bad / "raw_no_preamble.dcm").write_bytes(raw.getvalue())
    rec = record("raw_no_preamble.dcm", "no-preamble", p1, "Secondary Capture Image Storage")
    rec.match = signature(ds)
    a.records[rec.path] = rec

    # Invalid values: a DA holding garbage and a US element of odd length.
    ds = _bad_image(a, p2, SecondaryCaptureImageStorage, "bad-vr", 903)
    ds.ContentDate = "19000101"
    buf = _to_bytes(ds, ExplicitVRLittleEndian)
    da = b"\x08\x00\x23\x00DA\x08\x0019000101"
    us = b"\x28\x00\x02\x00US\x02\x00\x01\x00"
    if buf.count(da) != 1 or buf.count(us) != 1:
        raise RuntimeError("could not locate the elements to corrupt")
    buf = buf.replace(da, b"\x08\x00\x23\x00DA\x08\x00GARBAGE!").replace(us, b"\x28\x00\x02\x00US\x03\x00\x01\x00\x00")
    (bad / "invalid_vr.dcm").write_bytes(buf)
    rec = record("invalid_vr.dcm", "invalid-vr", p2, "Secondary Capture Image Storage")
    rec.match = signature(ds)
    a.records[rec.path] = rec

    (bad / "DICOMDIR").write_bytes(make_dicomdir(a, [a.written[k] for k in a.ct_paths[p0.label][:2]]))
    a.records["bad/DICOMDIR"] = record("DICOMDIR", "dicomdir", p0, "Media Storage Directory Storage")


def _bad_image(a: Archive, p: Patient, sop_class: str, label: str, number: int) -> Dataset:
    st = Study(label, a.make_uid(label), a.day(2015, 2024), a.clock(),
               f"QA{a.digits(8)}", f"RP{a.digits(7)}", f"SPS{a.digits(6)}", f"BAD INPUT {p.family}", ("X", "X"))
    se = Series(f"{label}-SE", a.make_uid(f"{label}-SE"), 1, "OT", "BAD", a.clock(), "x")
    ds = Dataset()
    _sop_common(ds, sop_class, a.make_uid(f"{label}-IM"), st, number)
    _patient_module(ds, p)
    _study_module(ds, p, st)
    _series_module(ds, p, st, se)
    _equipment(ds, p, "QMGH-WS09")
    _image_pixel(ds, 64, 64, 8)
    ds.PixelData = a.np_rng(label).integers(0, 255, (64, 64), dtype=np.uint8).tobytes()
    for level, uid in (("study", st.uid), ("series", se.uid), ("sop", ds.SOPInstanceUID)):
        a.reg.uid(f"{label}.{level}.uid", uid, p.label)
    a.reg.time(f"{label}.time", st.time, p.label)
    a.reg.time(f"{label}.series_time", se.time, p.label)
    a.reg.date(f"{label}.date", st.date, p.label)
    a.reg.plain(f"{label}.accession", st.accession, p.label, "accession")
    a.reg.plain(f"{label}.rp_id", st.requested_procedure_id, p.label, "request_id")
    a.reg.plain(f"{label}.sps_id", st.sps_id, p.label, "request_id")
    return ds


def _to_bytes(ds: Dataset, ts: str) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ts
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def make_dicomdir(a: Archive, instances: list[Dataset]) -> bytes:
    """A DICOMDIR for `instances` (one patient/study/series), offsets computed in two passes."""
    first = instances[0]

    def rec(kind: str, **values: Any) -> Dataset:
        r = Dataset()
        r.OffsetOfTheNextDirectoryRecord = 0
        r.RecordInUseFlag = 0xFFFF
        r.OffsetOfReferencedLowerLevelDirectoryEntity = 0
        r.DirectoryRecordType = kind
        for key, value in values.items():
            setattr(r, key, value)
        return r

    records = [
        rec("PATIENT", PatientName=first.PatientName, PatientID=first.PatientID,
            PatientBirthDate=first.PatientBirthDate),
        rec("STUDY", StudyDate=first.StudyDate, StudyTime=first.StudyTime, StudyDescription=first.StudyDescription,
            StudyInstanceUID=first.StudyInstanceUID, StudyID=first.StudyID, AccessionNumber=first.AccessionNumber),
        rec("SERIES", Modality=first.Modality, SeriesInstanceUID=first.SeriesInstanceUID,
            SeriesNumber=first.SeriesNumber),
    ]
    for n, inst in enumerate(instances):
        records.append(rec("IMAGE", ReferencedFileID=["PT000000", "ST000000", "SE000000", f"IM{n:06d}"],
                           ReferencedSOPClassUIDInFile=inst.SOPClassUID,
                           ReferencedSOPInstanceUIDInFile=inst.SOPInstanceUID,
                           ReferencedTransferSyntaxUIDInFile=ExplicitVRLittleEndian,
                           InstanceNumber=inst.InstanceNumber))
    ds = Dataset()
    ds.FileSetID = "QMGHEXPORT"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = Sequence(records)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    ds.file_meta.MediaStorageSOPInstanceUID = a.make_uid("dicomdir")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"\0" * 128
    for _ in range(2):  # the second pass writes the offsets measured in the first
        buf = io.BytesIO()
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
        back = pydicom.dcmread(io.BytesIO(buf.getvalue()))
        tells = [item.seq_item_tell for item in back.DirectoryRecordSequence]
        ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = tells[0]
        ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = tells[0]
        for i in range(3):
            records[i].OffsetOfReferencedLowerLevelDirectoryEntity = tells[i + 1]
        for i in range(3, len(records) - 1):
            records[i].OffsetOfTheNextDirectoryRecord = tells[i + 1]
    return buf.getvalue()


# ------------------------------------------------------------------ the key
def _walk(ds: Dataset, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Yield (attribute path, text) for every element value, depth first."""
    for elem in ds:
        is_overlay_data = (elem.tag.group & 0xFF01) == 0x6000 and elem.tag.element == 0x3000
        if elem.tag in _SKIPPED_BULK or is_overlay_data:
            continue
        if elem.tag == 0xFFFCFFFC:
            name = "trailing-padding"
        else:
            keyword = pydicom.datadict.keyword_for_tag(elem.tag)  # also names repeating groups (60xx)
            name = prefix + (keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})")
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                yield from _walk(item, f"{name}[{i}].")
        elif elem.VR in _BINARY_VRS or isinstance(elem.value, bytes):
            yield name, bytes(elem.value or b"").decode("latin-1")
        elif elem.value is not None:
            value = elem.value
            if isinstance(value, list | pydicom.multival.MultiValue):
                yield name, "\\".join(str(v) for v in value)
            else:
                yield name, str(value)


def _inflated(raw: bytes) -> bytes:
    """The dataset bytes of a deflated file, inflated (b'' if not deflated)."""
    if raw[128:132] != b"DICM":
        return b""
    (meta_len,) = struct.unpack("<I", raw[140:144])
    start = 144 + meta_len
    if DeflatedExplicitVRLittleEndian.encode() not in raw[132:start]:
        return b""
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw[start:])


def scan_plants(a: Archive, record: FileRecord, patterns: dict[str, re.Pattern[str]]) -> list[dict[str, str]]:
    """Find where each identifier sits in the written file (and its path)."""
    target = a.root / record.path
    raw = target.read_bytes()
    places: list[tuple[str, str]] = [("path", record.path)]
    if record.kind == "good":
        back = pydicom.dcmread(target)
        places.append(("preamble", (back.preamble or b"").decode("latin-1")))
        places += [(f"file-meta.{w}", t) for w, t in _walk(back.file_meta)]
        places += list(_walk(back))
    else:
        places.append(("bytes", raw.decode("latin-1")))
    blob = "\0".join(t for _, t in places)
    plants = {(i, w) for i, w in record.extra_plants}
    for ident, pattern in patterns.items():
        if not pattern.search(blob):
            continue
        plants.update((ident, where) for where, text in places if pattern.search(text))
    return [{"identifier": i, "category": a.reg.items[i].category, "where": w} for i, w in sorted(plants)]


def build_key(a: Archive, patients: int) -> dict[str, Any]:
    patterns: dict[str | None, dict[str, re.Pattern[str]]] = {}
    for ident, item in a.reg.items.items():
        patterns.setdefault(item.patient, {})[ident] = item.pattern()
    shared = patterns.get(None, {})
    files: dict[str, Any] = {}
    studies: dict[str, list[str]] = {}
    series: dict[str, list[str]] = {}
    for path in sorted(a.records):
        r = a.records[path]
        entry: dict[str, Any] = {
            "kind": r.kind,
            # An encapsulated document cannot be cleaned: a de-identifier must quarantine it.
            # A complete dataset stored without preamble and file meta reads in the syntax it decodes in:
            # a de-identifier may publish it as a PS3.10 file (issue 14), or quarantine it.
            "expect": ("quarantine" if "Encapsulated" in r.iod else "deidentify") if r.kind == "good"
            else "deidentify-or-quarantine" if r.defect == "no-preamble" else "quarantine-or-skip",
            "defect": r.defect,
            "iod": r.iod,
            "patient": r.patient,
            "study": r.study,
            "series": r.series,
            "match": r.match,
            "plants": scan_plants(a, r, {**shared, **patterns.get(r.patient, {})}),
        }
        if r.kind == "good":
            ds = a.written[path]
            entry.update({
                "sop_class_uid": str(ds.SOPClassUID),
                "sop_instance_uid": str(ds.SOPInstanceUID),
                "study_instance_uid": str(ds.StudyInstanceUID),
                "series_instance_uid": str(ds.SeriesInstanceUID),
                "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
                "burned_in_annotation": r.burned_in_annotation,
                "burned_in": r.burned_in,
                "facts": {k: _fact(ds.get(k)) for k in ("Rows", "Columns", "PixelSpacing", "SliceThickness",
                                                        "Modality") if k in ds},
                "patient_characteristics": {k: str(ds.get(k)) for k in ("PatientSex", "PatientAge") if k in ds},
                "references": r.references,
            })
            studies.setdefault(r.study or "", []).append(path)
            series.setdefault(r.series or "", []).append(path)
        files[path] = entry
    return {
        "schema": KEY_SCHEMA,
        "generator": {"seed": a.seed, "patients": patients, "multi_frame_text_frame": MULTI_FRAME_TEXT_FRAME},
        "identifiers": {
            ident: {"category": it.category, "value": it.value, "spellings": it.spellings,
                    "bounded": it.bounded, "patient": it.patient}
            for ident, it in sorted(a.reg.items.items())
        },
        "files": files,
        "studies": studies,
        "series": series,
    }


def _fact(value: Any) -> Any:
    if isinstance(value, list | pydicom.multival.MultiValue):
        return [float(v) for v in value]
    if isinstance(value, int):
        return value
    if isinstance(value, pydicom.valuerep.DSfloat):
        return float(value)
    return str(value)


# ------------------------------------------------------------------ entry points
def _make_patients(a: Archive, count: int) -> list[Patient]:
    if count <= min(len(_FAMILY), len(_GIVEN)):  # distinct components: no shared spellings
        names = list(zip(a.rng.sample(_FAMILY, count), a.rng.sample(_GIVEN, count), strict=True))
    else:  # large archives (benchmarks): syllable names, distinct pairs
        families = ["".join(t) for t in itertools.product(*_FAMILY_PARTS)]
        givens = ["".join(t) for t in itertools.product(*_GIVEN_PARTS)]
        picks = a.rng.sample(range(len(families) * len(givens)), count)
        names = [(families[n % len(families)], givens[n // len(families)]) for n in picks]
    streets = a.rng.sample(_STREETS, len(_STREETS))
    cities = a.rng.sample(_CITIES, len(_CITIES))
    patients = []
    for i, (family, given) in enumerate(names):
        staff = a.rng.sample(_STAFF, 4)
        patients.append(Patient(
            label=f"P{i + 1}", index=i, name=f"{family}^{given}^{chr(ord('A') + a.rng.randrange(26))}",
            pid=f"QZM{a.digits(7)}", other_pid=f"LEG-{a.digits(6)}", birth=a.day(1940, 2001),
            sex=a.rng.choice(["F", "M", "O"]),
            address=f"{a.rng.randint(10, 999)} {streets[i % len(streets)]}, {cities[i % len(cities)]}",
            phone=f"555-01{a.digits(1)}-{a.digits(4)}", institution=i % len(_INSTITUTIONS), staff=staff,
        ))
    return patients


def generate(out_dir: Path, patients: int = DEFAULT_PATIENTS, seed: int = DEFAULT_SEED) -> Path:
    """Write the archive to `out_dir` and its key beside it; return the key's path."""
    if patients < 1:
        raise ValueError("patients must be at least 1")
    out_dir = Path(out_dir)
    key_path = out_dir.parent / f"{out_dir.name}_key.json"
    if out_dir.exists() and any(out_dir.iterdir()):
        if not key_path.exists():
            raise FileExistsError(f"{out_dir} is not empty and has no key beside it; refusing to delete it")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a = Archive(out_dir, seed)
    people = _make_patients(a, patients)
    for inst_name, inst_address in _INSTITUTIONS:
        a.reg.plain(f"institution.{inst_name.split()[0].lower()}", inst_name, None, "institution")
        a.reg.add(f"institution.{inst_name.split()[0].lower()}.address", "institution_address",
                  inst_address, address_spellings(inst_address))
    for n, staff in enumerate(_STAFF):
        a.reg.person(f"staff.{n + 1}", staff, None, "staff_name")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an invalid value here is a generator bug
        for p in people:
            PatientBuilder(a, p).build(ct_slices=4, mr_slices=2)
        build_bad_inputs(a, people)
        key = build_key(a, patients)
    sigs = [json.dumps(e["match"], sort_keys=True) for e in key["files"].values() if e["match"]]
    if len(sigs) != len(set(sigs)):
        raise RuntimeError("match signatures are not unique")
    key_path.write_text(json.dumps(key, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return key_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "archive")
    parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    key = generate(args.out, args.patients, args.seed)
    files = [f for f in args.out.rglob("*") if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files ({size / 1e6:.2f} MB) to {args.out}; key: {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
