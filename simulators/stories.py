"""Sample agency traffic with known outcomes: one family, seen by all four agencies.

Grace Okafor's national identifier is known to the hospital, the jobcentre, housing and social
care, so her events from all four land on one timeline. Her son Daniel has no national
identifier: his A&E attendance is linked to his social care record by name, birth date and
postcode. The story also carries the mishaps real feeds have: a retried delivery, a late
arrival, malformed input in every format and a forged signature.

Three alert rules fire on it: R1 (Grace is discharged after a notice to quit), R2 (an eviction
warrant for a household with a child open to social care) and R6 (Daniel's safeguarding concern
after his emergency attendance).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulators import hospital, housing, jobcentre
from simulators.social_care import CaseEvent, CasePerson, Relative

GRACE_NATIONAL_ID = "QQ123456C"


@dataclass(frozen=True)
class Step:
    """One social care webhook delivery."""

    label: str
    payload: CaseEvent | dict[str, Any] | bytes
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    signature: str | None = None  # None: signed correctly


@dataclass(frozen=True)
class Night:
    """One nightly housing export: its date and rows (a `str` row is written raw)."""

    label: str
    night: date
    rows: list[housing.Tenancy | str]


JobcentreChange = Callable[[jobcentre.CaseManagementSystem], None]


@dataclass(frozen=True)
class Story:
    social_care: list[Step]
    hospital: list[tuple[str, hospital.AdtMessage | bytes]]
    jobcentre: list[tuple[str, JobcentreChange]]
    housing: list[Night]
    people: dict[str, str]  # label -> social care case person id, to look them up
    expected_events: dict[str, int]  # label -> events on the timeline afterwards


def demo_story(now: datetime | None = None) -> Story:
    """The Okafor family's month, as each agency's system records it."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    today = now.date()
    mother = CasePerson(
        "CP-1001", "Okafor", "Grace", date(1989, 4, 12), GRACE_NATIONAL_ID, "LS6 2AB"
    )
    child = CasePerson("CP-1002", "Okafor", "Daniel", date(2015, 9, 3), None, "LS6 2AB")
    return Story(
        social_care=_social_care(now, mother, child),
        hospital=_hospital(now),
        jobcentre=_jobcentre(today),
        housing=_housing(today),
        people={"Daniel": child.case_person_id, "Grace": mother.case_person_id},
        # Grace: 1 social care + 3 health + 4 jobcentre + 4 housing;
        # Daniel: 3 social care + 1 health.
        expected_events={"Daniel": 4, "Grace": 12},
    )


def _social_care(now: datetime, mother: CasePerson, child: CasePerson) -> list[Step]:
    household = (Relative(mother, "parent"),)
    referral = CaseEvent(
        "referral_received",
        now - timedelta(days=20),
        "CASE-77",
        child,
        household,
        {"source": "school"},
    )
    opened = CaseEvent("case_opened", now - timedelta(days=18), "CASE-77", child, household)
    concern = CaseEvent(
        "safeguarding_concern",
        now - timedelta(days=3),
        "CASE-77",
        child,
        household,
        {"raised_by": "health visitor"},
    )
    assessment = CaseEvent(
        "assessment_completed",
        now - timedelta(days=10),
        "CASE-78",
        mother,
        (Relative(child, "child"),),
        {"outcome": "carer support"},
    )
    repeated_key = str(uuid.uuid4())
    invalid = referral.body() | {"event_id": str(uuid.uuid4()), "occurred_at": "yesterday"}
    return [
        Step("case opened (Daniel)", opened, idempotency_key=repeated_key),
        Step("same delivery again (retry)", opened, idempotency_key=repeated_key),
        # Arrives after the case it led to: the timeline still orders by event time.
        Step("referral received (Daniel), arriving late", referral),
        Step("assessment completed (Grace)", assessment),
        Step("safeguarding concern (Daniel)", concern),
        Step("invalid body (bad occurred_at) -> dead letter", invalid),
        Step("wrong signature -> refused, nothing stored", concern, signature="sha256=00"),
    ]


