"""run.audit: the PS3.15 A.5.3.4 Data Export message, validated against the A.5.1 schema by xmllint."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from pipeline.cli.main import main
from pipeline.errors import WriteError
from pipeline.runner.audit import (
    EventOutcome,
    ExportEvent,
    ReleasedStudy,
    SopClassCount,
    audit_message,
    release_event,
    released_studies,
    write_audit_message,
)
from tests.conftest_run import build_inputs, identifying_strings, write_key

SCHEMA = Path(__file__).resolve().parents[1] / "resources" / "dicom-audit-message.rng"
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
STUDY_A = "2.25.111111111111111111111111111111111111"
STUDY_B = "2.25.222222222222222222222222222222222222"
WHEN = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)

# Every fixed value the message may hold: the codes of PS3.15 A.5.3.4 and A.5.1, written out
# here from the standard rather than read from the module under test.
VOCABULARY = {
    "R",  # EventActionCode: Read
    "110106", "DCM", "Export",  # EventID
    "110153", "Source Role ID",
    "110154", "Destination Media",
    "110037", "URI",  # CID 405 media type
    "110180", "Study Instance UID",
    "2", "RFC-3881", "Patient Number",
    "1", "3", "4",  # NetworkAccessPointTypeCode, object type and role codes, AuditSourceTypeCode
    "true", "false",
    "deid-pipeline",
}


def _event(**changes: object) -> ExportEvent:
    event = ExportEvent(
        time=WHEN,
        outcome=EventOutcome.SUCCESS,
        run_label="run-7",
        software_version="0.1.0",
        audit_source_id="deid-host",
        destination="release-2026-03",
        studies=(
            ReleasedStudy(STUDY_A, (SopClassCount(CT, 12), SopClassCount(MR, 3))),
            ReleasedStudy(STUDY_B, (SopClassCount(CT, 1),)),
        ),
        patient_ids=("PAT-AAAAAAAAAAAAAAAA",),
        host="deid-host",
    )
    return replace(event, **changes)  # type: ignore[arg-type]


def _xmllint(document: bytes) -> subprocess.CompletedProcess[bytes]:
    xmllint = shutil.which("xmllint")
    assert xmllint is not None, "xmllint (Debian libxml2-utils) is installed by `make system-deps`"
    return subprocess.run([xmllint, "--noout", "--relaxng", str(SCHEMA), "-"], input=document,
                          capture_output=True, check=False, timeout=60)


def _assert_valid(document: bytes) -> None:
    result = _xmllint(document)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"validates" in result.stderr


def _values(document: bytes) -> set[str]:
    """Every attribute value and element text of the message."""
    values: set[str] = set()
    for element in ET.fromstring(document).iter():
        values.update(element.attrib.values())
        if element.text and element.text.strip():
            values.add(element.text.strip())
    return values


# --- validity against the A.5.1 schema ------------------------------------------------------


def test_successful_export_validates_against_the_schema() -> None:
    _assert_valid(audit_message(_event()))


def test_export_with_quarantined_inputs_validates_and_gives_their_number() -> None:
    document = audit_message(_event(outcome=EventOutcome.MINOR_FAILURE, quarantined=3))
    _assert_valid(document)
    identification = ET.fromstring(document).find("EventIdentification")
    assert identification is not None
    assert identification.get("EventOutcomeIndicator") == "4"
    assert identification.findtext("EventOutcomeDescription") == "3 inputs quarantined, not exported"


def test_export_of_an_empty_release_validates_and_names_no_object() -> None:
    document = audit_message(_event(studies=(), patient_ids=(), outcome=EventOutcome.MAJOR_FAILURE))
    _assert_valid(document)
    assert ET.fromstring(document).find("ParticipantObjectIdentification") is None


@pytest.mark.parametrize("outcome", list(EventOutcome))
def test_every_outcome_maps_to_an_indicator_the_schema_accepts(outcome: EventOutcome) -> None:
    document = audit_message(_event(outcome=outcome, host=None))
    _assert_valid(document)
    identification = ET.fromstring(document).find("EventIdentification")
    assert identification is not None
    assert identification.get("EventOutcomeIndicator") == {"SUCCESS": "0", "MINOR_FAILURE": "4",
                                                           "SERIOUS_FAILURE": "8", "MAJOR_FAILURE": "12"}[outcome.name]


def _without_event_identification(root: ET.Element) -> None:
    root.remove(root[0])


def _with_outcome_five(root: ET.Element) -> None:
    root[0].set("EventOutcomeIndicator", "5")


def _without_audit_source(root: ET.Element) -> None:
    source = root.find("AuditSourceIdentification")
    assert source is not None
    root.remove(source)


def _with_study_name_after_description(root: ET.Element) -> None:
    study = root.find("ParticipantObjectIdentification")
    assert study is not None
    name = study.find("ParticipantObjectName")
    assert name is not None
    study.remove(name)
    study.append(name)


@pytest.mark.parametrize("spoil", [_without_event_identification, _with_outcome_five, _without_audit_source,
                                   _with_study_name_after_description])
def test_schema_rejects_a_spoiled_message(spoil: object) -> None:
    root = ET.fromstring(audit_message(_event()))
    spoil(root)  # type: ignore[operator]
    result = _xmllint(ET.tostring(root, encoding="utf-8", xml_declaration=True))
    assert result.returncode != 0
    assert b"fails to validate" in result.stderr


# --- content: the codes of A.5.3.4, the given values and nothing else -----------------------


def test_message_holds_the_given_study_uids_and_nothing_but_given_values_and_codes() -> None:
    event = _event(outcome=EventOutcome.MINOR_FAILURE, quarantined=1)
    document = audit_message(event)
    given = {
        STUDY_A, STUDY_B, CT, MR, "12", "1", "PAT-AAAAAAAAAAAAAAAA", "run-7", "deid-pipeline 0.1.0",
        "deid-host", "release-2026-03", "2026-03-04T05:06:07.890Z", "1 input quarantined, not exported",
    }
    assert _values(document) - VOCABULARY == given - VOCABULARY
    root = ET.fromstring(document)
    studies = {o.get("ParticipantObjectID") for o in root.iter("ParticipantObjectIdentification")
               if o.get("ParticipantObjectTypeCode") == "2"}
    assert studies == {STUDY_A, STUDY_B}


def test_each_study_lists_its_sop_classes_with_instance_counts() -> None:
    root = ET.fromstring(audit_message(_event()))
    counts = {
        o.get("ParticipantObjectID"): [(c.get("UID"), c.get("NumberOfInstances")) for c in o.iter("SOPClass")]
        for o in root.iter("ParticipantObjectIdentification")
    }
    assert counts == {STUDY_A: [(CT, "12"), (MR, "3")], STUDY_B: [(CT, "1")], "PAT-AAAAAAAAAAAAAAAA": []}
    study = root.find("ParticipantObjectIdentification")
    assert study is not None
    assert study.findtext("ParticipantObjectDescription/Anonymized") == "true"
    assert study.find("ParticipantObjectIDTypeCode") is not None
    assert study.find("ParticipantObjectIDTypeCode").get("csd-code") == "110180"  # type: ignore[union-attr]


def test_participants_carry_the_export_roles_of_a534() -> None:
    root = ET.fromstring(audit_message(_event()))
    event_id = root.find("EventIdentification/EventID")
    assert event_id is not None
    assert (event_id.get("csd-code"), event_id.get("codeSystemName"), event_id.get("originalText")) == (
        "110106", "DCM", "Export")
    roles = {p.get("UserID"): (p.find("RoleIDCode").get("csd-code"), p.get("UserIsRequestor"))  # type: ignore[union-attr]
             for p in root.iter("ActiveParticipant")}
    assert roles == {"deid-pipeline": ("110153", "true"), "release-2026-03": ("110154", "false")}


def _text_values(ds: Dataset) -> set[str]:
    """Every text value of `ds` (file meta and nested items included), split at backslashes."""
    values: set[str] = set()
    datasets = [ds.file_meta, ds] if hasattr(ds, "file_meta") else [ds]
    for dataset in datasets:
        for element in dataset.iterall():
            if element.VR in {"SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN", "US", "SS", "UL", "SL", "FL", "FD",
                              "AT", "UV", "SV"}:
                continue
            for value in (element.value if element.VM > 1 else [element.value]):
                values.update(part.strip() for part in str(value).split("\\") if part.strip())
    return values


def test_event_from_a_real_file_after_remap_lets_no_value_of_the_file_in() -> None:
    path = get_testdata_file("CT_small.dcm", download=False)
    assert isinstance(path, str)
    ds = pydicom.dcmread(path)
    new_study = "2.25.329800735698586629295641978511506172918"  # the study after remapping
    study = released_studies([(new_study, str(ds.SOPClassUID))])
    document = audit_message(_event(studies=study, patient_ids=("PAT-TESTPSEUDONYM0",)))
    _assert_valid(document)

    originals = {v for v in _text_values(ds) if len(v) >= 4} - {str(ds.SOPClassUID)}
    assert str(ds.StudyInstanceUID) in originals and str(ds.PatientName) in originals  # the check can bite
    text = document.decode("utf-8")
    assert [v for v in originals if v in text] == []
    given = {new_study, str(ds.SOPClassUID), "0", "PAT-TESTPSEUDONYM0", "run-7", "deid-pipeline 0.1.0", "deid-host",
             "release-2026-03", "2026-03-04T05:06:07.890Z"}
    assert _values(document) - VOCABULARY <= given


# --- determinism and time ---------------------------------------------------------------------


def test_same_event_gives_the_same_bytes_whatever_the_order_of_studies_and_classes() -> None:
    event = _event()
    shuffled = _event(studies=(
        ReleasedStudy(STUDY_B, (SopClassCount(CT, 1),)),
        ReleasedStudy(STUDY_A, (SopClassCount(MR, 3), SopClassCount(CT, 12))),
    ))
    assert audit_message(event) == audit_message(shuffled) == audit_message(_event())
    assert audit_message(event).startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<AuditMessage>")


def test_event_time_is_written_in_utc() -> None:
    local = datetime(2026, 3, 4, 7, 6, 7, 890000, tzinfo=timezone(timedelta(hours=2)))
    identification = ET.fromstring(audit_message(_event(time=local))).find("EventIdentification")
    assert identification is not None
    assert identification.get("EventDateTime") == "2026-03-04T05:06:07.890Z"


def test_released_studies_counts_instances_per_study_and_class() -> None:
    pairs = [(STUDY_B, CT), (STUDY_A, MR), (STUDY_A, CT), (STUDY_A, CT)]
    assert released_studies(pairs) == (
        ReleasedStudy(STUDY_A, (SopClassCount(CT, 2), SopClassCount(MR, 1))),
        ReleasedStudy(STUDY_B, (SopClassCount(CT, 1),)),
    )
    assert released_studies([]) == ()


# --- what the event refuses, without quoting it ----------------------------------------------


@pytest.mark.parametrize("changes", [
    {"destination": "/data/DOE^JOHN/release"},
    {"destination": ".."},
    {"run_label": "/home/DOE^JOHN/input"},
    {"patient_ids": ("DOE^JOHN\nMRN",)},
    {"time": datetime(2026, 3, 4, 5, 6, 7)},  # no time zone
    {"quarantined": -1},
    {"studies": (ReleasedStudy(STUDY_A, (SopClassCount(CT, 1),)),) * 2},
])
def test_event_refuses_what_the_message_must_not_hold(changes: dict[str, object]) -> None:
    with pytest.raises(WriteError) as caught:
        _event(**changes)
    assert "DOE" not in str(caught.value)


@pytest.mark.parametrize("uid", ["DOE^JOHN", "1.2.3.04", "2.25." + "1" * 70, "/data/1.2.3", ""])
def test_study_that_is_not_a_uid_is_refused_without_quoting_it(uid: str) -> None:
    with pytest.raises(WriteError) as caught:
        ReleasedStudy(uid, (SopClassCount(CT, 1),))
    assert uid not in str(caught.value) or not uid


def test_sop_class_needs_an_instance() -> None:
    with pytest.raises(WriteError):
        SopClassCount(CT, 0)


# --- writing --------------------------------------------------------------------------------


def test_write_audit_message_replaces_the_file_whole_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "release.audit.xml"
    write_audit_message(target, _event(outcome=EventOutcome.SERIOUS_FAILURE))
    write_audit_message(target, _event())
    assert target.read_bytes() == audit_message(_event())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.audit.xml"]
    _assert_valid(target.read_bytes())


def test_write_audit_message_fails_as_a_write_error_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    with pytest.raises(WriteError):
        write_audit_message(blocker / "release.audit.xml", _event())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


# --- the run writes it ----------------------------------------------------------------------


def _released_in(release: Path) -> tuple[Counter[tuple[str, str]], set[str]]:
    """(study, SOP class) instance counts and Patient IDs read from the release's own files."""
    counts: Counter[tuple[str, str]] = Counter()
    patients: set[str] = set()
    for path in release.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        counts[(str(ds.StudyInstanceUID), str(ds.SOPClassUID))] += 1
        if str(ds.get("PatientID", "") or ""):  # an empty Patient ID names nobody: not listed
            patients.add(str(ds.PatientID))
    return counts, patients


