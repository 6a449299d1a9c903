"""A dataset stored without the 128-byte preamble, ``DICM`` prefix and File Meta Information
(older exports): the transfer syntaxes it may be in, and its bytes put in a PS3.10 frame.

PS3.10 7.1 requires the preamble, prefix and meta; a bare dataset (PS3.5 7) says nothing about
its encoding, so the candidates are tried in the order pydicom's ``force`` read guesses them
(the first element's VR field holds a valid VR: explicit; its group read little endian is 1024
or more: big endian; else implicit VR little endian), then the others; the dataset is in the
first in which it reads (by `pipeline.dicom.file`'s checked read) and every element decodes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pipeline.errors import Cause, InputError

PREAMBLE = b"\x00" * 128
PREFIX = b"DICM"
# The VRs of PS3.5 Table 6.2-1: two upper-case letters in the VR field mean explicit VR.
_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR "
                 b"US UT UV".split())
_UNCOMPRESSED = (ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian)


def is_part10(data: bytes) -> bool:
    """The file has the PS3.10 preamble and ``DICM`` prefix."""
    return data[128:132] == PREFIX


def starts_with_file_meta(data: bytes) -> bool:
    """The file starts with a group 0002 element in explicit VR little endian: a File Meta
    Information without the preamble and prefix before it."""
    return len(data) >= 8 and data[:2] == b"\x02\x00" and data[4:6] in _VRS


def candidate_syntaxes(data: bytes) -> tuple[UID, ...]:
    """The uncompressed transfer syntaxes a bare dataset may be in, the most likely first
    (pydicom's guess from the first element's header)."""
    if len(data) < 8:
        return ()
    (group,) = struct.unpack("<H", data[:2])
    if data[4:6] in _VRS:
        guess = ExplicitVRBigEndian if group >= 1024 else ExplicitVRLittleEndian
    else:
        guess = ImplicitVRLittleEndian
    return (guess, *(syntax for syntax in _UNCOMPRESSED if syntax != guess))


def with_file_meta(data: bytes, syntax: UID) -> bytes:
    """`data` (a bare dataset) behind a preamble of zeros, the prefix, and a File Meta Information
    naming only `syntax` (the reader's scrub and `encode` write the complete meta, PS3.10 7.1)."""
    uid = syntax.encode("ascii")
    if len(uid) % 2:
        uid += b"\x00"
    element = b"\x02\x00\x10\x00UI" + struct.pack("<H", len(uid)) + uid
    group_length = b"\x02\x00\x00\x00UL\x04\x00" + struct.pack("<I", len(element))
    return PREAMBLE + PREFIX + group_length + element + data


def with_preamble(data: bytes) -> bytes:
    """`data` (a File Meta Information and its dataset) behind a preamble of zeros and the prefix."""
    return PREAMBLE + PREFIX + data


def as_part10(data: bytes, read: Callable[[bytes], Dataset]) -> bytes:
    """A file without the PS3.10 preamble and prefix, framed as a PS3.10 file: a File Meta
    Information stored without them gets them; a bare dataset also gets a file meta naming the
    first candidate syntax in which `read` reads it, pydicom keeps that syntax (it switches on its
    own when the first element disagrees) and every element at every depth decodes. `InputError`
    when no syntax does (``no-file-meta-unknown-syntax``) or the dataset read names no SOP Class
    and Instance (``no-sop-uid``)."""
    if starts_with_file_meta(data):
        return with_preamble(data)
    incomplete = False
    for syntax in candidate_syntaxes(data):
        framed = with_file_meta(data, syntax)
        try:
            ds = read(framed)
            if ds.original_encoding != (syntax.is_implicit_VR, syntax.is_little_endian):
                continue
            for _ in ds.iterall():  # decodes every element; raises when one does not decode
                pass
        except Exception:  # not in this syntax: an InputError, or whatever pydicom raises
            continue
        if "SOPClassUID" in ds and "SOPInstanceUID" in ds:
            return framed
        incomplete = True
    if incomplete:
        raise InputError("a dataset without file meta names no SOP Class or Instance UID", cause=Cause.NO_SOP_UID)
    raise InputError("a dataset without file meta in no transfer syntax it reads in",
                     cause=Cause.NO_FILE_META_UNKNOWN_SYNTAX)
