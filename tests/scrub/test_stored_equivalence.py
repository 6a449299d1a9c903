"""The scrub reads and writes plain values as stored (pipeline/dicom/stored.py) and leaves the
rest to pydicom: the output is byte for byte the output of a scrub of the same file with every
element decoded first (where nothing is read as stored)."""

from __future__ import annotations

import warnings

import pytest
from pydicom.dataset import Dataset

from pipeline.dicom.file import encode, read_dataset
from pipeline.errors import PipelineError
from pipeline.pixels.clean import assess
from pipeline.profile.plan import compile_plan
from pipeline.scrub.header import scrub
from pipeline.scrub.keys import Keys
from tests.conftest import bundled

FILES = ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtplan.dcm",
         "JPEG2000.dcm", "SC_rgb_small_odd.dcm", "MR_small_padded.dcm", "reportsi.dcm", "rtstruct.dcm",
         "liver_1frame.dcm", "rtdose.dcm", "SC_rgb_rle.dcm")
OPTIONS = (("retain-longitudinal-modified-dates", "retain-patient-characteristics", "clean-descriptors"), ())


def _decode_all(ds: Dataset) -> None:
    for elem in ds:  # iterating decodes every element in place
        if elem.VR == "SQ":
            for item in elem.value or ():
                _decode_all(item)


def _scrubbed(name: str, options: tuple[str, ...], keys: Keys, decoded: bool) -> bytes | str:
    """The output's bytes, or the class of the error that refused the file."""
    plan = compile_plan("basic", list(options))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = read_dataset(bundled(name).read_bytes())
        if decoded:
            _decode_all(ds)
        try:
            assess(ds, plan)
            scrub(ds, plan, keys)
            return encode(ds)
        except PipelineError as exc:
            return type(exc).__name__


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("options", OPTIONS)
def test_reading_values_as_stored_changes_no_output_byte(name: str, options: tuple[str, ...], keys: Keys) -> None:
    assert _scrubbed(name, options, keys, decoded=False) == _scrubbed(name, options, keys, decoded=True)
