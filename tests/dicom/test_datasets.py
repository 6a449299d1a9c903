"""Datasets made without `Dataset.__setattr__` (pipeline/dicom/datasets.py) are the objects
pydicom's constructors make: every attribute, in the same order, each table their own."""

from __future__ import annotations

import io

import pytest
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.tag import BaseTag

from pipeline.dicom.datasets import new_file_dataset, new_file_meta, new_item, put_meta_element


def _attributes(ds: Dataset) -> list[tuple[str, object]]:
    return [(name, value) for name, value in vars(ds).items() if name != "buffer"]


def _meta_elements() -> dict[BaseTag, RawDataElement]:
    tag = BaseTag(0x00020010)
    return {tag: RawDataElement(tag, "UI", 20, b"1.2.840.10008.1.2.1\x00", 0, False, True)}


@pytest.mark.parametrize("encoding", ["iso8859", ["ISO_IR 100"]])
def test_an_item_is_the_dataset_pydicom_makes(encoding: str | list[str]) -> None:
    elements: dict[BaseTag, RawDataElement] = {}
    made = new_item(elements, encoding)
    assert type(made) is Dataset and made._dict is elements
    assert _attributes(made) == _attributes(Dataset(elements, parent_encoding=encoding))


def test_a_file_meta_is_the_one_pydicom_makes_and_refuses_what_pydicom_refuses() -> None:
    elements = _meta_elements()
    made = new_file_meta(elements)
    assert type(made) is FileMetaDataset and made._dict is elements
    assert _attributes(made) == _attributes(FileMetaDataset(dict(elements)))
    assert _attributes(new_file_meta({})) == _attributes(FileMetaDataset())
    tag = BaseTag(0x00080016)
    with pytest.raises(ValueError, match="group 2"):
        new_file_meta({tag: RawDataElement(tag, "UI", 4, b"1.2\x00", 0, False, True)})


@pytest.mark.parametrize(("implicit", "little"), [(False, True), (True, True), (False, False)])
def test_a_file_dataset_read_from_memory_is_the_one_pydicom_makes(implicit: bool, little: bool) -> None:
    meta, buffer = FileMetaDataset(), io.BytesIO(b"\x00" * 200)
    made = new_file_dataset(buffer, {}, b"\x00" * 128, meta, implicit, little)
    assert type(made) is FileDataset and made.buffer is buffer and made.file_meta is meta
    assert _attributes(made) == _attributes(FileDataset(io.BytesIO(b""), {}, b"\x00" * 128, meta, implicit, little))


def test_each_made_dataset_has_tables_of_its_own() -> None:
    first, second = new_item({}, "iso8859"), new_item({}, "iso8859")
    tables = [name for name, value in vars(first).items() if isinstance(value, dict)]
    assert "_private_blocks" in tables and "_pixel_array_opts" in tables
    assert all(vars(first)[name] is not vars(second)[name] for name in tables)


def test_a_file_meta_element_is_stored_as_pydicom_stores_it() -> None:
    ours, theirs = FileMetaDataset(), FileMetaDataset()
    for tag, raw in _meta_elements().items():
        put_meta_element(ours, tag, raw)
        theirs[tag] = raw
    elem = DataElement(0x00020003, "UI", "1.2.3")
    put_meta_element(ours, 0x00020003, elem)
    theirs[0x00020003] = elem
    assert list(ours._dict.items()) == list(theirs._dict.items())
    assert all(type(tag) is BaseTag for tag in ours._dict)
    assert _attributes(ours) == _attributes(theirs)
    with pytest.raises(ValueError, match="group 2"):  # through pydicom's checks
        put_meta_element(FileMetaDataset(), 0x00080016, DataElement(0x00080016, "UI", "1.2"))
