"""Frames: many events of one partition in one Kafka message, between stream stages.

A stream stage pays per Kafka message (a Faust agent ~0.33 ms of CPU each) far more than per
event, so internal topics carry `backbone.frames.EventFrame` records: each event as the bytes
its producer wrote, with the key and headers it would have on its own and where it was first
read. The agency topics themselves stay one event per message (the connectors' contract).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from backbone.codec import HEADER_SIZE, AvroCodec
from backbone.contracts import FRAME_SCHEMA
from backbone.errors import BadInput

# Upper bounds of the Avro bytes around the payload, so a frame cut by `frames_of` never
# encodes larger than its limit: per event two union indexes, four length varints (5 bytes
# each) and a long varint (10); per header two length varints; per frame the single-object
# header, the timestamp varint and the array's count and end marker.
_EVENT_OVERHEAD = 40
_HEADER_OVERHEAD = 10
_FRAME_OVERHEAD = HEADER_SIZE + 10 + 10


@dataclass(frozen=True, slots=True)
class FramedEvent:
    """One event in a frame: its Kafka key, value and headers, and where it was first read."""

    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    source_topic: str | None = None
    source_offset: int | None = None


def encode_frame(codec: AvroCodec, events: Sequence[FramedEvent]) -> bytes:
    """The frame holding `events`, in order, single-object encoded."""
    return codec.encode(
        FRAME_SCHEMA,
        {
            "events": [
                {
                    "key": event.key,
                    "value": event.value,
                    "headers": event.headers,
                    "source_topic": event.source_topic,
                    "source_offset": event.source_offset,
                }
                for event in events
            ],
            "framed_at": time.time_ns() // 1_000_000,
        },
    )


def decode_frame(codec: AvroCodec, data: bytes) -> list[FramedEvent]:
    """The events of a frame written with any released version; anything else is BadInput."""
    decoded = codec.decode(data)
    if decoded.schema_name != FRAME_SCHEMA:
        raise BadInput(f"expected a frame ({FRAME_SCHEMA}), got a {decoded.schema_name}")
    # The codec resolved older writers to the current shape, so every field is present.
    return [
        FramedEvent(
            event["key"],
            event["value"],
            event["headers"],
            event["source_topic"],
            event["source_offset"],
        )
        for event in decoded.record["events"]
    ]


def encoded_size_bound(event: FramedEvent) -> int:
    """At least the bytes `event` adds to an encoded frame."""
    size = _EVENT_OVERHEAD + len(event.value)
    if event.key is not None:
        size += len(event.key)
    if event.source_topic is not None:
        size += len(event.source_topic)  # Kafka allows only ASCII in topic names
    for name, value in event.headers.items():
        # UTF-8 takes at most 4 bytes a character; cheaper than encoding every name.
        size += _HEADER_OVERHEAD + 4 * len(name) + len(value)
    return size


def frames_of(
    events: Iterable[FramedEvent], max_events: int, max_bytes: int
) -> Iterator[list[FramedEvent]]:
    """Cut a partition's events, order kept, into frames of at most `max_events` events that
    encode to at most `max_bytes` bytes; an event too large for any frame goes alone."""
    if max_events < 1 or max_bytes < 1:
        raise ValueError(f"frame limits must be positive: {max_events} events, {max_bytes} bytes")
    frame: list[FramedEvent] = []
    size = _FRAME_OVERHEAD
    for event in events:
        added = encoded_size_bound(event)
        if frame and (len(frame) == max_events or size + added > max_bytes):
            yield frame
            frame, size = [], _FRAME_OVERHEAD
        frame.append(event)
        size += added
    if frame:
        yield frame