def _listed_in(document: bytes) -> tuple[Counter[tuple[str, str]], set[str], str]:
    """What the message lists: (study, SOP class) counts, patients, and the outcome."""
    root = ET.fromstring(document)
    counts: Counter[tuple[str, str]] = Counter()
    patients: set[str] = set()
    for element in root.iter("ParticipantObjectIdentification"):
        kind = element.find("ParticipantObjectIDTypeCode")
        assert kind is not None
        if kind.get("csd-code") == "110180":
            for sop_class in element.iter("SOPClass"):
                counts[(element.get("ParticipantObjectID", ""), sop_class.get("UID", ""))] += int(
                    sop_class.get("NumberOfInstances", "0"))
        else:
            patients.add(element.get("ParticipantObjectID", ""))
    event = root.find("EventIdentification")
    assert event is not None
    return counts, patients, event.get("EventOutcomeIndicator", "")


def test_a_run_writes_the_audit_message_of_its_final_release(tmp_path: Path) -> None:
    """Beside run.json: valid against the schema, listing exactly the studies, SOP classes,
    instance counts and Patient IDs of the release's files, with outcome 4 (inputs were
    quarantined), no original value, and the same after a rerun that had nothing to do."""
    inputs = build_inputs(tmp_path / "inputs", broken=True)
    key = write_key(tmp_path)
    release = tmp_path / "release"
    command = ["run", str(inputs), "--output", str(release), "--key-file", str(key), "--workers", "0", "--quiet"]
    assert main(command) == 1  # the broken inputs are quarantined
    audit = tmp_path / "release.audit.xml"
    first = audit.read_bytes()
    _assert_valid(first)
    released, patients = _released_in(release)
    assert sum(released.values()) >= 3
    assert _listed_in(first) == (released, patients, EventOutcome.MINOR_FAILURE.value)
    text = first.decode("utf-8")
    for value in identifying_strings():
        assert value not in text
    assert main(command) == 1  # a rerun: every input unchanged, the message still lists the whole release
    second = audit.read_bytes()
    _assert_valid(second)
    assert _listed_in(second) == (released, patients, EventOutcome.MINOR_FAILURE.value)


