"""Valid in, valid out (issue 14, item 4): files pydicom reads cleanly are not refused.

A File Meta Information whose (0002,0000) group length leaves out trailing group 0002 elements is
read as pydicom reads it (to the last group 0002 element) and published without any of its
identifying values (tests/resources/case04, after a public bug report: AE titles, Private
Information, a preamble holding text). A complete dataset stored without preamble and file meta is
read in the transfer syntax it decodes in and published as a PS3.10 file; one that cannot be read so
is quarantined with a reason naming why. dciodvfy finds no error kind in an output its input lacks.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pipeline.dicom import raw
from pipeline.dicom.file import read_dataset
from pipeline.errors import InputError
from pipeline.profile.plan import compile_plan
from pipeline.runner.discover import SourceFile
from pipeline.runner.outcome import Disposition, Outcome
from pipeline.runner.process import WorkerConfig, process_one
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from tests.conftest import encode, make_dataset
from tests.conftest_run import KEY_HEX
from tests.dciodvfy import Readability, validate

KEYS = Keys(key=KEY_HEX.encode("ascii"))
PLAN = compile_plan("basic", [])
CASE04 = Path(__file__).resolve().parents[1] / "resources" / "case04"
BUNDLED = Path(str(pydicom.data.__file__)).parent / "test_files"
NO_META = {  # pydicom's files stored without preamble and file meta -> the syntax they are in
    "ExplVR_BigEndNoMeta.dcm": ExplicitVRBigEndian,
    "ExplVR_LitEndNoMeta.dcm": ExplicitVRLittleEndian,
    "rtstruct.dcm": ImplicitVRLittleEndian,
}


def _bare(ds: Dataset, syntax: UID) -> bytes:
    """`ds` encoded in `syntax` with no preamble, prefix or file meta (PS3.5 7 only)."""
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = syntax.is_implicit_VR, syntax.is_little_endian
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dataset(fp, ds)
    return fp.getvalue()


def _planted() -> list[bytes]:
    return [line.split("|")[0].encode("ascii").lower()
            for line in (CASE04 / "planted.txt").read_text().splitlines() if line.strip()]


def _process(tmp_path: Path, path: Path) -> tuple[Outcome, WorkerConfig]:
    cfg = WorkerConfig(tmp_path / "release", tmp_path / "quarantine")
    (tmp_path / "quarantine").mkdir(exist_ok=True)
    src = SourceFile(path, path.stat().st_size, 0, path.stat().st_mtime_ns)
    return process_one(src, PLAN, KEYS, cfg), cfg


def _published(tmp_path: Path, path: Path) -> tuple[str, bytes]:
    outcome, cfg = _process(tmp_path, path)
    assert outcome.disposition is Disposition.WRITTEN and outcome.output is not None, outcome.reason
    data = (cfg.release / outcome.output).read_bytes()
    assert verify_bytes(data, (), original=path.read_bytes(), output_path=outcome.output) == []
    return outcome.output, data


def _assert_no_new_error_kind(source: Path, output: bytes, tmp_path: Path) -> None:
    written = tmp_path / "output.dcm"
    written.write_bytes(output)
    before, after = validate(source), validate(written)
    assert before.readability is after.readability is Readability.READ
    assert after.iod == before.iod
    assert after.errors <= before.errors, sorted(after.errors - before.errors)


@pytest.mark.parametrize("name", ["meta_phi.dcm", "meta_phi_short_group_length.dcm"])
def test_file_meta_with_identifying_values_is_published_clean_whatever_its_group_length(
        tmp_path: Path, name: str) -> None:
    path, data = _published(tmp_path, CASE04 / name)
    lowered, where = data.lower(), path.lower().encode("ascii")
    assert [value for value in _planted() if value in lowered or value in where] == []
    assert data[:132] == b"\x00" * 128 + b"DICM"
    meta = pydicom.dcmread(io.BytesIO(data)).file_meta
    assert "PrivateInformation" not in meta and "SourceApplicationEntityTitle" not in meta
    _assert_no_new_error_kind(CASE04 / name, data, tmp_path)


def _short_group_length(data: bytes) -> bytes:
    """`data` with (0002,0000) counting only up to (0002,0100), the elements after it left out."""
    start = data.index(b"\x02\x00\x00\x01UI")
    return data[:140] + struct.pack("<I", start - 144) + data[144:]


def test_a_group_length_leaving_out_trailing_meta_elements_reads_as_pydicom_reads_it() -> None:
    ds = make_dataset()
    ds.file_meta.PrivateInformationCreatorUID = "1.2.3.4"
    ds.file_meta.PrivateInformation = b"DOE^JANE"
    data = _short_group_length(encode(ds))
    expected = pydicom.dcmread(io.BytesIO(data))
    read = read_dataset(data)
    assert read.file_meta.PrivateInformation == expected.file_meta.PrivateInformation == b"DOE^JANE"
    assert read.PatientName == expected.PatientName


def test_a_group_length_past_the_end_of_the_file_is_still_refused() -> None:
    data = encode(make_dataset())
    with pytest.raises(InputError) as refused:
        read_dataset(data[:150])
    assert refused.value.code == "bad-input:length-beyond-file"


@pytest.mark.parametrize("name", sorted(NO_META))
def test_a_dataset_without_file_meta_is_published_as_a_part_10_file(tmp_path: Path, name: str) -> None:
    source = BUNDLED / name
    assert not raw.is_part10(source.read_bytes())
    _, data = _published(tmp_path, source)
    assert data[:132] == b"\x00" * 128 + b"DICM"
    meta = pydicom.dcmread(io.BytesIO(data)).file_meta
    assert meta.TransferSyntaxUID == NO_META[name]
    assert {"MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "ImplementationClassUID"} <= set(meta.dir())
    _assert_no_new_error_kind(source, data, tmp_path)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_the_syntax_of_a_bare_dataset_is_the_one_it_decodes_in(syntax: UID) -> None:
    ds = make_dataset()
    read = read_dataset(_bare(ds, syntax))
    assert read.file_meta.TransferSyntaxUID == syntax
    assert read.PatientName == ds.PatientName and read.SOPInstanceUID == ds.SOPInstanceUID


def test_a_bare_dataset_without_sop_uids_is_quarantined_as_such(tmp_path: Path) -> None:
    ds = make_dataset()
    del ds.SOPInstanceUID
    path = tmp_path / "incomplete.dcm"
    path.write_bytes(_bare(ds, ImplicitVRLittleEndian))
    outcome, cfg = _process(tmp_path, path)
    assert (outcome.disposition, outcome.reason) == (Disposition.QUARANTINED, "bad-input:no-sop-uid")
    assert not cfg.release.exists() or not any(cfg.release.rglob("*.dcm"))


def test_a_bare_dataset_in_no_syntax_it_reads_in_is_quarantined_with_that_reason(tmp_path: Path) -> None:
    data = _bare(make_dataset(), ExplicitVRLittleEndian)
    cut = data[:40] + b"\xff" * 7 + data[40:]  # a dataset start, then bytes no element header explains
    path = tmp_path / "garbled.dcm"
    path.write_bytes(cut)
    outcome, _ = _process(tmp_path, path)
    assert (outcome.disposition, outcome.reason) == (
        Disposition.QUARANTINED, "bad-input:no-file-meta-unknown-syntax")


def test_a_file_cut_inside_its_file_meta_is_refused_as_truncated() -> None:
    ds = make_dataset()
    ds.file_meta.PrivateInformationCreatorUID = "1.2.3.4"
    data = _short_group_length(encode(ds))
    end = data.index(b"\x02\x00\x00\x01UI") + 4  # inside a header the group length leaves out
    with pytest.raises(InputError) as refused:
        read_dataset(data[:end])
    assert refused.value.code == "bad-input:truncated-header"
