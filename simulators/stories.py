"""Sample agency traffic with known outcomes: the demo plays it, tests can too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulators.social_care import CaseEvent, CasePerson, Relative


@dataclass(frozen=True)
class Step:
    label: str
    payload: CaseEvent | dict[str, Any] | bytes
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    signature: str | None = None  # None: signed correctly


@dataclass(frozen=True)
class Story:
    steps: list[Step]
    people: dict[str, str]  # label -> case person id
    expected_events: dict[str, int]  # label -> events on the timeline afterwards


def demo_story(now: datetime | None = None) -> Story:
    """A family known to children's services, with the mishaps real feeds have."""
    now = now or datetime.now(UTC)
    mother = CasePerson("CP-1001", "Okafor", "Grace", date(1989, 4, 12), "QQ123456C", "LS6 2AB")
    child = CasePerson("CP-1002", "Okafor", "Daniel", date(2015, 9, 3), None, "LS6 2AB")
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
        (Relative(child, "other"),),
        {"outcome": "carer support"},
    )
    repeated_key = str(uuid.uuid4())
    invalid = referral.body() | {"event_id": str(uuid.uuid4()), "occurred_at": "yesterday"}
    return Story(
        steps=[
            Step("case opened (Daniel)", opened, idempotency_key=repeated_key),
            Step("same delivery again (retry)", opened, idempotency_key=repeated_key),
            # Arrives after the case it led to: the timeline still orders by event time.
            Step("referral received (Daniel), arriving late", referral),
            Step("assessment completed (Grace)", assessment),
            Step("safeguarding concern (Daniel)", concern),
            Step("invalid body (bad occurred_at) -> dead letter", invalid),
            Step("wrong signature -> refused, nothing stored", concern, signature="sha256=00"),
        ],
        people={"Daniel": child.case_person_id, "Grace": mother.case_person_id},
        expected_events={"Daniel": 3, "Grace": 1},
    )
