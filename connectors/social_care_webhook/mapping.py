"""Social care webhook body -> SocialCareEvent, pseudonymising every identifier."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backbone.contracts import CASE_PERSON_ID, EVENT_TYPES, Agency, LegalBasis, Sensitivity
from backbone.errors import BadInput, excerpt
from backbone.events import (
    Envelope,
    HouseholdMember,
    SocialCareEvent,
    Subject,
    Timestamp,
    validation_problem,
)
from backbone.household import Relationship
from backbone.pseudonyms import Pseudonymiser, normalise_postcode, normalise_text

# Namespace of event ids derived from the case system's own event ids.
EVENT_ID_NAMESPACE = uuid.UUID("5f0c1d2e-8a47-4d0b-9a55-0c6c1a7e3b21")
AGENCY = Agency.SOCIAL_CARE.value
SAFEGUARDING_EVENTS = frozenset(
    {"safeguarding_concern", "child_protection_plan_started", "child_protection_plan_ended"}
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Person(Body):
    case_person_id: str = Field(min_length=1)
    national_id: str | None = None
    family_name: str = Field(min_length=1)
    given_name: str = Field(min_length=1)
    birth_date: date
    postcode: str | None = None


class Relative(Person):
    relationship: Relationship  # what the member is to `person`


class WebhookBody(Body):
    """The JSON the case management system POSTs (README, "Social care: webhooks")."""

    event_id: uuid.UUID
    event_type: str
    occurred_at: Timestamp
    case_id: str = Field(min_length=1)
    person: Person
    household: list[Relative] = Field(default_factory=list)
    details: dict[str, str] = Field(default_factory=dict)

    @field_validator("event_type")
    @classmethod
    def _known_event_type(cls, value: str) -> str:
        allowed = EVENT_TYPES[Agency.SOCIAL_CARE]
        if value not in allowed:
            raise ValueError(f"{excerpt(value)} is not one of {', '.join(sorted(allowed))}")
        return value


def parse_body(raw: bytes) -> WebhookBody:
    """The body the case system POSTed, validated; BadInput naming the field (or `body`)."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadInput("not read: arrays or objects nested too deeply", field="body") from None
    except ValueError as exc:  # not UTF-8, not JSON, or a number too long to convert
        raise BadInput(f"not valid JSON: {exc}", field="body") from exc
    if not isinstance(data, dict):
        raise BadInput("must be a JSON object", field="body")
    try:
        return WebhookBody.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from exc


def event_id_for(sender_event_id: uuid.UUID) -> str:
    """The backbone's event id: the same sender event always maps to the same id."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{AGENCY}:{sender_event_id}"))


def subject_of(person: Person, pseudonyms: Pseudonymiser) -> Subject:
    """The pseudonymised subject of a person on the case."""
    return Subject(
        record_id=pseudonyms.record_id(AGENCY, CASE_PERSON_ID, person.case_person_id),
        id_type=CASE_PERSON_ID,
        national_id=pseudonyms.national_id(person.national_id) if person.national_id else None,
        family_name=normalise_text(person.family_name),
        given_name=normalise_text(person.given_name),
        birth_date=person.birth_date,
        postcode=normalise_postcode(person.postcode) if person.postcode else None,
    )


def to_event(
    body: WebhookBody, pseudonyms: Pseudonymiser, source_system: str, correlation_id: str | None
) -> SocialCareEvent:
    """Map a validated webhook body to the event the connector publishes."""
    safeguarding = body.event_type in SAFEGUARDING_EVENTS
    return SocialCareEvent(
        envelope=Envelope(
            event_id=event_id_for(body.event_id),
            event_type=body.event_type,
            agency=Agency.SOCIAL_CARE,
            source_system=source_system,
            occurred_at=body.occurred_at,
            recorded_at=datetime.now(UTC),
            legal_basis=LegalBasis.SAFEGUARDING if safeguarding else LegalBasis.PUBLIC_TASK,
            sensitivity=Sensitivity.SAFEGUARDING if safeguarding else Sensitivity.SPECIAL_CATEGORY,
            correlation_id=correlation_id,
            subject=subject_of(body.person, pseudonyms),
        ),
        case_id=pseudonyms.record_id(AGENCY, "case_id", body.case_id),
        household=[
            HouseholdMember(
                subject=subject_of(member, pseudonyms), relationship=member.relationship
            )
            for member in body.household
        ],
        details=body.details,
    )
