"""The webhook's Idempotency-Key answers: bounded in count and age, and read back from the
real broker only as far back as their time to live."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from confluent_kafka import Producer

from backbone.settings import BackboneSettings
from backbone.topics import Topics, ensure_topics
from connectors.runtime.publisher import Publisher
from connectors.social_care_webhook.idempotency import (
    Answer,
    Conflict,
    IdempotencyKeys,
    Remembered,
)
from connectors.social_care_webhook.idempotency_store import IdempotencyStore
from tests.conftest import Deployment

ACCEPTED = Answer(202, {"event_id": "e-1"})
HOUR = 3600.0


def test_an_answer_is_given_again_for_the_same_body_within_its_time_to_live() -> None:
    keys = IdempotencyKeys(capacity=10, ttl_s=HOUR)
    keys.remember("k", Remembered("digest", ACCEPTED, answered_at=1000.0))

    assert keys.previous("k", "digest", now=1000.0 + HOUR - 1) == ACCEPTED
    assert keys.previous("k", "digest", now=1000.0 + HOUR) is None
    assert keys.previous("unknown", "digest", now=1000.0) is None
    with pytest.raises(Conflict):
        keys.previous("k", "another digest", now=1000.0)


def test_the_oldest_keys_are_forgotten_beyond_the_capacity() -> None:
    keys = IdempotencyKeys(capacity=2, ttl_s=HOUR)
    for n, key in enumerate(("a", "b", "c")):
        keys.remember(key, Remembered(key, ACCEPTED, answered_at=1000.0 + n))

    assert keys.previous("a", "a", now=1003.0) is None
    assert keys.previous("b", "b", now=1003.0) == ACCEPTED
    assert keys.previous("c", "c", now=1003.0) == ACCEPTED


def test_expired_keys_are_dropped_from_memory_as_newer_answers_come() -> None:
    keys = IdempotencyKeys(capacity=10, ttl_s=HOUR)
    keys.remember("old", Remembered("old", ACCEPTED, answered_at=1000.0))
    keys.remember("new", Remembered("new", ACCEPTED, answered_at=1000.0 + HOUR))

    # Asked as of the old answer's time it would still be valid: it is gone, not just expired.
    assert keys.previous("old", "old", now=1000.0) is None
    assert keys.previous("new", "new", now=1000.0 + HOUR) == ACCEPTED


def test_only_the_answers_of_the_last_time_to_live_are_read_back(deployment: Deployment) -> None:
    settings = BackboneSettings(
        kafka_bootstrap=deployment.bootstrap,
        topic_prefix=deployment.prefix,
        pseudonym_key=deployment.pseudonym_key,
    )
    ensure_topics(settings)
    topic = Topics(deployment.prefix).webhook_idempotency
    written = Producer({"bootstrap.servers": deployment.bootstrap})
    now_ms = int(time.time() * 1000)
    old_key, recent_key = str(uuid.uuid4()), str(uuid.uuid4())
    for key, age_s in ((old_key, 2 * HOUR), (recent_key, 60.0)):
        value = {"body_digest": "d", "status": 202, "body": {"event_id": key}}
        written.produce(topic, json.dumps(value), key, timestamp=now_ms - int(age_s * 1000))
    assert written.flush(10) == 0

    async def read_back() -> tuple[Answer | None, Answer | None]:
        publisher = Publisher(deployment.bootstrap, "test-idempotency", 5.0)
        store = IdempotencyStore(deployment.bootstrap, topic, publisher, 100, ttl_s=HOUR)
        store.start()
        try:
            return (
                await store.previous(old_key, "d", wait_s=30.0),
                await store.previous(recent_key, "d", wait_s=30.0),
            )
        finally:
            store.stop()
            publisher.close()

    old, recent = asyncio.run(read_back())
    assert old is None
    assert recent == Answer(202, {"event_id": recent_key})
