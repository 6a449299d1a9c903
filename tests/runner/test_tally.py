"""tally: a run's figures add up. On a copy of the sample archive with three extra inputs (an
identical copy of a good file; the same file with another InstanceNumber, so the same SOP
Instance UID and another output; the same file with another InstitutionName, which the Basic
Profile removes, so the same output), inputs = published + quarantined + skipped + duplicates
and release files = published, in the summary, run.json and a rerun."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import warnings
from contextlib import closing
from pathlib import Path

import pydicom
import pytest

from pipeline.cli import main
from tests.conftest_run import write_key

ARCHIVE = Path(__file__).resolve().parents[2] / "sample_data" / "archive"
FIGURES = re.compile(r"inputs (\d+) = published (\d+) \+ quarantined (\d+) \+ skipped (\d+) \+ duplicates (\d+)")


def _archive_with_duplicates(root: Path) -> tuple[Path, Path]:
    """The sample archive and, in a folder found after it, the three extra inputs; returns the
    tree and the good file they copy."""
    shutil.copytree(ARCHIVE, root)
    original = sorted(p for p in root.rglob("*.dcm") if "bad" not in p.relative_to(root).parts)[0]
    extra = root / "zz_extra"
    extra.mkdir()
    shutil.copyfile(original, extra / "identical.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(original)
        ds.InstanceNumber = int(ds.get("InstanceNumber") or 0) + 1000
        ds.save_as(extra / "same_sop_other_instance_number.dcm")
        ds = pydicom.dcmread(original)
        ds.InstitutionName = "Another Hospital"
        ds.save_as(extra / "same_sop_other_institution.dcm")
    return root, original


def _files(folder: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(folder))


def _figures(text: str) -> dict[str, int]:
    found = FIGURES.search(text)
    assert found is not None, text
    names = ("inputs", "published", "quarantined", "skipped", "duplicates")
    figures = dict(zip(names, map(int, found.groups()), strict=True))
    release_files = re.search(r"release files: (\d+)", text)
    assert release_files is not None
    figures["release_files"] = int(release_files.group(1))
    return figures


def test_inputs_are_published_quarantined_skipped_or_duplicates_and_release_files_are_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs, _ = _archive_with_duplicates(tmp_path / "archive")
    release = tmp_path / "out" / "release"
    args = ["run", str(inputs), "--output", str(release), "--key-file", str(write_key(tmp_path / "secrets")),
            "--workers", "0", "--quiet"]
    assert main(args) == 1  # the archive's bad files, and the same-SOP input, are quarantined
    text = capsys.readouterr().out
    figures = _figures(text)
    print(f"first run: {figures}")
    assert figures["inputs"] == _files(inputs) == 48
    assert figures["inputs"] == (figures["published"] + figures["quarantined"] + figures["skipped"]
                                 + figures["duplicates"])
    assert figures["duplicates"] == 2  # the identical copy, and the copy that scrubs to the same file
    assert "quarantined with the SOP Instance UID of another input: 1" in text
    assert figures["release_files"] == figures["published"] == _files(release)

    record = json.loads(release.with_name("release.run.json").read_text())["summary"]
    assert {k: record[k] for k in figures} == figures and record["same_sop_instance"] == 1
    with closing(sqlite3.connect(release.with_name("release.manifest.sqlite"))) as db:
        shared = db.execute("SELECT COUNT(*) FROM (SELECT source_id FROM locations GROUP BY source_id "
                            "HAVING COUNT(*) > 1)").fetchone()[0]
        reasons = [r for (r,) in db.execute("SELECT reason FROM inputs WHERE status = 'quarantined'")]
    assert shared == 1  # the identical copy: two locations, one content
    assert reasons.count("duplicate-sop-instance") == 1

    assert main(args) == 1  # a rerun reads nothing, and counts the same
    again = _figures(capsys.readouterr().out)
    print(f"rerun: {again}")
    assert again == figures
