"""What the rule engine hands back: alerts with their explanation, absorbed matches, deadlines.

An alert's id is derived from the rule, the person and the anchor event, so evaluating the
same situation again (a replay, a restarted worker) gives the same alert, never a second one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streams.alerting.view import Occurrence

# Namespace of alert ids (uuid5); fixed forever so replays give the same ids.
ALERT_NAMESPACE = uuid.UUID("5d0f3a7e-2c4b-5e8a-9b61-a1e7c0d4f201")


def alert_id_for(rule_id: str, person_id: str, anchor_event_id: str) -> str:
    """The deterministic id of the alert a rule raises for a person around an anchor."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{rule_id}:{person_id}:{anchor_event_id}"))


@dataclass(frozen=True)
class ExplainedEvent:
    """One event that satisfied a rule: what, from which agency, when, and whose."""

    event_id: str
    event_type: str
    agency: str
    occurred_at: str
    person_id: str

    @classmethod
    def of(cls, occurrence: Occurrence) -> ExplainedEvent:
        """The explanation line of an event on a timeline."""
        entry = occurrence.entry
        return cls(
            event_id=occurrence.event_id,
            event_type=str(entry["event_type"]),
            agency=str(entry["agency"]),
            occurred_at=str(entry["occurred_at"]),
            person_id=occurrence.person_id,
        )

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form (the API's explanation events)."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "agency": self.agency,
            "occurred_at": self.occurred_at,
            "person_id": self.person_id,
        }


@dataclass(frozen=True)
class Explanation:
    """Why an alert fired: the rule and version, and the events that satisfied it."""

    rule_id: str
    rule_version: int
    events: tuple[ExplainedEvent, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "events": [event.as_dict() for event in self.events],
        }


@dataclass(frozen=True)
class Alert:
    """A rule that fired for a person; `matched_at` is the event time the pattern completed."""

    alert_id: str
    rule_id: str
    rule_version: int
    rule_name: str
    severity: str
    teams: tuple[str, ...]
    person_id: str
    household_person_ids: tuple[str, ...]
    anchor_event_id: str
    anchor_at: datetime
    matched_at: datetime
    text: str
    explanation: Explanation

    def as_prior(self) -> PriorAlert:
        """How this alert takes part in dedup of later matches while it is open."""
        return PriorAlert(
            alert_id=self.alert_id,
            rule_id=self.rule_id,
            person_id=self.person_id,
            anchor_at=self.anchor_at,
            event_ids=frozenset(event.event_id for event in self.explanation.events),
            anchor_event_id=self.anchor_event_id,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in RFC 3339)."""
        return {
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "rule_name": self.rule_name,
            "severity": self.severity,
            "teams": list(self.teams),
            "person_id": self.person_id,
            "household_person_ids": list(self.household_person_ids),
            "anchor_event_id": self.anchor_event_id,
            "anchor_at": self.anchor_at.isoformat(),
            "matched_at": self.matched_at.isoformat(),
            "text": self.text,
            "explanation": self.explanation.as_dict(),
        }


@dataclass(frozen=True)
class PriorAlert:
    """An alert raised earlier, as dedup and withdrawal need it: closed alerts suppress repeats
    but do not absorb; a withdrawn one was false, so it suppresses only its own anchor."""

    alert_id: str
    rule_id: str
    person_id: str
    anchor_at: datetime
    event_ids: frozenset[str] = field(default_factory=frozenset)
    is_open: bool = True
    # Unknown (None) for alerts stored before withdrawal existed: those are never withdrawn.
    anchor_event_id: str | None = None
    withdrawn: bool = False


@dataclass(frozen=True)
class Withdrawal:
    """An open alert that a late event disproved: judged again around its anchor with that
    event on the timeline, the rule no longer holds."""

    alert_id: str
    rule_id: str
    person_id: str
    disproved_by: ExplainedEvent


@dataclass(frozen=True)
class Absorption:
    """A later match added to an open alert instead of raising another one."""

    alert_id: str
    rule_id: str
    person_id: str
    added: tuple[ExplainedEvent, ...]


@dataclass(frozen=True)
class Deadline:
    """An absence that is decided when the event-time watermark reaches `due_at`."""

    rule_id: str
    person_id: str
    anchor_event_id: str
    due_at: datetime


@dataclass
class Outcome:
    """Everything one evaluation produced."""

    raised: list[Alert] = field(default_factory=list)
    absorbed: list[Absorption] = field(default_factory=list)
    withdrawn: list[Withdrawal] = field(default_factory=list)
    deadlines: list[Deadline] = field(default_factory=list)
    too_late_for: list[str] = field(default_factory=list)
