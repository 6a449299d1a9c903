"""The sample archive generator: deterministic, readable, and its key tells the truth."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import warnings
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pydicom
import pydicom.errors
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "sample_data" / "generate.py"
COMMITTED_KEY = REPO / "sample_data" / "archive_key.json"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_data_generate", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gen = load_generator()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("first") / "archive"
    key_path = gen.generate(out, gen.DEFAULT_PATIENTS, gen.DEFAULT_SEED)
    return out, json.loads(key_path.read_text(encoding="utf-8"))


def _searchable(raw: bytes) -> bytes:
    """Raw bytes, plus the inflated dataset of a deflated file (independent of pipeline.evaluate.score)."""
    if raw[128:132] == b"DICM":
        (meta_len,) = struct.unpack("<I", raw[140:144])
        if DeflatedExplicitVRLittleEndian.encode() in raw[132 : 144 + meta_len]:
            raw += zlib.decompressobj(-15).decompress(raw[144 + meta_len :])
    return raw.lower()


def _region(ds: pydicom.Dataset, burned: dict[str, Any]) -> np.ndarray:
    x0, y0, x1, y1 = burned["box"]
    if burned["plane"] == "pixels":
        arr = ds.pixel_array
        if int(ds.get("NumberOfFrames", 1)) > 1:
            arr = arr[burned["frame"]]
    else:
        arr = ds.overlay_array(int(burned["plane"].split("-")[1], 16))
    return np.asarray(arr[y0:y1, x0:x1])


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(
    archive: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    first, _ = archive
    again = tmp_path / "again" / "archive"
    other = tmp_path / "other" / "archive"
    gen.generate(again, gen.DEFAULT_PATIENTS, gen.DEFAULT_SEED)
    gen.generate(other, gen.DEFAULT_PATIENTS, gen.DEFAULT_SEED + 1)
    a, b, c = _files(first), _files(again), _files(other)
    assert a.keys() == b.keys()
    assert all(a[name] == b[name] for name in a), [n for n in a if a[n] != b[n]]
    assert (first.parent / "archive_key.json").read_bytes() == (again.parent / "archive_key.json").read_bytes()
    assert a.keys() != c.keys()  # folder and file names carry the seeded names and accessions
    assert not (set(a.values()) - {b""}) & set(c.values())


def test_committed_key_matches_a_fresh_generation(archive: tuple[Path, dict[str, Any]]) -> None:
    _, key = archive
    committed = json.loads(COMMITTED_KEY.read_text(encoding="utf-8"))
    assert committed == key, "sample_data is stale: run python sample_data/generate.py"
    committed_files = {p.relative_to(REPO / "sample_data" / "archive").as_posix()
                       for p in (REPO / "sample_data" / "archive").rglob("*") if p.is_file()}
    assert committed_files == set(key["files"])


def test_every_good_file_reads_and_decodes(archive: tuple[Path, dict[str, Any]]) -> None:
    root, key = archive
    syntaxes, iods = set(), set()
    for rel, entry in key["files"].items():
        if entry["kind"] != "good":
            continue
        ds = pydicom.dcmread(root / rel)
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
        iods.add(entry["iod"])
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == entry["sop_instance_uid"]
        if "PixelData" in ds:
            arr = ds.pixel_array
            assert arr.shape[-2:] == (ds.Rows, ds.Columns) or arr.shape[-3:-1] == (ds.Rows, ds.Columns)
        if "WaveformSequence" in ds:
            assert ds.waveform_array(0).shape == (500, 12)
        if (0x6000, 0x3000) in ds:
            assert ds.overlay_array(0x6000).shape == (ds.Rows, ds.Columns)
    assert syntaxes == {ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                        RLELossless, JPEGBaseline8Bit, JPEGLosslessSV1, JPEG2000Lossless, JPEGLSLossless}
    assert iods == {"CT Image Storage", "MR Image Storage", "Ultrasound Image Storage",
                    "Ultrasound Multi-frame Image Storage", "Secondary Capture Image Storage",
                    "Comprehensive SR Storage", "RT Structure Set Storage", "Encapsulated PDF Storage",
                    "12-lead ECG Waveform Storage"}


def test_key_lists_only_values_present_in_the_files(archive: tuple[Path, dict[str, Any]]) -> None:
    root, key = archive
    identifiers = key["identifiers"]
    checked = 0
    for rel, entry in key["files"].items():
        raw = _searchable((root / rel).read_bytes())
        for plant in entry["plants"]:
            spellings = [s.lower() for s in identifiers[plant["identifier"]]["spellings"]]
            if plant["where"] == "path":
                assert any(s in rel.lower() for s in spellings), (rel, plant)
            elif plant["where"] in ("pixels", "overlay-6000"):
                boxes = [b for b in entry["burned_in"] if b["plane"] == plant["where"]]
                assert any(plant["identifier"] in b["identifiers"] for b in boxes), (rel, plant)
            else:
                assert any(s.encode() in raw for s in spellings), (rel, plant)
            checked += 1
        if entry.get("burned_in"):
            ds = pydicom.dcmread(root / rel)
            for burned in entry["burned_in"]:
                assert np.ptp(_region(ds, burned)) > 0, (rel, burned)  # text is really there
    assert checked > 1000


def test_key_covers_every_planting_place(archive: tuple[Path, dict[str, Any]]) -> None:
    _, key = archive
    wheres = {p["where"] for e in key["files"].values() for p in e["plants"]}
    for expected in ("PatientName", "PatientID", "OtherPatientIDsSequence[0].PatientID", "PatientBirthDate",
                     "PatientAddress", "PatientTelephoneNumbers", "AccessionNumber", "InstitutionName",
                     "InstitutionAddress", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
                     "StudyDescription", "SeriesDescription", "ImageComments", "AdditionalPatientHistory",
                     "RequestAttributesSequence[0].ScheduledProcedureStepDescription",
                     "RequestAttributesSequence[0].ScheduledProtocolCodeSequence[0].CodeMeaning",
                     "(0009,1001)", "(0011,1010)", "(0013,1010)[0].OtherPatientIDsSequence[0].PatientID",
                     "OverlayDescription", "OverlayLabel", "IconImageSequence[0].ImageComments",
                     "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "AcquisitionDateTime",
                     "StudyTime", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                     "FrameOfReferenceUID", "file-meta.MediaStorageSOPInstanceUID", "path", "pixels",
                     "overlay-6000", "trailing-padding", "preamble", "EncapsulatedDocument",
                     "ContentSequence[4].ContentSequence[0].TextValue", "ContentSequence[1].PersonName",
                     "WaveformAnnotationSequence[0].UnformattedTextValue",
                     "ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]"
                     ".RTReferencedSeriesSequence[0].ContourImageSequence[0].ReferencedSOPInstanceUID"):
        assert expected in wheres, expected


def test_multi_frame_text_is_on_frame_four_only(archive: tuple[Path, dict[str, Any]]) -> None:
    root, key = archive
    entries = {r: e for r, e in key["files"].items() if e["iod"] == "Ultrasound Multi-frame Image Storage"}
    assert entries
    for rel, entry in entries.items():
        (burned,) = entry["burned_in"]
        assert burned["frame"] == 4
        ds = pydicom.dcmread(root / rel)
        for frame in range(int(ds.NumberOfFrames)):
            region = _region(ds, {**burned, "frame": frame})
            assert (np.ptp(region) > 0) == (frame == 4)


def test_burned_in_annotation_flag_is_yes_no_or_absent(archive: tuple[Path, dict[str, Any]]) -> None:
    _, key = archive
    flags = {e["burned_in_annotation"] for e in key["files"].values() if e.get("burned_in")
             and any(b["plane"] == "pixels" for b in e["burned_in"])}
    assert flags == {"YES", "NO", None}


def test_signatures_are_unique_and_groups_match_the_uids(archive: tuple[Path, dict[str, Any]]) -> None:
    root, key = archive
    signatures = [json.dumps(e["match"], sort_keys=True) for e in key["files"].values() if e["match"]]
    assert len(signatures) == len(set(signatures))
    for level, attribute in (("studies", "StudyInstanceUID"), ("series", "SeriesInstanceUID")):
        for members in key[level].values():
            uids = {str(pydicom.dcmread(root / rel, stop_before_pixels=True)[attribute].value) for rel in members}
            assert len(uids) == 1


def test_references_point_at_the_referenced_files(archive: tuple[Path, dict[str, Any]]) -> None:
    root, key = archive
    count = 0
    for rel, entry in key["files"].items():
        if not entry.get("references"):
            continue
        ds = pydicom.dcmread(root / rel)
        for ref in entry["references"]:
            node: Any = ds
            for step in ref["where"].split("."):
                name, _, index = step.partition("[")
                node = node[name].value
                if index:
                    node = node[int(index.rstrip("]"))]
            target = pydicom.dcmread(root / ref["target_file"], stop_before_pixels=True)
            assert str(node) == str(target[ref["target_attribute"]].value)
            count += 1
    assert count > 30


def test_bad_inputs_are_bad_in_the_way_the_key_says(archive: tuple[Path, dict[str, Any]]) -> None:
    root, key = archive
    bad = {e["defect"]: root / rel for rel, e in key["files"].items() if e["kind"] == "bad"}
    assert {defect: key["files"][p.relative_to(root).as_posix()]["expect"] for defect, p in bad.items()} == {
        defect: "deidentify-or-quarantine" if defect == "no-preamble" else "quarantine-or-skip" for defect in bad}
    assert bad["empty"].stat().st_size == 0
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(bad["not-dicom-text"])
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(bad["no-preamble"])
    assert pydicom.dcmread(bad["no-preamble"], force=True).PatientName
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truncated = pydicom.dcmread(bad["truncated"])
        with pytest.raises(ValueError):
            truncated.pixel_array  # noqa: B018
        invalid = pydicom.dcmread(bad["invalid-vr"])
        assert invalid["ContentDate"].value == "GARBAGE!"
        assert len(invalid.get_item(0x00280002).value) == 3
    dicomdir = pydicom.dcmread(bad["dicomdir"])
    assert dicomdir.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
    assert [r.DirectoryRecordType for r in dicomdir.DirectoryRecordSequence][:3] == ["PATIENT", "STUDY", "SERIES"]


def test_cli_writes_archive_and_key(tmp_path: Path) -> None:
    out = tmp_path / "cli" / "archive"
    assert gen.main(["--out", str(out), "--patients", "1", "--seed", "7"]) == 0
    key = json.loads((tmp_path / "cli" / "archive_key.json").read_text(encoding="utf-8"))
    assert len([e for e in key["files"].values() if e["kind"] == "good"]) == 13
    with pytest.raises(FileExistsError):
        gen.generate(tmp_path, 1, 7)  # a non-empty folder without a key is never deleted
