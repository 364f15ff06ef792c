"""An alert's life: `open` -> `acknowledged` -> `resolved`, escalated once if nobody
acknowledged it in time; `withdrawn` instead when a late event disproved it while it was open
or acknowledged (README, "Cross-agency alert rules").

Pure: the alert processor decodes each AlertEvent on the alerts topic and folds it into the
alert's state with `apply_change`; the API asks `refusal` before it asks for a change. A state
is a JSON-ready dict (the value of the processor's table):

    {alert fields as Alert.as_dict(), "status", "escalated", "raised_at", "legal_basis",
     "sensitivity", "history": [{"event_id", "change", "at", "by", "note"}, ...]}

Every step carries a deterministic event id, so a step seen twice (a replay, a restarted
worker, two escalation timers) is applied once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from streams.alerting.alert import Alert, ExplainedEvent, Explanation

AlertState = dict[str, Any]


class Change(StrEnum):
    """The steps of an alert's life (Avro enum `backbone.alerts.AlertChange`)."""

    RAISED = "raised"
    ABSORBED = "absorbed"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"


class Status(StrEnum):
    """Where an alert is in its life, as coordinators see it."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"


# Where an alert's life has ended: nothing changes it any more.
ENDED = frozenset({Status.RESOLVED, Status.WITHDRAWN})
# The fields of an alert in a list (api.md), in that order.
SUMMARY_FIELDS = (
    "alert_id",
    "rule_id",
    "rule_version",
    "severity",
    "status",
    "person_id",
    "household_person_ids",
    "raised_at",
    "text",
    "teams",
)
# What the explanation shows of each event (api.md); the person it belongs to stays out.
EXPLAINED_FIELDS = ("event_id", "event_type", "agency", "occurred_at")


@dataclass(frozen=True)
class Step:
    """One decoded AlertEvent, in the state's terms (times as RFC 3339 strings)."""

    event_id: str
    alert_id: str
    change: Change
    at: str
    by: str | None = None
    note: str | None = None
    alert: Alert | None = None
    added_events: tuple[ExplainedEvent, ...] = ()
    legal_basis: str = "public_task"
    sensitivity: str = "personal"


def step_id(alert_id: str, change: Change) -> str:
    """The event id of a coordinator's or the backbone's step: each happens once per alert."""
    return f"{alert_id}:{change.value}"


def refusal(state: Mapping[str, Any], change: Change) -> str | None:
    """Why the alert's current state does not allow `change`, or None when it does."""
    status = state["status"]
    if change is Change.ACKNOWLEDGED and status != Status.OPEN:
        return f"alert {state['alert_id']} is {status}: only an open alert can be acknowledged"
    if change in (Change.RESOLVED, Change.WITHDRAWN) and status in ENDED:
        return f"alert {state['alert_id']} is {status} already"
    if change is Change.ESCALATED and (status != Status.OPEN or state["escalated"]):
        return f"alert {state['alert_id']} is {status}, escalated: {state['escalated']}"
    if change is Change.ABSORBED and status in ENDED:
        return f"alert {state['alert_id']} is {status}: it absorbs no more matches"
    return None


def apply_change(state: AlertState | None, step: Step) -> AlertState | None:
    """The alert's state after `step`; None when the step changes nothing (seen already, for
    an unknown alert, or not allowed in the current state)."""
    if state is None:
        return _raised(step) if step.change is Change.RAISED and step.alert else None
    if step.change is Change.RAISED or _seen(state, step.event_id):
        return None
    if refusal(state, step.change) is not None:
        return None
    changed = {**state, "history": [*state["history"], _history_entry(step)]}
    if step.change is Change.ACKNOWLEDGED:
        changed["status"] = Status.ACKNOWLEDGED.value
    elif step.change is Change.RESOLVED:
        changed["status"] = Status.RESOLVED.value
    elif step.change is Change.ESCALATED:
        changed["escalated"] = True
    elif step.change is Change.WITHDRAWN:
        changed["status"] = Status.WITHDRAWN.value
        changed["explanation"] = {
            **state["explanation"],
            "disproved_by": [event.as_dict() for event in step.added_events],
        }
    else:
        changed["explanation"] = _with_events(state["explanation"], step.added_events)
    return changed


def escalation_due(
    state: Mapping[str, Any], now: datetime, escalate_after: Mapping[str, timedelta]
) -> bool:
    """Whether an open alert has waited past its severity's escalation time unacknowledged
    (severities without a time, such as info, never escalate)."""
    after = escalate_after.get(state["severity"])
    if after is None or refusal(state, Change.ESCALATED) is not None:
        return False
    return now - datetime.fromisoformat(state["raised_at"]) >= after


def summary(state: Mapping[str, Any]) -> dict[str, Any]:
    """An alert as a list shows it (api.md)."""
    return {name: state[name] for name in SUMMARY_FIELDS}


def detail(state: Mapping[str, Any]) -> dict[str, Any]:
    """One alert with its explanation and state history (api.md)."""
    explanation = state["explanation"]
    return {
        **summary(state),
        "rule_name": state["rule_name"],
        "escalated": state["escalated"],
        "explanation": {
            "rule_id": explanation["rule_id"],
            "rule_version": explanation["rule_version"],
            "events": _explained(explanation["events"]),
            "disproved_by": _explained(explanation.get("disproved_by", [])),
        },
        "history": [
            {name: entry[name] for name in ("change", "at", "by", "note")}
            for entry in state["history"]
        ],
    }


def alert_of(state: Mapping[str, Any]) -> Alert:
    """The Alert a state holds, as the Notifier sends it (with everything absorbed so far)."""
    explanation = state["explanation"]
    return Alert(
        alert_id=state["alert_id"],
        rule_id=state["rule_id"],
        rule_version=state["rule_version"],
        rule_name=state["rule_name"],
        severity=state["severity"],
        teams=tuple(state["teams"]),
        person_id=state["person_id"],
        household_person_ids=tuple(state["household_person_ids"]),
        anchor_event_id=state["anchor_event_id"],
        anchor_at=datetime.fromisoformat(state["anchor_at"]),
        matched_at=datetime.fromisoformat(state["matched_at"]),
        text=state["text"],
        explanation=Explanation(
            explanation["rule_id"],
            explanation["rule_version"],
            tuple(ExplainedEvent(**event) for event in explanation["events"]),
        ),
    )


def _explained(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{name: event[name] for name in EXPLAINED_FIELDS} for event in events]


def _raised(step: Step) -> AlertState:
    assert step.alert is not None  # nosec B101 # a raised step carries its alert
    return {
        **step.alert.as_dict(),
        "status": Status.OPEN.value,
        "escalated": False,
        "raised_at": step.at,
        "legal_basis": step.legal_basis,
        "sensitivity": step.sensitivity,
        "history": [_history_entry(step)],
    }


def _seen(state: Mapping[str, Any], event_id: str) -> bool:
    return any(entry["event_id"] == event_id for entry in state["history"])


def _history_entry(step: Step) -> dict[str, Any]:
    return {
        "event_id": step.event_id,
        "change": step.change.value,
        "at": step.at,
        "by": step.by,
        "note": step.note,
    }


def _with_events(
    explanation: Mapping[str, Any], added: tuple[ExplainedEvent, ...]
) -> dict[str, Any]:
    known = {event["event_id"] for event in explanation["events"]}
    fresh = [event.as_dict() for event in added if event.event_id not in known]
    events = sorted(
        [*explanation["events"], *fresh], key=lambda e: (e["occurred_at"], e["event_id"])
    )
    return {**explanation, "events": events}
