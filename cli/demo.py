"""`backbone demo`: everything running locally, with every agency's traffic and its results.

Starts the local broker and PostgreSQL (if they are not running), a stream worker and the four
connectors as child processes with fresh secrets and a fresh topic prefix, and the teams' mail
server and webhook receiver the worker notifies; the simulators then play one family's month
as the hospital, the jobcentre, housing and social care record it, and the demo prints the
answers, the unified timelines, the alerts with what each recipient received, and where the
API and the metrics are.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess  # nosec B404 # every call is a fixed command, checked under B603
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from backbone.settings import REPO_ROOT, BackboneSettings
from backbone.tokens import issue_token
from backbone.topics import delete_topics
from cli.processes import BackboneProcess, stop_all
from simulators import hospital, housing, jobcentre, social_care
from simulators.stories import Story, demo_story
from simulators.team_inboxes import TeamInboxes
from streams.alerting.notifications.routing import SAMPLE_ROUTING
from streams.alerting.rules import SHIPPED_RULES, load_rules

KAFKA_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"
POSTGRES_SCRIPT = REPO_ROOT / "deploy" / "postgres" / "postgres.sh"
POSTGRES_ADMIN_DSN = (
    f"host=127.0.0.1 port={os.environ.get('BACKBONE_POSTGRES_PORT', '15432')}"
    " user=postgres dbname=postgres"
)
WORKER_PORT = 6066
WEBHOOK_PORT = 8081
MLLP_PORT = 2575
# The teams' end of the notifications: the SMTP relay the worker sends mail through, and the
# port of the sample routing's webhook URLs (deploy/notifications/routing.yaml).
SMTP_PORT = 8025
TEAM_WEBHOOK_PORT = 8089
# Each connector's /metrics and /health.
CONNECTOR_METRICS_PORTS = {
    "social-care-webhook": 9101,
    "hl7-mllp": 9102,
    "jobcentre-cdc": 9103,
    "housing-csv": 9104,
}


@dataclass(frozen=True)
class Service:
    """A server the demo starts only if it is not running, and then stops again."""

    name: str
    script: Path

    def running(self) -> bool:
        return subprocess.call([str(self.script), "status"], stderr=subprocess.DEVNULL) == 0  # nosec B603 # the project's own script, fixed arguments, no shell

    def start(self) -> None:
        subprocess.run([str(self.script), "start"], check=True)  # nosec B603 # the project's own script, fixed arguments, no shell

    def stop(self) -> None:
        subprocess.run([str(self.script), "stop"], check=False)  # nosec B603 # the project's own script, fixed arguments, no shell


SERVICES = (Service("Kafka", KAFKA_SCRIPT), Service("PostgreSQL", POSTGRES_SCRIPT))


def _say(text: str = "") -> None:
    print(text, flush=True)


def _stop_on_interrupt() -> None:
    # SIGTERM ends the demo as Ctrl-C does, so a supervisor can stop it cleanly too; SIGINT
    # is set explicitly because a shell starts background jobs with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def run_demo(wait: bool) -> None:
    """Run the demo; with `wait`, keep everything up until Ctrl-C."""
    _stop_on_interrupt()
    run_id = time.strftime("%Y%m%d%H%M%S")
    logs = Path(".backbone") / f"demo-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    database = f"demo_{run_id}"
    started: list[Service] = []
    children: list[BackboneProcess] = []
    inboxes: TeamInboxes | None = None
    try:
        for service in SERVICES:
            if not service.running():
                _say(f"Starting the local {service.name} (installed and fetched on first run) ...")
                service.start()
                started.append(service)
        dsn = jobcentre.create_database(POSTGRES_ADMIN_DSN, database)
        _create_jobcentre_schema(dsn)
        secrets_ = {name: secrets.token_hex(32) for name in ("pseudonym", "webhook", "token")}
        env = _environment(run_id, logs, dsn, secrets_)
        inboxes = TeamInboxes("127.0.0.1", SMTP_PORT, TEAM_WEBHOOK_PORT, secrets_["webhook"])
        inboxes.start()
        _say("Starting the stream worker and the four agency connectors ...")
        children = _start_processes(env, logs)
        _play_and_show(demo_story(), env, dsn, secrets_, inboxes)
        _say_where(logs)
        if wait:
            _say("\nRunning. Press Ctrl-C to stop everything.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        _say("Stopping ...")
        stop_all(children)
        if inboxes is not None:
            inboxes.stop()
        if SERVICES[0].running():
            # Like the database: each run has its own topics, of no use once it stopped.
            delete_topics(_bootstrap(), f"demo-{run_id}")
        if SERVICES[1].running():
            jobcentre.drop_database(POSTGRES_ADMIN_DSN, database)
        for service in reversed(started):
            service.stop()


def _bootstrap() -> str:
    """The broker the demo's processes use (the demo sets no other backbone setting here)."""
    default = BackboneSettings.model_fields["kafka_bootstrap"].default
    return os.environ.get("BACKBONE_KAFKA_BOOTSTRAP", str(default))


