"""The timeline processor: person events and identity changes, a frame at a time, into the
timeline store (streams/timeline/store.py) kept in two Faust tables.

Each frame is decoded and applied synchronously and the tables' batched writes are flushed
before any `await`: Faust writes a table's changelog on the partition of the event being
processed, and another agent running during an await would write under its own event. Only
then are the changes for other persons' partitions (`absorb`) and any dead letters sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust

from backbone.codec import AvroCodec
from backbone.errors import BadInput
from backbone.frames import FramedEvent
from backbone.logging import get_logger
from backbone.metrics import END_TO_END_SECONDS, EVENTS_IN, labelled
from streams.framing.outbox import FrameOutbox
from streams.framing.person_events import PersonEvent, Rejected, decode_person_events
from streams.identity.messages import decode_change, encode_change
from streams.operations.dead_letters import DeadLetters
from streams.timeline.entries import timeline_entry
from streams.timeline.store import Arrival, Outcome, TimelineStore, change_problem
from streams.topology import Channels, Tables

log = get_logger(__name__)
PROCESSOR = "timeline"
_NOTEWORTHY = {"merge": "timeline_merged", "split": "timeline_split", "erase": "timeline_erased"}


class Timelines:
    """Consumes person-events and identity-changes frames into per-month timeline tables."""

    def __init__(
        self,
        channels: Channels,
        tables: Tables,
        codec: AvroCodec,
        dead_letters: DeadLetters,
        partitions: int,
    ) -> None:
        self.codec = codec
        self.dead_letters = dead_letters
        # Heads by person id; the API routes a person's requests by this table's keys.
        self.table = tables.timelines
        # Month buckets `<person id>/<YYYY-MM>`, written on the person's partition.
        self.months = tables.timeline_months
        self._heads = tables.batched(self.table)
        self._months = tables.batched(self.months)
        self.store = TimelineStore(self._heads, self._months)
        # One outbox per agent: the agents interleave at awaits, and each sends its own.
        self._moved_events = FrameOutbox(channels.identity_changes, partitions, codec)
        self._moved_contents = FrameOutbox(channels.identity_changes, partitions, codec)

    async def on_identity_changes(self, event: faust.EventT[bytes]) -> None:
        """The identity changes' agent: a frame of links, merges, splits and erasures."""
        frame = await self.dead_letters.decode_frame(PROCESSOR, event)
        if frame is not None:
            await self.apply_frame(frame, event.message.topic)

    async def record_frame(self, frame: Sequence[FramedEvent], source: str) -> None:
        """Add a frame of person events to their persons' timelines; dead-letter the events
        that do not decode."""
        events, rejected = decode_person_events(self.codec, frame)
        await self.record_events(events)
        for raw, reason in rejected:
            await self.dead_letters.send(PROCESSOR, raw, reason, source)

    async def record_events(self, events: Sequence[PersonEvent]) -> None:
        """Add a frame's decoded person events to their persons' timelines."""
        by_person: dict[str, list[Arrival]] = {}
        recorded_at: dict[str, datetime] = {}
        for event in events:
            envelope = event.record["envelope"]
            labelled(EVENTS_IN, PROCESSOR, envelope["agency"]).inc()
            recorded_at[envelope["event_id"]] = envelope["recorded_at"]
            arrival = (timeline_entry(event.record), event.household)
            by_person.setdefault(event.person_id, []).append(arrival)
        # From the first write to the flush: no await.
        outcomes = {person: self.store.record(person, each) for person, each in by_person.items()}
        self._flush(self._moved_events)
        now = datetime.now(UTC)
        added = duplicates = moved = 0
        last_added = None
        for person_id, arrivals in by_person.items():
            for (entry, _household), outcome in zip(arrivals, outcomes[person_id], strict=True):
                event_id = entry["event_id"]
                if outcome is Outcome.MOVED:
                    moved += 1
                    log.debug("event_moved", event_id=event_id, person_id=person_id)
                    continue
                END_TO_END_SECONDS.labels(PROCESSOR).observe(
                    (now - recorded_at[event_id]).total_seconds()
                )
                if outcome is Outcome.ADDED:
                    added, last_added = added + 1, event_id
                    log.debug("event_added", event_id=event_id, person_id=person_id)
                else:
                    duplicates += 1
                    log.debug("duplicate_event_dropped", event_id=event_id, person_id=person_id)
        await self._moved_events.send()
        if by_person:
            # One line per frame; `event_id` is the frame's last added event, for tracing.
            log.info(
                "timeline_updated",
                event_id=last_added,
                added=added,
                duplicates=duplicates,
                moved=moved,
                persons=len(by_person),
            )

    async def apply_frame(self, frame: Sequence[FramedEvent], source: str) -> None:
        """Apply a frame of identity changes, in order."""
        changes: list[dict[str, Any]] = []
        rejected: Rejected = []
        for framed in frame:
            try:
                change = decode_change(self.codec, framed.value)
            except BadInput as exc:
                rejected.append((framed.value, f"undecodable: {exc}"))
                continue
            problem = change_problem(change)
            if problem is not None:
                rejected.append((framed.value, problem))
                continue
            changes.append(change)
        # From the first write to the flush: no await.
        applied = [self.store.apply(change) for change in changes]
        self._flush(self._moved_contents)
        for change, changed in zip(changes, applied, strict=True):
            kind, person_id = change["change"], change["person_id"]
            if kind in _NOTEWORTHY and changed:
                # Rare, and each one someone's decision: worth a line of its own.
                log.info(_NOTEWORTHY[kind], person_id=person_id, into=change.get("into"))
            else:
                log.debug("identity_change_applied", change=kind, person_id=person_id)
        await self._send_on(self._moved_contents, rejected, source)

    def _flush(self, outbox: FrameOutbox) -> None:
        """Write the frame's changed heads and month buckets, each key once, and queue the
        contents leaving for other persons."""
        self._heads.flush()
        self._months.flush()
        for change in self.store.drain():
            value = encode_change(self.codec, change)
            outbox.add(FramedEvent(change["person_id"].encode(), value, {}))

    async def _send_on(self, outbox: FrameOutbox, rejected: Rejected, source: str) -> None:
        """After the flush: absorb changes to the survivors' partitions, then dead letters."""
        await outbox.send()
        for raw, reason in rejected:
            await self.dead_letters.send(PROCESSOR, raw, reason, source)
