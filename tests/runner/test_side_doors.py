"""Side doors: after a whole `deid-pipeline run` (a Dask worker, -v logging, --mapping-dir) on a
copy of the sample archive with extra canaries (a unique PatientName per file, a canary folder
and a canary file name), no planted value of the answer key and no canary appears in ANY
artefact (stdout, stderr, manifest bytes and its WAL, run.json, the quarantine ledger, release
paths and bytes, temporary files, the verify and scan commands' output and JSON), except in
the quarantine copies of originals, the confidential mapping folder, and the input-relative
paths of the quarantine ledger (there on purpose, for the operator). The key appears
nowhere at all; a key file others can read is refused (exit 2, nothing made); the mapping is
owner-only. Release and quarantine paths are never derived from input names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import pydicom
import pytest

from tests.conftest_run import KEY_HEX, write_key

REPO = Path(__file__).resolve().parents[2]
ARCHIVE = REPO / "sample_data" / "archive"
KEY = REPO / "sample_data" / "archive_key.json"
CLI = Path(sys.executable).with_name("deid-pipeline")
CANARY_FOLDER = "QZXFOLDERCANARY"
CANARY_FILE = "QZXFILECANARY"
SKIPPED_CATEGORIES = {"time"}  # times of day survive the Basic Profile (the scorer's "info")


def _plant(target: Path) -> list[str]:
    """Copy the archive, give every good file a unique canary PatientName, move one study
    under a canary folder and rename one file to a canary name; return the canaries."""
    shutil.copytree(ARCHIVE, target)
    canaries = [CANARY_FOLDER, CANARY_FILE]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for number, path in enumerate(sorted(p for p in target.rglob("*.dcm") if "bad" not in p.parts)):
            ds = pydicom.dcmread(path)
            canary = f"QZXNAME{number:03d}^SIDEDOOR"
            ds.PatientName = canary
            canaries.append(f"QZXNAME{number:03d}")
            ds.save_as(path)
    first = sorted(p for p in target.rglob("*.dcm") if "bad" not in p.parts)[0]
    first.rename(first.with_name(f"{CANARY_FILE}.dcm"))
    study = sorted(p for p in target.iterdir() if p.is_dir() and p.name != "bad")[-1]
    study.rename(study.with_name(f"{study.name}_{CANARY_FOLDER}"))
    return canaries


def _patterns(canaries: list[str]) -> list[tuple[str, re.Pattern[bytes]]]:
    """(name, pattern) of every spelling of every planted identifier, and the canaries;
    bounded values (dates, UIDs) only where no digit or dot is next to them."""
    key = json.loads(KEY.read_text())
    patterns = []
    for name, entry in key["identifiers"].items():
        if entry["category"] in SKIPPED_CATEGORIES:
            continue
        for spelling in entry.get("spellings") or [entry["value"]]:
            text = re.escape(spelling.encode())
            if entry.get("bounded"):
                text = rb"(?<![0-9.])" + text + rb"(?![0-9])"
            patterns.append((name, re.compile(text, re.IGNORECASE)))
    patterns += [(c, re.compile(re.escape(c.encode()), re.IGNORECASE)) for c in canaries]
    return patterns


def _haystacks(data: bytes) -> list[bytes]:
    """The bytes, and their inflated form when they hold a deflated dataset."""
    found = [data]
    if data[128:132] == b"DICM" and b"1.2.840.10008.1.2.1.99" in data[:1024]:
        meta_end = 144 + int.from_bytes(data[140:144], "little")
        with contextlib.suppress(zlib.error):
            found.append(zlib.decompressobj(-zlib.MAX_WBITS).decompress(data[meta_end:]))
    return found


def _without_input_paths(path: Path) -> bytes:
    """A file's bytes; for the (owner-only) quarantine ledger, without the input-relative path
    each line carries on purpose so an operator can find a quarantined input."""
    if path.name != "ledger.jsonl":
        return path.read_bytes()
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    assert all(line["input"] for line in lines)
    return "\n".join(json.dumps({k: v for k, v in line.items() if k != "input"}) for line in lines).encode()


def test_no_planted_value_leaves_by_a_side_door(tmp_path: Path) -> None:
    canaries = _plant(tmp_path / "archive")
    key = write_key(tmp_path / "secrets")
    out, scratch = tmp_path / "out", tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "DASK_TEMPORARY_DIRECTORY": str(scratch)}
    release, mapping = out / "release", tmp_path / "confidential" / "mapping"
    streams: dict[str, bytes] = {}

    def command(name: str, *args: str, codes: tuple[int, ...] = (0, 1)) -> None:
        done = subprocess.run([str(CLI), "-v", *args], capture_output=True, env=env, cwd=tmp_path, timeout=300)
        assert done.returncode in codes, done.stderr.decode()[-3000:]
        streams[f"{name}.stdout"], streams[f"{name}.stderr"] = done.stdout, done.stderr

    command("run", "run", str(tmp_path / "archive"), "--output", str(release), "--key-file", str(key),
            "--mapping-dir", str(mapping), "--workers", "1", "--batch-size", "4")
    command("verify", "verify", str(release), "--originals", str(tmp_path / "archive"), "--key-file", str(key),
            "--json", str(out / "verify.json"))
    command("scan", "scan", str(release), "--json", str(out / "scan.json"))
    assert any(release.rglob("*.dcm")) and (out / "verify.json").is_file() and (out / "scan.json").is_file()
    assert b"DEBUG" in streams["run.stderr"]  # -v logging was on, and is searched too

    quarantine = out / "release.quarantine"
    kept = {p for p in quarantine.glob("*.dcm")}
    artefacts: dict[str, bytes] = dict(streams)
    for folder in (out, scratch):
        for path in folder.rglob("*"):
            if path.is_file() and path not in kept:
                artefacts[f"file {path.relative_to(tmp_path)}"] = _without_input_paths(path)
            artefacts[f"name {path.relative_to(tmp_path)}"] = os.fsencode(path.relative_to(tmp_path))
    assert "file out/release.manifest.sqlite" in artefacts and "file out/release.run.json" in artefacts
    assert "file out/release.quarantine/ledger.jsonl" in artefacts

    leaks = []
    for where, data in artefacts.items():
        for haystack in _haystacks(data):
            leaks += [(where, name) for name, pattern in _patterns(canaries) if pattern.search(haystack)]
    assert leaks == [], f"{len(leaks)} planted values found outside quarantine and mapping: {sorted(set(leaks))[:10]}"

    # The patterns do find the values where they are allowed to be: the search is not blind.
    mapped = b"".join(p.read_bytes() for p in mapping.iterdir())
    originals = b"".join(p.read_bytes() for p in kept)
    assert any(pattern.search(mapped) for _, pattern in _patterns(canaries))
    assert any(pattern.search(originals) for _, pattern in _patterns(canaries))

    # The key: nowhere, not even in the quarantine or the mapping.
    everything = [*list(artefacts.values()), mapped, originals]
    for needle in (KEY_HEX.encode(), bytes.fromhex(KEY_HEX)):
        assert not [data for data in everything if needle in data]

    # The mapping is owner-only.
    assert stat.S_IMODE(mapping.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in mapping.iterdir()} == {0o600}
    assert stat.S_IMODE(quarantine.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_a_key_file_others_can_read_is_refused_and_nothing_is_made(tmp_path: Path, mode: int) -> None:
    key = write_key(tmp_path / "secrets")
    os.chmod(key, mode)
    done = subprocess.run([str(CLI), "run", str(ARCHIVE / "bad"), "--output", str(tmp_path / "out" / "release"),
                           "--key-file", str(key), "--workers", "0", "--quiet"], capture_output=True, timeout=120)
    assert done.returncode == 2
    assert b"readable by other users" in done.stderr and KEY_HEX.encode() not in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()