def _create_jobcentre_schema(dsn: str) -> None:
    system = jobcentre.CaseManagementSystem(dsn)
    system.create_schema()
    system.close()


def _environment(run_id: str, logs: Path, dsn: str, keys: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "BACKBONE_TOPIC_PREFIX": f"demo-{run_id}",
        "BACKBONE_PSEUDONYM_KEY": keys["pseudonym"],
        "BACKBONE_WEBHOOK_SECRET": keys["webhook"],
        "BACKBONE_TOKEN_SECRET": keys["token"],
        # The sample routing (its webhook secrets), to the demo's mail server and receiver.
        "BACKBONE_NOTIFY_ROUTING_FILE": str(SAMPLE_ROUTING),
        **{
            f"BACKBONE_NOTIFY_SECRET_{team}": keys["webhook"]
            for team in ("HEALTH", "SOCIAL_CARE", "HOUSING")
        },
        "BACKBONE_NOTIFY_SMTP_HOST": "127.0.0.1",
        "BACKBONE_NOTIFY_SMTP_PORT": str(SMTP_PORT),
        "BACKBONE_DATA_DIR": str(logs / "state"),
        "BACKBONE_WORKER_PORT": str(WORKER_PORT),
        "BACKBONE_WEBHOOK_PORT": str(WEBHOOK_PORT),
        "BACKBONE_MLLP_PORT": str(MLLP_PORT),
        "BACKBONE_CDC_DSN": dsn,
        "BACKBONE_CDC_SLOT": f"demo_{run_id}",
        "BACKBONE_HOUSING_DROP_DIR": str(logs / "housing-drop"),
        "BACKBONE_HOUSING_POLL_INTERVAL_S": "0.5",
    }


def _start_processes(env: dict[str, str], logs: Path) -> list[BackboneProcess]:
    children = [
        BackboneProcess.start(
            "worker", ["worker"], env, logs, f"http://127.0.0.1:{WORKER_PORT}/health"
        )
    ]
    for name, port in CONNECTOR_METRICS_PORTS.items():
        children.append(
            BackboneProcess.start(
                name,
                ["connector", "run", name],
                env | {"BACKBONE_METRICS_PORT": str(port)},
                logs,
                f"http://127.0.0.1:{port}/health",
            )
        )
    for child in children:
        child.wait_healthy()
    return children


def _play_and_show(
    story: Story, env: dict[str, str], dsn: str, keys: dict[str, str], inboxes: TeamInboxes
) -> None:
    _play_social_care(story, keys["webhook"].encode())
    _play_hospital(story)
    _play_jobcentre(story, dsn)
    _play_housing(story, Path(env["BACKBONE_HOUSING_DROP_DIR"]))

    # A coordinator of every team the shipped rules notify, so the demo shows every alert.
    teams = sorted({team for rule in load_rules(SHIPPED_RULES).rules for team in rule.notify})
    token = issue_token(keys["token"].encode(), "demo-coordinator", teams, "safeguarding_lead")
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{WORKER_PORT}",
        timeout=10.0,
        headers={"Authorization": f"Bearer {token}", "X-Purpose": "safeguarding"},
    )
    _wait_for_timelines(api, story)
    _say_dead_letters()
    _say("\nUnified timelines (GET /persons/{id}/timeline):")
    for label, case_person_id in story.people.items():
        _print_timeline(api, label, case_person_id)
    _say_alerts(api, inboxes)
    _say(f"\nA coordinator token for the API (role safeguarding_lead, every team):\n  {token}")


def _play_social_care(story: Story, secret: bytes) -> None:
    _say("\nSocial care case system POSTs webhooks:")
    system = social_care.CaseManagementSystem(f"http://127.0.0.1:{WEBHOOK_PORT}", secret)
    for step in story.social_care:
        answer = system.deliver(
            step.payload, idempotency_key=step.idempotency_key, signature=step.signature
        )
        _say(f"  {step.label:<58} -> {answer.status_code} {json.dumps(answer.json())}")
    system.close()


