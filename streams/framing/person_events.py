"""Person events as the timeline and the alerts read them: decoded once per frame.

The timeline and the alert processor both read every frame of `person-events`; one agent hands
each frame, decoded once, to both (Avro decoding is the largest single cost per event here).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust

from backbone.codec import AvroCodec
from backbone.errors import BadInput
from backbone.frames import FramedEvent
from streams.operations.dead_letters import DeadLetters

Rejected = list[tuple[bytes, str]]


@dataclass(frozen=True, slots=True)
class PersonEvent:
    """An agency event on its person's partition: the person, the event, the household."""

    person_id: str
    record: dict[str, Any]
    household: dict[str, str]  # member person id -> relationship


def person_of(framed: FramedEvent) -> str:
    """The person id a framed event is keyed by; BadInput if it has none."""
    try:
        person_id = (framed.key or b"").decode()
    except UnicodeDecodeError:
        person_id = ""
    if not person_id:
        raise BadInput("a person event needs its person id (UTF-8) as key", field="key")
    return person_id


def household_of(framed: FramedEvent) -> dict[str, str]:
    """The members identity attached (`household` header); BadInput if it is not a JSON
    object of person id -> relationship."""
    raw = framed.headers.get("household")
    if not raw:
        return {}
    try:
        members = json.loads(raw)
    except ValueError as exc:
        raise BadInput(f"not JSON: {exc}", field="household") from None
    if not isinstance(members, dict) or not all(isinstance(r, str) for r in members.values()):
        raise BadInput("not a JSON object of person id -> relationship", field="household")
    return members


def decode_person_events(
    codec: AvroCodec, frame: Sequence[FramedEvent]
) -> tuple[list[PersonEvent], Rejected]:
    """The frame's person events, in order, and the raw bytes and reason of those that are not."""
    events: list[PersonEvent] = []
    rejected: Rejected = []
    for framed in frame:
        try:
            person_id, household = person_of(framed), household_of(framed)
        except BadInput as exc:
            rejected.append((framed.value, str(exc)))
            continue
        try:
            record = codec.decode(framed.value).record
        except BadInput as exc:
            rejected.append((framed.value, f"undecodable: {exc}"))
            continue
        events.append(PersonEvent(person_id, record, household))
    return events, rejected


Consumer = Callable[[list[PersonEvent]], Awaitable[None]]


class PersonEventsFanOut:
    """The handler of the `person-events` agent: decodes a frame once, hands its events to
    each consumer in turn, and dead-letters the events that do not decode."""

    def __init__(
        self,
        codec: AvroCodec,
        dead_letters: DeadLetters,
        consumers: Sequence[Consumer],
        processor: str = "timeline",
    ) -> None:
        self.codec = codec
        self.dead_letters = dead_letters
        self.consumers = consumers
        self.processor = processor

    async def on_frame(self, event: faust.EventT[bytes]) -> None:
        """One frame of `person-events`."""
        frame = await self.dead_letters.decode_frame(self.processor, event)
        if frame is None:
            return
        events, rejected = decode_person_events(self.codec, frame)
        for consume in self.consumers:
            await consume(events)
        for raw, reason in rejected:
            await self.dead_letters.send(self.processor, raw, reason, event.message.topic)
