"""A deterministic (seeded) synthetic DICOM corpus shaped like a real PACS export.

Patients -> studies -> series -> instances, with realistic headers that carry PHI (names,
IDs, birth dates, study dates, accession numbers, institution, physicians, station, free
text) and a few private blocks. The mix, by share of files:

| kind                       | share | pixels                                                  |
|----------------------------|-------|---------------------------------------------------------|
| CT slice                   | ~50%  | 512x512 16-bit, native, explicit VR little endian       |
| MR slice                   | ~27%  | 512x512 16-bit, native (1 series in 4 implicit VR)      |
| compressed CT/MR slice     | ~15%  | RLE / JPEG-LS lossless / JPEG 2000 lossless (ds.compress)|
| multi-frame MR             | ~5%   | 16 frames of 256x256 16-bit, native                     |
| Comprehensive SR           | ~3%   | none: a report tree with names and dates in its text    |

Pixel arrays and their compressed encodings are computed once per (modality, syntax) and
reused, so generating 20,000 files takes a couple of minutes. The corpus is cached under
bench/corpus/<n>-seed<seed>-v<VERSION>/ (git-ignored); a complete corpus has a
`<folder>.complete` marker beside it and is reused as is.

Usage: python bench/corpus.py --files 2000 [--seed 7] [--root bench/corpus]
"""

from __future__ import annotations

import argparse
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

VERSION = 1
ROOT = Path(__file__).resolve().parent / "corpus"
CT_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
MR_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
ENHANCED_MR_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4.1")
COMPREHENSIVE_SR = UID("1.2.840.10008.5.1.4.1.1.88.33")
UID_ROOT = "1.2.826.0.1.3680043.10.999."  # a made-up root: the originals the pipeline must remap

FIRST = ["JANE", "JOHN", "MARIA", "AHMED", "WEI", "OLGA", "PIERRE", "AMARA", "KENJI", "LUCIA", "SVEN", "PRIYA"]
LAST = ["DOE", "SMITH", "GARCIA", "NGUYEN", "MUELLER", "OKAFOR", "ROSSI", "TANAKA", "KOWALSKI", "DUBOIS",
        "SILVA", "HANSEN", "O'BRIEN", "SMITH-JONES"]
INSTITUTIONS = [("ST MARY GENERAL HOSPITAL", "12 Harbour Road^^Springfield^^40123^US"),
                ("CLINIQUE DU PARC", "4 Rue des Lilas^^Lyon^^69003^FR"),
                ("NORTHWEST IMAGING CENTER", "900 Pine Ave^^Seattle^WA^98101^US")]
PHYSICIANS = ["HOUSE^GREGORY^^DR", "QUINN^MICHAELA^^DR", "WATSON^JOHN^H^DR", "KILDARE^JAMES"]
STATIONS = ["CT01-EAST", "MRSCAN2", "CTSOMATOM3", "MR-PRISMA-7"]
SERIES_CT = ["AXIAL 5MM", "CHEST W CONTRAST", "ABD PELVIS ROUTINE", "HEAD WO"]
SERIES_MR = ["T1 SAG", "T2 AX FLAIR", "DWI B1000", "T1 POST GAD AX"]
COMPRESSIONS = (RLELossless, JPEGLSLossless, JPEG2000Lossless)
SYNTAX_NAMES = {ExplicitVRLittleEndian: "native", ImplicitVRLittleEndian: "implicit", RLELossless: "rle",
                JPEGLSLossless: "jpegls", JPEG2000Lossless: "j2k"}


@dataclass(frozen=True, slots=True)
class CorpusInfo:
    """Where a corpus is and what it holds."""

    path: Path
    files: int
    bytes: int
    kinds: dict[str, int]


def corpus_dir(files: int, seed: int, root: Path = ROOT) -> Path:
    return root / f"{files}-seed{seed}-v{VERSION}"


def ensure_corpus(files: int, seed: int = 7, root: Path = ROOT) -> CorpusInfo:
    """Generate the corpus of `files` files under `root`, or reuse a complete one."""
    directory = corpus_dir(files, seed, root)
    marker = directory.with_name(directory.name + ".complete")  # beside it: the run reads the folder
    if not marker.exists():
        _generate(directory, files, seed)
        marker.write_text("ok\n")
    kinds: dict[str, int] = {}
    total = 0
    paths = list_files(directory)
    for path in paths:
        kind = path.parent.name.rsplit("-", 1)[0]  # <patient>/<kind>-<syntax>-<series>/<n>.dcm
        kinds[kind] = kinds.get(kind, 0) + 1
        total += path.stat().st_size
    return CorpusInfo(directory, len(paths), total, dict(sorted(kinds.items())))


