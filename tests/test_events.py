"""Event models validate what connectors build, naming the field that is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backbone.codec import AvroCodec, SchemaStore
from backbone.errors import BadInput
from backbone.events import (
    Encounter,
    Envelope,
    HealthEvent,
    HousingEvent,
    JobcentreEvent,
    Sanction,
    SocialCareEvent,
    Subject,
    Tenancy,
    validate_event,
)
from backbone.settings import REPO_ROOT

KEYED = "b" * 64
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def envelope(agency: str, event_type: str) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "event_type": event_type,
        "agency": agency,
        "source_system": "s",
        "occurred_at": NOW,
        "recorded_at": NOW,
        "legal_basis": "public_task",
        "sensitivity": "personal",
        "subject": {"record_id": KEYED, "id_type": "x"},
    }


def test_a_validation_error_names_the_field() -> None:
    data = {"envelope": envelope("social_care", "case_opened"), "case_id": "not-a-hash"}
    with pytest.raises(BadInput) as caught:
        validate_event(SocialCareEvent, data)
    assert caught.value.field == "case_id"


def test_an_event_type_outside_its_family_is_refused() -> None:
    data = {"envelope": envelope("social_care", "discharge"), "case_id": KEYED}
    with pytest.raises(BadInput, match="event_type 'discharge' not one of"):
        validate_event(SocialCareEvent, data)


def test_an_envelope_from_another_agency_is_refused() -> None:
    data = {"envelope": envelope("housing", "case_opened"), "case_id": KEYED}
    with pytest.raises(BadInput, match="agency must be social_care"):
        validate_event(SocialCareEvent, data)


def test_naive_times_are_refused() -> None:
    data = {
        "envelope": envelope("social_care", "case_opened") | {"occurred_at": "2026-01-01T10:00:00"},
        "case_id": KEYED,
    }
    with pytest.raises(BadInput) as caught:
        validate_event(SocialCareEvent, data)
    assert caught.value.field == "envelope.occurred_at"


def test_every_family_model_encodes_with_its_avro_schema() -> None:
    codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
    subject = Subject(record_id=KEYED, id_type="x")
    events = [
        HealthEvent(
            envelope=Envelope.model_validate(envelope("health", "discharge")),
            facility="LEEDS",
            message_control_id="1",
            encounter=Encounter(patient_class="I", discharged_at=NOW),
        ),
        JobcentreEvent(
            envelope=Envelope.model_validate(envelope("jobcentre", "sanction_imposed")),
            sanction=Sanction(
                sanction_id=KEYED, reason="missed", starts_on=NOW.date(), reduction_pct=100
            ),
        ),
        HousingEvent(
            envelope=Envelope.model_validate(envelope("housing", "notice_served")),
            tenancy=Tenancy(
                tenancy_ref=KEYED,
                as_of=NOW.date(),
                status="active",
                arrears_pence=120000,
                arrears_weeks=5.5,
                notice="notice_to_quit",
                homelessness_application="none",
                household_size=3,
            ),
            snapshot_file="tenancies_20261101.csv",
        ),
        SocialCareEvent(
            envelope=Envelope.model_validate(envelope("social_care", "case_opened")), case_id=KEYED
        ),
    ]
    for event in events:
        decoded = codec.decode(codec.encode(event.schema_name(), event.to_avro()))
        assert type(event).model_validate(decoded.record) == event
    assert subject.national_id is None
