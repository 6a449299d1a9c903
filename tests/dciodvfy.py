"""dciodvfy (dicom3tools) as a test oracle: run it on one file and reduce its report to error kinds.

dciodvfy checks a file against the IOD its SOP Class names (PS3.3 modules, attribute Types 1/1C/2/2C,
enumerated values) and the encoding of each value (PS3.5 6.2 Value Representations). Its report is
free text on stderr: one message a line, a value spilling over several lines when it holds newlines.

A *kind* is what a message says about the file with everything that belongs to this one file's data
taken out: the message template, the attribute (keyword, or tag and name) and the module stay; the
value, its value index, counts, lengths and UIDs go. So the same defect in two files, or in two items
of one sequence, is one kind, and a test can compare the kinds of an output with those of its input.
Kinds never carry a value of the file (patient data must not reach test output).

Warnings are not errors and are kept apart. A file dciodvfy could not read to the end (a crash, a
time-out, a read failure) or whose IOD it could not find is marked by its `Readability`, so a caller
lists it instead of comparing kinds that mean nothing.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

TIMEOUT_SECONDS = 60.0
EXECUTABLE = "dciodvfy"

# One message starts a line: "Error - ...", "Warning - ...", or a tag then its VR and name first:
# "(0x0008,0x0008) CS Image Type Error - Tag read failed - ..." or "(0x0009,0x1040) PN Name  - Warning - ...".
_START = re.compile(
    r"^(?:\((?P<group>0x[0-9a-fA-F]{4}),(?P<element>0x[0-9a-fA-F]{4})\)(?P<prefix>.*?)\s*(?:-\s+)?)?"
    r"(?P<severity>Error|Warning) - (?P<body>.*)$"
)
# The name of the IOD dciodvfy selected, alone on its line ("CTImage", "USMultiFrameImage").
_IOD = re.compile(r"^[A-Z][A-Za-z0-9]*$")
# "Value invalid for this VR - (0x0008,0x0020) DA Study Date  DA [1] = <value> - reason": the value
# may hold newlines and angle brackets, so it runs to the last "> - " (or ">") of the message.
_VALUE_VR = re.compile(
    r"^(?P<template>Value (?:invalid|dubious) for this VR) - \((?P<group>0x[0-9a-fA-F]{4}),"
    r"(?P<element>0x[0-9a-fA-F]{4})\)\s*(?P<name>.*?)\s+(?P<vr>[A-Z]{2}|\?)"
    r"(?:\s*\[\d+\]\s*=\s*<(?P<value>.*)>)?\s*(?:-\s*(?P<reason>[^<>]*))?$",
    re.DOTALL,
)
_ENUMERATED = re.compile(
    r"^Unrecognized enumerated value <.*> for value (?P<index>\d+) of attribute <(?P<name>[^<>]*)>$", re.DOTALL
)
# Parts of a message that name what is wrong, not the data: kept as they are.
_KEPT = re.compile(
    r"(?:Element|Module)=<[^<>]*>|attribute <[^<>]*>|Type [123]C?\b|value \d+ (?:of|in)\b"
    r"|\(0x[0-9a-fA-F]{4},0x[0-9a-fA-F]{4}\)"
)
_TAG = re.compile(r"\((0x[0-9a-fA-F]{4}),(0x[0-9a-fA-F]{4})\)")
_BRACKETED = re.compile(r"<.*>", re.DOTALL)
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_NUMBER = re.compile(r"\b0x[0-9a-fA-F]+\b|\d+(?:\.\d+)*")  # lengths, counts, UIDs, hex values
_CHARACTER = re.compile(r"\s*=\s*'.*?'\s*\((?:0x)?[0-9a-fA-F]+\)")  # "= ':' (0x3a)": the offending character
_SPACES = re.compile(r"\s+")

# Messages that say dciodvfy did not read the whole file: what it reports past them is not about the file.
_READ_FAILURES = ("read failed", "Seek failed", "Tags out of order")
_NO_IOD = "Information Object Not found"


class Readability(StrEnum):
    """How far dciodvfy got with a file; only READ files have kinds worth comparing."""

    READ = "read"
    READ_FAILED = "read-failed"  # a read error: the dataset was read only in part
    NO_IOD = "no-iod"  # read, but no IOD matched (no or unknown SOP Class): modules not checked
    CRASHED = "crashed"  # killed by a signal (an assertion) or an exit status other than 0 or 1
    TIMED_OUT = "timed-out"


@dataclass(frozen=True, slots=True)
class Validation:
    """dciodvfy's verdict on one file, reduced to kinds (PS3.3 IOD and PS3.5 VR conformance)."""

    readability: Readability
    iod: str | None
    errors: frozenset[str]
    warnings: frozenset[str]
    returncode: int | None = None
    inflated: bool = False  # a Deflated file, checked as the Explicit VR Little Endian bytes it deflates

    @property
    def is_valid(self) -> bool:
        """Read to the end, an IOD found, and not one error."""
        return self.readability is Readability.READ and not self.errors