def list_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.dcm"))


# --- pixels, computed once and reused ----------------------------------------------------


def _phantom(size: int, seed: int, frames: int = 1) -> np.ndarray:
    """A smooth body-like disc with structure and noise, values in a CT/MR-like range."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    r = np.hypot(x - c, y - c) / (size * 0.42)
    body = np.where(r < 1.0, 1000 + 300 * np.cos(6 * r) + 200 * np.sin(x / 17.0) * np.cos(y / 23.0), 0)
    stack = []
    for f in range(frames):
        noise = rng.normal(0, 12, (size, size))
        stack.append(np.clip(body * (1 + 0.02 * f) + noise, 0, 4095).astype(np.uint16))
    return stack[0] if frames == 1 else np.stack(stack)


class _Pixels:
    """Native and compressed pixel payloads, cached by (kind, transfer syntax)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.arrays = {"CT": _phantom(512, seed), "MR": _phantom(512, seed + 1), "MF": _phantom(256, seed + 2, 16)}
        self.cache: dict[tuple[str, str], bytes] = {}

    def payload(self, kind: str, syntax: UID, template: Dataset) -> bytes:
        key = (kind, str(syntax))
        if key not in self.cache:
            array = self.arrays[kind]
            if not syntax.is_compressed:
                self.cache[key] = array.tobytes()
            else:
                probe = Dataset()
                for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                                "SamplesPerPixel", "PhotometricInterpretation"):
                    setattr(probe, keyword, getattr(template, keyword))
                probe.file_meta = FileMetaDataset()
                probe.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                probe.PixelData = array.tobytes()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    probe.compress(syntax, encoding_plugin="" if syntax != JPEGLSLossless else "pyjpegls")
                self.cache[key] = probe.PixelData
        return self.cache[key]


# --- headers -----------------------------------------------------------------------------


def _date(rng: random.Random, start: int, end: int) -> str:
    return f"{rng.randint(start, end)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def _uid(rng: random.Random) -> str:
    return UID_ROOT + ".".join(str(rng.randint(1, 99999)) for _ in range(4))


def _person(rng: random.Random) -> str:
    return f"{rng.choice(LAST)}^{rng.choice(FIRST)}"


@dataclass
class _Series:
    kind: str  # CT, MR, MF (multi-frame MR), SR
    syntax: UID
    header: Dataset
    count: int


def _patient_header(rng: random.Random, index: int) -> Dataset:
    ds = Dataset()
    ds.PatientName = _person(rng) + ("^^" if rng.random() < 0.3 else "")
    ds.PatientID = f"MRN{rng.randint(100000, 999999)}"
    ds.IssuerOfPatientID = "HOSP_A"
    ds.OtherPatientIDs = f"NHS{rng.randint(1000000, 9999999)}"
    ds.PatientBirthDate = _date(rng, 1935, 2005)
    ds.PatientSex = rng.choice("MF")
    ds.PatientAge = f"{rng.randint(18, 90):03d}Y"
    ds.PatientWeight = str(rng.randint(45, 120))
    ds.PatientSize = f"{rng.uniform(1.5, 1.95):.2f}"
    ds.PatientAddress = f"{rng.randint(1, 300)} Elm Street^^Springfield"
    ds.PatientTelephoneNumbers = f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    ds.EthnicGroup = "WHITE"
    ds.PatientComments = f"Patient {index} referred by {rng.choice(PHYSICIANS).split('^')[0]}"
    return ds


def _study_header(rng: random.Random, patient: Dataset) -> Dataset:
    ds = Dataset()
    ds.update(patient)
    ds.StudyInstanceUID = _uid(rng)
    ds.StudyDate = _date(rng, 2015, 2025)
    ds.StudyTime = f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}"
    ds.AccessionNumber = f"ACC{rng.randint(10000000, 99999999)}"
    ds.StudyID = str(rng.randint(1000, 9999))
    ds.StudyDescription = f"FOLLOW-UP {patient.PatientName.family_name} {ds.StudyDate}"
    ds.ReferringPhysicianName = rng.choice(PHYSICIANS)
    institution, address = rng.choice(INSTITUTIONS)
    ds.InstitutionName = institution
    ds.InstitutionAddress = address
    ds.InstitutionalDepartmentName = "RADIOLOGY"
    ds.RequestingPhysician = rng.choice(PHYSICIANS)
    ds.PerformingPhysicianName = rng.choice(PHYSICIANS)
    ds.OperatorsName = _person(rng)
    ds.RequestedProcedureDescription = "CT CHEST ABDOMEN"
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    item.ReferencedSOPInstanceUID = _uid(rng)
    ds.ReferencedStudySequence = Sequence([item])
    code = Dataset()
    code.CodeValue = "RPID17"
    code.CodingSchemeDesignator = "RADLEX"
    code.CodeMeaning = "CT chest"
    ds.ProcedureCodeSequence = Sequence([code])
    return ds


