"""The PipelineError tree: every deliberate error of the pipeline is one of these.

Messages name files by index or hash and attributes by keyword or tag, never by value. A
file's quarantine reason is its error's `code`: the kind of error, then what caused it
(``bad-input:unknown-vr``, ``write-failed:vr-mismatch``, ``pixel-failed:truncated-codestream``),
both from closed sets, so a reason never holds a value.
"""

from __future__ import annotations

from enum import StrEnum


class Cause(StrEnum):
    """What made a file fail, appended to its error's code: never a value."""

    # reading the input (bad-input, too-large)
    EMPTY = "empty"
    DICOMDIR = "dicomdir"
    NOT_PART_10 = "not-part-10"  # no 128-byte preamble and DICM prefix (PS3.10 7.1)
    NO_FILE_META_UNKNOWN_SYNTAX = "no-file-meta-unknown-syntax"  # a bare dataset in no syntax it reads in
    LENGTH_BEYOND_FILE = "length-beyond-file"  # an element or item declares more than the file holds
    TRUNCATED_HEADER = "truncated-header"  # the file ends inside an element header
    TRUNCATED_PIXEL_DATA = "truncated-pixel-data"  # shorter than declared, or fragments cut off
    BAD_ENCAPSULATION = "bad-encapsulation"  # encapsulated Pixel Data whose items do not parse (PS3.5 A.4)
    NESTING_TOO_DEEP = "nesting-too-deep"
    BAD_DEFLATE = "bad-deflate"
    NO_SOP_UID = "no-sop-uid"
    UNKNOWN_TRANSFER_SYNTAX = "unknown-transfer-syntax"
    BAD_PIXEL_ATTRIBUTES = "bad-pixel-attributes"  # Rows, Columns or Bits* missing or not numbers
    UNKNOWN_VR = "unknown-vr"
    BAD_VALUE_LENGTH = "bad-value-length"  # a value whose length does not fit its VR
    UNREADABLE = "unreadable"  # pydicom could not parse the file
    FILE_SIZE = "file-size"  # the file is larger than a file may be
    PIXEL_DATA_SIZE = "pixel-data-size"  # would decode to more than the per-file limit
    INFLATED_SIZE = "inflated-size"  # a deflated dataset inflating beyond the limit
    OUT_OF_MEMORY = "out-of-memory"
    # writing the output (write-failed)
    VR_MISMATCH = "vr-mismatch"  # a value the VR the file gave its element cannot hold
    UNENCODABLE_VALUE = "unencodable-value"  # a value its own (dictionary) VR cannot hold
    ENCODER = "encoder"  # the encoder failed on no single element
    NO_SPACE = "no-space"  # disk full, quota or file size limit reached
    PERMISSION = "permission-denied"
    IO_ERROR = "io-error"
    # the pixel data (pixel-failed)
    NO_TRANSFER_SYNTAX = "no-transfer-syntax"
    NO_DECODER = "no-decoder"
    DECODER_PLUGIN_MISSING = "decoder-plugin-missing"
    TRUNCATED_CODESTREAM = "truncated-codestream"  # a JPEG / JPEG 2000 frame without its end marker
    UNDECODABLE = "undecodable"  # the decoder refused a complete codestream
    BAD_IMAGE_SHAPE = "bad-image-shape"
    # the header scrub (scrub-failed)
    NESTING = "nesting"
    NO_HANDLER = "no-handler"
    NO_DUMMY = "no-dummy"


class PipelineError(Exception):
    """Base of every deliberate pipeline error; `code` is the machine-readable reason: the
    class's code, then ``:cause`` when the raiser named one (an instance's `code`)."""

    code = "pipeline-error"

    def __init__(self, message: str = "", *, cause: Cause | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        if cause is not None:
            self.code = f"{type(self).code}:{cause.value}"


class InputError(PipelineError):
    """An input file or argument cannot be used (not DICOM, unreadable, truncated)."""

    code = "bad-input"


class SourceError(InputError):
    """A source of files (an object store, a DICOMweb server) refused or failed: the message
    names the endpoint and what it answered (an HTTP status), never a credential or a value."""

    code = "source-failed"


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


def is_codec_failure(exc: BaseException) -> bool:
    """True for what a codec raises on data it cannot decode: an Exception, or the panic a Rust
    codec built with pyo3 raises as a BaseException (``pyo3_runtime.PanicException``: pylibjpeg-rle
    on an RLE segment shorter than its frame). Callers catch BaseException, keep these, and
    re-raise the rest (the per-file time limit, KeyboardInterrupt, SystemExit)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"
