"""Fuzzing `process_one`: structure-aware datasets, byte mutations of the sample archive, and the
planted kinds of tests/runner/fuzz_plants.py (identification sequences, text stored as OB/UN,
times, spelled dates, CJK names, bitmaps in high pixel bits), each a named kind.

Property: every input ends published or quarantined or skipped with a reason code expected for
its kind (EXPECTED_REASONS), never by the verifier: a verify catch (``verify:<rule>``) is a scrub
fault that fail-closed caught (issue 13, kind 7), so it counts as a failure; at least
PUBLISHED_FLOOR of the random datasets and mutations is published; `process_one` never raises and
never hangs (each file runs under a time limit); nothing published holds a canary planted in an
identifying place, in its bytes or its release path, nor (high-bit-bitmaps) a pixel bit above High Bit.

`make test` runs a short fuzz bounded by input count, derandomized, over the kinds already fixed
(FIXED_KINDS, FUZZ_EXAMPLES inputs each). `make fuzz SECONDS=600 [SEED=N]` runs ``python -m
tests.runner.test_fuzz --seconds 600 --seed N [--kind K ...] [--save DIR]``: rounds of every kind
until time is up; then a table of the verify catches per kind and rule and of the leaks per kind,
and exit status 1 if there is any (or a published share fell under its floor).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pydicom.datadict
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pipeline.profile.plan import Plan, compile_plan
from pipeline.runner.discover import SourceFile
from pipeline.runner.outcome import Disposition, Outcome
from pipeline.runner.process import WorkerConfig, process_one
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes
from tests.conftest_run import KEY_HEX
from tests.runner.fuzz_plants import CANARY, PLANTED, Case, high_bits_set

KEYS = Keys(key=KEY_HEX.encode("ascii"))
ARCHIVE = Path(__file__).resolve().parents[2] / "sample_data" / "archive"
SEEDS = sorted(p for p in ARCHIVE.rglob("*.dcm") if "bad" not in p.parts and p.stat().st_size < 40_000)[:8]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
TIME_LIMIT = 20.0  # per file: a hang is a time-limit quarantine, never a stuck test
# What may become of each kind's inputs besides publication. A valid random dataset is published
# unless its pixels need OCR; a mutated file may also be refused as bad input or skipped. A verify
# catch is never expected: the scrub let something through. unexpected-* is never expected
# either: a scrubber crash, fail-closed but a bug. The sets name reason codes; the cause after
# the colon is free.
_VALID = frozenset({"burned-in-unhandled"})
EXPECTED_REASONS: dict[str, frozenset[str]] = {
    "datasets": _VALID,
    "mutations": frozenset({"bad-input", "not-dicom", "empty", "dicomdir", "too-large", "time-limit",
                            "burned-in-unhandled", "encapsulated-document", "pixel-failed", "write-failed"}),
    **dict.fromkeys(PLANTED, _VALID),
}
# At least this share of each generator's inputs is published, so a scrubber that quarantines
# (nearly) everything fails here. Measured (issue 18): datasets 150/150 derandomized and 500/500 in a
# 90 s `make fuzz`; mutations 27/150 (18 %) derandomized and 156/500 (31 %) random. Issue 13 (the
# scrub refuses more malformed input): mutations 17/100 (17 %) derandomized, 36/150 (24 %) seed 7.
# Issue 16: derandomized draws of the 100 mutations differ with the tests run before them in the
# process (11, 21 and 24 published in three orders); the same 200 inputs gave identical outcomes
# before and after the session's changes, so the floor sits under the lowest draw seen.
PUBLISHED_FLOOR = {"datasets": 0.95, "mutations": 0.08}
FLOOR_MIN_INPUTS = 50  # below this many inputs (FUZZ_EXAMPLES < 50) the share is too noisy to judge
# The kinds `make test` fuzzes (derandomized), requiring no verify catch and no leak: every kind
# issue 13 names (their fixes: scrub/dates.py, scrub/textdates.py and clean.py, pixels/unused_bits.py).
FIXED_KINDS = ("datasets", "mutations", *PLANTED)

# Canaries (fuzz_plants.CANARY) are upper-case letters only, starting with "QJX"; filler text never holds a Q.
IDENTIFYING = ("PatientName", "PatientID", "OtherPatientNames", "PatientAddress", "PatientMotherBirthName",
               "InstitutionName", "InstitutionAddress", "ReferringPhysicianName", "PerformingPhysicianName",
               "OperatorsName", "AccessionNumber", "PatientTelephoneNumbers", "MilitaryRank", "RequestingPhysician",
               # IDs verify never excuses by a kept attribute's text: random filler in one of them that
               # equalled a kept code (hypothesis repeats values) was a verify catch of no scrub fault
               "IssuerOfPatientID", "OtherPatientIDs", "StudyID", "AdmissionID", "MedicalRecordLocator",
               "RequestedProcedureID", "ScheduledProcedureStepID", "PerformedProcedureStepID", "PatientBirthName",
               "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest",
               "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID")
SKIPPED_GROUPS = {0x0000, 0x0002, 0x0004}


def _standard_keywords() -> list[tuple[str, str]]:
    """(keyword, VR) of current, non-repeating standard attributes outside the meta, pixel,
    DICOMDIR and character-set machinery; identifying ones are excluded (they get canaries)."""
    chosen = []
    for tag, (vr, _vm, _name, retired, keyword) in pydicom.datadict.DicomDictionary.items():
        group = tag >> 16
        if retired or not keyword or group in SKIPPED_GROUPS or group >= 0x5000 or "x" in f"{tag:08x}":
            continue
        if keyword in IDENTIFYING or keyword == "SpecificCharacterSet" or vr not in _VALUES:
            continue
        chosen.append((keyword, vr))
    return sorted(chosen)


_FILLER = st.text("ABCDEFGHIJKLMNOPRSTUVWXYZ0123456789 ", min_size=0, max_size=24)
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "LO": _FILLER.map(str.strip), "SH": _FILLER.map(lambda s: s.strip()[:16]), "LT": _FILLER, "ST": _FILLER,
    "UT": _FILLER, "UC": _FILLER, "PN": _FILLER.map(lambda s: s.strip().replace(" ", "^")),
    "CS": st.text("ABCDEFGHIJKLMNOPRSTUVWXYZ0123456789_", max_size=16),
    "DA": st.dates().map(lambda d: d.strftime("%Y%m%d")),
    "TM": st.times().map(lambda t: t.strftime("%H%M%S")),
    "DT": st.datetimes().map(lambda d: d.strftime("%Y%m%d%H%M%S")),
    "DS": st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: f"{f:.4g}"),
    "IS": st.integers(-(2**31), 2**31 - 1).map(str),
    "US": st.integers(0, 65535), "SS": st.integers(-32768, 32767),
    "UL": st.integers(0, 2**32 - 1), "SL": st.integers(-(2**31), 2**31 - 1),
    "FL": st.floats(-1e6, 1e6, allow_nan=False, width=32), "FD": st.floats(allow_nan=False),
    "UI": st.lists(st.integers(1, 99999), min_size=2, max_size=6).map(lambda p: "1.2." + ".".join(map(str, p))),
    "AS": st.integers(0, 120).map(lambda n: f"{n:03d}Y"),
    "AE": st.text("ABCDEFGHIJKLMNOPRSTUVWXYZ", min_size=1, max_size=16),
}
KEYWORDS = _standard_keywords()
SEQUENCES = sorted(k for k, vr in ((kw, pydicom.datadict.dictionary_VR(kw)) for kw in (
    "ReferencedStudySequence", "ReferencedSeriesSequence", "RequestAttributesSequence", "ProcedureCodeSequence",
    "ReferencedImageSequence", "SourceImageSequence", "AnatomicRegionSequence", "ContentSequence",
)) if vr == "SQ")


@st.composite
def _items(draw: st.DrawFn, depth: int, canaries: list[str]) -> Dataset:
    """One dataset level: random standard attributes, canaries in identifying attributes,
    maybe a private block holding a canary, maybe nested sequences."""
    ds = Dataset()
    for keyword, vr in draw(st.lists(st.sampled_from(KEYWORDS), max_size=8, unique=True)):
        value = draw(_VALUES[vr])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            setattr(ds, keyword, value)
    for keyword in draw(st.lists(st.sampled_from(IDENTIFYING), max_size=3, unique=True)):
        canary = draw(CANARY)
        canaries.append(canary)
        setattr(ds, keyword, canary if pydicom.datadict.dictionary_VR(keyword) != "PN" else canary + "^" + "X")
    if draw(st.booleans()):
        group = draw(st.sampled_from([0x0009, 0x0011, 0x0029, 0x7FD1]))
        block = ds.private_block(group, draw(st.sampled_from(["ACME 1.0", "SIEMENS CSA HEADER", "GEMS_IDEN_01"])),
                                 create=True)
        canary = draw(CANARY)
        canaries.append(canary)
        vr = draw(st.sampled_from(["LO", "UN", "OB", "LT"]))
        block.add_new(0x01, vr, canary if vr in ("LO", "LT") else canary.encode())
    if depth < 3:
        for keyword in draw(st.lists(st.sampled_from(SEQUENCES), max_size=2, unique=True)):
            count = draw(st.integers(0, 2))
            setattr(ds, keyword, Sequence([draw(_items(depth + 1, canaries)) for _ in range(count)]))
    return ds


@st.composite
def datasets(draw: st.DrawFn) -> Case:
    """A PS3.10 file of a random dataset, and the canaries planted in it."""
    canaries: list[str] = []
    ds = draw(_items(0, canaries))
    if "PatientName" not in ds:
        name = draw(CANARY)
        canaries.append(name)
        ds.PatientName = name + "^" + "GIVEN"
    ds.SOPClassUID = draw(st.sampled_from(["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.7",
                                           "1.2.840.10008.5.1.4.1.1.88.33"]))
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        setattr(ds, keyword, "2.25." + str(draw(st.integers(1, 2**120))))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = draw(st.sampled_from([ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                                   ExplicitVRBigEndian]))
    ds.file_meta = meta
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return Case(buffer.getvalue(), tuple(c.encode() for c in canaries))


@st.composite
def mutations(draw: st.DrawFn) -> Case:
    """A sample archive file with bytes flipped, spliced, inserted or cut."""
    data = bytearray(draw(st.sampled_from(SEEDS)).read_bytes())
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "splice", "insert", "cut", "length"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "splice":
            patch = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(patch)] = patch
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "cut":
            del data[at:]
            if not data:
                data = bytearray(b"\x00")
        else:  # a plausible header with a hostile length
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00"]))
    return Case(bytes(data), ())




STRATEGIES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {"datasets": datasets, "mutations": mutations,
                                                               **PLANTED}
KINDS = tuple(STRATEGIES)
_PLANS: dict[tuple[str, ...], Plan] = {}


def plan_for(options: tuple[str, ...]) -> Plan:
    if options not in _PLANS:
        _PLANS[options] = compile_plan("basic", list(options))
    return _PLANS[options]


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one input, and what was wrong with it: ``verify:<rule>`` or ``verify-no-verdict`` (the verifier
    quarantined what the scrub let through), ``leak:canary``, ``leak:high-bits`` (published),
    ``unexpected:<reason>`` (a reason code not expected for the kind)."""

    outcome: Outcome
    problems: tuple[str, ...]


