"""Reading one file (pipeline/dicom/file.py): what is refused before the scrub sees it."""

from __future__ import annotations

import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from pipeline.dicom.file import read_dataset
from pipeline.errors import InputError
from tests.conftest import encode, make_dataset


def _encapsulated() -> bytes:
    """A small file whose Pixel Data is encapsulated (PS3.5 A.4: items of undefined length), in
    RLE Lossless; its one fragment is longer than the native frame would be."""
    ds = make_dataset()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].is_undefined_length = True
    return encode(ds)


def test_encapsulated_pixel_data_in_its_own_syntax_is_read() -> None:
    assert read_dataset(_encapsulated()).file_meta.TransferSyntaxUID == RLELossless


@pytest.mark.parametrize("meta", ["native-syntax", "no-syntax"])
def test_encapsulated_pixel_data_under_a_native_or_missing_syntax_is_refused(meta: str) -> None:
    """Was verify:pixel-bits-above-high-bit (`make fuzz`, seed 3819846985): a flipped bit made the
    meta's Transfer Syntax UID (0002,0010) an unknown (0002,0810); pydicom read the dataset as
    explicit VR little endian, the output named that syntax, and the RLE items and fragments were
    published as native pixels. PS3.5 7.1.1 allows an undefined length on OB or OW only as the
    transfer syntax says, and A.4 only in the encapsulated syntaxes."""
    data = _encapsulated()
    rle = RLELossless.encode("ascii") + b"\x00"
    assert data.count(rle) == 1
    if meta == "native-syntax":
        data = data.replace(rle, ExplicitVRLittleEndian.encode("ascii") + b"\x00")
    else:
        data = data.replace(b"\x02\x00\x10\x00UI", b"\x02\x00\x10\x08UI")
    with pytest.raises(InputError) as caught:
        read_dataset(data)
    assert caught.value.code == "bad-input:bad-value-length"
