"""Is an encapsulated frame's codestream whole? Tells a cut-off JPEG or JPEG 2000 codestream
(``pixel-failed:truncated-codestream``) from one a decoder refuses for another reason."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID

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