def _play_hospital(story: Story) -> None:
    _say("\nHospital PAS sends ADT messages over MLLP:")
    pas = hospital.HospitalPas("127.0.0.1", MLLP_PORT)
    for label, message in story.hospital:
        ack = pas.send(message)
        detail = f" ({ack.error_message})" if ack.code == "AE" else ""
        _say(f"  {label:<58} -> {ack.code}{detail}")
    pas.close()


def _play_jobcentre(story: Story, dsn: str) -> None:
    _say("\nJobcentre case management writes to its PostgreSQL (read by change data capture):")
    system = jobcentre.CaseManagementSystem(dsn)
    for label, change in story.jobcentre:
        change(system)
        _say(f"  {label:<58} -> committed")
    system.close()


def _play_housing(story: Story, drop_dir: Path) -> None:
    _say("\nHousing management system drops its nightly exports:")
    system = housing.HousingManagementSystem(drop_dir)
    for night in story.housing:
        path = system.export_rows(
            night.night,
            [row if isinstance(row, str) else row.row(night.night) for row in night.rows],
        )
        _say(f"  {night.label:<58} -> {path.name}")
        _wait_until_taken(path)


def _wait_until_taken(export: Path, timeout_s: float = 60.0) -> None:
    # Nights are compared in order: the next one is written once this one was taken.
    deadline = time.monotonic() + timeout_s
    while export.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


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


def _say_alerts(api: httpx.Client, inboxes: TeamInboxes, settle_s: float = 10.0) -> None:
    """The alerts raised so far, and what each of their recipients received; alerts come a
    moment after the timelines, so wait until no new one came for a while (absences due later
    are raised by the worker's timer)."""
    alerts: list[dict[str, Any]] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < settle_s:
        time.sleep(0.5)
        answer = api.get("/alerts", params={"limit": 1000})
        if answer.status_code == 200 and len(answer.json()["alerts"]) > len(alerts):
            alerts, quiet_since = answer.json()["alerts"], time.monotonic()
    _say("\nAlerts (GET /alerts), each delivery's status (GET /alerts/{id}) and what arrived:")
    if not alerts:
        _say("  none")
    for alert in alerts:
        _say(f"  {alert['rule_id']} {alert['severity']:<7} {alert['status']:<12} {alert['text']}")
        _say(f"     person {alert['person_id']}; teams: {', '.join(alert['teams'])}")
        told = _deliveries(api, alert["alert_id"])
        arrived = {
            (r.channel, r.recipient): r.headline for r in inboxes.received(alert["alert_id"])
        }
        for channel, recipient, status in told:
            headline = arrived.get((channel, recipient), "(nothing arrived)")
            _say(f"     {channel:<7} {recipient:<50} {status:<8} {headline}")


def _deliveries(
    api: httpx.Client, alert_id: str, timeout_s: float = 30.0
) -> list[tuple[str, str, str]]:
    """The alert's deliveries (channel, recipient, status; a recipient of two teams once) once
    none is still being tried, or as they stand after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = api.get(f"/alerts/{alert_id}")
        deliveries = answer.json().get("deliveries", []) if answer.status_code == 200 else []
        told = {(d["channel"], d["recipient"], d["status"]): None for d in deliveries}
        ended = told and all(status != "retrying" for *_, status in told)
        if ended or time.monotonic() > deadline:
            return list(told)
        time.sleep(0.3)


def _say_dead_letters() -> None:
    _say("\nDead letters, by connector and reason (from each connector's /metrics):")
    for name, port in CONNECTOR_METRICS_PORTS.items():
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
        for line in metrics.splitlines():
            if line.startswith("backbone_dead_letters_total{"):
                labels, _, count = line.rpartition(" ")
                reason = labels.split('reason="', 1)[1].split('"', 1)[0]
                _say(f"  {name:<22} {reason:<36} {float(count):.0f}")


def _say_where(logs: Path) -> None:
    _say(f"\nCoordinator API   http://127.0.0.1:{WORKER_PORT}/persons/...  (token above)")
    _say(f"Coordinator page  http://127.0.0.1:{WORKER_PORT}/ui/  (paste the token)")
    _say(f"Worker metrics    http://127.0.0.1:{WORKER_PORT}/metrics")
    for name, port in CONNECTOR_METRICS_PORTS.items():
        _say(f"{name + ' metrics':<30} http://127.0.0.1:{port}/metrics")
    _say(f"Webhook endpoint  http://127.0.0.1:{WEBHOOK_PORT}/webhooks/social-care")
    _say(f"MLLP endpoint     127.0.0.1:{MLLP_PORT}")
    _say(f"Process logs      {logs}/")
