"""The alert lifecycle processor: every AlertEvent on `<prefix>.alerts` folded into a table of
alert states, escalation by a timer, and the notifications of raised, escalated and withdrawn
alerts.

The alerts topic has ONE partition: alerts are rare (hundreds a day), so one worker owns the
whole state table and the API lists and filters alerts there (requests are routed to it).
Coordinators' acknowledge/resolve and the timer's escalations are produced as AlertEvents
like the engine's `raised`, and applied by the one agent in topic order: every state change
is an event on Kafka, and a replay of the topic rebuilds the same states.

Notifications are sent by the agent, before its offset is committed, so a worker dying in
between re-processes the event and the delivery log (a Faust table) or, in the crash window
before the log reached its changelog, the receiver's dedup by delivery key keeps it to one
notification per recipient (streams/alerting/notifications/delivery_log.py).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust.types import TP

from backbone.codec import AvroCodec
from backbone.contracts import ALERT_SCHEMA
from backbone.logging import get_logger
from backbone.metrics import (
    ALERTS_ESCALATED,
    EVENTS_IN,
    NOTIFICATIONS_FAILED,
    NOTIFICATIONS_SENT,
    OPEN_ALERTS,
)
from streams.alerting.alert import Alert, ExplainedEvent, Explanation
from streams.alerting.lifecycle import (
    AlertState,
    Change,
    Status,
    Step,
    alert_of,
    apply_change,
    escalation_due,
    step_id,
)
from streams.alerting.notifications import DeadLetter, DeliveryOutcome, Notification
from streams.alerting.notifications.settings import build_notifier
from streams.operations.dead_letters import DeadLetters
from streams.settings import WorkerSettings
from streams.timeline.entries import iso
from streams.topology import Channels, Tables

log = get_logger(__name__)
PROCESSOR = "alert-lifecycle"
NOTIFICATIONS = "notifications"


class AlertLifecycle:
    """Keeps each alert's state in the `alerts` table and announces raised/escalated alerts."""

    def __init__(
        self,
        app: faust.App,
        channels: Channels,
        tables: Tables,
        codec: AvroCodec,
        dead_letters: DeadLetters,
        settings: WorkerSettings,
        environ: Mapping[str, str],
    ) -> None:
        self.app = app
        self._codec = codec
        self._dead_letters = dead_letters
        self._escalate_after: dict[str, timedelta] = settings.escalate_after
        # Both on the alerts topic's one partition, written only by the agent.
        self.table = tables.alerts
        self.delivery_log = tables.delivery_log
        self.topic = channels.alerts
        # Built now so that a bad routing file or a missing webhook secret stops the start.
        self.notifier = build_notifier(settings, self.delivery_log, self.dead_letter, environ)
        # Steps this worker asked for and has not seen applied yet: event id -> applied.
        self._pending: dict[str, asyncio.Event] = {}
        app.on_before_shutdown.connect(self._close_channels)

    async def _close_channels(
        self, _sender: Any, /, *_args: Any, signal: Any, **_more: Any
    ) -> None:
        # After the consumer stopped (Faust's order): no delivery is under way any more.
        await self.notifier.close()

    async def dead_letter(self, dead_letter: DeadLetter) -> None:
        """The Notifier's dead-letter sink: the delivery and why it failed, on the DLQ topic."""
        delivery = dead_letter.delivery
        raw = json.dumps({**delivery.as_dict(), "attempts": dead_letter.attempts}).encode()
        source = f"notification:{delivery.recipient.kind}"
        await self._dead_letters.send(NOTIFICATIONS, raw, dead_letter.reason, source)

    async def apply(self, event: faust.EventT[bytes]) -> None:
        """Fold one AlertEvent into its alert's state, then announce it if it calls for it."""
        record = await self._dead_letters.decode(PROCESSOR, event)
        if record is None:
            return
        step = step_of(record)
        EVENTS_IN.labels(PROCESSOR, "alerts").inc()
        state: AlertState | None = self.table.get(step.alert_id)
        changed = apply_change(state, step)
        if changed is not None:
            # Reassigning the value is what writes the table's changelog.
            self.table[step.alert_id] = state = changed
            if step.change is Change.ESCALATED:
                ALERTS_ESCALATED.labels(changed["severity"]).inc()
        log.info(
            "alert_changed" if changed is not None else "alert_step_ignored",
            alert_id=step.alert_id,
            change=step.change.value,
            event_id=step.event_id,
        )
        waiting = self._pending.pop(step.event_id, None)
        if waiting is not None:
            waiting.set()
        if state is not None:
            # Also for a step seen before: the delivery log sends only what was not sent.
            await self._announce(state, step)

    async def request(
        self, state: AlertState, change: Change, by: str | None, note: str | None
    ) -> asyncio.Event:
        """Produce a step for the agent; the returned event is set once the agent saw it."""
        event_id = step_id(state["alert_id"], change)
        applied = self._pending.setdefault(event_id, asyncio.Event())
        record = {
            "event_id": event_id,
            "alert_id": state["alert_id"],
            "change": change.value,
            "at": datetime.now(UTC),
            "by": by,
            "note": note,
            "alert": None,
            "added_events": [],
            "legal_basis": state["legal_basis"],
            "sensitivity": state["sensitivity"],
        }
        value = self._codec.encode(ALERT_SCHEMA, record)
        try:
            delivery = await self.topic.send(key=state["alert_id"].encode(), value=value)
            await delivery
        except BaseException:
            self._pending.pop(event_id, None)  # not on Kafka: may be asked for again
            raise
        return applied

    async def escalate_overdue(self) -> None:
        """On the worker owning the alerts: one `escalated` step per overdue open alert."""
        if not self.owns_alerts():
            OPEN_ALERTS.clear()
            return
        now = datetime.now(UTC)
        waiting: Counter[str] = Counter()
        for state in list(self.table.values()):
            if state["status"] == Status.OPEN:
                waiting[state["severity"]] += 1
            in_flight = step_id(state["alert_id"], Change.ESCALATED) in self._pending
            if not in_flight and escalation_due(state, now, self._escalate_after):
                await self._escalate(state)
        for severity in {*self._escalate_after, *waiting}:
            OPEN_ALERTS.labels(severity).set(waiting[severity])

    async def _escalate(self, state: AlertState) -> None:
        try:
            await self.request(state, Change.ESCALATED, None, None)
        except Exception as exc:  # a broker hiccup must not stop the timer: the next tick retries
            log.warning("alert_escalation_not_sent", alert_id=state["alert_id"], error=str(exc))

    def owns_alerts(self) -> bool:
        """Whether this worker holds the alerts topic's (one) partition."""
        assigned: set[TP] = self.app.assignor.assigned_actives()
        return TP(self.topic.get_topic_name(), 0) in assigned

    async def _announce(self, state: AlertState, step: Step) -> None:
        if step.change is Change.RAISED:
            sent = await self.notifier.notify(alert_of(state), "open")
        elif step.change is Change.ESCALATED and state["escalated"]:
            sent = await self.notifier.escalate(alert_of(state))
        elif step.change is Change.WITHDRAWN and state["status"] == Status.WITHDRAWN:
            sent = await self.notifier.withdraw(alert_of(state), step.note or "")
        else:
            return
        _count(sent, "open" if step.change is Change.RAISED else step.change.value)


