"""The compiled plan does what deid's own engine does with the same recipe, where both
define the action (X, Z, K and U on the attributes of real files)."""

from __future__ import annotations

import io
import shutil
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest

from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.keys import Keys
from pipeline.scrub.uids import remap_uid
from tests.conftest import RECIPES, bundled

# Rules deid's engine and the plan both define: plain verbs and U. (The other functions are
# the pipeline's: deid would call whatever function it is handed.)
COMPARED = {"REMOVE", "BLANK", "KEEP", "func:uid"}


def run_deid(path: Path, keys: Keys) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deid imports a module pydicom deprecates
        from deid.config import DeidRecipe
        from deid.dicom.parser import DicomParser
        from deid.logger import bot

    bot.level = 0

    def uid(item: Any, value: Any, field: Any, dicom: Any) -> str:
        return remap_uid(str(field.element.value), keys)

    def dummy(item: Any, value: Any, field: Any, dicom: Any) -> str:
        return "ANONYMIZED"

    names = ["dummy", "clean", "blank_or_dummy", "remove_or_blank", "remove_or_dummy",
             "remove_blank_or_dummy", "remove_blank_or_uids", "patient_id", "patient_name", "shift_date"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = DicomParser(str(path), recipe=DeidRecipe(str(RECIPES / "basic.deid"), base=False))
        parser.lookup.update({"uid": uid, **{name: dummy for name in names}})
        parser.parse()
    dataset: pydicom.Dataset = parser.dicom
    return dataset


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"])
def test_plan_matches_deid_on_shared_actions(name: str, keys: Keys, tmp_path: Path) -> None:
    source = tmp_path / name
    shutil.copyfile(bundled(name), source)
    theirs = run_deid(source, keys)
    plan = compile_plan("basic")
    data = source.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = pydicom.dcmread(io.BytesIO(data))
        ours = pydicom.dcmread(io.BytesIO(scrub_bytes(data, plan, keys).data))
    compared = 0
    for elem in original:
        rule = plan.rule_for(int(elem.tag))
        if rule is None or rule.written not in COMPARED or elem.tag.is_private or elem.VR == "SQ":
            continue
        in_ours, in_theirs = elem.tag in ours, elem.tag in theirs
        assert in_ours == in_theirs, (elem.keyword, rule.action)
        if in_ours:
            # Empty is None in memory and "" after a write: the same zero-length value.
            assert (ours[elem.tag].value or None) == (theirs[elem.tag].value or None), (elem.keyword, rule.action)
        compared += 1
    assert compared >= 5
