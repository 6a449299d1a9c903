"""Byte-level faults the scrub used to let through for the verifier to catch (issue 13, kind 7,
found by `make fuzz` on mutated sample archive files): pipeline/scrub/wellformed.py. Each test
builds the minimised shape of what the fuzzer made; before the fix the file was published by
the scrub and quarantined by verify under the rule named in the test's docstring."""

from __future__ import annotations

import io
import warnings

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from pipeline.errors import InputError
from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.scrub.wellformed import keepable
from pipeline.verify.checks import verify_bytes
from tests.conftest import encode, make_dataset

BASIC = compile_plan("basic")


def _refused(data: bytes, keys: Keys) -> str:
    with pytest.raises(InputError) as caught:
        scrub_bytes(data, BASIC, keys)
    return caught.value.code


def _spliced(ds: Dataset, old: bytes, new: bytes) -> bytes:
    data = encode(ds)
    assert data.count(old) == 1
    return data.replace(old, new)


def _with_department(nested: bool) -> Dataset:
    """Institutional Department Name (X) at top level, or in a sequence removed whole."""
    ds = make_dataset()
    if nested:
        item = Dataset()
        item.SpecificCharacterSet = "ISO_IR 100"  # first: pydicom reads the item as explicit VR
        item.InstitutionalDepartmentName = "QJXDEPTNAME"
        ds.OtherPatientIDsSequence = Sequence([item])
    else:
        ds.InstitutionalDepartmentName = "QJXDEPTNAME"
    return ds


@pytest.mark.parametrize("nested", [False, True])
def test_an_element_stored_under_an_unknown_vr_is_refused_as_bad_input(nested: bool, keys: Keys) -> None:
    """Was verify:original-unreadable: the scrub removed the element "Le" unread; verify, which
    reads every element of the original, could not."""
    data = _spliced(_with_department(nested), b"\x08\x00\x40\x10LO", b"\x08\x00\x40\x10Le")
    assert _refused(data, keys) == "bad-input:unknown-vr"


def test_a_date_with_an_undefined_length_is_refused_as_bad_input(keys: Keys) -> None:
    """Was verify:value-not-blank: Study Date's VR and length bytes read as an undefined length,
    the value ran to the next sequence delimiter, and the scrub wrote the emptied element back with an
    undefined length, so the output read as garbage."""
    ds = make_dataset()
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.9.1"
    ds.ReferencedImageSequence = Sequence([item])
    ds["ReferencedImageSequence"].is_undefined_length = True  # its delimiter ends the date's value
    data = _spliced(ds, b"\x08\x00\x20\x00DA\x08\x00", b"\x08\x00\x20\x00\xff\xff\xff\xff")
    assert _refused(data, keys) == "bad-input:bad-value-length"


def test_a_group_length_that_is_not_whole_values_is_refused_as_bad_input(keys: Keys) -> None:
    """Was verify:original-unreadable: a group length (UL, removed unread) holding 6 bytes."""
    data = _spliced(make_dataset(), b"\x10\x00\x10\x00PN", b"\x10\x00\x00\x00UL\x06\x00\x01\x02\x03\x04\x05\x06"
                    b"\x10\x00\x10\x00PN")
    assert _refused(data, keys) == "bad-input:bad-value-length"


