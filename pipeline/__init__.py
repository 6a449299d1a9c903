"""deid-pipeline: DICOM de-identification by the PS3.15 Basic Application Level
Confidentiality Profile and its options, from deid recipes, on Dask."""

from __future__ import annotations

__version__ = "0.1.0"

from pipeline.config import Disposition, Option
from pipeline.errors import (
    InputError,
    KeyMaterialError,
    PipelineError,
    PixelError,
    ProfileError,
    ScrubError,
    VerificationError,
    WriteError,
)
from pipeline.keys import Keys, load_keys
from pipeline.plan import Plan, compile_plan
from pipeline.scrub import ScrubLog, scrub

__all__ = [
    "Disposition",
    "InputError",
    "KeyMaterialError",
    "Keys",
    "Option",
    "PipelineError",
    "PixelError",
    "Plan",
    "ProfileError",
    "ScrubError",
    "ScrubLog",
    "VerificationError",
    "WriteError",
    "__version__",
    "compile_plan",
    "load_keys",
    "scrub",
]
