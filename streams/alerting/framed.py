"""The alert processor's input, a frame at a time, with the stores written once per frame.

Pure (no Faust), so it is tested on dicts. The tracker's three stores are `BatchedTable`s:
everything a frame asks of the tracker is done synchronously, then `flush` writes each changed
key once, and only then does the caller `await` the sends (`Reaction`s). No await may come
between the first write and the flush: Faust writes a table's changelog on the partition of
the event being processed, and another agent running during an await would write under its
own event's partition.

An input that does not decode is logged and skipped: the timeline processor reads person-events
and identity-changes too and dead-letters it, so a second copy would say nothing new; only this
processor writes alert-updates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from backbone.codec import AvroCodec
from backbone.errors import BadInput
from backbone.frames import FramedEvent, decode_frame
from backbone.logging import get_logger
from backbone.metrics import EVENTS_IN, labelled
from streams.alerting.messages import decode_update
from streams.alerting.tracking import AlertTracker, Reaction, compact_entry
from streams.framing.batched_table import BatchedTable
from streams.framing.person_events import (
    PersonEvent,
    decode_person_events,
    person_of,
)
from streams.identity.messages import decode_change

log = get_logger(__name__)
PROCESSOR = "alerts"


class AlertFrames:
    """Hands frames of person events, identity changes and alert view updates to the
    tracker; the stores are flushed once per frame."""

    def __init__(
        self, tracker: AlertTracker, codec: AvroCodec, stores: Sequence[BatchedTable]
    ) -> None:
        self.tracker = tracker
        self.codec = codec
        self.stores = stores

    def person_events(self, data: bytes, reactions: list[Reaction]) -> None:
        """A person-events frame: each event evaluated, in order."""
        events, rejected = decode_person_events(self.codec, self._frame(data, "person-events"))
        for _raw, reason in rejected:
            # The timeline dead-letters it; a second copy would say nothing new.
            log.warning("alert_input_undecodable", reason=reason)
        self.evaluate(events, reactions)

    def evaluate(self, events: Sequence[PersonEvent], reactions: list[Reaction]) -> None:
        """A frame's decoded person events, evaluated in order."""
        with self._flushed():
            for event in events:
                labelled(EVENTS_IN, PROCESSOR, event.record["envelope"]["agency"]).inc()
                entry = compact_entry(event.record)
                reactions.append(
                    self.tracker.on_person_event(event.person_id, entry, event.household)
                )

    def identity_changes(self, data: bytes, reactions: list[Reaction]) -> None:
        """An identity-changes frame: a merge moves the view to the survivor."""
        with self._flushed():
            for framed in self._frame(data, "identity-changes"):
                try:
                    change = decode_change(self.codec, framed.value)
                except BadInput as exc:
                    log.warning("identity_change_undecodable", reason=str(exc))
                    continue
                if change["change"] != "merge":
                    continue
                person_id, into = change.get("person_id"), change.get("into")
                if not isinstance(person_id, str) or not isinstance(into, str):
                    log.warning("identity_change_undecodable", reason="a merge without ids")
                    continue
                reactions.append(self.tracker.on_merge(person_id, into))

    def updates(self, data: bytes, reactions: list[Reaction]) -> None:
        """An alert-updates frame: each update applied to its person's view, in order."""
        with self._flushed():
            for framed in self._frame(data, "alert-updates"):
                try:
                    person_id = person_of(framed)
                    update = decode_update(self.codec, framed.value)
                except BadInput as exc:
                    log.warning("alert_update_undecodable", reason=str(exc))
                    continue
                reactions.append(self.tracker.on_update(person_id, update))

    def _frame(self, data: bytes, topic: str) -> list[FramedEvent]:
        try:
            return decode_frame(self.codec, data)
        except BadInput as exc:
            log.warning("alert_frame_undecodable", topic=topic, reason=str(exc))
            return []

    @contextmanager
    def _flushed(self) -> Iterator[None]:
        """Flush the stores after the work, even one that failed half-way (what it wrote
        belongs to this frame's partition, not to the next one's)."""
        try:
            yield
        finally:
            for store in self.stores:
                store.flush()
