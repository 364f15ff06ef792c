"""The synthetic agency mix: persons with history, as the four agencies' events on Kafka.

A population with known truth (`simulators.population`) gives every person a few agency
records, written down with the slips real feeds have. Each record then produces a history of
events, round after round: in round 0 every record's first event (a registration: admission,
jobseeker registered, tenancy started, referral) in shuffled order, so the identity resolver
meets each record once as a stranger; from round 1 on, one more event per record, drawn with
each agency's realistic share of event types, a week of event time later per round. The
stream is endless (the soak needs as many events as it likes) and the same for one seed.

Events are Avro single-object encoded with the project's codec and keyed by the subject's
record id, exactly as the connectors publish them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from backbone.codec import AvroCodec
from backbone.contracts import EVENT_SCHEMAS, Agency
from backbone.pseudonyms import Pseudonymiser
from backbone.topics import Topics
from simulators.population import AgencyRecord, PopulationSettings, generate

EVENT_ID_NAMESPACE = uuid.UUID("7d1f3a52-0b8e-4c55-9a1e-6f0b8c2d4e17")
# Events per record a mix of N events is sized for: a person's records then carry a history.
EVENTS_PER_RECORD = 15
RECORDS_PER_PERSON = 3.4  # the population's mean (PopulationSettings.records_per_person)

# The first event of a record, then each agency's share of the events that follow.
FIRST_EVENT = {
    Agency.HEALTH: "attendance",
    Agency.JOBCENTRE: "jobseeker_registered",
    Agency.HOUSING: "tenancy_started",
    Agency.SOCIAL_CARE: "referral_received",
}
LATER_EVENTS: dict[Agency, dict[str, float]] = {
    Agency.HEALTH: {
        "attendance": 0.40,
        "admission": 0.22,
        "discharge": 0.22,
        "patient_details_changed": 0.15,
        "patient_records_merged": 0.01,
    },
    Agency.JOBCENTRE: {
        "appointment_missed": 0.22,
        "claim_applied": 0.15,
        "claim_awarded": 0.13,
        "jobseeker_details_changed": 0.12,
        "claim_suspended": 0.08,
        "claim_ended": 0.12,
        "sanction_imposed": 0.10,
        "sanction_lifted": 0.08,
    },
    Agency.HOUSING: {
        "arrears_threshold_crossed": 0.30,
        "tenant_details_changed": 0.22,
        "notice_served": 0.14,
        "eviction_warrant_issued": 0.04,
        "homelessness_application_opened": 0.08,
        "homelessness_application_accepted": 0.05,
        "homelessness_application_closed": 0.05,
        "tenancy_ended": 0.12,
    },
    Agency.SOCIAL_CARE: {
        "assessment_completed": 0.25,
        "case_opened": 0.15,
        "case_closed": 0.12,
        "safeguarding_concern": 0.12,
        "child_protection_plan_started": 0.06,
        "child_protection_plan_ended": 0.05,
        "care_package_started": 0.13,
        "care_package_ended": 0.12,
    },
}
SOURCE_SYSTEMS = {
    Agency.HEALTH: "hospital-pas",
    Agency.JOBCENTRE: "jobcentre-cms",
    Agency.HOUSING: "housing-management",
    Agency.SOCIAL_CARE: "social-care-cms",
}
LEGAL_BASES = {
    Agency.HEALTH: ("health_and_social_care", "special_category"),
    Agency.JOBCENTRE: ("public_task", "personal"),
    Agency.HOUSING: ("public_task", "personal"),
    Agency.SOCIAL_CARE: ("safeguarding", "safeguarding"),
}
HISTORY_START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
ROUND_STEP = timedelta(days=7)


@dataclass(frozen=True)
class BenchEvent:
    """One encoded agency event, ready for the producer."""

    topic: str
    key: bytes
    value: bytes
    event_id: str


@dataclass(frozen=True)
class _Source:
    """One agency record as its connector sees it: agency, subject and local reference."""

    agency: Agency
    subject: dict[str, Any]
    local_id: str


class AgencyMix:
    """An endless, reproducible stream of agency events about a synthetic population."""

    def __init__(
        self, events: int, codec: AvroCodec, topics: Topics, key: bytes, seed: int = 1
    ) -> None:
        """Size the population so that `events` events give each record a history."""
        persons = max(20, round(events / EVENTS_PER_RECORD / RECORDS_PER_PERSON))
        population = generate(PopulationSettings(persons=persons, seed=seed))
        pseudonyms = Pseudonymiser(key)
        self._pseudonyms = pseudonyms
        self._sources = [_source_of(record, pseudonyms) for record in population.records]
        self._codec = codec
        self._topics = topics
        self._rng = random.Random(seed)  # nosec B311 # a seeded, repeatable load mix, not a secret
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def records(self) -> int:
        """How many agency records (distinct subjects) the mix is about."""
        return len(self._sources)

    def events(self) -> Iterator[BenchEvent]:
        """Every record's first event, then one more per record each round, for ever."""
        for round_number in range(1_000_000):
            order = list(range(len(self._sources)))
            self._rng.shuffle(order)
            start = HISTORY_START + round_number * ROUND_STEP
            step = ROUND_STEP / max(len(order), 1)
            for position, index in enumerate(order):
                occurred_at = start + position * step
                yield self._event(self._sources[index], round_number, index, occurred_at)

    def _event(
        self, source: _Source, round_number: int, index: int, occurred_at: datetime
    ) -> BenchEvent:
        agency = source.agency
        if round_number == 0:
            event_type = FIRST_EVENT[agency]
        else:
            shares = LATER_EVENTS[agency]
            event_type = self._rng.choices(list(shares), weights=list(shares.values()))[0]
        event_id = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{index}:{round_number}"))
        legal_basis, sensitivity = LEGAL_BASES[agency]
        envelope = {
            "event_id": event_id,
            "event_type": event_type,
            "agency": agency.value,
            "source_system": SOURCE_SYSTEMS[agency],
            "occurred_at": occurred_at,
            # Stamped at encoding: the worker's end-to-end histogram then starts near the send.
            "recorded_at": self._now(),
            "legal_basis": legal_basis,
            "sensitivity": sensitivity,
            "correlation_id": None,
            "subject": source.subject,
        }
        family = FAMILIES[agency](self, source, event_type, round_number, occurred_at)
        value = self._codec.encode(EVENT_SCHEMAS[agency], {"envelope": envelope, **family})
        topic = self._topics.agency_events(agency)
        return BenchEvent(topic, source.subject["record_id"].encode(), value, event_id)

    def _ref(self, kind: str, source: _Source, number: int = 0) -> str:
        """A keyed hash of an agency's own reference (claim, tenancy, case)."""
        return self._pseudonyms.record_id(source.agency.value, kind, f"{source.local_id}-{number}")

    def _health(
        self, source: _Source, event_type: str, round_number: int, at: datetime
    ) -> dict[str, Any]:
        encounter = None
        if event_type in ("admission", "discharge", "attendance"):
            encounter = {
                "patient_class": "E" if event_type == "attendance" else "I",
                "admission_type": "EL",
                "discharge_disposition": "01" if event_type == "discharge" else None,
                "admitted_at": at - timedelta(days=2) if event_type == "discharge" else at,
                "discharged_at": at if event_type == "discharge" else None,
            }
        merged = self._ref("hospital_number", source, 99) if event_type.endswith("merged") else None
        return {
            "facility": "RR8",
            "message_control_id": f"B{source.local_id}-{round_number}",
            "encounter": encounter,
            "merged_record_id": merged,
        }

    def _jobcentre(
        self, source: _Source, event_type: str, round_number: int, at: datetime
    ) -> dict[str, Any]:
        claim = sanction = appointment = None
        if event_type.startswith("claim_"):
            status = {"claim_applied": "applied", "claim_awarded": "awarded"}.get(
                event_type, "suspended" if event_type == "claim_suspended" else "ended"
            )
            claim = {
                "claim_id": self._ref("claim", source),
                "benefit_type": "universal_credit",
                "status": status,
                "started_on": at.date(),
                "ended_on": at.date() if status == "ended" else None,
            }
        elif event_type.startswith("sanction_"):
            sanction = {
                "sanction_id": self._ref("sanction", source, round_number),
                "reason": "missed_appointment",
                "starts_on": at.date(),
                "ends_on": at.date() + timedelta(days=28)
                if event_type.endswith("lifted")
                else None,
                "reduction_pct": 40,
            }
        elif event_type == "appointment_missed":
            appointment = {
                "appointment_id": self._ref("appointment", source, round_number),
                "scheduled_at": at,
                "attended": False,
            }
        return {
            "claim": claim,
            "sanction": sanction,
            "appointment": appointment,
            "source_lsn": f"0/{round_number:08X}",
        }

    def _housing(
        self, source: _Source, event_type: str, round_number: int, at: datetime
    ) -> dict[str, Any]:
        arrears_weeks = float(self._rng.randint(0, 12))
        notice = {
            "notice_served": "notice_seeking_possession",
            "eviction_warrant_issued": "eviction_warrant",
        }.get(event_type, "none")
        application = {
            "homelessness_application_opened": "open",
            "homelessness_application_accepted": "accepted",
            "homelessness_application_closed": "closed",
        }.get(event_type, "none")
        return {
            "tenancy": {
                "tenancy_ref": self._ref("tenancy", source),
                "as_of": at.date(),
                "status": "ended" if event_type == "tenancy_ended" else "active",
                "arrears_pence": int(arrears_weeks * 9500),
                "arrears_weeks": arrears_weeks,
                "notice": notice,
                "homelessness_application": application,
                "household_size": 1 + index_of(source) % 4,
            },
            "arrears_threshold_weeks": 8 if event_type == "arrears_threshold_crossed" else None,
            "snapshot_file": f"tenancies_{at.date():%Y%m%d}.csv",
        }

    def _social_care(
        self, source: _Source, event_type: str, round_number: int, at: datetime
    ) -> dict[str, Any]:
        return {
            "case_id": self._ref("case", source),
            "household": [],
            "details": {"team": "children-north", "round": str(round_number)},
        }


Family = Callable[[AgencyMix, _Source, str, int, datetime], dict[str, Any]]
FAMILIES: dict[Agency, Family] = {
    Agency.HEALTH: AgencyMix._health,
    Agency.JOBCENTRE: AgencyMix._jobcentre,
    Agency.HOUSING: AgencyMix._housing,
    Agency.SOCIAL_CARE: AgencyMix._social_care,
}


def index_of(source: _Source) -> int:
    """A small stable number per record (its local id's digits)."""
    return int("".join(ch for ch in source.local_id if ch.isdigit()) or 0)


def _source_of(record: AgencyRecord, pseudonyms: Pseudonymiser) -> _Source:
    subject = record.as_subject(pseudonyms)
    return _Source(Agency(record.agency), subject, record.local_id)