def _hospital(now: datetime) -> list[tuple[str, hospital.AdtMessage | bytes]]:
    grace = hospital.Patient(
        "RBH448812",
        "OKAFOR",
        "GRACE",
        date(1989, 4, 12),
        "F",
        GRACE_NATIONAL_ID,
        "12 Moor Road",
        "Leeds",
        "LS6 2AB",
    )
    daniel = hospital.Patient(
        "RBH502231",
        "OKAFOR",
        "DANIEL",
        date(2015, 9, 3),
        "M",
        None,
        "12 Moor Road",
        "Leeds",
        "LS6 2AB",
    )
    daniel_arrived = now - timedelta(days=4, hours=2)
    arrived = now - timedelta(days=6, hours=3)
    admitted = arrived + timedelta(hours=4)
    discharged = now - timedelta(days=2)
    return [
        (
            "A04 emergency attendance (Grace)",
            hospital.AdtMessage(
                "A04", grace, "MSG-9001", arrived, visit=hospital.Visit("E", admitted_at=arrived)
            ),
        ),
        (
            "A01 admission (Grace)",
            hospital.AdtMessage(
                "A01",
                grace,
                "MSG-9002",
                admitted,
                visit=hospital.Visit("I", "E", admitted_at=admitted),
            ),
        ),
        (
            "A03 discharge (Grace)",
            hospital.AdtMessage(
                "A03",
                grace,
                "MSG-9003",
                discharged,
                visit=hospital.Visit("I", "E", "01", admitted, discharged),
            ),
        ),
        (
            "A04 emergency attendance (Daniel, no national identifier)",
            hospital.AdtMessage(
                "A04",
                daniel,
                "MSG-9004",
                daniel_arrived,
                visit=hospital.Visit("E", admitted_at=daniel_arrived),
            ),
        ),
        ("not HL7 at all -> AE, dead letter", b"HELLO|this is not an ADT message"),
    ]


def _jobcentre(today: date) -> list[tuple[str, JobcentreChange]]:
    grace = jobcentre.Jobseeker(
        90211, "Okafor", "Grace", date(1989, 4, 12), GRACE_NATIONAL_ID, "LS6 2AB"
    )
    return [
        ("jobseeker registered (Grace)", lambda system: system.register(grace)),
        ("claim applied", lambda system: system.apply_claim(5501, grace.id, "universal_credit")),
        ("claim awarded", lambda system: system.set_claim_status(5501, "awarded")),
        (
            "sanction imposed",
            lambda system: system.impose_sanction(
                7701, grace.id, "missed work search review", today - timedelta(days=1), 100
            ),
        ),
        (
            "claim with unknown status -> dead letter",
            lambda system: system.apply_claim(5502, grace.id, "universal_credit", "pending"),
        ),
    ]


def _housing(today: date) -> list[Night]:
    grace = housing.Tenancy(
        "TEN-5521",
        "T-5521",
        GRACE_NATIONAL_ID,
        "Okafor",
        "Grace",
        date(1989, 4, 12),
        "12 Moor Road, Leeds",
        "LS6 2AB",
        arrears_amount="310.00",
        arrears_weeks=2.0,
        notice="notice_to_quit",
        household_size=2,
    )
    neighbour = housing.Tenancy(
        "TEN-5522",
        "T-5522",
        None,
        "Hill",
        "Peter",
        date(1960, 1, 2),
        "14 Moor Road, Leeds",
        "LS6 2AB",
    )
    behind = grace.changed(arrears_amount="775.00", arrears_weeks=5.0, notice="eviction_warrant")
    bad_row = "2026-01-01,TEN-9,T-9,,Doe,Jo,not-a-date,1 Street,LS1 1AA,active,0,0,none,none,1"
    return [
        Night("export of two nights ago", today - timedelta(days=2), [grace, neighbour]),
        Night(
            "last night's export (arrears, eviction warrant; one malformed row)",
            today - timedelta(days=1),
            [behind, neighbour, bad_row],
        ),
    ]
