"""The command line, run as a user runs it: a subprocess of the installed console script."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from tests.conftest import TEST_KEY, bundled, make_dataset

SCRIPT = Path(sys.executable).parent / "deid-pipeline"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})


def make_key(tmp_path: Path) -> Path:
    path = tmp_path / "k.key"
    path.write_text(TEST_KEY.hex())
    path.chmod(0o600)
    return path


def test_profiles_show_prints_the_resolved_action_per_attribute() -> None:
    result = run("profiles", "show", "basic", "--option", "retain-patient-characteristics")
    assert result.returncode == 0, result.stderr
    lines = {line.split("\t")[1]: line.split("\t") for line in result.stdout.splitlines() if "\t" in line}
    # columns: tag, keyword, dictionary VR, Type, action, why
    assert lines["PatientAge"][4] == "K" and "retain_patient_characteristics" in lines["PatientAge"][5]
    assert lines["PatientBirthDate"][4] == "Z" and lines["PatientBirthDate"][2] == "DA"
    assert lines["ContentDate"][4] == "D" and lines["ContentDate"][5].startswith("conservative")  # no IOD given
    assert len(lines) > 650


def test_profiles_show_resolves_combined_codes_by_type_in_an_iod() -> None:
    result = run("profiles", "show", "basic", "--sop-class", "1.2.840.10008.5.1.4.1.1.66.4")  # Segmentation
    assert result.returncode == 0, result.stderr
    lines = {line.split("\t")[1]: line.split("\t") for line in result.stdout.splitlines() if "\t" in line}
    assert lines["AcquisitionDate"][3:5] == ["3", "X"] and "E.1-1 X/Z" in lines["AcquisitionDate"][5]
    assert lines["ContentDate"][3:5] == ["1", "D"]
    assert lines["ContentDescription"][3:5] == ["2", "Z"]  # no recipe names it: the Type decides


def test_unknown_or_unimplemented_option_exits_2() -> None:
    for option in ("retain-everything", "clean-recognizable-visual-features"):
        result = run("profiles", "show", "basic", "--option", option)
        assert result.returncode == 2 and option in result.stderr


def test_scrub_one_file_end_to_end(tmp_path: Path) -> None:
    source = tmp_path / "DOE_JANE" / "in.dcm"
    source.parent.mkdir()
    make_dataset(patient="DOE^JANE").save_as(source, enforce_file_format=True)
    before = source.read_bytes()
    output = tmp_path / "out" / "x.dcm"
    result = run("scrub", "--key-file", str(make_key(tmp_path)), str(source), str(output))
    assert result.returncode == 0, result.stderr
    assert source.read_bytes() == before  # the input is never modified
    out = pydicom.dcmread(output)
    assert out.PatientIdentityRemoved == "YES" and "DOE" not in str(out.PatientName)
    assert "DOE" not in result.stdout + result.stderr and "in.dcm" not in result.stdout
    assert not list(output.parent.glob(".*partial"))


def test_scrub_of_a_bad_file_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "bad.dcm"
    source.write_bytes(b"not dicom")
    output = tmp_path / "out.dcm"
    result = run("scrub", "--key-file", str(make_key(tmp_path)), str(source), str(output))
    assert result.returncode == 1 and not output.exists()


def test_scrub_without_a_key_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEID_PIPELINE_KEY_FILE"}
    result = subprocess.run([str(SCRIPT), "scrub", str(bundled("CT_small.dcm")), str(tmp_path / "o.dcm")],
                            capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 2 and "no key" in result.stderr
    assert not (tmp_path / "o.dcm").exists()


def test_keygen_writes_an_owner_only_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "keys" / "new.key"
    before = stat.S_IMODE(tmp_path.stat().st_mode)
    result = run("keygen", str(path))
    assert result.returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # the folders it created are owner-only (they were 0755: the README's secrets/); one that existed is untouched
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == before
    assert len(path.read_text().strip()) == 64
    assert path.read_text().strip() not in result.stdout


@pytest.mark.parametrize("module", ["pipeline", "pipeline.cli"])
def test_python_dash_m_knows_every_command(module: str) -> None:
    """`python -m pipeline` and `python -m pipeline.cli` offer run, verify, scan and report (the
    commands defined in their own modules register with pipeline.cli, not with a __main__ copy)."""
    for command in ("run", "verify", "scan", "report", "profiles"):
        done = subprocess.run([sys.executable, "-m", module, command, "--help"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, (command, done.stderr[-500:])
        assert "usage:" in done.stdout


def test_the_public_api_survives_the_runner_subpackage() -> None:
    """`from pipeline import run, RunConfig` gives the run function and its config even after the
    stage subpackage (pipeline.runner) has been imported: the package and the function do not
    share a name."""
    import pipeline
    import pipeline.runner.process
    from pipeline import Outcome, RunConfig, run
    from pipeline.runner.orchestrate import RunConfig as Config
    from pipeline.runner.orchestrate import run as run_function

    assert run is run_function and callable(run)
    assert RunConfig is Config
    assert Outcome.__name__ == "Outcome"
    assert set(pipeline.__all__) >= {"run", "RunConfig", "Outcome", "PipelineError", "__version__"}


def test_the_key_folder_the_readme_names_is_ignored_by_git() -> None:
    """The README's `deid-pipeline keygen secrets/project.key` inside the checkout: `git add .`
    must not commit the key (a newcomer found secrets/ listed as untracked)."""
    repo = Path(__file__).resolve().parents[2]
    assert "keygen secrets/project.key" in (repo / "README.md").read_text()
    done = subprocess.run(["git", "check-ignore", "-q", "secrets/project.key"], cwd=repo, timeout=60)
    assert done.returncode == 0
