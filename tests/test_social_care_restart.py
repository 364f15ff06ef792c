"""Killing the webhook connector mid-stream loses nothing: the sender retries what was not
answered 202, and the events on Kafka are exactly the ones sent (duplicates only as the same
event id, which the timeline drops). A delivery repeated after the restart gets the answer it
got before, and publishes nothing again."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from backbone.contracts import Agency
from backbone.topics import Topics
from cli.kafka_probe import read_all
from cli.processes import BackboneProcess
from connectors.social_care_webhook.mapping import event_id_for
from simulators.social_care import CaseEvent, CaseManagementSystem, CasePerson
from tests.conftest import Deployment

EVENTS = 400


def start_connector(deployment: Deployment, logs: Path) -> BackboneProcess:
    process = BackboneProcess.start(
        "social-care-webhook",
        ["connector", "run", "social-care-webhook"],
        deployment.env(),
        logs,
        f"http://127.0.0.1:{deployment.connector_metrics_port}/health",
    )
    process.wait_healthy()
    return process


def test_a_killed_connector_loses_nothing_and_invents_nothing(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs = tmp_path_factory.mktemp("logs")
    connector = start_connector(deployment, logs)
    start = datetime(2026, 5, 1, tzinfo=UTC)
    events = [
        CaseEvent(
            "case_opened",
            start + timedelta(minutes=n),
            f"C-{n}",
            CasePerson(f"CP-R{n}", "Ames", "Kit", date(1980, 1, 1)),
        )
        for n in range(EVENTS)
    ]
    keys = [str(uuid.uuid4()) for _ in events]
    accepted = threading.Semaphore(0)

    def sender() -> None:
        # The case system's contract: resend with the same key until it gets a final answer.
        system = CaseManagementSystem(
            f"http://127.0.0.1:{deployment.webhook_port}",
            deployment.webhook_secret.encode(),
            timeout_s=5.0,
        )
        for event, key in zip(events, keys, strict=True):
            while True:
                try:
                    if system.deliver(event, idempotency_key=key).status_code == 202:
                        accepted.release()
                        break
                except httpx.HTTPError:
                    pass
        system.close()

    thread = threading.Thread(target=sender)
    thread.start()
    for _ in range(EVENTS // 4):
        assert accepted.acquire(timeout=60)
    connector.process.kill()  # SIGKILL: no drain, no flush
    connector.process.wait()
    connector = start_connector(deployment, logs)
    thread.join(timeout=120)
    connector.stop()

    assert not thread.is_alive()
    topic = Topics(deployment.prefix).agency_events(Agency.SOCIAL_CARE)
    on_kafka = [r.headers["event_id"].decode() for r in read_all(deployment.bootstrap, topic)]
    assert set(on_kafka) == {event_id_for(event.event_id) for event in events}
    # The sender has one delivery in flight: at most that one was published but not answered.
    assert len(on_kafka) - len(set(on_kafka)) <= 1


def test_a_repeat_after_a_restart_gets_the_first_answer_and_publishes_nothing_again(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs = tmp_path_factory.mktemp("logs")
    url = f"http://127.0.0.1:{deployment.webhook_port}"
    event = CaseEvent(
        "case_opened",
        datetime(2026, 6, 1, tzinfo=UTC),
        "C-AGAIN",
        CasePerson("CP-AGAIN", "Ames", "Kit", date(1980, 1, 1)),
    )
    invalid = event.body() | {"occurred_at": "soon"}
    key, invalid_key = str(uuid.uuid4()), str(uuid.uuid4())

    connector = start_connector(deployment, logs)
    system = CaseManagementSystem(url, deployment.webhook_secret.encode())
    first = system.deliver(event, idempotency_key=key)
    first_invalid = system.deliver(invalid, idempotency_key=invalid_key)
    connector.process.kill()  # SIGKILL: whatever was answered must already be durable
    connector.process.wait()
    connector = start_connector(deployment, logs)
    repeat = system.deliver(event, idempotency_key=key)
    repeat_invalid = system.deliver(invalid, idempotency_key=invalid_key)
    other_body = system.deliver(replace(event, event_type="case_closed"), idempotency_key=key)
    system.close()
    connector.stop()

    assert first.status_code == repeat.status_code == 202
    assert repeat.json() == first.json()
    assert first_invalid.status_code == repeat_invalid.status_code == 400
    assert repeat_invalid.json() == first_invalid.json()
    assert other_body.status_code == 409
    topics = Topics(deployment.prefix)
    published = [
        record
        for record in read_all(deployment.bootstrap, topics.agency_events(Agency.SOCIAL_CARE))
        if record.headers["event_id"].decode() == first.json()["event_id"]
    ]
    assert len(published) == 1
    dead_letters = [
        record
        for record in read_all(deployment.bootstrap, topics.dead_letter)
        if str(event.event_id).encode() in (record.value or b"")
    ]
    assert len(dead_letters) == 1
