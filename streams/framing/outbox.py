"""Events a stage sends on, gathered per destination partition and sent as frames.

A stage that handles a frame sends its results as frames too: each outgoing event goes to the
partition Kafka's default partitioner would give its key (murmur2, as librdkafka and aiokafka
compute it), so a frame holds only events of one partition and the next stage's tables stay
co-partitioned with their keys.
"""

from __future__ import annotations

from collections import defaultdict

import faust
from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]

from backbone.codec import AvroCodec
from backbone.frames import FramedEvent, encode_frame, frames_of

MAX_EVENTS_PER_FRAME = 500
MAX_FRAME_BYTES = 900_000  # under Kafka's default 1 MiB message limit


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` among `partitions`."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


class FrameOutbox:
    """Collects one frame's outgoing events for a topic and sends them as frames."""

    def __init__(self, topic: faust.TopicT, partitions: int, codec: AvroCodec) -> None:
        self.topic = topic
        self.partitions = partitions
        self.codec = codec
        self._pending: dict[int, list[FramedEvent]] = defaultdict(list)

    def add(self, event: FramedEvent) -> None:
        """Queue `event` for the partition of its key."""
        assert event.key is not None, "a framed event needs a key to find its partition"  # nosec B101 # the invariant its message states
        self._pending[partition_of(event.key, self.partitions)].append(event)

    def __len__(self) -> int:
        return sum(len(events) for events in self._pending.values())

    async def send(self) -> int:
        """Send every queued event in frames, one partition's in order; returns the count."""
        # Taken before the first await: events another agent adds meanwhile wait for its
        # own send, instead of being cleared unsent by this one.
        pending, self._pending = self._pending, defaultdict(list)
        sent = 0
        for partition, events in sorted(pending.items()):
            for frame in frames_of(events, MAX_EVENTS_PER_FRAME, MAX_FRAME_BYTES):
                await self.topic.send(value=encode_frame(self.codec, frame), partition=partition)
                sent += len(frame)
        return sent
