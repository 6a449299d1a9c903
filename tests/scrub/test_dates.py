"""Retain Longitudinal Temporal Information with Modified Dates (PS3.15 E.3.6): DA, TM and DT move
by the patient's keyed offset (days plus seconds), a DA with its TM as one date-time."""

from __future__ import annotations

import csv
import datetime
import io
import itertools
import json
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.cli.main import main
from pipeline.evaluate.score import score
from pipeline.profile.plan import compile_plan
from pipeline.runner.process import scrub_bytes
from pipeline.scrub.dates import (
    MIN_SHIFT_SECONDS,
    SECONDS_PER_DAY,
    Offset,
    date_time_pairs,
    paired_days,
    patient_offset,
    shift_da,
    shift_dt,
    shift_tm,
)
from pipeline.scrub.header import scrub
from pipeline.scrub.keys import Keys
from tests.conftest import encode, make_dataset

MODIFIED = compile_plan("basic", ["retain-longitudinal-modified-dates"])
OFFSET = Offset(days=-10, seconds=3661)  # ten days back, one hour, one minute and one second on


@pytest.mark.parametrize(("value", "expected"), [
    ("101500", "111601"),
    ("1015", "1116"),  # HHMM: the minute it falls in
    ("10", "11"),  # HH: the hour it falls in
    ("101500.123", "111601.123"),  # the fraction is kept
    ("10:15:00", "111601"),  # ACR-NEMA spelling, written as PS3.5 asks
    ("235959", "010100"),  # past midnight: modulo a day
    ("101560", "111701"),  # a leap second
])
def test_a_time_moves_by_the_seconds_at_its_own_precision(value: str, expected: str) -> None:
    assert shift_tm(value, OFFSET) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("20240131101500", "20240121111601"),
    ("20240131", "20240121"),  # a date alone: the days only
    ("2024013123", "2024012200"),  # 23 h plus 1 h 1 min: the next day's first hour
    ("20240131235959.5+0100", "20240122010100.5+0100"),  # fraction and UTC offset kept
    ("20240301003000-0500", "20240220013101-0500"),  # through a leap February
])
def test_a_datetime_moves_whole_at_its_own_precision(value: str, expected: str) -> None:
    assert shift_dt(value, OFFSET) == expected


@pytest.mark.parametrize("value", ["250000", "1015-1100", "noon", "", "1260"])
def test_a_value_that_is_not_a_time_is_refused(value: str) -> None:
    assert shift_tm(value, OFFSET) is None


@pytest.mark.parametrize("value", ["2024", "202401", "20241331", "202401311015.5", "20240131-20240201"])
def test_a_value_that_is_not_a_datetime_with_a_day_is_refused(value: str) -> None:
    assert shift_dt(value, OFFSET) is None


def test_a_date_moves_one_more_day_when_its_time_crosses_midnight() -> None:
    assert paired_days(OFFSET, "225858") == -10  # 23:59:59 the same day
    assert paired_days(OFFSET, "225859") == -9  # 00:00:00 the next
    assert paired_days(OFFSET, None) == paired_days(OFFSET, "not a time") == -10
    assert shift_da("2024.01.31", -10) == "20240121"


def test_no_patient_offset_leaves_a_time_of_day_unchanged_at_any_precision(keys: Keys) -> None:
    """The seconds are at least an hour and less than a day: an HH, HHMM or HHMMSS value never
    comes out as it went in, whatever the patient."""
    offsets = [patient_offset(f"PatientID:MRN{n:04d}", keys) for n in range(300)]
    assert all(MIN_SHIFT_SECONDS <= o.seconds < SECONDS_PER_DAY and o.days <= -1 for o in offsets)
    assert len({o.seconds for o in offsets}) > 250  # keyed, not a constant
    for offset in offsets[:40]:
        for hour in range(24):
            hh = f"{hour:02d}"
            assert shift_tm(hh, offset) != hh
            assert shift_tm(hh + "59", offset) != hh + "59"
            assert shift_tm(hh + "5959", offset) != hh + "5959"


def test_pairs_are_read_from_the_dictionary() -> None:
    pairs = {pydicom.datadict.keyword_for_tag(d): pydicom.datadict.keyword_for_tag(t)
             for d, t in date_time_pairs().items()}
    assert pairs["StudyDate"] == "StudyTime" and pairs["SeriesDate"] == "SeriesTime"
    assert pairs["InstanceCreationDate"] == "InstanceCreationTime"
    assert pairs["PerformedProcedureStepStartDate"] == "PerformedProcedureStepStartTime"
    assert pairs["DateOfSecondaryCapture"] == "TimeOfSecondaryCapture"
    assert pairs["CalibrationDate"] == "CalibrationTime"
    assert all(pydicom.datadict.dictionary_VR(t) == "TM" for t in date_time_pairs().values())


