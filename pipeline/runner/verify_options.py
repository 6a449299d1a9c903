"""Which profile options a release is verified with, and where they came from.

A release is verified with the options it was made with (PS3.15 E.1.1: the options change what
an output may hold). In order:

| given by hand (--option) | run record beside the release | verified with                            |
|--------------------------|-------------------------------|------------------------------------------|
| yes                      | yes, the same options         | those options ("run-record")             |
| yes                      | yes, other options            | refused: a `ProfileError` naming them    |
| yes                      | no                            | the options given ("given")              |
| no                       | yes                           | the recorded options ("run-record")      |
| no                       | no                            | what each file declares in its           |
|                          |                               | DeidentificationMethodCodeSequence       |
|                          |                               | (CID 7050, "declared")                   |

The verifier's own code table (`pipeline.verify.profile.OPTION_CODES`) names the options; scan's
`read_declaration` reads a file's declaration. Option names are settings, never values.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pydicom

from pipeline.errors import ProfileError
from pipeline.runner.run_record import read_recorded_settings, run_record_path
from pipeline.scan.conformance import read_declaration
from pipeline.verify.profile import normalise_options

VERIFIED_PROFILE = "basic"  # the one profile verify's recipes describe (pipeline/recipes/basic.deid)
_DECLARATION_TAGS = ["PatientIdentityRemoved", "DeidentificationMethodCodeSequence"]


class OptionSource(StrEnum):
    """Where the options a release is verified with came from."""

    GIVEN = "given"
    RUN_RECORD = "run-record"
    DECLARED = "declared"


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """The options to verify with; with `DECLARED`, each file's own (`options` is then empty)."""

    source: OptionSource
    options: tuple[str, ...] = ()

    @property
    def is_per_file(self) -> bool:
        return self.source is OptionSource.DECLARED

    def describe(self) -> str:
        """One line saying which options are used and where they came from."""
        named = ", ".join(self.options) or "none"
        if self.source is OptionSource.RUN_RECORD:
            return f"options from the run record: {named}"
        if self.source is OptionSource.GIVEN:
            return f"options given: {named}"
        return "options declared by each file (DeidentificationMethodCodeSequence; no run record beside the release)"


def choose_options(release: Path, given: list[str] | tuple[str, ...]) -> VerifyOptions:
    """The options to verify `release` with (the table above). Unknown option names, a record
    naming another profile, or given options that differ from the record are a `ProfileError`."""
    chosen = normalise_options(tuple(given))
    record = run_record_path(release)
    if not record.is_file():
        return VerifyOptions(OptionSource.GIVEN, chosen) if given else VerifyOptions(OptionSource.DECLARED)
    settings = read_recorded_settings(record)
    if settings.profile != VERIFIED_PROFILE:
        raise ProfileError(f"the run record names profile {settings.profile!r}; verify knows {VERIFIED_PROFILE!r}")
    recorded = normalise_options(settings.options)
    if given and set(chosen) != set(recorded):
        parts = []
        if extra := [o for o in chosen if o not in recorded]:
            parts.append(f"given but not in the run record: {', '.join(extra)}")
        if missing := [o for o in recorded if o not in chosen]:
            parts.append(f"in the run record but not given: {', '.join(missing)}")
        raise ProfileError("--option contradicts the run record beside the release (" + "; ".join(parts) +
                           "); leave --option out to use the record")
    return VerifyOptions(OptionSource.RUN_RECORD, recorded)


def declared_options(data: bytes) -> tuple[str, ...]:
    """The options one file declares (CID 7050 codes in DeidentificationMethodCodeSequence), in
    layer order; none when the file cannot be read or declares nothing (verify then reports it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True,
                                 specific_tags=_DECLARATION_TAGS)
            options = read_declaration(ds).options
        except Exception:  # unreadable: verify_bytes reports output-unreadable
            return ()
    return normalise_options(options)


__all__ = ["OptionSource", "VerifyOptions", "choose_options", "declared_options"]
