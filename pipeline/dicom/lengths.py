"""Declared lengths and the per-file limits, checked on a file's bytes before pydicom reads them.

A hostile file can declare an element, item or sequence longer than the bytes that hold it, nest
sequences without end, or deflate into gigabytes, and pydicom allocates what a file declares.
`check_declared_lengths` walks the element headers without decoding a value and refuses such a
file (`InputError`; `TooLargeError` past a per-file limit) before anything is allocated for it.
`pipeline.dicom.file` holds the decoded pixel data to the same limits.
"""

from __future__ import annotations

import struct
import zlib

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pipeline.errors import Cause, InputError

# What one file may declare before anything is allocated for it (fail-safe limits).
MAX_NESTING = 64  # sequences within sequences; PS3.3 IODs need fewer than ten
MAX_DECODED_PIXEL_BYTES = 4 << 30  # Rows x Columns x Samples x Bits x Frames, once decoded
MAX_INFLATED_BYTES = 4 << 30  # the dataset of a deflated file, once inflated


class TooLargeError(InputError):
    """The file declares more than the pipeline will allocate for one file."""

    code = "too-large"


_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
                        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xE000, 0xE00D, 0xE0DD


def check_declared_lengths(data: bytes) -> None:
    """Walk the element headers of a PS3.10 file without decoding a value: refuse (before
    pydicom allocates anything) an element, item or sequence whose declared length runs past
    the end of its file or of the item holding it, sequences nested deeper than MAX_NESTING,
    and a deflated dataset that inflates beyond MAX_INFLATED_BYTES. Stops quietly where the
    structure is not one it knows: pydicom then decides."""
    if len(data) < 144 or data[128:132] != b"DICM":
        return
    meta_end = _meta_end(data)
    if meta_end is None:
        return
    syntax = _transfer_syntax(data[132:meta_end])
    body, start = data, meta_end  # walked in place: a copy of the body would cost more than the walk
    if syntax == DeflatedExplicitVRLittleEndian:
        body, start = _inflate(data[meta_end:]), 0
    implicit = syntax == ImplicitVRLittleEndian
    little = syntax != ExplicitVRBigEndian
    _walk_headers(body, implicit, little, start)


def _meta_end(data: bytes) -> int | None:
    """Where the File Meta Information ends: after the last group 0002 element, read as
    explicit VR little endian (PS3.10 7.1) the way pydicom reads it, whatever (0002,0000)
    declares (a group length that leaves out trailing elements is common). None when the
    meta is not explicit VR: pydicom then decides."""
    position, end_of_file = 132, len(data)
    if data[132:138] == b"\x02\x00\x00\x00UL" and 144 + int.from_bytes(data[140:144], "little") > end_of_file:
        raise InputError("the file meta declares more bytes than the file holds", cause=Cause.LENGTH_BEYOND_FILE)
    while position + 8 <= end_of_file and data[position:position + 2] == b"\x02\x00":
        vr = data[position + 4:position + 6]
        if vr in _LONG_VRS:
            if position + 12 > end_of_file:
                raise InputError("an element header runs past the end of the file", cause=Cause.TRUNCATED_HEADER)
            length, header = int.from_bytes(data[position + 8:position + 12], "little"), 12
        elif vr in _SHORT_VRS:
            length, header = int.from_bytes(data[position + 6:position + 8], "little"), 8
        else:
            return None
        if length == _UNDEFINED:
            return None
        position += header + length
        if position > end_of_file:
            raise InputError("the file meta declares more bytes than the file holds", cause=Cause.LENGTH_BEYOND_FILE)
    if data[position:position + 2] == b"\x02\x00":
        raise InputError("an element header runs past the end of the file", cause=Cause.TRUNCATED_HEADER)
    return position if position > 132 else None


def _transfer_syntax(meta: bytes) -> str:
    marker = meta.find(b"\x02\x00\x10\x00UI")
    if marker < 0:
        return ExplicitVRLittleEndian
    (length,) = struct.unpack("<H", meta[marker + 6:marker + 8])
    return meta[marker + 8:marker + 8 + length].rstrip(b"\x00 ").decode("ascii", "replace")


