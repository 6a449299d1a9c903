"""Values read and written as stored (pipeline/dicom/stored.py): the strings are pydicom's, the
bytes written are pydicom's, and what is not plain is left to pydicom."""

from __future__ import annotations

import warnings

import pytest
from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from pipeline.dicom.stored import number, raw_elements, store, stored_values
from pipeline.dicom.values import value_bytes

PATIENT_NAME, STUDY_UID, STUDY_DATE, DESCRIPTION, ROWS = 0x00100010, 0x0020000D, 0x00080020, 0x00081030, 0x00280010


def _raw(tag: int, vr: str | None, data: bytes, little: bool = True) -> RawDataElement:
    return RawDataElement(BaseTag(tag), vr, len(data), data, 0, vr is None, little)


def _decoded(raw: RawDataElement, ds: Dataset) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = convert_raw_data_element(raw, encoding=ds._character_set, ds=ds).value
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list) or hasattr(value, "append") else [str(value)]


PLAIN = [
    (PATIENT_NAME, "PN", b"DOE^JANE"),
    (PATIENT_NAME, "PN", b"DOE^JOE "),
    (PATIENT_NAME, "PN", b"A^B\\C^D "),
    (STUDY_UID, "UI", b"1.2.3\x00"),
    (STUDY_UID, "UI", b"1.2\\3.4\x00"),
    (STUDY_DATE, "DA", b"20240131"),
    (STUDY_DATE, "DA", b"20240131\\20240201 "),
    (DESCRIPTION, "LO", b"CT HEAD "),
    (DESCRIPTION, "LO", b""),
    (STUDY_DATE, None, b"20240131"),  # implicit VR: judged by the dictionary's
    (DESCRIPTION, "LO", b"A LONGER DESCRIPTION " * 4),  # longer than what is remembered: read each time
    (STUDY_UID, "UI", b"1.2.840.99999.1.2.3.4.5.6.7.8.9.10.11.12.13.14.15\\1.2.840.99999.1.2.3.4.5.6.7.8\\1.2\x00"),
]
NOT_PLAIN = [
    (PATIENT_NAME, "PN", b"DOE^JANE  "),  # more than the one pad
    (DESCRIPTION, "LO", b" CT"),  # odd length
    (DESCRIPTION, "LO", b" CT "),  # a space before the value
    (DESCRIPTION, "LO", b"A \\B "),  # a space after a value
    (DESCRIPTION, "LO", "Étude".encode("latin-1") + b" "),  # not ASCII
    (DESCRIPTION, "LO", b"\x1b$B  "),  # an ISO 2022 escape
    (STUDY_UID, "UI", b"1.2.3 "),  # a UID padded with a space
    (DESCRIPTION, "SH", b"CT"),  # stored under another VR than it is judged by
    (DESCRIPTION, "LO", b"A LONGER DESCRIPTION " * 4 + b"  "),  # longer than what is remembered, two pads
]


@pytest.mark.parametrize(("tag", "vr", "data"), PLAIN)
def test_plain_values_are_pydicoms_strings_and_written_back_as_stored(tag: int, vr: str | None, data: bytes) -> None:
    ds = Dataset()
    raw = _raw(tag, vr, data)
    judged = {PATIENT_NAME: "PN", STUDY_UID: "UI", STUDY_DATE: "DA", DESCRIPTION: "LO"}[tag]
    values = stored_values(raw, judged, ds)
    assert values == _decoded(raw, ds)
    store(ds, raw, judged, values)
    assert ds.get_item(tag).value == data  # the same strings give the same bytes


@pytest.mark.parametrize(("tag", "vr", "data"), NOT_PLAIN)
def test_what_is_not_plain_is_left_to_pydicom(tag: int, vr: str, data: bytes) -> None:
    judged = {PATIENT_NAME: "PN", STUDY_UID: "UI", STUDY_DATE: "DA", DESCRIPTION: "LO"}[tag]
    assert stored_values(_raw(tag, vr, data), judged, Dataset()) is None


def test_text_in_an_iso_2022_character_set_is_left_to_pydicom() -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    assert stored_values(_raw(PATIENT_NAME, "PN", b"DOE^JANE"), "PN", ds) is None


