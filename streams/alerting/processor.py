"""The alert processor: the rule engine evaluated in the stream, in Faust.

Agents (all but the last keyed by person id and co-partitioned with person-events, so each
partition's tables hold its persons' whole alert state; the logic is `AlertTracker`):
- `alerts` on person-events: keep the event if a rule looks at it, evaluate, tell members;
- `alerts-updates` on `<prefix>.alert-updates`: household members' entries, merged persons'
  views, deadline checks and closed alerts, each sent to the person's own partition;
- `alerts-identity-changes` on identity-changes: a merge moves the view to the survivor;
- `alerts-owners` on the alerts topic (keyed by alert id): remembers whose each alert is,
  and when one is resolved tells that person's partition, so it no longer absorbs matches.
A timer moves event time on with the wall clock and has due deadlines checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import faust

from backbone.codec import AvroCodec
from backbone.contracts import ALERT_SCHEMA
from backbone.errors import BadInput
from backbone.logging import get_logger
from backbone.metrics import ALERTS_RAISED, EVENTS_IN
from backbone.topics import Topics
from streams.alerting.evaluation import RuleEngine
from streams.alerting.rules import RuleSet
from streams.alerting.tracking import AlertTracker, Reaction, compact_entry
from streams.timeline.processor import household_of

log = get_logger(__name__)
PROCESSOR = "alerts"


class AlertProcessor:
    """Wires `AlertTracker` to Faust tables, topics and a timer."""

    def __init__(
        self,
        app: faust.App,
        topics: Topics,
        codec: AvroCodec,
        rules: RuleSet,
        *,
        lateness: timedelta,
        timer_interval_s: float,
        alerts_partitions: int,
    ) -> None:
        self.codec = codec
        self.tracker = AlertTracker(
            RuleEngine(rules),
            views=app.Table("alert-views", default=None),
            deadlines=app.Table("alert-deadlines", default=None),
            priors=app.Table("alert-priors", default=None),
            lateness=lateness,
        )
        # alert id -> person id, co-partitioned with the alerts topic (however many it has).
        self.owners = app.Table("alert-owners", default=None, partitions=alerts_partitions)
        self.updates = app.topic(
            topics.alert_updates, key_serializer="raw", value_serializer="json"
        )
        self.alerts = app.topic(
            topics.alerts,
            partitions=alerts_partitions,
            key_serializer="raw",
            value_serializer="raw",
        )
        person_events = app.topic(
            topics.person_events, key_serializer="raw", value_serializer="raw"
        )
        changes = app.topic(topics.identity_changes, key_serializer="raw", value_serializer="json")

        async def evaluate(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self.on_person_event(event)
                yield None

        async def apply_updates(stream: faust.StreamT[dict[str, Any]]) -> AsyncIterator[None]:
            async for event in stream.events():
                person_id = _key(event)
                await self.deliver(self.tracker.on_update(person_id, event.value))
                yield None

        async def apply_merges(stream: faust.StreamT[dict[str, Any]]) -> AsyncIterator[None]:
            async for change in stream:
                if change["change"] == "merge":
                    await self.deliver(self.tracker.on_merge(change["person_id"], change["into"]))
                yield None

        async def follow_lifecycle(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self.on_alert_event(event.value)
                yield None

        async def tick() -> None:
            for person_id in self.tracker.advance_clock():
                await self.updates.send(key=person_id.encode(), value={"kind": "check"})

        app.agent(person_events, name=PROCESSOR)(evaluate)
        app.agent(self.updates, name=f"{PROCESSOR}-updates")(apply_updates)
        app.agent(changes, name=f"{PROCESSOR}-identity-changes")(apply_merges)
        app.agent(self.alerts, name=f"{PROCESSOR}-owners")(follow_lifecycle)
        app.timer(timer_interval_s, name=f"{PROCESSOR}-clock")(tick)

    async def on_person_event(self, event: faust.EventT[bytes]) -> None:
        """Evaluate the rules a person event takes part in."""
        try:
            record = self.codec.decode(event.value).record
        except BadInput as exc:
            # The timeline processor dead-letters it; a second copy would say nothing new.
            log.warning("alert_input_undecodable", reason=str(exc))
            return
        EVENTS_IN.labels(PROCESSOR, record["envelope"]["agency"]).inc()
        person_id = _key(event)
        reaction = self.tracker.on_person_event(
            person_id, compact_entry(record), household_of(event)
        )
        await self.deliver(reaction)

    async def on_alert_event(self, value: bytes) -> None:
        """Remember whose each alert is; a resolved alert is closed on its person's partition."""
        try:
            step = self.codec.decode(value).record
        except BadInput as exc:
            log.warning("alert_event_undecodable", reason=str(exc))
            return
        if step["change"] == "raised" and step["alert"] is not None:
            self.owners[step["alert_id"]] = step["alert"]["person_id"]
        elif step["change"] == "resolved":
            person_id = self.owners.get(step["alert_id"])
            log.info("alert_resolved_seen", alert_id=step["alert_id"], person_id=person_id)
            if person_id is not None:
                update = {"kind": "closed", "alert_id": step["alert_id"]}
                await self.updates.send(key=person_id.encode(), value=update)

    async def deliver(self, reaction: Reaction) -> None:
        """Send what the tracker asked for: updates to other partitions, alert steps."""
        for forward in reaction.forwards:
            await self.updates.send(key=forward.person_id.encode(), value=forward.update)
        for alert_id, record in reaction.alert_events:
            value = self.codec.encode(ALERT_SCHEMA, record)
            await self.alerts.send(key=alert_id.encode(), value=value)
            log.info("alert_step", alert_id=alert_id, change=record["change"])
        for alert in reaction.raised:
            ALERTS_RAISED.labels(alert.rule_id, alert.severity).inc()


def _key(event: faust.EventT[Any]) -> str:
    return event.key.decode() if isinstance(event.key, bytes) else str(event.key)
