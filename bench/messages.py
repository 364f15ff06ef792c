"""Kafka messages per agency event: what the whole deployment wrote to Kafka for each event.

A Faust agent pays about the same CPU per Kafka message whatever it holds, and every table
write is one more message (its changelog), so messages per event is the runtime's cost in one
number (README, "Frames between stages"). Counted after the run's phases, once everything sent
was processed, on every topic under the run's prefix: the agency topics themselves (one message
per event), the framed internal topics, the alert and audit topics, the dead letters and every
Faust changelog (`<prefix>-streams-*-changelog`). A topic's count is its high minus its low
watermark: nothing is deleted during a run (no retention has passed, compaction keeps offsets),
so that is every message written. (`cli.kafka_probe.message_count` counts high watermarks only,
the same here, and opens a consumer per topic; one consumer does it for all here.)
"""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

TIMEOUT_S = 10


def messages_per_event(bootstrap: str, prefix: str, agency_events: int) -> dict[str, Any]:
    """Messages on each topic under `prefix`, in all and per agency event sent."""
    counts = message_counts(bootstrap, prefix)
    per_event = max(agency_events, 1)
    return {
        "total": round(sum(counts.values()) / per_event, 3),
        "by_topic": {
            topic: round(count / per_event, 3)
            for topic, count in sorted(counts.items(), key=lambda item: -item[1])
        },
        "messages": counts,
        "agency_events": agency_events,
    }


def message_counts(bootstrap: str, prefix: str) -> dict[str, int]:
    """Messages on every topic whose name starts with `prefix`, by name without the prefix."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}"})
    try:
        topics = consumer.list_topics(timeout=TIMEOUT_S).topics
        counts = {}
        for name, metadata in topics.items():
            if not name.startswith(prefix):
                continue
            marks = [
                consumer.get_watermark_offsets(TopicPartition(name, part), timeout=TIMEOUT_S)
                for part in metadata.partitions
            ]
            counts[name[len(prefix) :].lstrip(".-")] = sum(high - low for low, high in marks)
        return counts
    finally:
        consumer.close()