def test_a_clean_run_reports_success_and_a_release_made_before_the_message_is_migrated(tmp_path: Path) -> None:
    inputs = build_inputs(tmp_path / "inputs")
    key = write_key(tmp_path)
    release = tmp_path / "release"
    command = ["run", str(inputs), "--output", str(release), "--key-file", str(key), "--workers", "0", "--quiet"]
    assert main(command) == 0
    released, patients = _released_in(release)
    assert _listed_in((tmp_path / "release.audit.xml").read_bytes()) == (
        released, patients, EventOutcome.SUCCESS.value)
    # A manifest of schema 1 (before the audit columns): opened, migrated, and resumed from.
    manifest = tmp_path / "release.manifest.sqlite"
    with sqlite3.connect(manifest) as db:
        db.execute("CREATE TABLE old AS SELECT source_id, run_index, status, output, reason, summary, plan_digest, "
                   "key_fingerprint, lookup_fingerprint, updated FROM inputs")
        db.execute("DROP TABLE inputs")
        db.execute("ALTER TABLE old RENAME TO inputs")
        db.execute("PRAGMA user_version=1")
    assert main(command) == 0
    with sqlite3.connect(manifest) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert {"patient_id", "study_uid", "sop_class"} <= {row[1] for row in db.execute("PRAGMA table_info(inputs)")}


