"""verify's own copy of an original as it was read, taken before the scrub changes it.

The runner parses an input once (issue 16: one parse of each input per worker step). The
scrubber changes that dataset in place; verify needs the original as it was. `as_read` copies
the parsed structure (each dataset's table of elements, at every depth, and the file meta)
without converting or reading a single value: elements still raw share their stored bytes,
which nothing changes; elements already decoded are copied, so a value the scrub sets later
is not seen here. verify then decodes what it needs in its own copy, by its own rules, as it
would in a dataset it parsed from the original's bytes.
"""

from __future__ import annotations

import copy
from typing import TypeVar

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

_D = TypeVar("_D", bound=Dataset)


def as_read(ds: Dataset) -> Dataset:
    """A copy of `ds` (and its file meta) that shares no mutable part with it."""
    copied = _dataset(ds)
    meta = ds.__dict__.get("file_meta")
    if isinstance(meta, FileMetaDataset):
        copied.file_meta = _dataset(meta)
    return copied


def _dataset(ds: _D) -> _D:
    copied = copy.copy(ds)  # the same class and reading state (encoding, character set)
    copied._dict = {tag: _element(stored) for tag, stored in ds._dict.items()}
    copied._private_blocks = {}
    return copied


def _element(stored: DataElement | RawDataElement) -> DataElement | RawDataElement:
    if isinstance(stored, RawDataElement):
        return stored  # a named tuple of bytes: nothing changes it
    copied = copy.copy(stored)
    value = stored.value
    if isinstance(value, Sequence):
        copied.value = Sequence([_dataset(item) for item in value])
    elif isinstance(value, (MultiValue, list, bytearray)):
        copied._value = copy.deepcopy(value)  # strings and numbers: a few, and rare
    return copied


__all__ = ["as_read"]
