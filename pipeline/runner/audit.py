"""The DICOM audit message of a release: PS3.15 A.5.3.4 "Data Export" in the A.5.1 schema.

One message says that this pipeline exported a release: when, with what outcome, from which
run, to which release folder (its name only) and which studies, by the Study Instance UID
written into the release, with the SOP classes and instance counts of each (A.5.1.1
``SOPClass``). It is built only from values the run itself produced or chose: the UIDs and
pseudonymous Patient IDs as written into the released files, counts, a run label, the
release folder's name, a host name. Nothing read from an input file or an input path has a
field here, so no original value can reach the message.

The message is UTF-8 XML whose elements come in the schema's order, studies sorted by UID
and SOP classes by UID within a study: the same event gives the same bytes.

Mapping onto A.5.3.4 (Data Export):

- EventID (110106, DCM, "Export"), EventActionCode ``R``, EventOutcomeIndicator from
  `EventOutcome`; EventOutcomeDescription gives the number of quarantined inputs, if any.
- Active Participant "User or Process Exporting the data": this pipeline. UserID
  ``deid-pipeline``; AlternativeUserID the run label, which names the run in the run record
  and the ledger (the matching A.5.2.1 asks UserID to allow); UserName the process name with
  its version (A.5.2.3); RoleIDCode (110153, DCM, "Source Role ID"); UserIsRequestor true,
  the one requestor A.5.3.4.1 asks for; the host name, when given, as NetworkAccessPointID of
  type 1 (machine name, A.5.2.4). No person is named: the operator's login is not recorded.
- Active Participant "Media": the release. UserID the release folder's name (A.5.2.1 allows a
  free-text media label), RoleIDCode (110154, DCM, "Destination Media"), UserIsRequestor
  false, MediaType (110037, DCM, "URI") from CID 405.
- Participant Objects "Studies": ParticipantObjectTypeCode 2 (system object), role 3
  (report), ParticipantObjectIDTypeCode (110180, DCM, "Study Instance UID"), the UID as
  ParticipantObjectID; ParticipantObjectDescription lists ``SOPClass UID= NumberOfInstances=``
  per class and ``Anonymized`` true.
- Participant Objects "Patients": type 1 (person), role 1 (patient), ParticipantObjectIDTypeCode
  (2, RFC-3881, "Patient Number"), the pseudonymous Patient ID as written into the release.
  A.5.3.4 asks for at least one; an event without patient IDs still validates against the
  schema, but lacks them.
- The schema as given in A.5.1.1 requires either a ParticipantObjectName or a
  ParticipantObjectQuery in every participant object; the name repeats the object's ID, so
  the message holds no value beyond it.
- AuditSourceIdentification: AuditSourceID as given (a host or site name the operator
  chooses), AuditSourceTypeCode 4 (application server process, A.5.1.2.1).

A.5.2 asks for one message for what succeeded and another for what failed when an event has
both. A run that quarantined files can follow it by writing two events: one `SUCCESS` with
the released studies, and one `MINOR_FAILURE` with the quarantined count and no studies.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pipeline.errors import WriteError
from pipeline.files import write_atomically

log = logging.getLogger(__name__)

SOFTWARE = "deid-pipeline"
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_MAX_UID = 64  # PS3.5 9.1
_MAX_TEXT = 256
_SEPARATOR = re.compile(r"[/\\]")


class EventOutcome(StrEnum):
    """EventOutcomeIndicator (PS3.15 A.5.1.1; meanings per the A.5.2 table)."""

    SUCCESS = "0"  # every input released or skipped as not DICOM
    MINOR_FAILURE = "4"  # some inputs quarantined; the rest released
    SERIOUS_FAILURE = "8"  # the run stopped before it had processed every input
    MAJOR_FAILURE = "12"  # nothing could be released


@dataclass(frozen=True, slots=True)
class Code:
    """A coded value of the schema's CodedValueType: csd-code, codeSystemName, originalText."""

    value: str
    scheme: str
    meaning: str


EXPORT = Code("110106", "DCM", "Export")
SOURCE_ROLE = Code("110153", "DCM", "Source Role ID")
DESTINATION_MEDIA = Code("110154", "DCM", "Destination Media")
MEDIA_URI = Code("110037", "DCM", "URI")  # CID 405 Media Type
STUDY_INSTANCE_UID = Code("110180", "DCM", "Study Instance UID")
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
APPLICATION_SERVER_PROCESS = "4"  # A.5.1.2.1 Audit Source Type Code


@dataclass(frozen=True, slots=True)
class SopClassCount:
    """How many released instances of one SOP class a study holds."""

    sop_class_uid: str
    instances: int

    def __post_init__(self) -> None:
        _check_uid(self.sop_class_uid, "sop_class_uid")
        if self.instances < 1:
            raise WriteError("audit event: a SOP class needs at least one instance")


