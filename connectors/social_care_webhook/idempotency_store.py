"""The webhook's answers per Idempotency-Key, kept across restarts on a compacted topic.

Every final answer is written to `<prefix>.webhook-idempotency` (key: the Idempotency-Key;
value: the body's SHA-256 and the answer, as JSON) and acknowledged by Kafka before it is
given; at start the answers of the last time to live are read back from it. Until they are, a
delivery with a key waits for them, at most the delivery timeout, and is then refused (503):
no repeat is answered, or published again, without them.
"""

from __future__ import annotations

import asyncio
import json
import time

from backbone.errors import TransientError
from backbone.logging import get_logger
from connectors.runtime.publisher import Publisher
from connectors.runtime.topic_reader import read_to_end
from connectors.social_care_webhook.idempotency import Answer, IdempotencyKeys, Remembered

log = get_logger(__name__)
READ_TIMEOUT_S = 5.0
RETRY_MAX_S = 30.0


class IdempotencyStore:
    """Answers looked up in memory and made durable on the idempotency topic."""

    def __init__(
        self, bootstrap: str, topic: str, publisher: Publisher, capacity: int, ttl_s: float
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._publisher = publisher
        self._capacity = capacity
        self._ttl_s = ttl_s
        self._keys = IdempotencyKeys(capacity, ttl_s)
        self._read_back = asyncio.Event()
        self._reading: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reading back the answers given before, retried until Kafka answers."""
        self._reading = asyncio.create_task(self._read_back_until_done())

    def stop(self) -> None:
        """Stop reading back, if still at it."""
        if self._reading is not None:
            self._reading.cancel()

    async def previous(self, key: str, body_digest: str, wait_s: float) -> Answer | None:
        """The answer given to this key and body before (Conflict for another body).

        TransientError if the earlier answers are not read back within `wait_s`.
        """
        if not self._read_back.is_set():
            try:
                await asyncio.wait_for(self._read_back.wait(), wait_s)
            except TimeoutError:
                raise TransientError("the answers given before are not read back yet") from None
        return self._keys.previous(key, body_digest, time.time())

    async def remember(self, key: str, body_digest: str, answer: Answer) -> None:
        """Write the answer to the topic and keep it; TransientError if Kafka did not take it."""
        value = {"body_digest": body_digest, "status": answer.status, "body": answer.body}
        await self._publisher.publish(self._topic, key.encode(), json.dumps(value).encode(), [])
        self._keys.remember(key, Remembered(body_digest, answer, time.time()))

    async def _read_back_until_done(self) -> None:
        delay = 0.5
        while True:
            try:
                self._keys = await asyncio.to_thread(self._read, time.time())
            except TransientError as exc:
                log.warning("idempotency_keys_unreadable", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            else:
                self._read_back.set()
                return

    def _read(self, now: float) -> IdempotencyKeys:
        """The answers of the last time to live, as on the topic now (blocking)."""
        keys = IdempotencyKeys(self._capacity, self._ttl_s)
        since_ms = int((now - self._ttl_s) * 1000)
        count = 0
        for message in read_to_end(self._bootstrap, self._topic, READ_TIMEOUT_S, since_ms):
            key, value = message.key(), message.value()
            if key is None or value is None:  # a tombstone; the webhook writes none
                continue
            stored = json.loads(value)
            answer = Answer(stored["status"], stored["body"])
            answered_at = message.timestamp()[1] / 1000  # the producer's clock, as ours
            keys.remember(key.decode(), Remembered(stored["body_digest"], answer, answered_at))
            count += 1
        log.info("idempotency_keys_read_back", topic=self._topic, answers=count)
        return keys
