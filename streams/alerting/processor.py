"""The alert processor: the rule engine evaluated in the stream, in Faust.

Agents (all but the last keyed by person id and co-partitioned with person-events, so each
partition's tables hold its persons' whole alert state; the logic is `AlertTracker`):
- `alerts` on person-events frames: keep each event if a rule looks at it, evaluate, tell
  members;
- `alerts-updates` on `<prefix>.alert-updates` frames: household members' entries, merged
  persons' views, deadline checks and closed alerts (`AlertViewUpdate`s,
  streams/alerting/messages.py), each sent to the person's own partition;
- `alerts-identity-changes` on identity-changes frames: a merge moves the view to the survivor;
- `alerts-owners` on the alerts topic (keyed by alert id): remembers whose each alert is,
  and when one is resolved tells that person's partition, so it no longer absorbs matches.
The first three write the tracker's tables once per key per frame, with no await before the
flush (streams/alerting/framed.py), and send what they were asked to after it: updates for
other persons through a `FrameOutbox` of their own (agents interleave at awaits, and each
sends its own), keyed by person id. A timer moves event time on with the wall clock and has
due deadlines checked; it writes no table (it has no event whose partition a changelog write
would go to), it sends `check` updates the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial

import faust

from backbone.codec import AvroCodec
from backbone.contracts import ALERT_SCHEMA
from backbone.errors import BadInput
from backbone.frames import FramedEvent
from backbone.logging import get_logger
from backbone.metrics import ALERTS_RAISED, ALERTS_WITHDRAWN
from streams.alerting.evaluation import RuleEngine
from streams.alerting.framed import AlertFrames
from streams.alerting.messages import Update, encode_update
from streams.alerting.rules import RuleSet
from streams.alerting.tracking import AlertTracker, Reaction
from streams.framing.outbox import FrameOutbox
from streams.framing.person_events import PersonEvent
from streams.topology import Channels, Tables

log = get_logger(__name__)
Work = Callable[[list[Reaction]], None]


class AlertProcessor:
    """`AlertTracker` over Faust tables: the handlers of the alert agents and timer."""

    def __init__(
        self,
        channels: Channels,
        tables: Tables,
        codec: AvroCodec,
        rules: RuleSet,
        *,
        lateness: timedelta,
        partitions: int,
    ) -> None:
        self.codec = codec
        views, deadlines, priors = batched = [
            tables.batched(table)
            for table in (tables.alert_views, tables.alert_deadlines, tables.alert_priors)
        ]
        self.tracker = AlertTracker(
            RuleEngine(rules), views=views, deadlines=deadlines, priors=priors, lateness=lateness
        )
        self.frames = AlertFrames(self.tracker, codec, batched)
        # alert id -> person id, co-partitioned with the alerts topic.
        self.owners = tables.alert_owners
        self.alerts = channels.alerts

        def outbox() -> FrameOutbox:
            return FrameOutbox(channels.alert_updates, partitions, codec)

        # Updates for persons' partitions, one outbox per agent and one for the timer.
        self.from_events, self.from_updates, self.from_changes = outbox(), outbox(), outbox()
        self.from_steps, self.from_clock = outbox(), outbox()

    async def on_person_events(self, event: faust.EventT[bytes]) -> None:
        """The `alerts` agent: a frame of person events."""
        await self.carry_out(partial(self.frames.person_events, event.value), self.from_events)

    async def evaluate(self, events: Sequence[PersonEvent]) -> None:
        """A frame's person events, decoded once for the timeline and the alerts."""
        await self.carry_out(partial(self.frames.evaluate, events), self.from_events)

    async def on_update(self, event: faust.EventT[bytes]) -> None:
        """The `alerts-updates` agent: a frame of updates of persons' views."""
        await self.carry_out(partial(self.frames.updates, event.value), self.from_updates)

    async def on_identity_changes(self, event: faust.EventT[bytes]) -> None:
        """The `alerts-identity-changes` agent: a frame of identity changes (merges)."""
        work = partial(self.frames.identity_changes, event.value)
        await self.carry_out(work, self.from_changes)

    async def on_alert_step(self, event: faust.EventT[bytes]) -> None:
        """The `alerts-owners` agent: one step of an alert's life."""
        await self.on_alert_event(event.value)

    async def tick(self) -> None:
        """The timer: move event time with the wall clock; have due absences checked."""
        for person_id in self.tracker.advance_clock():
            self.update(self.from_clock, person_id, {"kind": "check"})
        await self.from_clock.send()

    async def carry_out(self, work: Work, outbox: FrameOutbox) -> None:
        """Run a frame's work, which writes and flushes the tables without an await, then
        send what it asked for (updates through `outbox`, the agent's own); if it failed
        half-way, what it did is sent still."""
        reactions: list[Reaction] = []
        try:
            work(reactions)
        finally:
            for reaction in reactions:
                await self.deliver(reaction, outbox)
            await outbox.send()

    def update(self, outbox: FrameOutbox, person_id: str, update: Update) -> None:
        """Queue an update of a person's view for the person's partition."""
        outbox.add(FramedEvent(person_id.encode(), encode_update(self.codec, update), {}))

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
                self.update(self.from_steps, person_id, update)
                await self.from_steps.send()

    async def deliver(self, reaction: Reaction, outbox: FrameOutbox) -> None:
        """Queue the updates the tracker asked for in `outbox` (the caller sends them) and
        publish its alert steps."""
        for forward in reaction.forwards:
            self.update(outbox, forward.person_id, forward.update)
        for alert_id, record in reaction.alert_events:
            value = self.codec.encode(ALERT_SCHEMA, record)
            await self.alerts.send(key=alert_id.encode(), value=value)
            log.info("alert_step", alert_id=alert_id, change=record["change"])
        for alert in reaction.raised:
            ALERTS_RAISED.labels(alert.rule_id, alert.severity).inc()
        for withdrawal in reaction.withdrawn:
            ALERTS_WITHDRAWN.labels(withdrawal.rule_id).inc()