@dataclass(frozen=True, slots=True)
class ReleasedStudy:
    """One study of the release, named by the Study Instance UID written into the release
    (the new UID; never one read from an input)."""

    study_uid: str
    sop_classes: tuple[SopClassCount, ...]

    def __post_init__(self) -> None:
        _check_uid(self.study_uid, "study_uid")
        if not self.sop_classes:
            raise WriteError("audit event: a released study needs at least one SOP class")
        classes = [c.sop_class_uid for c in self.sop_classes]
        if len(set(classes)) != len(classes):
            raise WriteError("audit event: a SOP class is listed twice in one study")


@dataclass(frozen=True, slots=True)
class ExportEvent:
    """The export of one release (PS3.15 A.5.3.4), in values the run produced or chose.

    Parameters
    ----------
    time
        When the export ended; timezone-aware, written in UTC.
    outcome
        The EventOutcomeIndicator.
    run_label
        Names the run in the run record and ledger, e.g. ``"run-7"``; never an input path.
    software_version
        This pipeline's version, e.g. ``"0.1.0"``.
    audit_source_id
        AuditSourceID: the host or site name that reports the event.
    destination
        The release folder's name only (no separator): the destination media.
    studies
        The released studies by their new Study Instance UIDs.
    patient_ids
        The pseudonymous Patient IDs as written into the release.
    quarantined
        How many inputs were quarantined, for EventOutcomeDescription.
    host
        The machine name, as NetworkAccessPointID of the exporting process; optional.
    """

    time: datetime
    outcome: EventOutcome
    run_label: str
    software_version: str
    audit_source_id: str
    destination: str
    studies: tuple[ReleasedStudy, ...] = ()
    patient_ids: tuple[str, ...] = ()
    quarantined: int = 0
    host: str | None = None

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise WriteError("audit event: the event time has no time zone")
        _check_token(self.software_version, "software_version")
        for name in ("run_label", "audit_source_id", "destination"):
            _check_name(getattr(self, name), name)
        if self.host is not None:
            _check_name(self.host, "host")
        for patient_id in self.patient_ids:
            _check_token(patient_id, "patient_ids")
        if len(set(self.patient_ids)) != len(self.patient_ids):
            raise WriteError("audit event: a patient ID is listed twice")
        uids = [s.study_uid for s in self.studies]
        if len(set(uids)) != len(uids):
            raise WriteError("audit event: a study is listed twice")
        if self.quarantined < 0:
            raise WriteError("audit event: a negative quarantined count")


def released_studies(instances: Iterable[tuple[str, str]]) -> tuple[ReleasedStudy, ...]:
    """Group released instances, given as (new Study Instance UID, SOP Class UID) pairs, one
    per released file, into studies with per-class instance counts."""
    counts = Counter(instances)
    by_study: dict[str, list[SopClassCount]] = {}
    for (study_uid, sop_class_uid), n in sorted(counts.items()):
        by_study.setdefault(study_uid, []).append(SopClassCount(sop_class_uid, n))
    return tuple(ReleasedStudy(uid, tuple(classes)) for uid, classes in by_study.items())


def release_event(released: Iterable[tuple[str, str, str]], quarantined: int, completed: bool, *,
                  time: datetime, run_label: str, software_version: str, destination: str,
                  host: str) -> ExportEvent:
    """The export event of a release in its final state: `released` holds (PatientID, Study
    Instance UID, SOP Class UID) of every published file, as written into the release.

    Outcome (A.5.1.1 EventOutcomeIndicator): 8 when the run stopped early, 12 when inputs were
    quarantined and nothing is released, 4 when some were quarantined, else 0."""
    pairs: list[tuple[str, str]] = []
    patients: set[str] = set()
    unlisted = 0
    for patient_id, study_uid, sop_class_uid in released:
        if not (_is_uid(study_uid) and _is_uid(sop_class_uid)):
            unlisted += 1  # a published file without a (valid) Study Instance or SOP Class UID names no study
            continue
        pairs.append((study_uid, sop_class_uid))
        if patient_id and _is_token(patient_id):
            patients.add(patient_id)
    if unlisted:
        log.warning("the audit message lists no study for %d published file(s) without a valid study or SOP "
                    "class UID", unlisted)
    if not completed:
        outcome = EventOutcome.SERIOUS_FAILURE
    elif quarantined and not pairs:
        outcome = EventOutcome.MAJOR_FAILURE
    elif quarantined:
        outcome = EventOutcome.MINOR_FAILURE
    else:
        outcome = EventOutcome.SUCCESS
    return ExportEvent(time=time, outcome=outcome, run_label=run_label, software_version=software_version,
                       audit_source_id=host, destination=destination, studies=released_studies(pairs),
                       patient_ids=tuple(sorted(patients)), quarantined=quarantined, host=host)


