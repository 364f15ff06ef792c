"""Table writes of a frame, through librdkafka rather than Faust's producer.

Every Faust table write is a changelog message through Faust's producer (aiokafka, in Python):
about 0.1 ms each, and at the end of a frame hundreds of keys at once, which its buffer takes
faster than it sends them (a worker grew by gigabytes in a 1M replay, and spent minutes after
it sending). So `BatchedTable.flush` writes a frame's changed keys here instead: into the
table's store, and onto its changelog topic through one confluent-kafka producer, as the same
bytes Faust writes, so that recovery and standby replicas read them as Faust's own.

The agent waits (`delivered`) until the broker has acknowledged them before it takes its next
message, so Faust never commits a frame's offset before the frame's state is durable; then
each store's persisted offset moves to what was acknowledged, as Faust's own callback moves it,
and a recovery reads the changelog on from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from faust.stores.base import SerializedStore
from faust.tables.base import Collection
from faust.types import TP
from faust.types.stores import StoreT

from backbone.errors import FatalError

POLL_INTERVAL_S = 0.001  # a local broker answers in about a millisecond
Changes = Iterable[tuple[Any, Any]]  # (key, value); a value of None deletes the key


class ChangelogError(FatalError):
    """The broker did not take a table's changelog messages: the worker must stop, or its
    store and its changelog part."""


class TableChangelog:
    """One producer for every table's changelog in the worker."""

    def __init__(
        self,
        bootstrap: str,
        client_id: str,
        *,
        delivery_timeout_s: float = 120.0,
        client_config: Mapping[str, Any] | None = None,
    ) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "message.timeout.ms": int(delivery_timeout_s * 1000),
                **(client_config or {}),
            }
        )
        self._delivery_timeout_s = delivery_timeout_s
        # Per changelog partition, its store and the highest offset the broker acknowledged.
        self._acknowledged: dict[TP, tuple[StoreT[Any, Any], int]] = {}
        self._failures: list[str] = []

    def write(self, table: Collection, partition: int, changes: Changes) -> None:
        """Write `changes` to the table's store and queue them for its changelog `partition`."""
        store = table.data
        topic = table.changelog_topic.get_topic_name()
        tp = TP(topic, partition)
        for key, value in changes:
            key_bytes = store._encode_key(key)
            value_bytes = None if value is None else store._encode_value(value)
            _write_store(store, key, value, key_bytes, value_bytes)
            self._producer.produce(
                topic,
                value_bytes,
                key_bytes,
                partition=partition,
                on_delivery=partial(self._on_delivery, store, tp),
            )

    def _on_delivery(
        self, store: StoreT[Any, Any], tp: TP, error: KafkaError | None, message: Message
    ) -> None:
        if error is not None:
            self._failures.append(f"{tp.topic}[{tp.partition}]: {error.str()}")
            return
        offset = message.offset()
        if offset is not None and offset > self._acknowledged.get(tp, (store, -1))[1]:
            self._acknowledged[tp] = (store, offset)

    async def delivered(self) -> None:
        """Wait until the broker acknowledged every queued write; raise if it refused one."""
        # Polled on the event loop rather than flushed in a thread: the delivery callbacks then
        # run here, between the agents' steps, and the loop stays free meanwhile.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._delivery_timeout_s + 5
        while len(self._producer):  # librdkafka's count of unanswered messages
            self._producer.poll(0)
            if loop.time() > deadline:
                self._failures.append(f"{len(self._producer)} messages unanswered in time")
                break
            await asyncio.sleep(POLL_INTERVAL_S)
        acknowledged, self._acknowledged = self._acknowledged, {}
        for tp, (store, offset) in acknowledged.items():
            store.set_persisted_offset(tp, offset)
        if self._failures:
            failures, self._failures = self._failures, []
            raise ChangelogError(f"table changelog writes failed: {'; '.join(failures)}")


def _write_store(
    store: StoreT[Any, Any], key: Any, value: Any, key_bytes: bytes, value_bytes: bytes | None
) -> None:
    """The store's own write, from the bytes already encoded when it keeps bytes."""
    if isinstance(store, SerializedStore):  # RocksDB: the bytes encoded once, for both
        if value_bytes is None:
            store._del(key_bytes)
        else:
            store._set(key_bytes, value_bytes)
    elif value is None:
        store.pop(key, None)
    else:
        store[key] = value
