"""The alert processor's steps on the alerts topic: `raised`, `absorbed` and `withdrawn`
AlertEvents.

Records follow the released contract `backbone.alerts.AlertEvent`, keyed by alert id. Event ids
are uuid5 of the alert id and the step (and, for `absorbed`, the added event ids), so a replay
or a restarted worker repeats the same ids and readers can drop the repeat.

An alert inherits the care its events need: its `sensitivity` is the most sensitive of its
explanation events (safeguarding > special_category > personal) and its `legal_basis` is that
event's, the one the strictest reading rules come from.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from backbone.contracts import LegalBasis, Sensitivity
from streams.alerting.alert import ALERT_NAMESPACE, Absorption, Alert, ExplainedEvent, Withdrawal
from streams.alerting.view import Entry

# Least to most sensitive: an alert is as sensitive as its most sensitive event.
SENSITIVITY_ORDER = (Sensitivity.PERSONAL, Sensitivity.SPECIAL_CATEGORY, Sensitivity.SAFEGUARDING)
# An event without a recorded classification is treated as ordinary personal data.
UNCLASSIFIED = (LegalBasis.PUBLIC_TASK.value, Sensitivity.PERSONAL.value)


def step_event_id(alert_id: str, change: str, added: Iterable[str] = ()) -> str:
    """The deterministic id of one step of an alert."""
    tail = ",".join(sorted(added))
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{alert_id}:{change}:{tail}"))


def classification(event_ids: Iterable[str], entries: Mapping[str, Entry]) -> tuple[str, str]:
    """(legal_basis, sensitivity) of the most sensitive of these events."""
    found = [
        (str(entry.get("legal_basis")), str(entry.get("sensitivity")))
        for event_id in event_ids
        if (entry := entries.get(event_id)) is not None and entry.get("sensitivity")
    ]
    if not found:
        return UNCLASSIFIED
    return max(found, key=lambda pair: SENSITIVITY_ORDER.index(Sensitivity(pair[1])))


def _explained(event: ExplainedEvent) -> dict[str, Any]:
    return {**event.as_dict(), "occurred_at": datetime.fromisoformat(event.occurred_at)}


def raised_event(alert: Alert, entries: Mapping[str, Entry], at: datetime) -> dict[str, Any]:
    """The `raised` AlertEvent of a new alert, with what the rule found."""
    events = alert.explanation.events
    legal_basis, sensitivity = classification((e.event_id for e in events), entries)
    return {
        "event_id": step_event_id(alert.alert_id, "raised"),
        "alert_id": alert.alert_id,
        "change": "raised",
        "at": at,
        "by": None,
        "note": None,
        "alert": {
            "rule_id": alert.rule_id,
            "rule_version": alert.rule_version,
            "rule_name": alert.rule_name,
            "severity": alert.severity,
            "teams": list(alert.teams),
            "person_id": alert.person_id,
            "household_person_ids": list(alert.household_person_ids),
            "anchor_event_id": alert.anchor_event_id,
            "anchor_at": alert.anchor_at,
            "matched_at": alert.matched_at,
            "text": alert.text,
            "events": [_explained(event) for event in events],
        },
        "added_events": [],
        "legal_basis": legal_basis,
        "sensitivity": sensitivity,
    }


def absorbed_event(
    absorption: Absorption, entries: Mapping[str, Entry], at: datetime
) -> dict[str, Any]:
    """The `absorbed` AlertEvent: a later match's new events added to an open alert."""
    added = [event.event_id for event in absorption.added]
    legal_basis, sensitivity = classification(added, entries)
    return {
        "event_id": step_event_id(absorption.alert_id, "absorbed", added),
        "alert_id": absorption.alert_id,
        "change": "absorbed",
        "at": at,
        "by": None,
        "note": f"{len(added)} more event(s) matched rule {absorption.rule_id}",
        "alert": None,
        "added_events": [_explained(event) for event in absorption.added],
        "legal_basis": legal_basis,
        "sensitivity": sensitivity,
    }


def withdrawal_reason(withdrawal: Withdrawal) -> str:
    """Why an alert was withdrawn, in words, naming the event that disproved it."""
    event = withdrawal.disproved_by
    return (
        f"{event.agency} {event.event_type.replace('_', ' ')} of {event.occurred_at} "
        f"(event {event.event_id}) arrived late: with it, rule {withdrawal.rule_id} does not hold"
    )


def withdrawn_event(
    withdrawal: Withdrawal, entries: Mapping[str, Entry], at: datetime
) -> dict[str, Any]:
    """The `withdrawn` AlertEvent: a late event disproved an open alert; it carries that event."""
    event = withdrawal.disproved_by
    legal_basis, sensitivity = classification([event.event_id], entries)
    return {
        "event_id": step_event_id(withdrawal.alert_id, "withdrawn"),
        "alert_id": withdrawal.alert_id,
        "change": "withdrawn",
        "at": at,
        "by": None,
        "note": withdrawal_reason(withdrawal),
        "alert": None,
        "added_events": [_explained(event)],
        "legal_basis": legal_basis,
        "sensitivity": sensitivity,
    }
