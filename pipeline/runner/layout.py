"""Where a run reads and writes (`RunPaths`), and the layouts it refuses before writing anything.

Beside the release ``<release>``: ``<release>.staging/`` (outputs until verified: never inside
the release, on its file system), ``.manifest.sqlite``, ``.quarantine/`` (with the ledger),
``.lock`` and ``.run.json``.

A remote release (an object store or a DICOMweb server, `pipeline.runner.destination`) keeps the
same records locally: ``release`` is then the local name given by the manifest
(``NAME.manifest.sqlite`` -> ``NAME``), and the run record, report, audit message, quarantine,
ledger and lock lie beside it as ``NAME.*``. There is no staging folder: outputs are verified in
the worker's memory and stored as verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError
from pipeline.files import Beside, beside
from pipeline.runner.destination import Destination, DestinationKind
from pipeline.runner.discover import is_inside


@dataclass(frozen=True, slots=True)
class RunPaths:
    """Where a run reads and writes, resolved; all but the release lie beside it."""

    release: Path
    staging: Path
    manifest: Path
    quarantine: Path
    ledger: Path
    lock: Path
    run_record: Path
    audit: Path
    mapping_dir: Path | None
    destination: Destination  # where outputs are published: the folder `release`, or a remote release

    @classmethod
    def of(cls, release: Path, manifest: Path | None = None, quarantine: Path | None = None,
           staging: Path | None = None, mapping_dir: Path | None = None,
           destination: Destination | None = None) -> RunPaths:
        """The run's paths, resolved; those not given are named after the release, beside it. With
        a remote `destination`, `release` is the local name its records are kept beside."""
        release = release.resolve()
        if destination is None or not destination.is_remote:
            destination = Destination(DestinationKind.FOLDER, str(release))
        if not release.name:
            raise InputError("the release must be a named folder")
        quarantine = (quarantine or beside(release, Beside.QUARANTINE)).resolve()
        return cls(
            release=release,
            staging=(staging or beside(release, Beside.STAGING)).resolve(),
            manifest=(manifest or beside(release, Beside.MANIFEST)).resolve(),
            quarantine=quarantine,
            ledger=quarantine / "ledger.jsonl",
            lock=beside(release, Beside.LOCK),
            run_record=beside(release, Beside.RUN_RECORD),
            audit=beside(release, Beside.AUDIT),
            mapping_dir=mapping_dir.resolve() if mapping_dir is not None else None,
            destination=destination,
        )

    @property
    def remote(self) -> Destination | None:
        """The remote destination, or None when the release is the local folder `release`."""
        return self.destination if self.destination.is_remote else None


def check_layout(paths: RunPaths, roots: tuple[Path, ...]) -> None:
    """Refuse (`InputError`) a layout that mixes inputs and outputs: no output path inside an
    input, no input inside the release or the staging folder, nothing else inside the release."""
    if paths.remote is None and paths.release.exists() and not paths.release.is_dir():
        raise InputError("the release exists and is not a folder")
    outside_inputs = {"the release": paths.release, "the staging folder": paths.staging,
                      "the quarantine folder": paths.quarantine, "the manifest": paths.manifest,
                      "the mapping folder": paths.mapping_dir}
    for what, path in outside_inputs.items():
        if path is not None and is_inside(path, roots):
            raise InputError(f"{what} must not be inside an input")
    for root in roots:
        if is_inside(root, [paths.release]):
            raise InputError("an input must not be inside the release")
        if is_inside(root, [paths.staging]):
            raise InputError("an input must not be inside the staging folder")
    if is_inside(paths.release, [paths.staging]):
        raise InputError("the release must not be inside the staging folder")
    outside_release = {"the staging folder": paths.staging, "the quarantine folder": paths.quarantine,
                       "the manifest": paths.manifest, "the mapping folder": paths.mapping_dir}
    for what, path in outside_release.items():
        if path is not None and is_inside(path, [paths.release]):
            raise InputError(f"{what} must not be inside the release")


def check_same_file_system(paths: RunPaths) -> None:
    """A staged file is published by a hard link (or a rename): both need one file system."""
    if paths.staging.stat().st_dev != paths.release.stat().st_dev:
        raise InputError("the staging folder must be on the release's file system (is the release a mount point? "
                         "pass --staging DIR on it, outside the release)")