def _inflate(body: bytes) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, MAX_INFLATED_BYTES + 1)
    except zlib.error:
        raise InputError("the deflated dataset cannot be inflated", cause=Cause.BAD_DEFLATE) from None
    if len(inflated) > MAX_INFLATED_BYTES:
        raise TooLargeError("the deflated dataset inflates beyond the per-file limit", cause=Cause.INFLATED_SIZE)
    return inflated


def _walk_headers(body: bytes, implicit: bool, little: bool, start: int = 0) -> None:
    """Check every header against the end of its enclosing container; `stack` holds the open
    sequences and items (twice the nesting), each with the end that bounds what it holds (its
    own, else the nearest one around it, else the file's)."""
    order = "<" if little else ">"
    header_of = struct.Struct(order + "HH2sH").unpack_from  # tag, VR, 16-bit length; no slice copied
    long_of = struct.Struct(order + "I").unpack_from
    implicit_of = struct.Struct("<I").unpack_from
    position, end_of_file = start, len(body)
    first = True  # pydicom decides on the first element whether the encoding is what the meta says
    # (end offset or None, is encapsulated pixel data, implicit, the end bounding it) per open container
    stack: list[tuple[int | None, bool, bool, int]] = []
    limit, fragments, here_implicit = end_of_file, False, implicit
    while position + 8 <= end_of_file:
        if stack:
            while stack and stack[-1][0] is not None and position >= (stack[-1][0] or 0):
                stack.pop()
            if stack:
                _, fragments, here_implicit, limit = stack[-1]
            else:
                limit, fragments, here_implicit = end_of_file, False, implicit
        group, element, vr, length = header_of(body, position)
        if group == 0xFFFE:
            (length,) = long_of(body, position + 4)
            position += 8
            if element in (_ITEM_END, _SEQUENCE_END):
                if stack and stack[-1][0] is None:
                    stack.pop()
                    if not stack:
                        limit, fragments, here_implicit = end_of_file, False, implicit
                continue
            if element != _ITEM:
                return
            if length == _UNDEFINED:
                if fragments:
                    return
                stack.append((None, False, here_implicit, limit))
            elif position + length > limit:
                raise InputError("an item declares more bytes than its file holds", cause=Cause.LENGTH_BEYOND_FILE)
            elif fragments:
                position += length
                continue
            else:
                stack.append((position + length, False, here_implicit, position + length))
            if len(stack) > 2 * MAX_NESTING:
                raise InputError("sequences are nested deeper than the pipeline reads", cause=Cause.NESTING_TOO_DEEP)
            continue
        if here_implicit:
            vr, (length,), header = b"", implicit_of(body, position + 4), 8
        elif vr in _LONG_VRS:
            if position + 12 > end_of_file:
                raise InputError("an element header runs past the end of the file", cause=Cause.TRUNCATED_HEADER)
            (length,), header = long_of(body, position + 8), 12
        elif vr in _SHORT_VRS:
            header = 8
        elif not first and vr.isalpha() and vr.isupper():
            raise InputError("an element has a VR that PS3.5 does not define", cause=Cause.UNKNOWN_VR)
        else:
            return  # not a structure this walk knows: pydicom decides
        first = False
        position += header
        if length == _UNDEFINED:  # a sequence (SQ, implicit, UN) or encapsulated pixel data (PS3.5 7.5, A.4)
            pixels = (group, element) == (0x7FE0, 0x0010) or vr in (b"OB", b"OW")
            stack.append((None, pixels, here_implicit or vr == b"UN", limit))
        elif position + length > limit:
            raise InputError("an element declares more bytes than its file holds", cause=Cause.LENGTH_BEYOND_FILE)
        elif vr == b"SQ":
            stack.append((position + length, False, here_implicit, position + length))
        else:
            position += length
            continue
        if len(stack) > 2 * MAX_NESTING:
            raise InputError("sequences are nested deeper than the pipeline reads", cause=Cause.NESTING_TOO_DEEP)
    if any(end is None and fragments for end, fragments, _, _ in stack):
        raise InputError("encapsulated pixel data ends before its sequence delimiter (truncated file)",
                         cause=Cause.TRUNCATED_PIXEL_DATA)
