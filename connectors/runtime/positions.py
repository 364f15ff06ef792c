"""Durable connector positions, kept the way Kafka Connect keeps source offsets.

A compacted topic holds, per connector and source partition (a table, a file, a folder), the
last position whose records Kafka has acknowledged: an LSN, a file checksum, a line number.
A connector saves a position only after every record up to it was acknowledged, so a restart
resumes there and at worst repeats records (downstream dedups by event id).
"""

from __future__ import annotations

import json
from typing import Any

from connectors.runtime.publisher import Publisher
from connectors.runtime.topic_reader import read_to_end


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
        prefix = f"{self._connector}\x1f".encode()
        positions: dict[str, Any] = {}
        for message in read_to_end(self._bootstrap, self._topic, timeout_s):
            key = message.key() or b""
            if key.startswith(prefix):
                source_partition = key[len(prefix) :].decode()
                value = message.value()
                if value is None:
                    positions.pop(source_partition, None)
                else:
                    positions[source_partition] = json.loads(value)["position"]
        return positions

    async def save(self, source_partition: str, position: Any) -> None:
        """Record `position` durably; call only once its records are acknowledged."""
        value = json.dumps({"position": position}).encode()
        await self._publisher.publish(self._topic, self._key(source_partition), value, [])