def test_published_files_without_a_study_uid_do_not_stop_the_audit_message(tmp_path: Path) -> None:
    """A file published without a Study Instance UID (pydicom ships several) names no study: the
    message lists the others and still validates; the run ends normally (it once failed here)."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.StudyInstanceUID
    ds.save_as(inputs / "no_study.dcm")
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PatientID = "ID WITH SPACES"  # not a token the message can carry: left out, never a crash
    ds.save_as(inputs / "mr.dcm")
    key = write_key(tmp_path)
    release = tmp_path / "release"
    assert main(["run", str(inputs), "--output", str(release), "--key-file", str(key), "--workers", "0",
                 "--quiet"]) == 0
    document = (tmp_path / "release.audit.xml").read_bytes()
    _assert_valid(document)
    counts, _, outcome = _listed_in(document)
    assert sum(counts.values()) == 1 and outcome == EventOutcome.SUCCESS.value


def test_release_event_skips_what_it_cannot_name() -> None:
    event = release_event([("", "", "1.2.840.10008.5.1.4.1.1.2"), ("P1", "2.25.1", "1.2.840.10008.5.1.4.1.1.2"),
                           ("P 2", "2.25.2", "not a uid")], 0, True, time=datetime(2026, 1, 1, tzinfo=UTC),
                          run_label="run-1", software_version="0.1.0", destination="release", host="host")
    assert [s.study_uid for s in event.studies] == ["2.25.1"] and event.patient_ids == ("P1",)
    _assert_valid(audit_message(event))