def executable() -> str:
    """The path of dciodvfy (installed by `make system-deps` from the Debian package dicom3tools)."""
    path = shutil.which(EXECUTABLE)
    if path is None:
        raise FileNotFoundError(f"{EXECUTABLE} not found: run `make system-deps` (Debian package dicom3tools)")
    return path


def validate(path: Path, timeout: float = TIMEOUT_SECONDS) -> Validation:
    """Run dciodvfy on `path` and parse what it reports.

    dciodvfy (as packaged by Debian) cannot inflate the Deflated Explicit VR Little Endian transfer syntax
    (PS3.5 A.5): such a file is checked as the bytes it deflates, under a meta header naming Explicit VR
    Little Endian, so its dataset is validated rather than reported unreadable.
    """
    inflated = inflate(path)
    if inflated is None:
        return _run(path, timeout, inflated=False)
    with tempfile.TemporaryDirectory(prefix="dciodvfy-") as folder:
        copy = Path(folder) / "inflated.dcm"
        copy.write_bytes(inflated)
        return _run(copy, timeout, inflated=True)


def _run(path: Path, timeout: float, inflated: bool) -> Validation:
    try:
        done = subprocess.run(
            [executable(), str(path)], capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return Validation(Readability.TIMED_OUT, None, frozenset(), frozenset(), inflated=inflated)
    text = (done.stderr + done.stdout).decode("latin-1")
    found = parse(text, done.returncode)
    return Validation(found.readability, found.iod, found.errors, found.warnings, found.returncode, inflated)


def inflate(path: Path) -> bytes | None:
    """The file at `path` with its deflated dataset inflated and its meta header naming Explicit VR Little
    Endian; None when it is not a PS3.10 file in the Deflated transfer syntax or does not inflate."""
    data = path.read_bytes()
    if data[128:132] != b"DICM" or DeflatedExplicitVRLittleEndian.encode() not in data[132:1024]:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pytest turns warnings into errors; a dubious meta is dciodvfy's to judge
            meta = read_file_meta_info(path)
        if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            return None
        dataset = zlib.decompress(data[_meta_end(data) :], -zlib.MAX_WBITS)
    except Exception:  # a meta header or stream too broken to inflate: dciodvfy reads the file as it is
        return None
    had_length = "FileMetaInformationGroupLength" in meta
    if had_length:
        del meta.FileMetaInformationGroupLength
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    encoded = DicomBytesIO()
    encoded.is_little_endian, encoded.is_implicit_VR = True, False
    write_file_meta_info(encoded, meta, enforce_standard=False)
    body = encoded.getvalue()
    length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body)) if had_length else b""
    return data[:132] + length + body + dataset


def _meta_end(data: bytes) -> int:
    """The offset of the first byte after the file meta group (explicit VR little endian, PS3.10 7.1)."""
    position = 132
    while position + 8 <= len(data) and struct.unpack_from("<H", data, position)[0] == 0x0002:
        vr = data[position + 4 : position + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"OV", b"UC", b"UR", b"SV", b"UV"):
            position += 12 + struct.unpack_from("<I", data, position + 8)[0]
        else:
            position += 8 + struct.unpack_from("<H", data, position + 6)[0]
    return position


