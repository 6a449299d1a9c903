"""`deid-pipeline run`: exit codes, what the release holds, reruns, refusals, quarantine, mapping.

These runs use ``--workers 0`` (no Dask) to stay fast; tests/test_orchestrate.py shows the
Dask runs publish the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.runner.release import release_lock
from tests.conftest_run import (
    GOOD_FILES,
    OTHER_KEY_HEX,
    PATIENT_FOLDER,
    build_inputs,
    identifying_strings,
    release_files,
    write_key,
)

NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*/2\.25\.\d+/2\.25\.\d+/2\.25\.\d+\.dcm$")


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    return {
        "inputs": build_inputs(tmp_path / "archive"),
        "key": write_key(tmp_path / "secrets"),
        "release": tmp_path / "out" / "release",
    }


def _run(layout: dict[str, Path], *extra: str) -> int:
    return main(["run", str(layout["inputs"]), "--output", str(layout["release"]), "--key-file", str(layout["key"]),
                 "--workers", "0", "--quiet", *extra])


def _summary(text: str) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        if ":" in line and line.split(":")[0] in ("this run", "unchanged since an earlier run"):
            head, counts = line.split(":", 1)
            found[head] = {k: int(v) for k, v in (part.strip().rsplit(" ", 1) for part in counts.split(","))}
    return found


def _break_one(layout: dict[str, Path]) -> Path:
    data = (layout["inputs"] / next(iter(GOOD_FILES))).read_bytes()
    cut = layout["inputs"] / "Broken^Patient_MRN000" / "cut.dcm"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    return cut


def test_clean_inputs_are_all_published_and_the_run_exits_0(layout: dict[str, Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(layout) == 0
    counts = _summary(capsys.readouterr().out)["this run"]
    assert counts == {"written": 4, "quarantined": 0, "skipped-not-dicom": 2}
    record = json.loads((layout["release"].parent / "release.run.json").read_text())
    assert record["exit_status"] == 0 and record["completed"] and record["processed"]["written"] == 4
    assert record["key_fingerprint"] and record["packages"]["pydicom"] != "absent"
    assert OTHER_KEY_HEX not in json.dumps(record) and layout["key"].read_text().strip() not in json.dumps(record)


def test_the_progress_bar_counts_files_and_names_none(layout: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", str(layout["inputs"]), "--output", str(layout["release"]), "--key-file", str(layout["key"]),
            "--workers", "0"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert re.search(r"\b6(/6)?(file)? ", err) and "file/s" in err  # the total arrives when counted
    assert "Smith" not in err and str(layout["inputs"]) not in err


def test_the_release_holds_only_dcm_files_named_by_new_uids(layout: dict[str, Path]) -> None:
    assert _run(layout) == 0
    files = release_files(layout["release"])
    assert len(files) == len(GOOD_FILES)
    assert all(NAME.match(name) for name in files), list(files)
    names = " ".join(str(p.relative_to(layout["release"])) for p in layout["release"].rglob("*"))
    assert not [value for value in identifying_strings() if value in names]
    assert "Smith" not in names and "MRN" not in names


def test_a_quarantined_file_exits_1_and_the_ledger_holds_its_relative_path_and_no_values(
    layout: dict[str, Path]
) -> None:
    cut = _break_one(layout)
    assert _run(layout) == 1
    quarantine = layout["release"].parent / "release.quarantine"
    ledger = (quarantine / "ledger.jsonl").read_text()
    [line] = [json.loads(text) for text in ledger.splitlines()]
    assert line["reason"] == "bad-input:length-beyond-file" and line["disposition"] == "quarantined"
    assert line["input"] == cut.relative_to(layout["inputs"]).as_posix() and line["root"] == 1
    assert (quarantine / f"{line['source_id']}.dcm").read_bytes() == cut.read_bytes()
    assert stat.S_IMODE(quarantine.stat().st_mode) == 0o700
    assert stat.S_IMODE((quarantine / "ledger.jsonl").stat().st_mode) == 0o600
    without_path = json.dumps({k: v for k, v in line.items() if k != "input"})
    assert not [value for value in identifying_strings() if value in without_path]
    assert str(layout["inputs"]) not in ledger  # relative to its root, not absolute
    record = (layout["release"].parent / "release.run.json").read_text()
    assert str(layout["inputs"]) not in record and "Smith" not in record


@pytest.mark.parametrize("problem", ["unknown-option", "missing-key", "short-key", "open-key", "missing-recipe"])
def test_a_usage_profile_or_key_error_exits_2_and_creates_nothing(layout: dict[str, Path], tmp_path: Path,
                                                                 problem: str) -> None:
    extra: list[str] = []
    if problem == "unknown-option":
        extra = ["--option", "retain-everything"]
    elif problem == "missing-key":
        layout["key"] = tmp_path / "secrets" / "absent.key"
    elif problem == "short-key":
        layout["key"].write_text("abc\n")
    elif problem == "open-key":
        os.chmod(layout["key"], 0o644)
    elif problem == "missing-recipe":
        extra = ["--recipe", str(tmp_path / "absent.deid")]
    assert _run(layout, *extra) == 2
    assert not (tmp_path / "out").exists()


def test_a_rerun_reads_nothing_new_and_changes_nothing(layout: dict[str, Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(layout) == 0
    before = release_files(layout["release"])
    capsys.readouterr()
    assert _run(layout) == 0
    summary = _summary(capsys.readouterr().out)
    assert summary["this run"] == {"written": 0, "quarantined": 0, "skipped-not-dicom": 0}
    assert summary["unchanged since an earlier run"] == {"written": 4, "quarantined": 0, "skipped-not-dicom": 2}
    assert release_files(layout["release"]) == before
    db = sqlite3.connect(layout["release"].parent / "release.manifest.sqlite")
    try:
        assert db.execute("SELECT COUNT(*) FROM inputs WHERE status = 'written'").fetchone()[0] == 4
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert str(layout["inputs"]) not in dump and "Smith" not in dump


def test_a_touched_input_is_read_again_and_republished_identically(layout: dict[str, Path],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(layout) == 0
    before = release_files(layout["release"])
    os.utime(layout["inputs"] / next(iter(GOOD_FILES)), ns=(1, 1))
    capsys.readouterr()
    assert _run(layout) == 0
    assert _summary(capsys.readouterr().out)["this run"]["written"] == 1
    assert release_files(layout["release"]) == before


def test_a_changed_option_is_refused_without_force_replan(layout: dict[str, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(layout) == 0
    before = release_files(layout["release"])
    capsys.readouterr()
    assert _run(layout, "--option", "retain-uids") == 2
    assert "--force-replan" in capsys.readouterr().err
    assert release_files(layout["release"]) == before
    assert _run(layout, "--option", "retain-uids", "--force-replan") == 0
    after = release_files(layout["release"])
    assert len(after) == len(GOOD_FILES) and not set(after) & set(before)  # original UIDs now name the files
    assert _run(layout, "--option", "retain-uids") == 0


def test_a_changed_key_is_refused(layout: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(layout) == 0
    layout["key"] = write_key(layout["key"].parent / "other", OTHER_KEY_HEX)
    capsys.readouterr()
    assert _run(layout) == 2
    err = capsys.readouterr().err
    assert "different key" in err and OTHER_KEY_HEX not in err


def test_a_second_run_on_a_locked_release_is_refused(layout: dict[str, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    layout["release"].parent.mkdir(parents=True)
    with release_lock(layout["release"].parent / "release.lock"):
        assert _run(layout) == 2
    assert "another run" in capsys.readouterr().err
    assert not layout["release"].exists()
    assert _run(layout) == 0


def test_a_leftover_partial_file_is_removed(layout: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(layout) == 0
    some = next(layout["release"].rglob("*.dcm"))
    leftover = some.with_name(f".{some.name}.0123456789ab.partial")
    leftover.write_bytes(b"half a file")
    capsys.readouterr()
    assert _run(layout) == 0
    assert not leftover.exists()
    assert "removed 1 leftover partial file" in capsys.readouterr().out


def test_a_staged_file_a_dead_run_left_beside_the_release_is_swept(
    layout: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(layout) == 0
    staging = layout["release"].with_name("release.staging")
    assert not staging.exists()  # a run that ends leaves no staging folder behind
    staging.mkdir(mode=0o700)
    leftover, other = staging / "0123456789abcdef.partial", staging / "not-ours.txt"
    leftover.write_bytes(b"a scrubbed, unverified file")
    other.write_text("kept")
    capsys.readouterr()
    assert _run(layout) == 0
    assert not leftover.exists() and other.read_text() == "kept"
    assert "removed 1 leftover partial file" in capsys.readouterr().out
    assert not [p for p in layout["release"].rglob("*") if p.name.startswith(".")]


def test_outputs_are_staged_where_asked_and_never_inside_the_release(layout: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    inside = layout["release"] / "staging"
    assert _run(layout, "--staging", str(inside)) == 2
    assert not layout["release"].exists()
    assert _run(layout, "--staging", str(layout["inputs"] / "staging")) == 2
    assert not (layout["inputs"] / "staging").exists()
    elsewhere = tmp_path / "scratch" / "staging"
    assert _run(layout, "--staging", str(elsewhere)) == 0
    assert len(list(layout["release"].rglob("*.dcm"))) == len(GOOD_FILES)
    assert not elsewhere.exists() and not layout["release"].with_name("release.staging").exists()


def test_the_report_command_lists_quarantined_inputs_by_relative_path_on_the_terminal_only(
    layout: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cut = _break_one(layout)
    assert _run(layout) == 1
    capsys.readouterr()
    assert main(["report", str(layout["release"])]) == 0
    out = capsys.readouterr().out
    relative = cut.relative_to(layout["inputs"]).as_posix()
    assert "quarantined inputs:" in out and f"  {relative}  bad-input" in out
    records = [layout["release"].parent / "release.report" / name for name in ("report.json", "report.html")]
    records.append(layout["release"].parent / "release.run.json")
    for path in records:
        text = path.read_text()
        assert "Broken" not in text and "cut.dcm" not in text and "MRN000" not in text, path.name
    assert not [p for p in layout["release"].rglob("*") if "Broken" in p.as_posix()]
    assert _run(layout, "--retry-quarantined") == 1  # still broken: still listed
    capsys.readouterr()
    assert main(["report", str(layout["release"])]) == 0
    assert capsys.readouterr().out.count(relative) == 1
    cut.write_bytes((layout["inputs"] / next(iter(GOOD_FILES))).read_bytes())  # repaired: a copy of a good file
    assert _run(layout, "--retry-quarantined") == 0
    capsys.readouterr()
    assert main(["report", str(layout["release"])]) == 0
    assert "quarantined inputs" not in capsys.readouterr().out


def test_retry_quarantined_redoes_only_the_quarantined_inputs(layout: dict[str, Path],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _break_one(layout)
    assert _run(layout) == 1
    capsys.readouterr()
    assert _run(layout) == 1  # still quarantined: the release is incomplete
    assert _summary(capsys.readouterr().out)["unchanged since an earlier run"]["quarantined"] == 1
    assert _run(layout, "--retry-quarantined") == 1
    summary = _summary(capsys.readouterr().out)
    assert summary["this run"] == {"written": 0, "quarantined": 1, "skipped-not-dicom": 0}


def test_quarantine_by_reference_keeps_a_link_not_a_copy(layout: dict[str, Path]) -> None:
    cut = _break_one(layout)
    assert _run(layout, "--quarantine-mode", "reference") == 1
    [kept] = (layout["release"].parent / "release.quarantine").glob("*.dcm")
    assert kept.is_symlink() and kept.resolve() == cut.resolve()


def test_the_mapping_is_written_owner_only_and_only_where_asked(layout: dict[str, Path], tmp_path: Path) -> None:
    assert _run(layout) == 0
    assert not list(tmp_path.rglob("*mapping*.csv"))
    mapping = tmp_path / "confidential"
    release = tmp_path / "out2" / "release"
    layout["release"] = release
    assert _run(layout, "--mapping-dir", str(mapping)) == 0
    uids = (mapping / "uid_mapping.csv").read_text().splitlines()
    patients = (mapping / "patient_mapping.csv").read_text().splitlines()
    assert uids[0] == "id_old,id_new" and len(uids) > 4 * 3  # MIDI-B's layout
    assert patients[0] == "id_old,id_new" and any(line.split(",")[1].startswith("PAT-") for line in patients[1:])
    for path in (mapping / "uid_mapping.csv", mapping / "patient_mapping.csv"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(mapping.stat().st_mode) == 0o700
    published = {p.name.removesuffix(".dcm") for p in release.rglob("*.dcm")}
    assert published <= {line.split(",")[1] for line in uids[1:]}
    assert sorted(p.name for p in tmp_path.rglob("*mapping*.csv")) == ["patient_mapping.csv", "uid_mapping.csv"]


def test_layouts_that_would_mix_inputs_and_outputs_are_refused(layout: dict[str, Path], tmp_path: Path) -> None:
    inside = layout["inputs"] / PATIENT_FOLDER / "release"
    assert main(["run", str(layout["inputs"]), "--output", str(inside), "--key-file", str(layout["key"]),
                 "--workers", "0", "--quiet"]) == 2
    assert not inside.exists()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something.txt").write_text("not ours")
    layout["release"] = occupied
    assert _run(layout) == 2
    assert sorted(p.name for p in occupied.iterdir()) == ["something.txt"]


def test_workers_and_scheduler_exclude_each_other(layout: dict[str, Path]) -> None:
    with pytest.raises(SystemExit) as caught:
        _run(layout, "--scheduler", "tcp://127.0.0.1:1")
    assert caught.value.code == 2
    assert not layout["release"].exists()
