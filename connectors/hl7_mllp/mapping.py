"""Hospital ADT message -> HealthEvent, pseudonymising every identifier.

A01 admission, A03 discharge, A04 attendance, A08 patient details changed, A40 patient
records merged. The subject is the patient of PID; the encounter is the visit of PV1.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from backbone.contracts import HOSPITAL_NUMBER, Agency, LegalBasis, Sensitivity
from backbone.errors import excerpt
from backbone.events import Encounter, Envelope, HealthEvent, Subject, validate_event
from backbone.pseudonyms import Pseudonymiser, normalise_postcode, normalise_text
from connectors.hl7_mllp.message import (
    REQUIRED_FIELD_MISSING,
    UNSUPPORTED_MESSAGE_TYPE,
    Hl7Message,
    MessageProblem,
)
from connectors.hl7_mllp.timestamps import parse_date, parse_time

# Namespace of event ids derived from the hospital's facility and message control id.
EVENT_ID_NAMESPACE = uuid.UUID("0d7c5a3e-3f6b-4c1e-9b8a-6e2f4d9a1c57")
AGENCY = Agency.HEALTH.value
EVENT_TYPES = {
    "A01": "admission",
    "A03": "discharge",
    "A04": "attendance",
    "A08": "patient_details_changed",
    "A40": "patient_records_merged",
}
# Triggers that are about a visit: PV1-2 (patient class) must be there.
VISIT_TRIGGERS = frozenset({"A01", "A03", "A04"})
Sex = Literal["F", "M", "O", "U", "A", "N"]
# HL7 table 0001, as the contract's Subject.sex takes it.
SEXES: dict[str, Sex] = {"F": "F", "M": "M", "O": "O", "U": "U", "A": "A", "N": "N"}


@dataclass(frozen=True)
class MappingRules:
    """What the mapping needs besides the message: the secret hash, names and the zone."""

    pseudonyms: Pseudonymiser
    source_system: str
    zone: ZoneInfo


def event_id_for(facility: str, control_id: str) -> str:
    """The backbone's event id: a resent message (same facility and MSH-10) has the same id."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{AGENCY}:{facility}:{control_id}"))


def trigger_of(message: Hl7Message) -> str:
    """The ADT trigger event (MSH-9.2) if it is one the backbone takes."""
    code = message.required("MSH", 9, component=1)
    trigger = message.value("MSH", 9, component=2)
    if code != "ADT" or trigger not in EVENT_TYPES:
        supported = ", ".join(f"ADT^{t}" for t in sorted(EVENT_TYPES))
        raise MessageProblem(
            f"message type {excerpt(f'{code}^{trigger}')} is not supported (only {supported})",
            field="MSH-9",
            condition=UNSUPPORTED_MESSAGE_TYPE,
        )
    return trigger


def to_event(message: Hl7Message, rules: MappingRules) -> HealthEvent:
    """Map a parsed ADT message to the event the connector publishes."""
    trigger = trigger_of(message)
    facility = message.required("MSH", 4)
    control_id = message.required("MSH", 10)
    envelope = Envelope(
        event_id=event_id_for(facility, control_id),
        event_type=EVENT_TYPES[trigger],
        agency=Agency.HEALTH,
        source_system=rules.source_system,
        occurred_at=occurred_at(message, rules.zone),
        recorded_at=datetime.now(UTC),
        legal_basis=LegalBasis.HEALTH_AND_SOCIAL_CARE,
        sensitivity=Sensitivity.SPECIAL_CATEGORY,
        correlation_id=control_id,
        subject=subject_of(message, rules.pseudonyms),
    )
    merged = merged_record_id(message, rules.pseudonyms) if trigger == "A40" else None
    # Validated as data so that a value the contract refuses is named by its field.
    return validate_event(
        HealthEvent,
        {
            "envelope": envelope,
            "facility": facility,
            "message_control_id": control_id,
            "encounter": encounter_of(message, trigger, rules.zone),
            "merged_record_id": merged,
        },
    )


