"""`backbone demo`: everything running locally, with sample agency traffic and its results.

Starts the local broker (if it is not running), a stream worker and the social care webhook
connector as child processes with fresh secrets and a fresh topic prefix, plays the social care
simulator's story, then prints what the backbone made of it: answers, timelines, and where the
API and the metrics are.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from backbone.processes import BackboneProcess, stop_all
from backbone.settings import REPO_ROOT
from backbone.tokens import issue_token
from simulators.social_care import CaseManagementSystem
from simulators.stories import Story, demo_story

KAFKA_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"
WORKER_PORT = 6066
WEBHOOK_PORT = 8081
CONNECTOR_METRICS_PORT = 9101


def _say(text: str = "") -> None:
    print(text, flush=True)


def _broker_running() -> bool:
    return subprocess.call([str(KAFKA_SCRIPT), "status"], stderr=subprocess.DEVNULL) == 0


def _timeline_of(api: httpx.Client, case_person_id: str) -> dict[str, Any] | None:
    """The timeline of a social care case person, or None while the worker has none."""
    found = api.get(
        "/persons/lookup",
        params={"agency": "social_care", "id_type": "case_person_id", "id": case_person_id},
    )
    if found.status_code != 200:
        return None
    answer = api.get(f"/persons/{found.json()['person_id']}/timeline")
    timeline: dict[str, Any] = answer.json()
    return timeline if answer.status_code == 200 else None


def _wait_for_timelines(api: httpx.Client, story: Story, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = {}
        for label, case_person_id in story.people.items():
            timeline = _timeline_of(api, case_person_id)
            counts[label] = len(timeline["events"]) if timeline else 0
        if counts == story.expected_events:
            return
        time.sleep(0.3)


def _print_timeline(api: httpx.Client, label: str, case_person_id: str) -> None:
    timeline = _timeline_of(api, case_person_id)
    if timeline is None:
        _say(f"\n  {label} (case person {case_person_id}): no timeline")
        return
    _say(f"\n  {label} (case person {case_person_id}) is person {timeline['person_id']}")
    for member in timeline["household"]:
        _say(f"    household: {member['relationship']:<8} {member['person_id']}")
    for event in timeline["events"]:
        _say(f"    {event['occurred_at'][:16]}  {event['summary']:<44} {event['event_id'][:8]}")


def _stop_on_interrupt() -> None:
    # SIGTERM ends the demo as Ctrl-C does, so a supervisor can stop it cleanly too; SIGINT
    # is set explicitly because a shell starts background jobs with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def run_demo(wait: bool) -> None:
    """Run the demo; with `wait`, keep everything up until Ctrl-C."""
    run_id = time.strftime("%Y%m%d%H%M%S")
    logs = Path(".backbone") / f"demo-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    webhook_secret = secrets.token_hex(32)
    token_secret = secrets.token_hex(32)
    env = {
        **os.environ,
        "BACKBONE_TOPIC_PREFIX": f"demo-{run_id}",
        "BACKBONE_PSEUDONYM_KEY": secrets.token_hex(32),
        "BACKBONE_WEBHOOK_SECRET": webhook_secret,
        "BACKBONE_TOKEN_SECRET": token_secret,
        "BACKBONE_DATA_DIR": str(logs / "state"),
        "BACKBONE_WORKER_PORT": str(WORKER_PORT),
        "BACKBONE_WEBHOOK_PORT": str(WEBHOOK_PORT),
        "BACKBONE_METRICS_PORT": str(CONNECTOR_METRICS_PORT),
    }
    _stop_on_interrupt()
    started_broker = not _broker_running()
    if started_broker:
        _say("Starting the local Kafka broker (first run fetches its jars from Maven Central) ...")
        subprocess.run([str(KAFKA_SCRIPT), "start"], check=True)
    children: list[BackboneProcess] = []
    try:
        _say("Starting the stream worker and the social care webhook connector ...")
        children.append(
            BackboneProcess.start(
                "worker", ["worker"], env, logs, f"http://127.0.0.1:{WORKER_PORT}/health"
            )
        )
        children.append(
            BackboneProcess.start(
                "social-care-webhook",
                ["connector", "run", "social-care-webhook"],
                env,
                logs,
                f"http://127.0.0.1:{CONNECTOR_METRICS_PORT}/health",
            )
        )
        for child in children:
            child.wait_healthy()
        _play_and_show(webhook_secret.encode(), token_secret.encode())
        _say(f"\nCoordinator API   http://127.0.0.1:{WORKER_PORT}/persons/...  (token below)")
        _say(f"Worker metrics    http://127.0.0.1:{WORKER_PORT}/metrics")
        _say(f"Connector metrics http://127.0.0.1:{CONNECTOR_METRICS_PORT}/metrics")
        _say(f"Webhook endpoint  http://127.0.0.1:{WEBHOOK_PORT}/webhooks/social-care")
        _say(f"Process logs      {logs}/")
        if wait:
            _say("\nRunning. Press Ctrl-C to stop everything.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        _say("Stopping ...")
        stop_all(children)
        if started_broker:
            subprocess.run([str(KAFKA_SCRIPT), "stop"], check=False)


def _play_and_show(webhook_secret: bytes, token_secret: bytes) -> None:
    story = demo_story()
    system = CaseManagementSystem(f"http://127.0.0.1:{WEBHOOK_PORT}", webhook_secret)
    _say("\nSocial care system delivers its webhooks:")
    for step in story.steps:
        answer = system.deliver(
            step.payload, idempotency_key=step.idempotency_key, signature=step.signature
        )
        _say(f"  {step.label:<52} -> {answer.status_code} {json.dumps(answer.json())}")
    system.close()

    token = issue_token(token_secret, "demo-coordinator", ["children-services"], "social_worker")
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{WORKER_PORT}",
        timeout=10.0,
        headers={"Authorization": f"Bearer {token}", "X-Purpose": "case_management"},
    )
    _wait_for_timelines(api, story)
    _say("\nUnified timelines (GET /persons/{id}/timeline):")
    for label, case_person_id in story.people.items():
        _print_timeline(api, label, case_person_id)
    _say(f"\nA coordinator token for the API (role social_worker):\n  {token}")