TRIED: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}  # kind -> disposition or reason -> inputs
PROBLEMS: Counter[tuple[str, str]] = Counter()  # (kind, problem) -> inputs


def check(case: Case, kind: str) -> Result:
    """Run one input through `process_one` in a fresh release; return what was wrong (never raises)."""
    assert all(c in case.data for c in case.canaries), "every canary is planted"
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        path = root / "input.dcm"
        path.write_bytes(case.data)
        cfg = WorkerConfig(root / "release", root / "quarantine", time_limit=TIME_LIMIT)
        (root / "quarantine").mkdir()
        result = process_one(SourceFile(path, len(case.data), 0), plan_for(case.options), KEYS, cfg)  # must not raise
        TRIED[kind]["inputs"] += 1
        TRIED[kind][result.reason or result.disposition.value] += 1
        released = [p for p in (root / "release").rglob("*") if p.is_file()] if cfg.release.exists() else []
        if result.disposition is Disposition.WRITTEN:
            assert result.output is not None and len(released) == 1, "one published file"
            published = released[0].read_bytes()
            findings = verify_bytes(published, case.options, original=case.data, output_path=result.output)
            problems += [f"verify:{finding.rule}" for finding in findings[:1]]  # published unverified
            text = published.upper() + result.output.upper().encode()
            problems += ["leak:canary"] * any(c.upper() in text for c in case.canaries)
            if case.high_bits:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    problems += ["leak:high-bits"] * high_bits_set(pydicom.dcmread(io.BytesIO(published)))
        else:
            assert result.reason, result
            assert released == [], "nothing but a verified file is left in the release"
            code = result.reason.split(":", 1)[0]  # a reason is code[:cause] (pipeline.errors.Cause)
            if code.startswith("verify"):  # verify:<rule>, verify-no-verdict, verify-unavailable
                problems.append(result.reason)
            elif code not in EXPECTED_REASONS[kind]:
                problems.append(f"unexpected:{result.reason}")
    for problem in problems:
        PROBLEMS[(kind, problem)] += 1
    return Result(result, tuple(problems))