def occurred_at(message: Hl7Message, zone: ZoneInfo) -> datetime:
    """When it happened: EVN-6 (event occurred), else EVN-2 (recorded), else MSH-7."""
    for segment, field in (("EVN", 6), ("EVN", 2)):
        text = message.value(segment, field)
        if text:
            return parse_time(text, zone, f"{segment}-{field}")
    return parse_time(message.required("MSH", 7), zone, "MSH-7")


def patient_identifiers(message: Hl7Message) -> dict[str, str]:
    """PID-3's identifiers by type code (`MR`, `NI`, ...); the first of each type wins."""
    found: dict[str, str] = {}
    for repeat in range(1, message.repeats("PID", 3) + 1):
        identifier = message.value("PID", 3, component=1, repeat=repeat)
        id_type = message.value("PID", 3, component=5, repeat=repeat).upper()
        if identifier and id_type:
            found.setdefault(id_type, identifier)
    return found


def subject_of(message: Hl7Message, pseudonyms: Pseudonymiser) -> Subject:
    """The pseudonymised patient of PID: hospital number, national id, name, birth, sex."""
    message.required("PID", 3)
    identifiers = patient_identifiers(message)
    hospital_number = identifiers.get("MR")
    if hospital_number is None:
        raise MessageProblem(
            "has no identifier of type MR (hospital number)",
            field="PID-3",
            condition=REQUIRED_FIELD_MISSING,
        )
    national_id = identifiers.get("NI")
    return Subject(
        record_id=pseudonyms.record_id(AGENCY, HOSPITAL_NUMBER, hospital_number),
        id_type=HOSPITAL_NUMBER,
        national_id=pseudonyms.national_id(national_id) if national_id else None,
        family_name=_name(message.value("PID", 5, component=1)),
        given_name=_name(message.value("PID", 5, component=2)),
        birth_date=birth_date(message),
        sex=sex(message),
        postcode=_postcode(message.value("PID", 11, component=5)),
    )


def birth_date(message: Hl7Message) -> date | None:
    """PID-7, if given."""
    text = message.value("PID", 7)
    return parse_date(text, "PID-7") if text else None


def sex(message: Hl7Message) -> Sex | None:
    """PID-8 (HL7 table 0001), if given."""
    code = message.value("PID", 8).upper()
    if not code:
        return None
    if code not in SEXES:
        allowed = ", ".join(sorted(SEXES))
        raise MessageProblem(f"{excerpt(code)} is not one of {allowed}", field="PID-8")
    return SEXES[code]


def encounter_of(message: Hl7Message, trigger: str, zone: ZoneInfo) -> Encounter | None:
    """The visit of PV1; required for admissions, discharges and attendances."""
    if trigger in VISIT_TRIGGERS:
        patient_class = message.required("PV1", 2)
    else:
        patient_class = message.value("PV1", 2)
        if not patient_class:
            return None
    return Encounter(
        patient_class=patient_class,
        admission_type=message.value("PV1", 4) or None,
        discharge_disposition=message.value("PV1", 36) or None,
        admitted_at=_optional_time(message, 44, zone),
        discharged_at=_optional_time(message, 45, zone),
    )


def merged_record_id(message: Hl7Message, pseudonyms: Pseudonymiser) -> str:
    """A40: the keyed hash of MRG-1, the prior hospital number merged into the subject."""
    prior = message.required("MRG", 1)
    return pseudonyms.record_id(AGENCY, HOSPITAL_NUMBER, prior)


def _optional_time(message: Hl7Message, field: int, zone: ZoneInfo) -> datetime | None:
    text = message.value("PV1", field)
    return parse_time(text, zone, f"PV1-{field}") if text else None


def _name(text: str) -> str | None:
    return normalise_text(text) or None


def _postcode(text: str) -> str | None:
    return normalise_postcode(text) or None
