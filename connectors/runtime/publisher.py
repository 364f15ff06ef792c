"""An idempotent confluent-kafka producer that asyncio code can await per record."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from backbone.errors import TransientError

Headers = Sequence[tuple[str, bytes]]


class Publisher:
    """Publishes records and resolves each `publish` only when the broker acknowledged it.

    `enable.idempotence` with `acks=all` means a retried send is written once; awaiting the
    delivery report before answering the source means an acknowledged input is on Kafka.
    """

    def __init__(self, bootstrap: str, client_id: str, delivery_timeout_s: float) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                # The Java client's and aiokafka's (Faust's) partitioner: a key lands on the
                # partition Faust expects, so tables stay co-partitioned with their topics.
                "partitioner": "murmur2_random",
                "message.timeout.ms": int(delivery_timeout_s * 1000),
            }
        )
        self._running = True
        # Delivery reports are served by poll(); a thread keeps polling so the event loop
        # never blocks on librdkafka.
        self._poller = threading.Thread(target=self._poll, name=f"{client_id}-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.1)

    async def publish(self, topic: str, key: bytes, value: bytes, headers: Headers) -> None:
        """Write one record; raises TransientError when Kafka did not take it in time."""
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, delivered, err)

        try:
            self._producer.produce(
                topic, value, key, headers=[(k, v) for k, v in headers], on_delivery=on_delivery
            )
        except (BufferError, KafkaException) as exc:
            raise TransientError(f"Kafka producer cannot take the record: {exc}") from exc
        await delivered

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is in flight and stop; returns how many records were left undelivered."""
        left: int = self._producer.flush(timeout_s)
        self._running = False
        self._poller.join(timeout=1.0)
        return left


def _settle(future: asyncio.Future[None], err: KafkaError | None) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(TransientError(f"Kafka did not acknowledge the record: {err.str()}"))