def _crossing(offset: Offset) -> str:
    """A time of day that the offset's seconds carry past midnight (by 30 s)."""
    moment = SECONDS_PER_DAY - offset.seconds + 30
    return f"{moment // 3600:02d}{moment // 60 % 60:02d}{moment % 60:02d}"


def _scrubbed(ds: Dataset, keys: Keys) -> Dataset:
    return pydicom.dcmread(io.BytesIO(scrub_bytes(encode(ds), MODIFIED, keys).data))


def _moment(day: str, time: str) -> datetime.datetime:
    return datetime.datetime.strptime(day + time, "%Y%m%d%H%M%S")


def test_a_pair_that_crosses_midnight_moves_its_date_at_any_depth(keys: Keys) -> None:
    """StudyDate/StudyTime cross midnight, SeriesDate/SeriesTime do not: the dates, equal before,
    are a day apart after, and every date-time moved by exactly the patient's offset. The
    Calibration Time (0014,407C) comes before its date (0014,407E): paired all the same, and so
    is a pair inside a sequence item."""
    offset = patient_offset("PatientID:MRN0001", keys)
    late = _crossing(offset)
    ds = make_dataset()
    ds.StudyDate, ds.StudyTime = "20240131", late
    ds.SeriesDate, ds.SeriesTime = "20240131", "000000"
    ds.CalibrationTime, ds.CalibrationDate = late, "20240131"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-1", "SRT", "Region"
    item.DateOfGainCalibration, item.TimeOfGainCalibration = "20240131", late  # no recipe names them
    ds.AnatomicRegionSequence = Sequence([item])
    out = _scrubbed(ds, keys)
    shift = datetime.timedelta(seconds=offset.total)
    inner = out.AnatomicRegionSequence[0]
    for day, time in ((out.StudyDate, out.StudyTime), (out.CalibrationDate, out.CalibrationTime),
                      (inner.DateOfGainCalibration, inner.TimeOfGainCalibration)):
        assert _moment(day, time) == _moment("20240131", late) + shift
    assert _moment(out.SeriesDate, out.SeriesTime) == _moment("20240131", "000000") + shift
    assert (_moment(out.StudyDate, "000000") - _moment(out.SeriesDate, "000000")).days == 1


def test_a_lone_time_moves_by_the_seconds_and_a_lone_date_by_the_days(keys: Keys) -> None:
    offset = patient_offset("PatientID:MRN0001", keys)
    ds = make_dataset()
    ds.ContrastBolusStartTime = "083000.25"  # no date beside it
    ds.LastMenstrualDate = "20240101"  # no time beside it
    out = _scrubbed(ds, keys)
    expected = (8 * 3600 + 30 * 60 + offset.seconds) % SECONDS_PER_DAY
    assert out.ContrastBolusStartTime == (f"{expected // 3600:02d}{expected // 60 % 60:02d}"
                                          f"{expected % 60:02d}.25")
    assert out.LastMenstrualDate == (datetime.date(2024, 1, 1) + datetime.timedelta(days=offset.days)).strftime(
        "%Y%m%d")


def test_a_time_that_cannot_be_read_is_removed_and_counted(keys: Keys) -> None:
    ds = make_dataset()
    ds.ContrastBolusStartTime = "0830-0900"  # a range: no one time to move
    log = scrub(ds, MODIFIED, keys)
    assert "ContrastBolusStartTime" not in ds
    assert log.unparsable_dates == 1
    assert ds.StudyTime != "101500"


def test_the_shift_is_deterministic(keys: Keys) -> None:
    ds = make_dataset(instance="1.2.826.0.1.3680043.10.1.5")
    ds.AcquisitionDateTime = "20240131101500.123456+0200"
    ds.AcquisitionTime = "1015"
    first = scrub_bytes(encode(ds), MODIFIED, keys).data
    assert scrub_bytes(encode(ds), MODIFIED, keys).data == first
    out = pydicom.dcmread(io.BytesIO(first))
    assert out.AcquisitionDateTime.endswith(".123456+0200") and len(out.AcquisitionDateTime) == 26
    assert len(out.AcquisitionTime) == 4 and out.AcquisitionTime != "1015"
    assert tag_for_keyword("AcquisitionTime") in date_time_pairs().values()