def below_floor() -> list[str]:
    """The generators whose published share fell under PUBLISHED_FLOOR (with enough inputs)."""
    low = []
    for name, floor in PUBLISHED_FLOOR.items():
        tally = TRIED[name]
        if tally["inputs"] >= FLOOR_MIN_INPUTS and tally["written"] < floor * tally["inputs"]:
            low.append(f"{name}: {tally['written']} of {tally['inputs']} published, floor {floor:.0%}")
    return low


def report() -> list[str]:
    """The lines `make fuzz` prints: inputs and outcomes per kind, then verify's catches per kind
    and rule and the leaks per kind (every kind and rule named; expected 0)."""
    lines = []
    for kind in KINDS:
        tally = TRIED[kind]
        if tally["inputs"]:
            outcomes = ", ".join(f"{k} {v}" for k, v in tally.most_common() if k != "inputs")
            lines.append(f"fuzz {kind}: {tally['inputs']} inputs; {outcomes}")
    lines.append("verify catches and leaks per kind and rule (expected 0):")
    width = max(len(k) for k in KINDS)
    for (kind, problem), count in sorted(PROBLEMS.items()):
        lines.append(f"  {kind:<{width}}  {problem:<40} {count}")
    caught = sum(count for (_kind, problem), count in PROBLEMS.items() if problem.startswith("verify"))
    leaked = sum(count for (_kind, problem), count in PROBLEMS.items() if problem.startswith("leak:"))
    other = sum(PROBLEMS.values()) - caught - leaked
    lines.append(f"  total: verify catches {caught}, leaks {leaked}, unexpected reasons {other}")
    return lines


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.large_base_example])


