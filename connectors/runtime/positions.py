"""Durable connector positions, kept the way Kafka Connect keeps source offsets.

A compacted topic holds, per connector and source partition (a table, a file, a folder), the
last position whose records Kafka has acknowledged: an LSN, a file checksum, a line number.
A connector saves a position only after every record up to it was acknowledged, so a restart
resumes there and at worst repeats records (downstream dedups by event id).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from backbone.errors import TransientError
from connectors.runtime.publisher import Publisher


class PositionStore:
    """Reads and writes one connector's positions in the compacted positions topic."""

    def __init__(self, bootstrap: str, topic: str, connector: str, publisher: Publisher) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._connector = connector
        self._publisher = publisher

    def _key(self, source_partition: str) -> bytes:
        return f"{self._connector}\x1f{source_partition}".encode()

    def load(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """The last saved position of every source partition of this connector."""
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": f"positions-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        prefix = f"{self._connector}\x1f".encode()
        positions: dict[str, Any] = {}
        try:
            end = _high_watermark(consumer, TopicPartition(self._topic, 0), timeout_s)
            if end == 0:
                return positions
            consumer.assign([TopicPartition(self._topic, 0, 0)])
            while True:
                message = consumer.poll(timeout_s)
                if message is None:
                    raise TransientError(f"positions topic {self._topic} did not answer")
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        break
                    raise TransientError(f"cannot read {self._topic}: {error}")
                key = message.key() or b""
                if key.startswith(prefix):
                    source_partition = key[len(prefix) :].decode()
                    value = message.value()
                    if value is None:
                        positions.pop(source_partition, None)
                    else:
                        positions[source_partition] = json.loads(value)["position"]
                offset = message.offset()
                if offset is not None and offset + 1 >= end:
                    break
        finally:
            consumer.close()
        return positions

    async def save(self, source_partition: str, position: Any) -> None:
        """Record `position` durably; call only once its records are acknowledged."""
        value = json.dumps({"position": position}).encode()
        await self._publisher.publish(self._topic, self._key(source_partition), value, [])


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