# ---------------------------------------------------------------- the sample archive, end to end
REPO = Path(__file__).resolve().parents[2]
ARCHIVE, ARCHIVE_KEY = REPO / "sample_data" / "archive", REPO / "sample_data" / "archive_key.json"


def _partner(ds: Dataset, keyword: str) -> str | None:
    """The TM beside a DA, read here on its own: the keyword with one "Date" read as "Time"."""
    for at in range(len(keyword)):
        if keyword.startswith("Date", at):
            other = keyword[:at] + "Time" + keyword[at + 4:]
            if other in ds and ds[other].VR == "TM" and isinstance(ds[other].value, str):
                return str(ds[other].value)
    return None


def _temporal(ds: Dataset, prefix: str = "") -> tuple[dict[str, datetime.datetime], dict[str, str]]:
    """Every full date-time (a DA with its TM to the second, a DT to the second) and every time of
    day (TM, DT time part) of a dataset at every depth, by attribute path."""
    moments: dict[str, datetime.datetime] = {}
    times: dict[str, str] = {}
    for elem in ds:
        path, value = prefix + elem.keyword, elem.value
        if elem.VR == "SQ":
            for index, item in enumerate(value or ()):
                inner = _temporal(item, f"{path}[{index}].")
                moments.update(inner[0])
                times.update(inner[1])
        elif not isinstance(value, str) or not value:
            continue
        elif elem.VR == "TM":
            times[path] = value.split(".")[0]
        elif elem.VR == "DT" and len(value) >= 14 and value[:14].isdigit():
            moments[path] = datetime.datetime.strptime(value[:14], "%Y%m%d%H%M%S")
            times[path] = value[8:14]
        elif elem.VR == "DA" and (time := _partner(ds, elem.keyword)) is not None and len(time) >= 6:
            moments[path] = datetime.datetime.strptime(value + time[:6], "%Y%m%d%H%M%S")
    return moments, times


def test_the_archive_keeps_every_interval_of_a_patient_and_no_original_time_of_day(tmp_path: Path) -> None:
    """The sample archive through the command line with Modified Dates: for each patient, the
    interval between any two of its date-times, across all its files, is the same to the second
    after as before; no time of day is left as it was at its place; the scorer, reading the
    answer key, finds no time kept (54 on 27 files before times were modified)."""
    key_file = tmp_path / "key"
    key_file.write_text("ab" * 32 + "\n")
    key_file.chmod(0o600)
    release, mapping = tmp_path / "release", tmp_path / "mapping"
    assert main(["run", str(ARCHIVE), "--output", str(release), "--key-file", str(key_file), "--workers", "0",
                 "--quiet", "--mapping-dir", str(mapping), "--option", "retain-longitudinal-modified-dates"]) == 1
    answer = json.loads(ARCHIVE_KEY.read_text(encoding="utf-8"))
    by_sop = {e["sop_instance_uid"]: (rel, e["patient"]) for rel, e in answer["files"].items()
              if e.get("sop_instance_uid")}
    with (mapping / "uid_mapping.csv").open(newline="", encoding="utf-8") as handle:
        old_of = {row["id_new"]: row["id_old"] for row in csv.DictReader(handle)}
    pairs: dict[str, list[tuple[datetime.datetime, datetime.datetime]]] = {}
    times_compared = 0
    outputs = sorted(release.rglob("*.dcm"))
    assert len(outputs) >= 25
    for output in outputs:
        out = pydicom.dcmread(output)
        rel, patient = by_sop[old_of[str(out.SOPInstanceUID)]]
        before, after = _temporal(pydicom.dcmread(ARCHIVE / rel)), _temporal(out)
        assert set(after[0]) <= set(before[0])
        pairs.setdefault(patient, []).extend((before[0][p], after[0][p]) for p in after[0])
        for path, time in after[1].items():
            if path in before[1] and before[1][path].strip("0"):
                times_compared += 1
                assert time != before[1][path], (rel, path)
    assert len(pairs) == 3 and times_compared > 100
    for patient, moments in pairs.items():
        assert len(moments) > 20
        for (in1, out1), (in2, out2) in itertools.combinations(moments, 2):
            assert out2 - out1 == in2 - in1, patient
        assert (moments[0][1] - moments[0][0]).total_seconds() % SECONDS_PER_DAY != 0
    report = score(release, ARCHIVE_KEY, mapping / "uid_mapping.csv")
    assert report.times_kept == report.dates_unshifted == 0, report.to_json(with_findings=False)