def audit_message(event: ExportEvent) -> bytes:
    """The PS3.15 A.5.3.4 Data Export audit message of `event`, as UTF-8 XML (A.5.1 schema)."""
    root = ET.Element("AuditMessage")
    _event_identification(root, event)
    _exporting_process(root, event)
    _destination_media(root, event)
    source = ET.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": event.audit_source_id})
    ET.SubElement(source, "AuditSourceTypeCode", {"csd-code": APPLICATION_SERVER_PROCESS})
    for study in sorted(event.studies, key=lambda s: s.study_uid):
        _study_object(root, study)
    for patient_id in sorted(event.patient_ids):
        _patient_object(root, patient_id)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def write_audit_message(path: Path, event: ExportEvent) -> None:
    """Write the audit message of `event` to `path` atomically: staged beside it, fsynced,
    then renamed over it."""
    write_atomically(audit_message(event), path)


# --- the message's parts, in the schema's order -----------------------------------------------


def _event_identification(root: ET.Element, event: ExportEvent) -> None:
    when = event.time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    element = ET.SubElement(root, "EventIdentification", {
        "EventActionCode": "R",
        "EventDateTime": when,
        "EventOutcomeIndicator": event.outcome.value,
    })
    _code(element, "EventID", EXPORT)
    if event.quarantined:
        noun = "input" if event.quarantined == 1 else "inputs"
        description = f"{event.quarantined} {noun} quarantined, not exported"
        ET.SubElement(element, "EventOutcomeDescription").text = description


def _exporting_process(root: ET.Element, event: ExportEvent) -> None:
    attributes = {
        "UserID": SOFTWARE,
        "AlternativeUserID": event.run_label,
        "UserName": f"{SOFTWARE} {event.software_version}",
        "UserIsRequestor": "true",
    }
    if event.host is not None:
        attributes |= {"NetworkAccessPointID": event.host, "NetworkAccessPointTypeCode": "1"}
    participant = ET.SubElement(root, "ActiveParticipant", attributes)
    _code(participant, "RoleIDCode", SOURCE_ROLE)


def _destination_media(root: ET.Element, event: ExportEvent) -> None:
    participant = ET.SubElement(root, "ActiveParticipant", {
        "UserID": event.destination,
        "UserIsRequestor": "false",
    })
    _code(participant, "RoleIDCode", DESTINATION_MEDIA)
    _code(ET.SubElement(participant, "MediaIdentifier"), "MediaType", MEDIA_URI)


def _study_object(root: ET.Element, study: ReleasedStudy) -> None:
    element = ET.SubElement(root, "ParticipantObjectIdentification", {
        "ParticipantObjectID": study.study_uid,
        "ParticipantObjectTypeCode": "2",
        "ParticipantObjectTypeCodeRole": "3",
    })
    _code(element, "ParticipantObjectIDTypeCode", STUDY_INSTANCE_UID)
    ET.SubElement(element, "ParticipantObjectName").text = study.study_uid
    description = ET.SubElement(element, "ParticipantObjectDescription")
    for sop_class in sorted(study.sop_classes, key=lambda c: c.sop_class_uid):
        ET.SubElement(description, "SOPClass", {
            "UID": sop_class.sop_class_uid,
            "NumberOfInstances": str(sop_class.instances),
        })
    ET.SubElement(description, "Anonymized").text = "true"


def _patient_object(root: ET.Element, patient_id: str) -> None:
    element = ET.SubElement(root, "ParticipantObjectIdentification", {
        "ParticipantObjectID": patient_id,
        "ParticipantObjectTypeCode": "1",
        "ParticipantObjectTypeCodeRole": "1",
    })
    _code(element, "ParticipantObjectIDTypeCode", PATIENT_NUMBER)
    ET.SubElement(element, "ParticipantObjectName").text = patient_id


def _code(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    return ET.SubElement(parent, tag, {
        "csd-code": code.value,
        "codeSystemName": code.scheme,
        "originalText": code.meaning,
    })


# --- checks: errors name the field, never the value -----------------------------------------


def _is_uid(value: str) -> bool:
    try:
        _check_uid(value, "uid")
    except WriteError:
        return False
    return True


def _is_token(value: str) -> bool:
    try:
        _check_token(value, "patient_ids")
    except WriteError:
        return False
    return True


def _check_uid(value: str, field: str) -> None:
    if not isinstance(value, str) or len(value) > _MAX_UID or not _UID.fullmatch(value):
        raise WriteError(f"audit event: {field} is not a UID")


def _check_token(value: str, field: str) -> None:
    """A non-empty xsd:token of printable characters, as the schema's token normalisation
    would leave it."""
    if (not isinstance(value, str) or not value or len(value) > _MAX_TEXT or not value.isprintable()
            or value != " ".join(value.split())):
        raise WriteError(f"audit event: {field} is not a short single-line text")


def _check_name(value: str, field: str) -> None:
    """A token that could name one folder: no separator, so never a path."""
    _check_token(value, field)
    if _SEPARATOR.search(value) or value in {".", ".."}:
        raise WriteError(f"audit event: {field} is not a single name")
