"""The alert lifecycle end to end: `raised` AlertEvents on the real alerts topic, one real
worker, the coordinator API, escalation, and notifications to a real aiosmtpd server and a real
aiohttp webhook receiver, exactly once per recipient even when the worker is SIGKILLed right
after the first delivery arrived.

The test plays the alert engine: it produces `raised` AlertEvents in the contract's shape
(backbone.alerts.AlertEvent, single-object Avro) keyed by alert id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from confluent_kafka import Producer

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import ALERT_SCHEMA
from backbone.settings import REPO_ROOT
from backbone.tokens import issue_token
from backbone.topics import Topics
from cli.kafka_probe import read_all
from cli.processes import BackboneProcess, free_port
from streams.alerting.alert import Alert, ExplainedEvent
from streams.alerting.lifecycle import (
    AlertState,
    Change,
    Step,
    alert_of,
    apply_change,
    escalation_due,
    refusal,
    step_id,
)
from streams.alerting.lifecycle_agent import step_of
from streams.alerting.notifications import (
    Recipient,
    Routing,
    RoutingFileError,
    load_routing,
    parse_routing,
    signature,
)
from streams.alerting.notifications.routing import SAMPLE_ROUTING
from streams.alerting.rules import load_rules
from tests.conftest import SAMPLE_HOOKS, Deployment, wait_until

HOOK_SECRET = "lifecycle-hook-secret"
URGENT_AFTER_S = 6
HOLD_S = 30.0  # far longer than the test takes to kill the worker
CODEC = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))


# --- the receivers: a real SMTP server and a real webhook receiver -----------------------


@dataclass
class Arrivals:
    """Every notification the receivers got, as (recipient, alert id, delivery key)."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, recipient: str, alert_id: str, key: str) -> None:
        with self.lock:
            self.seen.append((recipient, alert_id, key))

    def count(self, recipient: str, alert_id: str) -> int:
        """How many requests (repeats included) a recipient got for an alert."""
        with self.lock:
            return sum(1 for seen in self.seen if seen[:2] == (recipient, alert_id))

    def keys(self, alert_id: str) -> dict[str, set[str]]:
        """Per recipient, the distinct delivery keys that arrived for an alert."""
        with self.lock:
            found: dict[str, set[str]] = {}
            for recipient, seen_alert, key in self.seen:
                if seen_alert == alert_id:
                    found.setdefault(recipient, set()).add(key)
            return found


@dataclass
class Mailbox:
    """aiosmtpd handler: each message to each of its recipients is one arrival."""

    arrivals: Arrivals

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        message: Message = message_from_bytes(envelope.original_content or b"")
        for recipient in envelope.rcpt_tos:
            self.arrivals.add(
                f"email:{recipient}",
                str(message["X-Backbone-Alert"]),
                str(message["X-Backbone-Delivery"]),
            )
        return "250 OK"


class WebhookReceiver:
    """aiohttp on its own thread: verifies the signature, records the idempotency key.

    For the alert it is told to hold, it signals the test on the first request and answers
    only after HOLD_S, so the worker is killed after sending and before it saw the answer.
    """

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        self.port = free_port()
        self.bad_signatures = 0
        self.hold: str | None = None
        self.held = threading.Event()
        self._release = asyncio.Event()  # ends a held request when the receiver stops
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/team-a"

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "webhook receiver did not start"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._release.set)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("X-Signature") != signature(HOOK_SECRET, body):
            self.bad_signatures += 1
            return web.Response(status=401)
        payload = await request.json()
        key = request.headers["Idempotency-Key"]
        alert_id = payload["alert"]["alert_id"]
        self.arrivals.add(f"webhook:{self.url}", alert_id, key)
        if alert_id == self.hold and not self.held.is_set():
            self.held.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), HOLD_S)
        return web.Response(status=200)

    async def refuse(self, _request: web.Request) -> web.Response:
        return web.Response(status=400, text="no such team here")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hooks/{team}", self.handle)
        app.router.add_post("/refuse", self.refuse)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())


# --- the deployment ----------------------------------------------------------------------


