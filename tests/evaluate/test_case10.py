"""Case 10 (issue 14 item 2): an Enhanced MR whose dimension index points at StackID and
InStackPositionNumber, with a referenced localizer, run with retain-longitudinal-modified-dates.
Both files are published clean and valid: dciodvfy finds no error kind the input did not have,
every Frame Content item keeps its StackID, and every dimension index points at an attribute
each frame still holds. The inputs are the shared case (tests/resources/case10, invented values)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from tests.conftest import REPO
from tests.conftest_run import write_key
from tests.dciodvfy import Readability, validate

CASE = REPO / "tests" / "resources" / "case10"
CLI = Path(sys.executable).with_name("deid-pipeline")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("case10")
    inputs = work / "inputs"
    inputs.mkdir()
    for name in ("mr_enhanced.dcm", "mr_localizer.dcm"):
        shutil.copy(CASE / name, inputs / name)
    command = [str(CLI), "run", str(inputs), "--output", str(work / "release"), "--key-file", str(write_key(work)),
               "--mapping-dir", str(work / "mapping"), "--workers", "0", "--quiet",
               "--option", "retain-longitudinal-modified-dates"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    return work / "release"


def _outputs(release: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in release.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found["enhanced" if "PerFrameFunctionalGroupsSequence" in ds else "localizer"] = path
    return found


def test_both_files_are_published(release: Path) -> None:
    assert set(_outputs(release)) == {"enhanced", "localizer"}


def test_no_output_gains_a_dciodvfy_error_kind(release: Path) -> None:
    outputs = _outputs(release)
    for kind, name in (("enhanced", "mr_enhanced.dcm"), ("localizer", "mr_localizer.dcm")):
        before, after = validate(CASE / name), validate(outputs[kind])
        assert before.readability is after.readability is Readability.READ
        assert after.errors <= before.errors, sorted(after.errors - before.errors)


def test_every_dimension_index_points_at_an_attribute_each_frame_holds(release: Path) -> None:
    ds = pydicom.dcmread(_outputs(release)["enhanced"])
    original = pydicom.dcmread(CASE / "mr_enhanced.dcm")
    pointers = [(int(item.DimensionIndexPointer), int(item.FunctionalGroupPointer))
                for item in ds.DimensionIndexSequence]
    assert 0x00209056 in {p for p, _ in pointers}  # StackID
    for frame, before in zip(ds.PerFrameFunctionalGroupsSequence, original.PerFrameFunctionalGroupsSequence,
                             strict=True):
        for pointer, group in pointers:
            item = frame[group].value[0]
            assert pointer in item and item[pointer].value not in (None, "")
        assert frame.FrameContentSequence[0].StackID == before.FrameContentSequence[0].StackID


def test_no_planted_value_is_in_the_release(release: Path) -> None:
    planted = [line.strip() for line in (CASE / "planted.txt").read_text().splitlines() if line.strip()]
    for path in release.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            assert not [v for v in planted if v.lower().encode() in data], path.name
