"""write: release names from new identifiers, atomic stage/promote, quarantine, lock."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from pipeline.errors import InputError, WriteError
from pipeline.files import DuplicateOutputError, promote, stage
from pipeline.runner.quarantine import QuarantineMode, quarantine
from pipeline.runner.release import clean_partials, clean_staging, release_lock, release_name


def _dataset(patient: str | None = "PAT-ABC", sop: str = "2.25.3") -> Dataset:
    ds = Dataset()
    if patient is not None:
        ds.PatientID = patient
    ds.StudyInstanceUID = "2.25.1"
    ds.SeriesInstanceUID = "2.25.2"
    ds.SOPInstanceUID = sop
    return ds


def test_release_name_is_patient_study_series_and_instance() -> None:
    assert release_name(_dataset()).as_posix() == "PAT-ABC/2.25.1/2.25.2/2.25.3.dcm"


def test_release_name_parts_are_reduced_to_safe_characters() -> None:
    name = release_name(_dataset(patient="../Doe^Jane /x"))
    assert name.parts[0] == "_Doe_Jane__x"
    assert all(part not in (".", "..") and not part.startswith(".") for part in name.parts)


def test_release_name_without_a_patient_id_uses_a_fixed_folder() -> None:
    assert release_name(_dataset(patient=None)).parts[0] == "no-patient-id"
    assert release_name(_dataset(patient="")).parts[0] == "no-patient-id"


def test_release_name_needs_a_sop_instance_uid() -> None:
    with pytest.raises(WriteError):
        release_name(_dataset(sop=""))


def test_stage_then_promote_publishes_and_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.dcm"
    staged = stage(b"data", target)
    assert staged.parent == target.parent
    assert staged.name.startswith(".") and staged.name.endswith(".partial")
    assert not target.exists()
    promote(staged, target)
    assert target.read_bytes() == b"data"
    assert [p.name for p in target.parent.iterdir()] == ["b.dcm"]


def test_stage_into_a_staging_folder_keeps_the_target_folder_untouched_until_promoted(tmp_path: Path) -> None:
    release, staging = tmp_path / "release", tmp_path / "release.staging"
    target = release / "p" / "s" / "x.dcm"
    staged = stage(b"data", target, into=staging)
    assert staged.parent == staging and staged.name.endswith(".partial") and "x.dcm" not in staged.name
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700
    assert not release.exists()
    promote(staged, target)
    assert target.read_bytes() == b"data" and not staged.exists()
    assert [p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()] == ["p/s/x.dcm"]


def test_clean_staging_removes_only_staged_files(tmp_path: Path) -> None:
    (tmp_path / "a.partial").write_bytes(b"")
    (tmp_path / "b.partial").symlink_to(tmp_path / "a.partial")
    (tmp_path / "keep.txt").write_bytes(b"")
    (tmp_path / "sub.partial").mkdir()
    assert clean_staging(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "sub.partial"]
    assert clean_staging(tmp_path / "absent") == 0


def test_promote_accepts_an_identical_file_and_refuses_a_different_one(tmp_path: Path) -> None:
    target = tmp_path / "x.dcm"
    promote(stage(b"same", target), target)
    promote(stage(b"same", target), target)
    with pytest.raises(DuplicateOutputError) as caught:
        promote(stage(b"other", target), target)
    assert caught.value.code == "duplicate-sop-instance"
    assert target.read_bytes() == b"same"
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


def test_clean_partials_removes_only_hidden_partial_files(tmp_path: Path) -> None:
    (tmp_path / "p" / "s").mkdir(parents=True)
    (tmp_path / "p" / "s" / ".x.dcm.abc.partial").write_bytes(b"")
    (tmp_path / ".y.partial").write_bytes(b"")
    (tmp_path / "p" / "s" / "x.dcm").write_bytes(b"")
    (tmp_path / "keep.partial").write_bytes(b"")
    assert clean_partials(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["keep.partial", "x.dcm"]


def test_quarantine_copies_the_original_owner_only_under_its_source_id(tmp_path: Path) -> None:
    source = tmp_path / "Smith^John.dcm"
    source.write_bytes(b"original")
    folder = tmp_path / "q"
    folder.mkdir()
    quarantine("ab" * 32, b"original", source, folder, QuarantineMode.COPY)
    kept = folder / f"{'ab' * 32}.dcm"
    assert kept.read_bytes() == b"original" and not kept.is_symlink()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    quarantine("ab" * 32, b"original", source, folder, QuarantineMode.COPY)  # again: no error
    assert len(list(folder.iterdir())) == 1


def test_quarantine_by_reference_links_to_the_original(tmp_path: Path) -> None:
    source = tmp_path / "in.dcm"
    source.write_bytes(b"original")
    folder = tmp_path / "q"
    folder.mkdir()
    quarantine("cd" * 32, b"original", source, folder, QuarantineMode.REFERENCE)
    kept = folder / f"{'cd' * 32}.dcm"
    assert kept.is_symlink() and kept.resolve() == source.resolve()


def test_a_second_lock_on_a_release_is_refused_and_the_lock_goes_away(tmp_path: Path) -> None:
    lock = tmp_path / "release.lock"
    with release_lock(lock):
        assert lock.exists()
        with pytest.raises(InputError), release_lock(lock):
            pass
    assert not lock.exists()
    with release_lock(lock):
        pass
