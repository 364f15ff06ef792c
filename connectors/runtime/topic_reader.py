"""Reading back a connector's own single-partition topic (its positions, its idempotency
answers) at start: from the beginning, or from a point in time, up to the end it had then."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from backbone.errors import TransientError


def read_to_end(
    bootstrap: str, topic: str, timeout_s: float, since_ms: int | None = None
) -> Iterator[Message]:
    """Every record of partition 0 of `topic`, in offset order, up to its end when called.

    With `since_ms` (milliseconds since the epoch), from the first record written at or after
    it; records written before are skipped without being fetched. TransientError when Kafka
    does not answer within `timeout_s`.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-back-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        end = _high_watermark(consumer, TopicPartition(topic, 0), timeout_s)
        start = 0 if since_ms is None else _offset_at(consumer, topic, since_ms, timeout_s)
        if start is None or start >= end:
            return
        consumer.assign([TopicPartition(topic, 0, start)])
        while True:
            message = consumer.poll(timeout_s)
            if message is None:
                raise TransientError(f"topic {topic} did not answer")
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return
                raise TransientError(f"cannot read {topic}: {error}")
            yield message
            offset = message.offset()
            if offset is not None and offset + 1 >= end:
                return
    finally:
        consumer.close()


def _offset_at(consumer: Consumer, topic: str, since_ms: int, timeout_s: float) -> int | None:
    """The offset of the first record with a timestamp at or after `since_ms`; None if none."""
    try:
        found = consumer.offsets_for_times([TopicPartition(topic, 0, since_ms)], timeout_s)
    except KafkaException as exc:
        raise TransientError(f"cannot look up {topic} by time: {exc}") from exc
    offset: int = found[0].offset
    return None if offset < 0 else offset


def _high_watermark(consumer: Consumer, partition: TopicPartition, timeout_s: float) -> int:
    """The partition's end offset; retried while a new topic's leader is still settling."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            end: int = consumer.get_watermark_offsets(partition, timeout=timeout_s)[1]
            return end
        except KafkaException as exc:
            # NOT_LEADER_FOR_PARTITION right after creation is not flagged retriable, but is.
            if time.monotonic() > deadline:
                raise TransientError(f"cannot read the end of {partition.topic}: {exc}") from exc
            time.sleep(0.1)
