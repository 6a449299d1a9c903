"""The PipelineError tree: every deliberate error of the pipeline is one of these.

Messages name files by index or hash and attributes by keyword or tag, never by value.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every deliberate pipeline error; `code` is the machine-readable reason."""

    code = "pipeline-error"


class InputError(PipelineError):
    """An input file or argument cannot be used (not DICOM, unreadable, truncated)."""

    code = "bad-input"


class KeyMaterialError(PipelineError):
    """The pseudonymisation key or the lookup table is missing, short or unreadable."""

    code = "bad-key"


class ProfileError(PipelineError):
    """A recipe, option or profile is invalid; raised before any file is read."""

    code = "bad-profile"


class ScrubError(PipelineError):
    """A file could not be de-identified as the plan requires."""

    code = "scrub-failed"


class PixelError(PipelineError):
    """Pixel data could not be decoded, cleaned or re-encoded."""

    code = "pixel-failed"


class WriteError(PipelineError):
    """An output could not be staged or promoted."""

    code = "write-failed"


class VerificationError(PipelineError):
    """A scrubbed file failed independent verification."""

    code = "verify-failed"