def _fuzz_kind(kind: str, examples: int) -> None:
    @settings(FUZZ, max_examples=examples)
    @given(STRATEGIES[kind]())
    def run(case: Case) -> None:
        result = check(case, kind)
        assert result.problems == (), (kind, result.problems, result.outcome.reason)

    run()


@pytest.mark.parametrize("kind", FIXED_KINDS)
def test_a_fixed_kind_is_published_clean_or_quarantined_never_by_verify(kind: str) -> None:
    """FUZZ_EXAMPLES inputs of the kind (half for the planted kinds), derandomized: no verify
    catch, no leak, no unexpected reason."""
    _fuzz_kind(kind, EXAMPLES if kind in PUBLISHED_FLOOR else max(EXAMPLES // 2, 1))


def test_fuzz_tried_inputs_and_reports_them() -> None:
    """Runs last in this module: the figures of the fuzz above (shown with ``-rA``/``-s``)."""
    print("\n".join(report()))
    assert sum(TRIED[kind]["inputs"] for kind in FIXED_KINDS) >= 2 * min(EXAMPLES, 10)
    assert all(TRIED[name]["inputs"] >= min(EXAMPLES, FLOOR_MIN_INPUTS) for name in PUBLISHED_FLOOR)
    assert below_floor() == []
    assert sum(PROBLEMS.values()) == 0


def main(argv: list[str] | None = None) -> int:
    """``make fuzz``: rounds of every kind (or those named) until `--seconds` have passed. With
    `--seed`, round r of kind k draws under seed (seed, r, k): the same seed tries the same inputs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None, help="fixed seed (default: a random one, printed)")
    parser.add_argument("--kind", action="append", choices=KINDS, help="fuzz only this kind (repeatable)")
    parser.add_argument("--examples", type=int, default=25, help="inputs per kind per round")
    parser.add_argument("--save", type=Path, default=None, help="write each input with a problem here")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # pydicom's warnings on mutated files: the table below is the report
    base = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    kinds = tuple(args.kind or KINDS)
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)

    def body(kind: str) -> Callable[[Case], None]:
        def run(case: Case) -> None:
            result = check(case, kind)
            if result.problems and args.save is not None:
                name = f"{kind}-{result.problems[0].replace(':', '_')}-{hashlib.sha256(case.data).hexdigest()[:12]}"
                (args.save / f"{name}.dcm").write_bytes(case.data)
                (args.save / f"{name}.options").write_text(" ".join(case.options) + "\n")
        return run

    started, rounds = time.monotonic(), 0
    while time.monotonic() - started < args.seconds:
        for index, kind in enumerate(kinds):
            fuzz = settings(max_examples=args.examples, deadline=None, derandomize=False, database=None,
                            suppress_health_check=list(HealthCheck))(given(STRATEGIES[kind]())(body(kind)))
            seed(hash((base, rounds, index)) & 0xFFFFFFFF)(fuzz)()
            if time.monotonic() - started >= args.seconds:
                break
        rounds += 1
    elapsed = time.monotonic() - started
    total = sum(TRIED[kind]["inputs"] for kind in KINDS)
    print(f"fuzz: {total} inputs in {elapsed:.0f} s, seed {base}, {rounds} rounds of {args.examples} per kind")
    print("\n".join(report()))
    low = below_floor()
    for line in low:
        print(f"fuzz: published share below its floor: {line}")
    return 1 if low or PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main())
