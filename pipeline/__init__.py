"""deid-pipeline: DICOM de-identification by the PS3.15 Basic Application Level
Confidentiality Profile and its options, from deid recipes, on Dask."""

from __future__ import annotations

from pipeline.errors import (
    InputError,
    KeyMaterialError,
    PipelineError,
    PixelError,
    ProfileError,
    ScrubError,
    SourceError,
    VerificationError,
    WriteError,
)
from pipeline.profile.options import Option
from pipeline.profile.plan import PixelMode, Plan, compile_plan
from pipeline.runner.outcome import Disposition
from pipeline.scrub.header import ScrubLog, scrub
from pipeline.scrub.keys import Keys, load_keys
from pipeline.version import __version__


def __getattr__(name: str) -> object:
    """run, RunConfig and Outcome import Dask: loaded on first use, not with the package."""
    if name in ("run", "RunConfig"):
        from pipeline.runner import orchestrate

        return getattr(orchestrate, name)
    if name == "Outcome":
        from pipeline.runner.outcome import Outcome

        return Outcome
    raise AttributeError(name)


__all__ = [
    "Disposition",
    "InputError",
    "KeyMaterialError",
    "Keys",
    "Option",
    "Outcome",
    "PipelineError",
    "PixelError",
    "PixelMode",
    "Plan",
    "ProfileError",
    "RunConfig",
    "ScrubError",
    "ScrubLog",
    "SourceError",
    "VerificationError",
    "WriteError",
    "__version__",
    "compile_plan",
    "load_keys",
    "run",
    "scrub",
]
