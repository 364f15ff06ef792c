"""The alert processor: the rule engine evaluated in the stream, in Faust.

Agents (all but the last keyed by person id and co-partitioned with person-events, so each
partition's tables hold its persons' whole alert state; the logic is `AlertTracker`):
- `alerts` on person-events frames: keep each event if a rule looks at it, evaluate, tell
  members;
- `alerts-updates` on `<prefix>.alert-updates`: household members' entries, merged persons'
  views, deadline checks and closed alerts, each sent to the person's own partition;
- `alerts-identity-changes` on identity-changes frames: a merge moves the view to the survivor;
- `alerts-owners` on the alerts topic (keyed by alert id): remembers whose each alert is,
  and when one is resolved tells that person's partition, so it no longer absorbs matches.
The first three write the tracker's tables once per key per frame or message, with no await
before the flush (streams/alerting/framed.py), and send what they were asked to after it. A
timer moves event time on with the wall clock and has due deadlines checked; it writes no
table (it has no event whose partition a changelog write would go to).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import faust

from backbone.codec import AvroCodec
from backbone.contracts import ALERT_SCHEMA
from backbone.errors import BadInput
from backbone.logging import get_logger
from backbone.metrics import ALERTS_RAISED
from backbone.topics import Topics
from streams.alerting.evaluation import RuleEngine
from streams.alerting.framed import PROCESSOR, AlertFrames
from streams.alerting.rules import RuleSet
from streams.alerting.tracking import AlertTracker, Reaction
from streams.framing.batched_table import BatchedTable

log = get_logger(__name__)
Work = Callable[[list[Reaction]], None]


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
        views, deadlines, priors = tables = [
            BatchedTable(app.Table(name, default=None))
            for name in ("alert-views", "alert-deadlines", "alert-priors")
        ]
        self.tracker = AlertTracker(
            RuleEngine(rules), views=views, deadlines=deadlines, priors=priors, lateness=lateness
        )
        self.frames = AlertFrames(self.tracker, codec, tables)
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
        changes = app.topic(topics.identity_changes, key_serializer="raw", value_serializer="raw")

        async def evaluate(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self.carry_out(partial(self.frames.person_events, event.value))
                yield None

        async def apply_updates(stream: faust.StreamT[dict[str, Any]]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self.carry_out(partial(self.frames.update, _key(event), event.value))
                yield None

        async def apply_merges(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self.carry_out(partial(self.frames.identity_changes, event.value))
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

    async def carry_out(self, work: Work) -> None:
        """Run a frame's (or message's) work, which writes and flushes the tables without an
        await, then send what it asked for; if it failed half-way, what it did is sent still."""
        reactions: list[Reaction] = []
        try:
            work(reactions)
        finally:
            for reaction in reactions:
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
