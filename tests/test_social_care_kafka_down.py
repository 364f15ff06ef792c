"""When Kafka cannot take an event, the webhook answers 503 so the sender retries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

from cli.processes import BackboneProcess, free_port
from simulators.social_care import CaseEvent, CaseManagementSystem, CasePerson
from tests.conftest import Deployment


@pytest.fixture
def connector_without_kafka(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CaseManagementSystem, str]]:
    env = deployment.env() | {
        "BACKBONE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # nothing listens there
        "BACKBONE_DELIVERY_TIMEOUT_S": "1",
    }
    health = f"http://127.0.0.1:{deployment.connector_metrics_port}/health"
    process = BackboneProcess.start(
        "social-care-webhook",
        ["connector", "run", "social-care-webhook"],
        env,
        tmp_path_factory.mktemp("logs"),
        health,
    )
    try:
        process.wait_healthy()
        system = CaseManagementSystem(
            f"http://127.0.0.1:{deployment.webhook_port}", deployment.webhook_secret.encode()
        )
        yield system, health
        system.close()
    finally:
        assert process.stop() == 0


def test_kafka_unreachable_gets_503_and_the_same_delivery_can_be_retried(
    connector_without_kafka: tuple[CaseManagementSystem, str],
) -> None:
    system, health = connector_without_kafka
    person = CasePerson("CP-503", "Ng", "Mei", date(1970, 1, 1))
    event = CaseEvent("case_opened", datetime(2026, 1, 1, tzinfo=UTC), "C-1", person)
    key = str(uuid.uuid4())

    first = system.deliver(event, idempotency_key=key)
    retry = system.deliver(event, idempotency_key=key)
    invalid = system.deliver(event.body() | {"occurred_at": "soon"})

    assert first.status_code == 503 and first.json()["error"] == "unavailable"
    # A 503 is not remembered: the retry is tried again, not answered from memory.
    assert retry.status_code == 503
    # Bad input whose dead letter cannot be written is refused too, so it is not lost.
    assert invalid.status_code == 503
    assert httpx.get(health).json()["kafka_topics"] is False
