"""`value_bytes` (pipeline/dicom/values.py) gives the bytes pydicom's write_data_element writes
for a decoded element's value, and None (pydicom writes it) for what it does not cover."""

from __future__ import annotations

import warnings

import pytest
from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.valuerep import DSfloat, PersonName

from pipeline.dicom.values import value_bytes

ELEMENTS = [
    (0x00100010, "PN", PersonName("Doe^Jane")),  # odd length: padded with a space
    (0x00100010, "PN", PersonName("Doe^Jo")),
    (0x00100010, "PN", None),
    (0x00100020, "LO", "ID-1"),
    (0x00100020, "LO", "ID1"),
    (0x00081030, "LO", "Étude du thorax"),  # Latin-1 text
    (0x00080060, "CS", "CT"),
    (0x00080008, "CS", MultiValue(str, ["ORIGINAL", "PRIMARY", "AXIAL"])),
    (0x0020000D, "UI", "1.2.3"),  # odd: padded with NUL
    (0x0020000D, "UI", "1.2.34"),
    (0x00080020, "DA", "20240131"),
    (0x00080030, "TM", "101530.5"),
    (0x0040A120, "DT", "20240131101530"),
    (0x00280030, "DS", MultiValue(DSfloat, ["0.5", "0.5"])),
    (0x00280008, "IS", "12"),
    (0x00280010, "US", 512),
    (0x00280010, "US", None),
    (0x00181310, "US", [0, 256, 256, 0]),
    (0x00189219, "FD", 1.5),
    (0x00280106, "SS", -3),
    (0x00282000, "OB", b"\x01\x02\x03"),  # odd: padded with NUL
    (0x00400280, "ST", "a comment"),
    (0x00204000, "LT", ""),
]


def _pydicom(elem: DataElement, little: bool, charset: str) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = True, little  # implicit: tag, 32-bit length, value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_data_element(fp, elem, charset)
    return bytes(fp.getvalue()[8:])


@pytest.mark.parametrize(("tag", "vr", "value"), ELEMENTS)
@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
def test_value_bytes_are_the_bytes_pydicom_writes(tag: int, vr: str, value: object, little: bool,
                                                  charset: str) -> None:
    elem = DataElement(tag, vr, value)
    assert value_bytes(elem, convert_encodings([charset]), little) == _pydicom(elem, little, charset)


def test_what_it_does_not_cover_is_left_to_pydicom() -> None:
    encodings = convert_encodings(["ISO_IR 100"])
    assert value_bytes(DataElement(0x00209165, "AT", 0x00100010), encodings, True) is None
    undefined = DataElement(0x7FE00010, "OB", b"\xfe\xff\x00\xe0\x00\x00\x00\x00", is_undefined_length=True)
    assert value_bytes(undefined, encodings, True) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of a value its VR cannot hold
        odd = DataElement(0x00280010, "US", "not a number")
    assert value_bytes(odd, encodings, True) is None