def _count(notifications: list[Notification], stage: str) -> None:
    for notification in notifications:
        if not notification.sent:
            continue
        kind = notification.recipient.kind
        if notification.outcome is DeliveryOutcome.DELIVERED:
            NOTIFICATIONS_SENT.labels(kind, stage).inc()
        else:
            NOTIFICATIONS_FAILED.labels(kind, stage).inc()


def step_of(record: Mapping[str, Any]) -> Step:
    """A decoded AlertEvent as a lifecycle step."""
    raised = record.get("alert")
    return Step(
        event_id=record["event_id"],
        alert_id=record["alert_id"],
        change=Change(record["change"]),
        at=iso(record["at"]),
        by=record.get("by"),
        note=record.get("note"),
        alert=alert_of_raised(record["alert_id"], raised) if raised else None,
        added_events=tuple(_explained(event) for event in record.get("added_events", [])),
        legal_basis=str(record["legal_basis"]),
        sensitivity=str(record["sensitivity"]),
    )


def alert_of_raised(alert_id: str, raised: Mapping[str, Any]) -> Alert:
    """The Alert a `raised` AlertEvent carries (a backbone.alerts.RaisedAlert record)."""
    return Alert(
        alert_id=alert_id,
        rule_id=raised["rule_id"],
        rule_version=raised["rule_version"],
        rule_name=raised["rule_name"],
        severity=raised["severity"],
        teams=tuple(raised["teams"]),
        person_id=raised["person_id"],
        household_person_ids=tuple(raised.get("household_person_ids", [])),
        anchor_event_id=raised["anchor_event_id"],
        anchor_at=raised["anchor_at"],
        matched_at=raised["matched_at"],
        text=raised["text"],
        explanation=Explanation(
            raised["rule_id"],
            raised["rule_version"],
            tuple(_explained(event) for event in raised["events"]),
        ),
    )


def _explained(event: Mapping[str, Any]) -> ExplainedEvent:
    return ExplainedEvent(
        event_id=event["event_id"],
        event_type=event["event_type"],
        agency=str(event["agency"]),
        occurred_at=iso(event["occurred_at"]),
        person_id=event["person_id"],
    )
