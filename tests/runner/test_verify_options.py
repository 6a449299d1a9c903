"""`verify` takes the options a release was made with: from its run record, else from what each
file declares (DeidentificationMethodCodeSequence); `--option` must agree with the record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import InputError, ProfileError
from pipeline.runner.run_record import run_record_path
from pipeline.runner.verify_options import OptionSource, choose_options, declared_options
from tests.conftest_run import build_inputs, identifying_strings, write_key

OPTIONS = ("retain-patient-characteristics", "retain-longitudinal-modified-dates")


def _run(inputs: Path, release: Path, key: Path, *extra: str) -> None:
    code = main(["run", str(inputs), "--output", str(release), "--key-file", str(key), "--workers", "0", "--quiet",
                 *extra])
    assert code == 0


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A release made with two header options and pixel cleaning by the rules, its inputs and key."""
    root = tmp_path_factory.mktemp("made")
    layout = {"inputs": build_inputs(root / "archive"), "key": write_key(root / "secrets"),
              "release": root / "out" / "release"}
    _run(layout["inputs"], layout["release"], layout["key"], *(f"--option={o}" for o in OPTIONS),
         "--clean-pixels", "rules")
    return layout


def _copy(made: dict[str, Path], target: Path, record: bool) -> Path:
    release = target / "release"
    shutil.copytree(made["release"], release)
    if record:
        shutil.copyfile(run_record_path(made["release"]), run_record_path(release))
    return release


def _verify(made: dict[str, Path], release: Path, *extra: str) -> int:
    return main(["verify", str(release), "--originals", str(made["inputs"]), "--key-file", str(made["key"]),
                 "--workers", "0", *extra])


def test_the_run_record_holds_the_options_and_the_pixel_option(made: dict[str, Path]) -> None:
    record = json.loads(run_record_path(made["release"]).read_text())
    assert record["profile"] == "basic"
    assert set(record["options"]) == {*OPTIONS, "clean-pixel-data"}


def test_verify_without_options_uses_the_run_record(made: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    release = _copy(made, tmp_path, record=True)
    report = tmp_path / "verify.json"
    assert _verify(made, release, "--json", str(report)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("options from the run record: retain-patient-characteristics, "
                                   "retain-longitudinal-modified-dates, clean-pixel-data")
    assert "verified 4 file(s); 0 with findings" in out
    data = json.loads(report.read_text())
    assert data["findings"] == [] and data["options_source"] == "run-record"
    assert data["options"] == [*OPTIONS, "clean-pixel-data"]


def test_the_same_release_checked_with_basic_alone_has_findings(made: dict[str, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """What the run record spares: these files do break the Basic Profile without the options."""
    release = _copy(made, tmp_path, record=False)
    assert main(["verify", str(release), "--workers", "0", "--option", "clean-pixel-data"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "options given: clean-pixel-data"
    assert "method-codes-mismatch" in out and "temporal-flag-mismatch" in out


def test_verify_without_run_record_uses_what_each_file_declares(made: dict[str, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    release = _copy(made, tmp_path, record=False)
    assert not run_record_path(release).exists()
    report = tmp_path / "verify.json"
    assert _verify(made, release, "--json", str(report)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("options declared by each file")
    assert "verified 4 file(s); 0 with findings" in out
    data = json.loads(report.read_text())
    assert data["findings"] == [] and data["options_source"] == "declared" and data["options"] is None


def test_files_declaring_different_options_are_each_verified_with_their_own(
        made: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two releases of the same inputs, one Basic and one with Retain UIDs, merged without a run
    record: each file passes under its declaration and is paired with its original (remapped
    UID or the same UID)."""
    plain, kept = tmp_path / "plain" / "release", tmp_path / "kept" / "release"
    _run(made["inputs"], plain, made["key"])
    _run(made["inputs"], kept, made["key"], "--option", "retain-uids")
    merged = tmp_path / "merged"
    shutil.copytree(plain, merged / "plain")
    shutil.copytree(kept, merged / "kept")
    assert {declared_options(p.read_bytes()) for p in merged.rglob("*.dcm")} == {(), ("retain-uids",)}
    assert _verify(made, merged) == 0
    assert "verified 8 file(s); 0 with findings" in capsys.readouterr().out


def test_option_contradicting_the_run_record_exits_2_naming_the_options(
        made: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release = _copy(made, tmp_path, record=True)
    assert _verify(made, release, "--option", "retain-uids", "--option", "retain-patient-characteristics") == 2
    captured = capsys.readouterr()
    assert "verified" not in captured.out
    message = captured.err
    assert "contradicts the run record" in message
    assert "given but not in the run record: retain-uids" in message
    assert "in the run record but not given: retain-longitudinal-modified-dates, clean-pixel-data" in message
    assert not any(value in message for value in identifying_strings())


def test_option_agreeing_with_the_run_record_is_accepted_in_any_order(made: dict[str, Path], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    release = _copy(made, tmp_path, record=True)
    given = [arg for o in ("clean-pixel-data", *reversed(OPTIONS)) for arg in ("--option", o)]
    assert _verify(made, release, *given) == 0
    assert capsys.readouterr().out.startswith("options from the run record: ")


def test_choose_options_without_a_record(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    given = choose_options(release, ["clean-pixel-data", "retain-uids"])
    assert given.source is OptionSource.GIVEN and given.options == ("retain-uids", "clean-pixel-data")
    declared = choose_options(release, [])
    assert declared.source is OptionSource.DECLARED and declared.is_per_file


def test_a_broken_or_foreign_run_record_is_refused(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    record = run_record_path(release)
    record.write_text("{not json")
    with pytest.raises(InputError, match="unreadable"):
        choose_options(release, [])
    record.write_text(json.dumps({"profile": "basic", "options": "retain-uids"}))
    with pytest.raises(InputError, match="list of options"):
        choose_options(release, [])
    record.write_text(json.dumps({"profile": "other", "options": []}))
    with pytest.raises(ProfileError, match="names profile 'other'"):
        choose_options(release, [])
    record.write_text(json.dumps({"profile": "basic", "options": ["retain-everything"]}))
    with pytest.raises(ProfileError, match="unknown option"):
        choose_options(release, [])


def test_a_file_that_declares_nothing_or_is_not_dicom_declares_no_option() -> None:
    assert declared_options(b"not dicom at all") == ()