@dataclass
class Lifecycle:
    deployment: Deployment
    worker: BackboneProcess
    logs: Path
    extra: dict[str, str]
    arrivals: Arrivals
    webhook: WebhookReceiver
    producer: Producer

    @property
    def topics(self) -> Topics:
        return Topics(self.deployment.prefix)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.deployment.worker_port}"

    def headers(self, name: str, team: str, role: str = "coordinator") -> dict[str, str]:
        token = issue_token(self.deployment.token_secret.encode(), name, [team], role)
        return {"Authorization": f"Bearer {token}", "X-Purpose": "case_management"}

    def restart_worker(self) -> None:
        self.worker = self.deployment.start_worker(self.logs, self.extra)
        self.worker.wait_healthy()

    def raise_alert(self, severity: str, team: str, rule_id: str = "R1") -> str:
        """Produce a `raised` AlertEvent, as the alert engine does; the alert id."""
        alert_id = str(uuid.uuid4())
        value = CODEC.encode(ALERT_SCHEMA, raised_event(alert_id, severity, team, rule_id))
        self.producer.produce(self.topics.alerts, key=alert_id.encode(), value=value)
        assert self.producer.flush(10) == 0
        return alert_id

    def get(self, path: str, team: str = "team-a", **params: str) -> httpx.Response:
        headers = self.headers("ann", team)
        return httpx.get(f"{self.base}{path}", params=params, headers=headers, timeout=15)

    def post(
        self, path: str, body: dict[str, Any] | None = None, name: str = "ann", team: str = "team-a"
    ) -> httpx.Response:
        headers = self.headers(name, team)
        return httpx.post(f"{self.base}{path}", json=body, headers=headers, timeout=15)

    def alert(self, alert_id: str, team: str = "team-a") -> dict[str, Any]:
        """The alert once the worker has it."""
        found: dict[str, Any] = {}

        def arrived() -> bool:
            answer = self.get(f"/alerts/{alert_id}", team)
            if answer.status_code == 200:
                found.update(answer.json())
            return bool(found)

        wait_until(arrived, 30, f"alert {alert_id} on the API")
        return found


def raised_event(alert_id: str, severity: str, team: str, rule_id: str) -> dict[str, Any]:
    """A `raised` AlertEvent in the contract's shape."""
    at = datetime.now(UTC) - timedelta(hours=2)
    person = uuid.uuid4().hex
    events = [
        {
            "event_id": f"ev-{uuid.uuid4()}",
            "event_type": event_type,
            "agency": agency,
            "occurred_at": at + timedelta(minutes=minutes),
            "person_id": person,
        }
        for event_type, agency, minutes in (
            ("homelessness_application", "housing", 0),
            ("discharge", "health", 30),
        )
    ]
    return {
        "event_id": f"{alert_id}:raised",
        "alert_id": alert_id,
        "change": "raised",
        "at": datetime.now(UTC),
        "by": None,
        "note": None,
        "alert": {
            "rule_id": rule_id,
            "rule_version": 3,
            "rule_name": "discharge-into-homelessness",
            "severity": severity,
            "teams": [team],
            "person_id": person,
            "household_person_ids": [],
            "anchor_event_id": events[1]["event_id"],
            "anchor_at": events[1]["occurred_at"],
            "matched_at": events[1]["occurred_at"],
            "text": "A patient leaves hospital with nowhere to live",
            "events": events,
        },
        "added_events": [],
        "legal_basis": "health_and_social_care",
        "sensitivity": "special_category",
    }


ROUTING = """
teams:
  team-a:
    - webhook: {{url: "{hook}", secret_env: BACKBONE_NOTIFY_SECRET_TEST}}
    - email: {{to: team-a@example.org}}
  team-b:
    - email: {{to: team-b@example.org}}
  team-c:
    - webhook: {{url: "{refusing}", secret_env: BACKBONE_NOTIFY_SECRET_TEST}}
escalation:
  team-a:
    - email: {{to: escalation-a@example.org}}
  team-b:
    - email: {{to: escalation-b@example.org}}
"""