def parse(text: str, returncode: int = 0) -> Validation:
    """Reduce dciodvfy's report `text` (and its exit status) to a `Validation`."""
    iod: str | None = None
    errors: set[str] = set()
    warned: set[str] = set()
    messages = _messages(text)
    for severity, tag, prefix, body in messages:
        if severity == "IOD":
            iod = body
        else:
            (errors if severity == "Error" else warned).add(normalize(body, tag, prefix))
    bodies = [body for severity, _, _, body in messages if severity == "Error"]
    if returncode not in (0, 1):
        readability = Readability.CRASHED
    elif any(marker in body for body in bodies for marker in _READ_FAILURES):
        readability = Readability.READ_FAILED
    elif any(_NO_IOD in body for body in bodies) or iod is None:
        readability = Readability.NO_IOD
    else:
        readability = Readability.READ
    return Validation(readability, iod, frozenset(errors), frozenset(warned), returncode)


def _messages(text: str) -> list[tuple[str, str | None, str, str]]:
    """(severity, tag, prefix, body) of each message, severity "IOD" for the IOD's name; a line that starts
    no message continues the one before (a value holding newlines)."""
    messages: list[list[str]] = []
    for line in text.splitlines():
        match = _START.match(line)
        if match:
            tag = f"({match['group']},{match['element']})" if match["group"] else ""
            messages.append([match["severity"], tag, (match["prefix"] or "").strip(), match["body"]])
        elif _IOD.match(line.strip()):
            messages.append(["IOD", "", "", line.strip()])  # closes a value that spilled over lines
        elif messages and messages[-1][0] != "IOD":
            messages[-1][3] += "\n" + line
    return [(severity, tag or None, prefix, body) for severity, tag, prefix, body in messages]


def normalize(body: str, tag: str | None = None, prefix: str = "") -> str:
    """The kind of one message: its template, attribute and module, without values, counts or positions."""
    match = _VALUE_VR.match(body)
    if match:
        name = _clean(match["name"])
        if not name.startswith(match["vr"]):  # "DA Study Date" names its VR; "?" (unknown private) does not
            name = f"{name} {match['vr']}"
        reason = _strip(_CHARACTER.sub("", match["reason"] or "")).strip(" -")
        kind = f"{match['template']} - {_tag(match['group'], match['element'])} {name}"
        kind += f" - {reason}" if reason else ""
    elif (enumerated := _ENUMERATED.match(body)) is not None:
        kind = f"Unrecognized enumerated value for value {enumerated['index']} of attribute <{enumerated['name']}>"
    else:
        kind = _strip(body)
    if tag:
        tag_text = _TAG.sub(lambda m: _tag(m[1], m[2]), tag)
        kind = f"{kind} - {tag_text} {_clean(prefix)}".rstrip()
    return _SPACES.sub(" ", kind).strip()


def _strip(text: str) -> str:
    """Replace values (bracketed, quoted, numbers, UIDs, hex) outside the parts that name the defect."""
    out: list[str] = []
    position = 0
    for kept in _KEPT.finditer(text):
        out.append(_strip_values(text[position : kept.start()]))
        out.append(_TAG.sub(lambda m: _tag(m[1], m[2]), kept[0]))
        position = kept.end()
    out.append(_strip_values(text[position:]))
    return "".join(out)


def _strip_values(text: str) -> str:
    text = _BRACKETED.sub("<…>", text)
    text = _QUOTED.sub("'…'", text)
    return _NUMBER.sub("N", text)


def _clean(name: str) -> str:
    """An attribute's name as dciodvfy prints it ("DA Study Date", "?" for an unknown private tag)."""
    return _SPACES.sub(" ", name).strip()


def _tag(group: str, element: str) -> str:
    """(gggg,eeee); in a private group the block byte is masked (PS3.5 7.8.1: the creator picks the block)."""
    g, e = group[2:].lower(), element[2:].lower()
    if int(g, 16) % 2 == 1 and int(e, 16) >= 0x1000:
        e = "xx" + e[2:]
    return f"({g},{e})"
