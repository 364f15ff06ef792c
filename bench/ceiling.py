"""Ceiling: the most this machine does with these events, a plain consumer that only reads.

One confluent-kafka consumer, no group work, assigned every partition of the agency topics
from the beginning to the high watermarks, decoding each event with the project's codec
(single-object Avro, cached schemas) and nothing more. The same events the workers processed,
on the same broker, in the same run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from backbone.codec import AvroCodec

BATCH = 1000
# Given up only when nothing more arrives for this long: a slow reader (the logic phase
# processes each event as it is read) may take far longer than this over 1M events.
STALL_S = 60
Record = dict[str, Any]


@dataclass(frozen=True)
class Ceiling:
    """Events read and decoded, and how fast."""

    events: int
    seconds: float
    events_per_s: float

    def as_json(self) -> dict[str, object]:
        """The figures for the report."""
        return asdict(self)


def read_and_decode(bootstrap: str, topics: list[str], codec: AvroCodec) -> Ceiling:
    """Read every event now on `topics` and decode it; events/s from the first read."""
    decoded = 0
    started = time.perf_counter()
    for _ in agency_records(bootstrap, topics, codec):
        decoded += 1
    seconds = time.perf_counter() - started
    return Ceiling(decoded, round(seconds, 3), round(decoded / seconds, 1))


def agency_records(bootstrap: str, topics: list[str], codec: AvroCodec) -> Iterator[Record]:
    """Every event now on `topics`, decoded, partition by partition as a consumer gets them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-ceiling-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
        }
    )
    try:
        ends = _ends(consumer, topics)
        expected = sum(ends.values())
        consumer.assign([TopicPartition(topic, part, 0) for (topic, part) in ends])
        decoded = 0
        last_read = time.monotonic()
        while decoded < expected:
            messages = consumer.consume(BATCH, timeout=1.0)
            if messages:
                last_read = time.monotonic()
            elif time.monotonic() - last_read > STALL_S:
                raise TimeoutError(f"read {decoded} of {expected} events, none for {STALL_S} s")
            for message in messages:
                value = message.value()
                if message.error() is None and value is not None:
                    yield codec.decode(value).record
                    decoded += 1
    finally:
        consumer.close()


def _ends(consumer: Consumer, topics: list[str]) -> dict[tuple[str, int], int]:
    ends = {}
    for topic in topics:
        for part in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            ends[(topic, part)] = consumer.get_watermark_offsets(
                TopicPartition(topic, part), timeout=10
            )[1]
    return ends