@pytest.mark.parametrize("values", [["2.25.1"], ["2.25.12", "2.25.3"], None, ["19990101"]])
def test_stored_values_are_the_bytes_pydicom_writes(values: list[str] | None) -> None:
    ds = Dataset()
    vr = "DA" if values == ["19990101"] else "UI"
    raw = _raw(STUDY_DATE if vr == "DA" else STUDY_UID, vr, b"")
    store(ds, raw, vr, values)
    decoded = DataElement(raw.tag, vr, values if values and len(values) > 1 else (values or [None])[0])
    assert ds.get_item(raw.tag).value == value_bytes(decoded, convert_encodings(["ISO_IR 100"]), True)


@pytest.mark.parametrize("little", [True, False])
def test_a_us_value_is_read_from_its_bytes_and_left_as_stored(little: bool) -> None:
    ds = Dataset()
    ds._dict[BaseTag(ROWS)] = _raw(ROWS, "US", (512).to_bytes(2, "little" if little else "big"), little)
    assert number(ds, ROWS) == 512
    assert isinstance(ds.get_item(ROWS), RawDataElement)
    assert number(ds, 0x00280011) is None


@pytest.mark.parametrize(("implicit", "little"), [(True, True), (False, True), (False, False)])
def test_new_elements_are_encoded_as_pydicom_writes_them(implicit: bool, little: bool) -> None:
    plain = ((0x00120062, "CS", "YES"), (0x00120063, "LO", "deid 1.0"))
    items = (((0x00080100, "SH", "113100"), (0x00080102, "SH", "DCM"), (0x00080104, "LO", "Basic Profile")),)
    made = raw_elements((*plain, (0x00120064, items)), implicit, little)
    expected = Dataset()
    for tag, vr, text in plain:
        expected.add(DataElement(tag, vr, text))
    item = Dataset()
    for tag, vr, text in items[0]:
        item.add(DataElement(tag, vr, text))
    expected.add(DataElement(0x00120064, "SQ", Sequence([item])))
    stored = Dataset()
    for raw in made:
        stored._dict[raw.tag] = raw
    assert _written(stored, implicit, little) == _written(expected, implicit, little)


def _written(ds: Dataset, implicit: bool, little: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, little
    ds.set_original_encoding(implicit, little, "iso8859")
    write_dataset(fp, ds)
    return bytes(fp.getvalue())


def _person_names() -> list[bytes]:
    """Every PN value of up to four pieces from letters, component and group delimiters and the
    value delimiter, padded as stored."""
    pieces = [b"A", b"^", b"=", b"\\", b"B^C"]
    names = [b""]
    for _ in range(4):
        names = [name + piece for name in names for piece in pieces] + names
    return sorted({name + b" " * (len(name) % 2) for name in names})


@pytest.mark.parametrize("data", _person_names(), ids=lambda data: repr(data))
def test_a_person_name_read_as_stored_is_pydicoms_or_left_to_pydicom(data: bytes) -> None:
    """pydicom drops empty trailing component groups ("A^B=" reads "A^B", PS3.5 6.2.1.2): a name
    read as stored must give pydicom's strings, or not be read here at all (the breaker of issue
    16 found "A^B=" read as "A^B=": another pseudonym basis than the same name without the '=')."""
    ds = Dataset()
    raw = _raw(PATIENT_NAME, "PN", data)
    values = stored_values(raw, "PN", ds)
    assert values is None or values == _decoded(raw, ds)


def test_the_same_bytes_are_judged_by_each_datasets_character_set() -> None:
    """The reading of short bytes is remembered, the character set is not: bytes read as ASCII in
    one dataset are left to pydicom in another whose character set needs escapes, either order."""
    latin, japanese = Dataset(), Dataset()
    latin.SpecificCharacterSet, japanese.SpecificCharacterSet = "ISO_IR 100", ["", "ISO 2022 IR 87"]
    raw = _raw(PATIENT_NAME, "PN", b"DOE^JANE")
    for _ in range(2):
        assert stored_values(raw, "PN", latin) == ["DOE^JANE"]
        assert stored_values(raw, "PN", japanese) is None
