"""Issue 14: no readable complete file of pydicom's is refused when its pixels must be cleaned,
except one whose codestream no decoder can read (and that refusal names why)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from pipeline.dicom.file import read_dataset
from pipeline.errors import PixelError
from pipeline.pixels.clean import PixelTask, clean_pixels
from pipeline.pixels.codestream import with_sequential_scans
from pipeline.profile.pixel_rules import Region
from pipeline.profile.plan import PixelMode, compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_file
from tests.conftest import bundled, read

OCR = compile_plan("basic", pixel_mode=PixelMode.OCR)


def first_frame(ds: Dataset) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))


def decoded(ds: Dataset) -> NDArray[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array, _ = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds)
    return np.asarray(array)


@pytest.mark.parametrize("name", ["JPEG-lossy.dcm", "SC_rgb_jpeg.dcm"])
def test_a_file_refused_before_is_published_when_its_pixels_must_be_cleaned(name: str, keys: Keys) -> None:
    """JPEG-lossy.dcm: its scan header says Se 0 (pixel-failed:undecodable before); SC_rgb_jpeg.dcm:
    its dataset is implicit VR under an explicit syntax (write-failed:encoder before)."""
    data = bundled(name).read_bytes()
    result = scrub_bytes(data, OCR, keys)
    verdict = verify_file(result.data, ("clean-pixel-data",), data)
    assert verdict.verified, [f.rule for f in verdict.findings]
    assert result.pixels is not None and result.pixels.ocr  # the pixels were read, by OCR


def test_the_implicit_dataset_under_an_explicit_syntax_is_written_explicit_with_its_values(keys: Keys) -> None:
    data = bundled("SC_rgb_jpeg.dcm").read_bytes()
    out = read(scrub_bytes(data, OCR, keys).data)
    source = read(data)
    assert out.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert out["ImageType"].VR == "CS" and list(out.ImageType) == list(source.ImageType)
    assert out["SeriesNumber"].VR == "IS" and out.SeriesNumber == source.SeriesNumber
    assert out.PixelData == source.PixelData and decoded(out).shape == (256, 256, 3)


def test_a_sequential_scan_header_is_put_right_only_for_the_decoder() -> None:
    """JPEG-lossy.dcm is JPGExtended.dcm with the scan's Se 0 instead of 63 (ISO 10918-1 B.2.3)."""
    broken = first_frame(read(bundled("JPEG-lossy.dcm").read_bytes()))
    sound = first_frame(read(bundled("JPGExtended.dcm").read_bytes()))
    assert broken != sound and with_sequential_scans(broken) == sound
    assert with_sequential_scans(sound) is None
    assert with_sequential_scans(first_frame(read(bundled("SC_rgb_jpeg.dcm").read_bytes()))) is None
    assert with_sequential_scans(b"\x00\x01") is None


def test_a_cleaned_lossy_12_bit_jpeg_is_stored_uncompressed_and_still_says_lossy() -> None:
    """PS3.3 C.7.6.1.1.5: once lossy, "01" with its method and ratio; no lossy step is added."""
    ds = read_dataset(bundled("JPEG-lossy.dcm").read_bytes())
    expected = decoded(read(bundled("JPGExtended.dcm").read_bytes())).copy()
    log = clean_pixels(ds, PixelTask(regions=(((Region(0, 0, 64, 32),), ()),)))
    assert log.cleaned and ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(ds.LossyImageCompressionRatio) > 1
    out = decoded(ds)
    assert (out[:32, :64] == expected.min()).all()
    expected[:32, :64] = out[:32, :64]
    assert np.array_equal(out, expected)  # every other pixel as the sound codestream decodes


def test_a_codestream_no_decoder_reads_is_refused_as_undecodable(keys: Keys) -> None:
    """JPEG2000-embedded-sequence-delimiter.dcm exercises the encapsulation (a delimiter inside a
    fragment); its SIZ marker declares a 3722444032-pixel-wide image: no decoder reads it
    (OpenJPEG, Pillow; GDCM neither), so when its pixels must be read it is refused, naming why."""
    data = bundled("JPEG2000-embedded-sequence-delimiter.dcm").read_bytes()
    with pytest.raises(PixelError) as caught:
        scrub_bytes(data, OCR, keys)
    assert caught.value.code == "pixel-failed:undecodable"