def _series_header(rng: random.Random, study: Dataset, kind: str, number: int) -> Dataset:
    ds = Dataset()
    ds.update(study)
    modality = "CT" if kind == "CT" else "MR"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.Modality = modality
    ds.SeriesInstanceUID = _uid(rng)
    ds.SeriesNumber = number
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = ds.StudyTime
    ds.AcquisitionDate = ds.StudyDate
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    ds.FrameOfReferenceUID = _uid(rng)
    ds.Manufacturer = "SIEMENS" if modality == "CT" else "GE MEDICAL SYSTEMS"
    ds.ManufacturerModelName = "SOMATOM Force" if modality == "CT" else "SIGNA Premier"
    ds.StationName = rng.choice(STATIONS)
    ds.DeviceSerialNumber = str(rng.randint(10000, 99999))
    ds.SoftwareVersions = "VB20A"
    ds.SeriesDescription = rng.choice(SERIES_CT if modality == "CT" else SERIES_MR)
    ds.ProtocolName = ds.SeriesDescription + " PROTOCOL"
    ds.BodyPartExamined = "CHEST"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientPosition = "HFS"
    ds.SliceThickness = "5.0"
    ds.PixelSpacing = ["0.703125", "0.703125"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    if modality == "CT":
        ds.KVP = "120"
        ds.XRayTubeCurrent = 250
        ds.ConvolutionKernel = "B30f"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
    else:
        ds.MagneticFieldStrength = "3"
        ds.RepetitionTime = "500"
        ds.EchoTime = "12"
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "SK"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    size = 256 if kind == "MF" else 512
    ds.Rows = size
    ds.Columns = size
    # private blocks, as a vendor writes them
    block = ds.private_block(0x0029, "SIEMENS CSA HEADER" if modality == "CT" else "GEMS_IDEN_01", create=True)
    block.add_new(0x10, "LO", f"SCANNER {ds.StationName} OPERATOR {ds.OperatorsName}")
    block.add_new(0x11, "OB", bytes(rng.getrandbits(8) for _ in range(256)))
    block2 = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    block2.add_new(0x01, "SS", 3)
    block2.add_new(0x02, "DS", "1.5")
    return ds


def _instance(header: Dataset, series: _Series, index: int, rng: random.Random, pixels: _Pixels) -> Dataset:
    ds = Dataset()
    ds.update(header)
    ds.InstanceNumber = index + 1
    ds.SOPInstanceUID = f"{header.SeriesInstanceUID}.{index + 1}"
    ds.InstanceCreationDate = header.StudyDate
    ds.AcquisitionTime = header.StudyTime
    position = -200.0 + 5.0 * index
    if series.kind == "SR":
        return ds
    ds.ImagePositionPatient = ["-180", "-180", f"{position:.1f}"]
    ds.SliceLocation = f"{position:.1f}"
    if series.kind == "MF":
        ds.NumberOfFrames = 16
    ds.PixelData = pixels.payload(series.kind, series.syntax, ds)
    return ds


def _sr_content(rng: random.Random, study: Dataset) -> Sequence:
    items = []
    for meaning, text in [
        ("Finding", f"Compared with the study of {study.StudyDate}: stable 4 mm nodule, right lower lobe."),
        ("Impression", f"No acute findings. Discussed with Dr {study.ReferringPhysicianName.family_name} "
                       f"on {study.StudyDate[6:]}/{study.StudyDate[4:6]}/{study.StudyDate[:4]}."),
        ("Patient history", f"{study.PatientName.given_name} {study.PatientName.family_name}, MRN "
                            f"{study.PatientID}, call {study.PatientTelephoneNumbers}."),
    ]:
        item = Dataset()
        item.RelationshipType = "CONTAINS"
        item.ValueType = "TEXT"
        concept = Dataset()
        concept.CodeValue = "121071"
        concept.CodingSchemeDesignator = "DCM"
        concept.CodeMeaning = meaning
        item.ConceptNameCodeSequence = Sequence([concept])
        item.TextValue = text
        items.append(item)
    person = Dataset()
    person.RelationshipType = "HAS OBS CONTEXT"
    person.ValueType = "PNAME"
    person.PersonName = rng.choice(PHYSICIANS)
    items.append(person)
    return Sequence(items)


def _plan_series(rng: random.Random, files: int) -> list[tuple[int, str, UID, int]]:
    """(patient, kind, syntax, count) per series, until `files` instances are planned."""
    planned: list[tuple[int, str, UID, int]] = []
    total, patient = 0, 0
    while total < files:
        for _study in range(rng.choice((1, 1, 2))):
            for _series in range(rng.randint(2, 4)):
                roll = rng.random()
                if roll < 0.05:
                    kind, syntax, count = "MF", ExplicitVRLittleEndian, rng.randint(20, 40)
                elif roll < 0.11:
                    kind, syntax, count = "SR", ExplicitVRLittleEndian, rng.randint(15, 25)
                else:
                    kind = "CT" if roll < 0.72 else "MR"
                    count = rng.randint(20, 60)
                    compressed = rng.random()
                    if compressed < 0.16:
                        syntax = COMPRESSIONS[int(compressed / 0.16 * 3)]
                    elif kind == "MR" and compressed > 0.75:
                        syntax = ImplicitVRLittleEndian
                    else:
                        syntax = ExplicitVRLittleEndian
                count = min(count, files - total)
                if count > 0:
                    planned.append((patient, kind, syntax, count))
                    total += count
        patient += 1
    return planned


def _generate(directory: Path, files: int, seed: int) -> None:
    import pydicom

    rng = random.Random(seed)
    pixels = _Pixels(seed)
    directory.mkdir(parents=True, exist_ok=True)
    patients: dict[int, Dataset] = {}
    studies: dict[int, Dataset] = {}
    for number, (patient, kind, syntax, count) in enumerate(_plan_series(rng, files)):
        if patient not in patients:
            patients[patient] = _patient_header(rng, patient)
            studies[patient] = _study_header(rng, patients[patient])
        elif rng.random() < 0.2:
            studies[patient] = _study_header(rng, patients[patient])
        study = studies[patient]
        if kind == "SR":
            header = Dataset()
            header.update(study)
            header.SpecificCharacterSet = "ISO_IR 100"
            header.Modality = "SR"
            header.SeriesInstanceUID = _uid(rng)
            header.SeriesNumber = 900 + number
            header.ContentDate = study.StudyDate
            header.ContentTime = study.StudyTime
            header.Manufacturer = "REPORTING SYSTEMS INC"
            header.ValueType = "CONTAINER"
            header.CompletionFlag = "COMPLETE"
            header.VerificationFlag = "VERIFIED"
            header.VerifyingObserverSequence = Sequence([Dataset()])
            header.VerifyingObserverSequence[0].VerifyingObserverName = rng.choice(PHYSICIANS)
            header.VerifyingObserverSequence[0].VerifyingOrganization = study.InstitutionName
            header.VerifyingObserverSequence[0].VerificationDateTime = study.StudyDate + "120000"
            header.ContentSequence = _sr_content(rng, study)
            sop_class = COMPREHENSIVE_SR
        else:
            header = _series_header(rng, study, kind, number + 1)
            sop_class = {"CT": CT_STORAGE, "MR": MR_STORAGE, "MF": ENHANCED_MR_STORAGE}[kind]
        header.SOPClassUID = sop_class
        series = _Series(kind, syntax, header, count)
        folder = directory / f"p{patient:05d}" / f"{kind}-{SYNTAX_NAMES[syntax]}-{number:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            ds = _instance(header, series, index, rng, pixels)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = sop_class
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = syntax
            meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.999.1"
            meta.SourceApplicationEntityTitle = rng.choice(STATIONS)
            ds.file_meta = meta
            ds.preamble = b"\x00" * 128
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydicom.dcmwrite(folder / f"{index:04d}.dcm", ds, enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    info = ensure_corpus(args.files, args.seed, args.root)
    print(f"{info.files} files, {info.bytes / 1e6:.1f} MB in {info.path}: {info.kinds}")


if __name__ == "__main__":
    main()