@pytest.fixture(scope="module")
def lifecycle(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lifecycle]:
    logs = tmp_path_factory.mktemp("logs")
    arrivals = Arrivals()
    webhook = WebhookReceiver(arrivals)
    webhook.start()
    smtp_port = free_port()
    smtp = Controller(Mailbox(arrivals), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    routing = logs / "routing.yaml"
    refusing = f"http://127.0.0.1:{webhook.port}/refuse"
    routing.write_text(ROUTING.format(hook=webhook.url, refusing=refusing))
    extra = {
        "BACKBONE_NOTIFY_ROUTING_FILE": str(routing),
        "BACKBONE_NOTIFY_SECRET_TEST": HOOK_SECRET,
        "BACKBONE_NOTIFY_SMTP_PORT": str(smtp_port),
        "BACKBONE_NOTIFY_BACKOFF_BASE": "0.2",
        "BACKBONE_ALERT_ESCALATION_URGENT_S": str(URGENT_AFTER_S),
        "BACKBONE_ALERT_ESCALATION_CHECK_S": "0.5",
        "BACKBONE_WORKER_SESSION_TIMEOUT_S": "8",
    }
    worker = deployment.start_worker(logs, extra)
    producer = Producer({"bootstrap.servers": deployment.bootstrap, "acks": "all"})
    state = Lifecycle(deployment, worker, logs, extra, arrivals, webhook, producer)
    try:
        worker.wait_healthy()
        yield state
    finally:
        state.worker.stop()
        smtp.stop()
        webhook.stop()


def alert_events(state: Lifecycle, alert_id: str) -> list[dict[str, Any]]:
    """The AlertEvents of one alert now on the alerts topic, in order."""
    records = read_all(state.deployment.bootstrap, state.topics.alerts)
    decoded = [CODEC.decode(record.value).record for record in records if record.value]
    return [record for record in decoded if record["alert_id"] == alert_id]


# --- the lifecycle rules, without Kafka ----------------------------------------------------


def a_step(change: Change, alert: Alert | None = None, **fields: Any) -> Step:
    return Step(
        event_id=step_id("a-1", change),
        alert_id="a-1",
        change=change,
        at=datetime.now(UTC).isoformat(),
        alert=alert,
        **fields,
    )


def an_open_alert(severity: str = "urgent", raised_ago: timedelta = timedelta()) -> AlertState:
    record = raised_event("a-1", severity, "team-a", "R1")
    step = step_of({**record, "at": datetime.now(UTC) - raised_ago})
    state = apply_change(None, step)
    assert state is not None
    return state


def test_an_alert_is_acknowledged_once_and_resolved_once() -> None:
    state = an_open_alert()
    assert state["status"] == "open" and not state["escalated"]
    assert apply_change(state, step_of(raised_event("a-1", "urgent", "team-a", "R1"))) is None

    acknowledged = apply_change(state, a_step(Change.ACKNOWLEDGED, by="ann", note="on it"))
    assert acknowledged is not None and acknowledged["status"] == "acknowledged"
    assert refusal(acknowledged, Change.ACKNOWLEDGED) is not None
    assert apply_change(acknowledged, a_step(Change.ACKNOWLEDGED, by="bob")) is None
    resolved = apply_change(acknowledged, a_step(Change.RESOLVED, by="bob", note="housed"))
    assert resolved is not None and resolved["status"] == "resolved"
    assert refusal(resolved, Change.RESOLVED) is not None
    assert refusal(resolved, Change.ACKNOWLEDGED) is not None
    assert [(h["change"], h["by"]) for h in resolved["history"]] == [
        ("raised", None),
        ("acknowledged", "ann"),
        ("resolved", "bob"),
    ]
    # An open alert may be resolved without being acknowledged.
    assert refusal(state, Change.RESOLVED) is None


def test_escalation_is_due_once_per_open_alert_after_its_severitys_time() -> None:
    after = {"urgent": timedelta(hours=1), "high": timedelta(hours=4)}
    now = datetime.now(UTC)
    overdue = an_open_alert("urgent", timedelta(minutes=61))
    assert escalation_due(overdue, now, after)
    assert not escalation_due(an_open_alert("urgent", timedelta(minutes=59)), now, after)
    assert not escalation_due(an_open_alert("high", timedelta(minutes=61)), now, after)
    assert not escalation_due(an_open_alert("info", timedelta(days=9)), now, after)

    escalated = apply_change(overdue, a_step(Change.ESCALATED))
    assert escalated is not None and escalated["escalated"]
    assert not escalation_due(escalated, now, after)
    assert apply_change(escalated, a_step(Change.ESCALATED)) is None
    acknowledged = apply_change(overdue, a_step(Change.ACKNOWLEDGED, by="ann"))
    assert acknowledged is not None and not escalation_due(acknowledged, now, after)


def test_an_absorbed_match_adds_its_new_events_to_the_explanation() -> None:
    state = an_open_alert()
    known = state["explanation"]["events"][0]
    new = {**known, "event_id": "ev-new", "occurred_at": "2020-01-01T00:00:00.000000+00:00"}
    absorbed = apply_change(
        state,
        a_step(Change.ABSORBED, added_events=(ExplainedEvent(**known), ExplainedEvent(**new))),
    )
    assert absorbed is not None
    assert [e["event_id"] for e in absorbed["explanation"]["events"]] == [
        "ev-new",
        *(e["event_id"] for e in state["explanation"]["events"]),
    ]
    assert alert_of(absorbed).explanation.events[0].event_id == "ev-new"


def test_every_team_of_the_sample_routing_has_an_escalation_contact() -> None:
    secrets = {f"BACKBONE_NOTIFY_SECRET_{team}": "s" for team in SAMPLE_HOOKS}
    routing = load_routing(SAMPLE_ROUTING, secrets)
    assert Routing(routing.escalation).unrouted(routing.teams) == []
    Routing(routing.escalation).require(team for rule in load_rules().rules for team in rule.notify)
    assert routing.escalation_contacts(["housing-officers", "work-coaches"]) == (
        Recipient("email", "housing-duty-manager@council.example.org"),
        Recipient("email", "jobcentre-team-leader@jobcentre.example.org"),
    )


def test_a_wrong_escalation_contact_is_named_by_team_and_field() -> None:
    text = (
        "teams:\n  a:\n    - email: {to: a@example.org}\nescalation:\n  a:\n    - email: {to: x}\n"
    )
    with pytest.raises(RoutingFileError, match=r"escalation of team a channels\[0\]\.email\.to"):
        parse_routing(text, {})


# --- the worker ---------------------------------------------------------------------------


def test_alerts_are_listed_for_the_callers_teams_and_filtered(lifecycle: Lifecycle) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    first = lifecycle.raise_alert("high", "team-a")
    other_team = lifecycle.raise_alert("warning", "team-b")
    second = lifecycle.raise_alert("warning", "team-a", rule_id="R4")
    lifecycle.alert(second)
    lifecycle.alert(other_team, team="team-b")

    listed = lifecycle.get("/alerts", since=since).json()
    assert [a["alert_id"] for a in listed["alerts"]] == [first, second]
    assert set(listed["alerts"][0]) == {
        "alert_id",
        "rule_id",
        "rule_version",
        "severity",
        "status",
        "person_id",
        "household_person_ids",
        "raised_at",
        "text",
        "teams",
    }
    assert listed["alerts"][0]["status"] == "open" and listed["alerts"][0]["teams"] == ["team-a"]
    by_severity = lifecycle.get("/alerts", since=since, severity="warning").json()["alerts"]
    assert [a["alert_id"] for a in by_severity] == [second]
    by_rule = lifecycle.get("/alerts", since=since, rule="R4").json()["alerts"]
    assert [a["alert_id"] for a in by_rule] == [second]
    assert lifecycle.get("/alerts", since=since, status="resolved").json()["alerts"] == []
    page = lifecycle.get("/alerts", since=since, limit="1").json()
    rest = lifecycle.get("/alerts", since=since, cursor=page["next_cursor"]).json()
    assert [a["alert_id"] for a in page["alerts"] + rest["alerts"]] == [first, second]
    assert rest["next_cursor"] is None
    team_b = lifecycle.get("/alerts", team="team-b", since=since).json()["alerts"]
    assert [a["alert_id"] for a in team_b] == [other_team]

    bad = lifecycle.get("/alerts", status="closed")
    assert bad.status_code == 400 and "status" in bad.json()["detail"]
    assert "since" in lifecycle.get("/alerts", since="yesterday").json()["detail"]


def test_one_alert_has_its_explanation_and_history_and_other_teams_get_403(
    lifecycle: Lifecycle,
) -> None:
    alert_id = lifecycle.raise_alert("high", "team-a")
    alert = lifecycle.alert(alert_id)

    assert alert["explanation"]["rule_id"] == "R1" and alert["explanation"]["rule_version"] == 3
    assert [e["event_type"] for e in alert["explanation"]["events"]] == [
        "homelessness_application",
        "discharge",
    ]
    assert set(alert["explanation"]["events"][0]) == {
        "event_id",
        "event_type",
        "agency",
        "occurred_at",
    }
    assert [(h["change"], h["by"]) for h in alert["history"]] == [("raised", None)]
    forbidden = lifecycle.get(f"/alerts/{alert_id}", team="team-b")
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
    assert lifecycle.get(f"/alerts/{uuid.uuid4()}").status_code == 404
    ack_other_team = lifecycle.post(f"/alerts/{alert_id}/acknowledge", team="team-b")
    assert ack_other_team.status_code == 403


def test_acknowledge_then_resolve_and_changes_the_state_does_not_allow_get_409(
    lifecycle: Lifecycle,
) -> None:
    alert_id = lifecycle.raise_alert("high", "team-a")
    lifecycle.alert(alert_id)

    acknowledged = lifecycle.post(f"/alerts/{alert_id}/acknowledge", {"note": "on it"})
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["status"] == "acknowledged"
    again = lifecycle.post(f"/alerts/{alert_id}/acknowledge", name="bob")
    assert again.status_code == 409 and again.json()["alert"]["status"] == "acknowledged"
    no_note = lifecycle.post(f"/alerts/{alert_id}/resolve", {})
    assert no_note.status_code == 400 and "note" in no_note.json()["detail"]
    resolved = lifecycle.post(f"/alerts/{alert_id}/resolve", {"note": "housed", "x": 1}, "bob")
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert lifecycle.post(f"/alerts/{alert_id}/resolve", {"note": "again"}).status_code == 409
    assert lifecycle.post(f"/alerts/{alert_id}/acknowledge").status_code == 409
    missing = lifecycle.post(f"/alerts/{uuid.uuid4()}/acknowledge")
    assert missing.status_code == 404

    history = lifecycle.alert(alert_id)["history"]
    assert [(h["change"], h["by"], h["note"]) for h in history] == [
        ("raised", None, None),
        ("acknowledged", "ann", "on it"),
        ("resolved", "bob", "housed"),
    ]
    # Every state change is itself an event on Kafka.
    steps = [(e["change"], e["by"], e["note"]) for e in alert_events(lifecycle, alert_id)]
    assert steps == [
        ("raised", None, None),
        ("acknowledged", "ann", "on it"),
        ("resolved", "bob", "housed"),
    ]


def test_an_unacknowledged_urgent_alert_is_escalated_once_an_acknowledged_one_never(
    lifecycle: Lifecycle,
) -> None:
    ignored = lifecycle.raise_alert("urgent", "team-b")
    handled = lifecycle.raise_alert("urgent", "team-b")
    lifecycle.alert(handled, team="team-b")
    assert lifecycle.post(f"/alerts/{handled}/acknowledge", team="team-b").status_code == 200

    def escalated(alert_id: str) -> bool:
        return bool(lifecycle.get(f"/alerts/{alert_id}", "team-b").json()["escalated"])

    wait_until(lambda: escalated(ignored), URGENT_AFTER_S + 30, "the escalation")
    # An alert raised later escalates later: once it has, the timer has long passed `handled`.
    later = lifecycle.raise_alert("urgent", "team-b")
    wait_until(lambda: escalated(later), URGENT_AFTER_S + 30, "the later escalation")

    assert not escalated(handled)
    changes = [e["change"] for e in alert_events(lifecycle, ignored)]
    assert changes.count("escalated") == 1
    assert "escalated" not in [e["change"] for e in alert_events(lifecycle, handled)]
    wait_until(
        lambda: "email:escalation-b@example.org" in lifecycle.arrivals.keys(ignored),
        30,
        "the escalation email",
    )
    keys = lifecycle.arrivals.keys(ignored)
    assert len(keys["email:escalation-b@example.org"]) == 1
    assert len(keys["email:team-b@example.org"]) == 1
    assert "email:escalation-b@example.org" not in lifecycle.arrivals.keys(handled)


def test_a_notification_arrives_once_per_recipient_across_a_worker_killed_after_sending(
    lifecycle: Lifecycle,
) -> None:
    hook = f"webhook:{lifecycle.webhook.url}"
    recipients = {hook, "email:team-a@example.org"}
    alert_id = str(uuid.uuid4())
    lifecycle.webhook.hold = alert_id
    value = CODEC.encode(ALERT_SCHEMA, raised_event(alert_id, "high", "team-a", "R1"))
    lifecycle.producer.produce(lifecycle.topics.alerts, key=alert_id.encode(), value=value)
    assert lifecycle.producer.flush(10) == 0

    assert lifecycle.webhook.held.wait(60), "no notification arrived"
    lifecycle.worker.process.kill()  # SIGKILL while it waits for the answer: nothing recorded
    lifecycle.worker.process.wait()
    lifecycle.restart_worker()

    wait_until(
        lambda: (
            set(lifecycle.arrivals.keys(alert_id)) == recipients
            and lifecycle.arrivals.count(hook, alert_id) == 2
        ),
        60,
        "the notification at every recipient",
    )
    assert lifecycle.alert(alert_id)["status"] == "open"
    keys = lifecycle.arrivals.keys(alert_id)
    assert {recipient: len(keys[recipient]) for recipient in recipients} == dict.fromkeys(
        recipients, 1
    )
    # The restarted worker sent the webhook again, under the same key: the receiver's dedup
    # is what keeps it to one; the email, confirmed or not before the kill, arrived once too.
    assert lifecycle.arrivals.count(hook, alert_id) == 2
    assert lifecycle.webhook.bad_signatures == 0
    metrics = httpx.get(f"{lifecycle.base}/metrics").text
    assert "backbone_alerts_open" in metrics


def test_a_refused_notification_goes_to_the_dead_letter_topic_with_the_reason(
    lifecycle: Lifecycle,
) -> None:
    alert_id = lifecycle.raise_alert("high", "team-c")
    lifecycle.alert(alert_id, team="team-c")

    def dead_letters() -> list[dict[str, Any]]:
        found = []
        for record in read_all(lifecycle.deployment.bootstrap, lifecycle.topics.dead_letter):
            if record.headers.get("processor") == b"notifications" and record.value:
                letter = json.loads(record.value)
                if letter["alert"]["alert_id"] == alert_id:
                    found.append({**letter, "reason": record.headers["reason"].decode()})
        return found

    wait_until(lambda: bool(dead_letters()), 30, "the dead letter")
    (letter,) = dead_letters()
    assert letter["reason"] == "refused: HTTP 400" and letter["attempts"] == 1
    assert letter["stage"] == "open" and letter["recipient"].endswith("/refuse")
    metrics = httpx.get(f"{lifecycle.base}/metrics").text
    assert 'backbone_notifications_failed_total{channel="webhook",stage="open"} 1.0' in metrics


def test_every_alert_request_is_audited(lifecycle: Lifecycle) -> None:
    alert_id = lifecycle.raise_alert("high", "team-a")
    lifecycle.alert(alert_id)
    lifecycle.post(f"/alerts/{alert_id}/acknowledge")
    lifecycle.get(f"/alerts/{alert_id}", team="team-b")

    def audited() -> list[dict[str, Any]]:
        records = read_all(lifecycle.deployment.bootstrap, lifecycle.topics.audit)
        decoded = (CODEC.decode(record.value).record for record in records if record.value)
        return [a for a in decoded if alert_id in a["resource"]]

    wait_until(lambda: len(audited()) >= 3, 30, "the audit records")
    outcomes = {(a["action"], a["outcome"], a["coordinator"]) for a in audited()}
    assert ("GET /alerts/{id}", 200, "ann") in outcomes
    assert ("POST /alerts/{id}/acknowledge", 200, "ann") in outcomes
    assert ("GET /alerts/{id}", 403, "ann") in outcomes
    assert all(a["purpose"] == "case_management" for a in audited())


def test_one_alert_shows_who_was_told_sent_at_a_working_endpoint_failed_at_a_refusing_one(
    lifecycle: Lifecycle,
) -> None:
    alert_id = str(uuid.uuid4())
    raised = raised_event(alert_id, "high", "team-a", "R1")
    raised["alert"]["teams"] = ["team-a", "team-c"]
    lifecycle.producer.produce(
        lifecycle.topics.alerts, key=alert_id.encode(), value=CODEC.encode(ALERT_SCHEMA, raised)
    )
    assert lifecycle.producer.flush(10) == 0
    told: list[tuple[str, str, str, str]] = []

    def all_ended() -> bool:
        answer = lifecycle.get(f"/alerts/{alert_id}")
        if answer.status_code != 200:
            return False
        told[:] = [
            (d["team"], d["channel"], d["recipient"], d["status"])
            for d in answer.json()["deliveries"]
        ]
        return bool(told) and all(status != "retrying" for *_, status in told)

    wait_until(all_ended, 30, "every delivery of the alert to end")
    assert told == [
        ("team-a", "webhook", lifecycle.webhook.url, "sent"),
        ("team-a", "email", "team-a@example.org", "sent"),
        ("team-c", "webhook", f"http://127.0.0.1:{lifecycle.webhook.port}/refuse", "failed"),
    ]
    assert {d["stage"] for d in lifecycle.alert(alert_id)["deliveries"]} == {"open"}
