"""Reading topics directly, to check what really is (and is not) on Kafka: for tests,
benchmarks and operators' scripts, never on a processing path."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None  # None: a tombstone
    headers: dict[str, bytes]


def message_count(bootstrap: str, topic: str) -> int:
    """How many records the topic holds (sum of high watermarks; nothing is deleted in tests)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, timeout_s: float = 20.0) -> list[Record]:
    """Every record now on the topic, read from the beginning up to the high watermarks."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"probe-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                continue
            raw = message.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            headers = {k: v for k, v in pairs if isinstance(v, bytes)}
            records.append(Record(message.key(), message.value(), headers))
            offset, partition = message.offset(), message.partition()
            if offset is not None and partition is not None and offset + 1 >= ends[partition]:
                pending.discard(partition)
        if pending:
            raise AssertionError(f"could not read all of {topic} within {timeout_s} s")
        return records
    finally:
        consumer.close()


def uncommitted(bootstrap: str, group: str, topics: list[str]) -> list[str]:
    """The partitions of `topics` where `group` has not committed up to the high watermark,
    each as `topic[partition]: committed of high` (empty when the group is caught up). Asks
    the committed offsets only: it never subscribes, so it never joins the group."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        wanted = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        behind = []
        for committed in consumer.committed(wanted, timeout=10):
            high = consumer.get_watermark_offsets(committed, timeout=10)[1]
            if high > 0 and committed.offset < high:  # < 0: nothing committed
                behind.append(
                    f"{committed.topic}[{committed.partition}]: {committed.offset} of {high}"
                )
        return behind
    finally:
        consumer.close()