def test_a_transfer_syntax_that_is_not_registered_is_refused_as_bad_input(keys: Keys) -> None:
    """Was verify:uid-not-remapped: the file meta's Transfer Syntax UID, one byte flipped, was
    kept (META_KEPT) and published unmapped."""
    ds = make_dataset()
    for keyword in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"):
        delattr(ds, keyword)
    data = _spliced(ds, b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008\x001.2.1\x00")
    assert _refused(data, keys) == "bad-input:unknown-transfer-syntax"


def _overrun(keyword_tag: bytes, stored: bytes, until: bytes, ds: Dataset) -> bytes:
    """`ds` encoded with the length of the element whose header starts `keyword_tag + stored` (VR
    and a 2-byte length) made to run over every element up to the header `until`."""
    data = encode(ds)
    start = data.index(keyword_tag + stored[:2])
    end = data.index(until, start)
    value_start = start + 8
    return data[:start + 6] + (end - value_start).to_bytes(2, "little") + data[value_start:]


@pytest.mark.parametrize(("tag", "vr", "until"), [
    (b"\x20\x00\x11\x00", b"IS", b"\x28\x00\x02\x00"),  # Series Number (IS, kept) over Image Comments
    (b"\x08\x00\x70\x00", b"LO", b"\x10\x00\x10\x00"),  # Manufacturer (LO, safe text) over Institution Name
])
def test_a_kept_value_that_ran_over_the_elements_after_it_is_replaced(tag: bytes, vr: bytes, until: bytes,
                                                                     keys: Keys) -> None:
    """Was verify:original-value-in-bytes: Series Number's length, mutated, took in the elements
    after it; a kept value is not read by the scrub, so the identifiers in them were published."""
    ds = make_dataset()
    ds.SeriesNumber = "1"
    ds.ImageComments = "QJXCOMMENTARY about the patient"
    ds.Manufacturer = "ACME"
    ds.InstitutionName = "QJXINSTITUTE"
    data = _overrun(tag, vr, until, ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = pydicom.dcmread(io.BytesIO(data))
    keyword = pydicom.datadict.keyword_for_tag(Tag(int.from_bytes(tag[:2], "little"),
                                                   int.from_bytes(tag[2:], "little")))
    assert "QJX" in str(original[keyword].value)  # the canaries are inside the kept value now
    out = scrub_bytes(data, BASIC, keys).data
    assert b"QJX" not in out.upper()
    assert verify_bytes(out, (), original=data) == []


def _raw(tag: int, vr: str, value: bytes) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def test_keepable_judges_repertoire_and_multiplicity() -> None:
    assert keepable(_raw(0x00200011, "IS", b"12 "), "IS")
    assert not keepable(_raw(0x00200011, "IS", b"1\x00\x10\x00PN"), "IS")
    assert keepable(_raw(0x00080070, "LO", b"Siemens \x1b$B"), "LO")  # ESC: ISO 2022 text
    assert not keepable(_raw(0x00080070, "LO", b"ACME\x08\x00\x80\x00LO"), "LO")
    assert keepable(_raw(0x00280030, "DS", b"0.5\\0.5 "), "DS")
    assert not keepable(_raw(0x00280030, "DS", b"0.5\\0.5\\7"), "DS")  # Pixel Spacing: VM 2
    assert keepable(_raw(0x00280010, "US", b"\x00\x02"), "US")
    assert not keepable(_raw(0x00280010, "US", b"\x00\x02\x00\x02"), "US")  # Rows: VM 1
    assert keepable(_raw(0x00181310, "US", b"\x00\x02" * 4), "US")  # Acquisition Matrix: VM 4
    assert keepable(_raw(0x00324000, "LT", b"line one\r\nline two\\ three"), "LT")


def test_an_element_shorter_than_its_declared_length_in_a_removed_sequence_is_refused(keys: Keys) -> None:
    """Was verify:original-unreadable: inside a private sequence (removed whole, unread), Other
    Patient IDs Sequence's VR bytes, flipped, were read as an implicit VR length running past its
    item; verify, which reads every element of the original, could not decode it."""
    ds = make_dataset()
    block = ds.private_block(0x0013, "ACME 1.0", create=True)
    item, inner = Dataset(), Dataset()
    item.PatientName, inner.PatientID = "QJXNAME^X", "QJXOTHERID"
    item.OtherPatientIDsSequence = Sequence([inner])
    block.add_new(0x10, "SQ", Sequence([item]))
    data = _spliced(ds, b"\x10\x00\x02\x10SQ\x00\x00", b"\x10\x00\x02\x10\x2f\xad\x00\x00")
    assert _refused(data, keys) == "bad-input:length-beyond-file"


@pytest.mark.parametrize("shape", ["value-for-sequence", "sequence-for-value"])
def test_a_sequence_stored_as_a_value_or_the_reverse_is_refused_as_bad_input(shape: str, keys: Keys) -> None:
    """Found by `make fuzz` (mutations, seed 29; verify-no-verdict): a flipped tag bit made
    Performing Physician's Name (0008,1050) PN into Related Series Sequence (0008,1250), whose
    dictionary VR is SQ; the scrub kept the name as it was stored (kept sequences are entered,
    this one could not be), and verify could not walk either file. The reverse: a kept text
    attribute (Manufacturer, safe text) stored as SQ would keep its items unread."""
    ds = make_dataset()
    if shape == "value-for-sequence":
        ds.add_new(0x00081250, "PN", "QJXSURNAME^QJXGIVEN")
    else:
        item = Dataset()
        item.PatientName = "QJXSURNAME^QJXGIVEN"
        ds.add_new(0x00080070, "SQ", Sequence([item]))
    assert _refused(encode(ds), keys) == "bad-input:vr-mismatch"


def test_an_item_tag_among_the_elements_of_an_item_is_refused_as_bad_input(keys: Keys) -> None:
    """Was verify:original-unreadable (`make fuzz`, seed 771440124, a mutation): a sequence's
    length became 0, so its item's tag (FFFE,E000) stood among the elements of the item around it.
    PS3.6 gives an item tag no VR ("NONE"): pydicom reads it with none, the scrub removed it
    unread, and verify, reading every element of the original, could not decode it."""
    ds = make_dataset()
    inner = Dataset()
    inner.PatientID = "QJXOTHERID"
    outer = Dataset()
    outer.OtherPatientIDsSequence = Sequence([inner])
    ds.ReferencedPatientSequence = Sequence([outer])
    data = encode(ds)
    head = data.index(b"\x10\x00\x02\x10SQ\x00\x00")  # Other Patient IDs Sequence: tag, VR, reserved
    data = data[:head + 8] + b"\x00\x00\x00\x00" + data[head + 12:]  # its length 0: the item follows
    assert _refused(data, keys) == "bad-input:unknown-vr"


def _with_delimiter_after(ds: Dataset, keyword: str) -> Dataset:
    """`ds` with an undefined-length sequence `keyword`, empty of meaning: its delimiter ends a
    value read to one (PS3.5 7.5.2), as in the file the fuzzer made."""
    item = Dataset()
    item.CodeValue = "X1"
    setattr(ds, keyword, Sequence([item]))
    ds[keyword].is_undefined_length = True
    return ds


def _undefined(ds: Dataset, keyword: str) -> bytes:
    """`ds` encoded with the VR and 16-bit length bytes of `keyword` all 0xFF: pydicom reads a VR
    that is not two letters as the start of an implicit VR header, so the length is undefined."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    assert tag is not None
    header = (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little")
    stored = str(ds[keyword].value).encode()
    length = len(stored) + len(stored) % 2
    vr = pydicom.datadict.dictionary_VR(keyword).encode()
    return _spliced(ds, header + vr + length.to_bytes(2, "little"), header + b"\xff\xff\xff\xff")


@pytest.mark.parametrize(("keyword", "options", "after"), [
    ("PatientName", (), "IssuerOfPatientIDQualifiersSequence"),  # read for the pseudonym's basis (no PatientID)
    ("PatientID", (), "IssuerOfPatientIDQualifiersSequence"),  # read for the pseudonym
    ("OperatorsName", ("clean-descriptors",), "ReferencedStudySequence"),  # read by C: the identifiers it removes
])
def test_a_value_with_an_undefined_length_read_before_the_scrub_is_refused(
        keyword: str, options: tuple[str, ...], after: str, keys: Keys) -> None:
    """Was verify:identity-removed-missing (`make fuzz`, seed 3245392528): Patient Name's VR and
    length bytes read as an undefined length, its value ran to the next sequence delimiter, and
    the name was read before the scrub came to it, so the scrub saw a decoded element, replaced
    its value, and wrote it back with an undefined length: the output read as ending there.
    PS3.5 7.1.1 allows an undefined length only on SQ, UN and encapsulated Pixel Data."""
    ds = _with_delimiter_after(make_dataset(patient_id="" if keyword == "PatientName" else "MRN0001"), after)
    ds.OperatorsName = "QJXOPERATOR^ANNE"
    data = _undefined(ds, keyword)
    with pytest.raises(InputError) as caught:
        scrub_bytes(data, compile_plan("basic", list(options)), keys)
    assert caught.value.code == "bad-input:bad-value-length"


@pytest.mark.parametrize("keyword", ["RedPaletteColorLookupTableData", "ICCProfile"])
def test_an_ob_or_ow_value_other_than_pixel_data_with_an_undefined_length_is_refused(keyword: str,
                                                                                      keys: Keys) -> None:
    """PS3.5 7.1.1 leaves an undefined length on OB and OW to the transfer syntax, and A.4 gives
    it to encapsulated Pixel Data alone: any other OB or OW value read to a delimiter is not the
    value the file meant (one kept as it was read was published with the bytes up to the
    delimiter)."""
    ds = _with_delimiter_after(make_dataset(), "ModalityLUTSequence")
    setattr(ds, keyword, b"\x01\x02\x03\x04")
    tag = pydicom.datadict.tag_for_keyword(keyword)
    assert tag is not None
    vr = pydicom.datadict.dictionary_VR(keyword).encode()
    header = (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little") + vr + b"\x00\x00"
    data = _spliced(ds, header + b"\x04\x00\x00\x00", header + b"\xff\xff\xff\xff")
    assert _refused(data, keys) == "bad-input:bad-value-length"
