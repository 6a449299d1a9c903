"""Encapsulated frames' codestreams, read without decoding: is one whole? (tells a cut-off JPEG or
JPEG 2000 codestream, ``pixel-failed:truncated-codestream``, from one a decoder refuses for another
reason); and a sequential JPEG's scan header put right for the decoder (`with_sequential_scans`)."""

from __future__ import annotations

import warnings
from typing import Any

from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID, JPEGBaseline8Bit, JPEGExtended12Bit

from pipeline.errors import is_codec_failure

# Transfer syntaxes whose frames are JPEG (PS3.5 A.4.1-A.4.3: ISO 10918, 14495) or JPEG 2000
# (A.4.4, ISO 15444) codestreams: each ends with the EOI / EOC marker FFD9.
_MARKER_ENDED = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
})
_END_OF_CODESTREAM = b"\xff\xd9"


def is_truncated_codestream(ds: Dataset, source: UID) -> bool:
    """A JPEG or JPEG 2000 frame of `ds` does not end with its end marker (FFD9, before any
    padding: zero bytes, or FF fill bytes, which ISO 10918 B.1.1.2 allows around markers): the
    codestream was cut short."""
    if str(source) not in _MARKER_ENDED or "PixelData" not in ds:
        return False
    try:
        frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))
    except Exception:  # the fragments themselves do not parse: not a codestream question
        return False
    return any(not frame.rstrip(b"\x00").rstrip(b"\xff").endswith(_END_OF_CODESTREAM) for frame in frames)


# ISO 10918-1 B.2.2: start of frame, sequential DCT with Huffman coding (baseline, extended).
_SEQUENTIAL_SOF = frozenset({0xC0, 0xC1})
_NOT_A_SEGMENT = frozenset({0x00, 0x01, 0xD8, 0xFF} | set(range(0xD0, 0xD8)))  # stuffing, TEM, SOI, fill, RSTn


def with_sequential_scans(frame: bytes) -> bytes | None:
    """A copy of a sequential DCT JPEG frame whose scan headers say other than Ss 0, Se 63,
    Ah Al 0, with those values put right, or None when the frame is not such a frame.

    ISO 10918-1 B.2.3: in the sequential processes Ss shall be 0 and Se 63, and Ah and Al 0;
    decoders such as IJG libjpeg take them as fixed and warn; libjpeg (pylibjpeg) refuses the
    frame. pydicom's JPEG-lossy.dcm (12-bit extended, Se 0) is one. The copy only feeds the
    decoder: the input is never published with it."""
    if not frame.startswith(b"\xff\xd8"):
        return None
    fixed = bytearray(frame)
    sequential = changed = False
    index = 2
    while index + 4 <= len(fixed):
        if fixed[index] != 0xFF or fixed[index + 1] in _NOT_A_SEGMENT:
            found = fixed.find(b"\xff", index + 1)  # past entropy-coded data, stuffing, RSTn, fill
            index = found if found >= 0 else len(fixed)
            continue
        marker = fixed[index + 1]
        if marker == 0xD9:
            break
        length = int.from_bytes(fixed[index + 2:index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            sequential = marker in _SEQUENTIAL_SOF
            if not sequential:
                return None
        if marker == 0xDA and sequential:
            spectral = index + 4 + 1 + 2 * fixed[index + 4]
            if spectral + 3 > len(fixed):
                return None
            if bytes(fixed[spectral:spectral + 3]) != b"\x00\x3f\x00":
                fixed[spectral:spectral + 3] = b"\x00\x3f\x00"
                changed = True
        index += 2 + length
    return bytes(fixed) if changed else None


def sequential_pixel_data(ds: Dataset) -> bytes | None:
    """The encapsulated Pixel Data of `ds` with every frame's scan headers put right
    (`with_sequential_scans`), or None when no frame needs it. Raises what pydicom's frame
    parsing raises."""
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))
    fixed = [with_sequential_scans(frame) for frame in frames]
    if not any(fixed):
        return None
    return encapsulate([f or frame for f, frame in zip(fixed, frames, strict=True)])


def decode_sequential_scans(decoder: Any, ds: Dataset, source: UID,
                            options: dict[str, Any]) -> tuple[NDArray[Any], dict[str, Any]] | None:
    """Decode a sequential JPEG `decoder` refused, its scan headers put right as ISO 10918-1 B.2.3
    reads them (`with_sequential_scans`); None when that is not why it failed. `ds` keeps its
    own codestream whatever happens."""
    if source not in (JPEGBaseline8Bit, JPEGExtended12Bit):
        return None
    element = ds["PixelData"]
    try:
        fixed = sequential_pixel_data(ds)
        if fixed is None:
            return None
        ds.PixelData = fixed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array, meta = decoder.as_array(ds, **options)
        return array, dict(meta)
    except BaseException as exc:
        if not is_codec_failure(exc):
            raise
        return None
    finally:
        ds["PixelData"] = element
