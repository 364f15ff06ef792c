"""Faults under load, against the real broker and real worker processes.

A load of 50,000 agency events (bench.mix: about a thousand persons' records across the four
agencies, with households) goes to the stream workers, and in the middle of it a worker is
killed with SIGKILL (no flush, no leaving the group): with one worker, which is then started
again on the same state directory; with two, the one holding the resolver's partition, whose
partitions the other must take over. Afterwards every event must be on its record's person's
timeline exactly once, no alert raised twice, and each alert delivered to each recipient once
(the teams' mail server and webhook receiver drop a repeat of a delivery key, which the crash
window allows; README "Notifications to coordinators"). Then the remaining worker's state
directory is deleted: rebuilt from the changelogs, it must answer the same timelines, links
and alerts.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from backbone.codec import AvroCodec, SchemaStore
from backbone.settings import REPO_ROOT
from backbone.tokens import issue_token
from bench.load import burst
from bench.mix import EVENTS_PER_RECORD, RECORDS_PER_PERSON
from cli.kafka_probe import read_all
from cli.processes import free_port, stop_all
from simulators.team_inboxes import TeamInboxes
from streams.alerting.rules import load_rules
from tests.conftest import Deployment, fresh_deployment
from tests.test_identity_resolution import Hospital
from tests.test_scale_out import (
    PARTITIONS,
    SESSION_TIMEOUT_S,
    WAIT_S,
    Fleet,
    Load,
    Member,
    answers,
    build_load,
    complete_timelines,
    parallel,
    person_ids,
    persons_of,
    timeline_counter,
    wait_until_settled,
)

pytestmark = pytest.mark.chaos

CHAOS_EVENTS = 50_000
CHAOS_PERSONS = round(CHAOS_EVENTS / (EVENTS_PER_RECORD * RECORDS_PER_PERSON))
# The worker is killed once it has put this share of the load on timelines.
KILL_AT = 0.4
SAMPLE_WEBHOOK_PORT = 8089  # deploy/notifications/routing.yaml


@dataclass
class Chaos:
    """The fleet, the teams' inboxes, the load and when a worker was killed."""

    fleet: Fleet
    inboxes: TeamInboxes
    load: Load
    killed_at: float  # events the worker had put on timelines when it was killed

    @property
    def worker(self) -> Member:
        """The worker left running: the restarted one, or the survivor."""
        return self.fleet.alive[0]


@pytest.fixture(scope="module", params=[1, 2], ids=["one worker", "two workers"])
def chaos(
    request: pytest.FixtureRequest, kafka: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Chaos]:
    # Each scenario on topics of its own: the alerts and delivery log of one are not the other's.
    with fresh_deployment(kafka, tmp_path_factory) as deployment:
        yield from run_chaos(deployment, tmp_path_factory, workers=request.param)


def run_chaos(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory, workers: int
) -> Iterator[Chaos]:
    """Start the workers and the teams' inboxes, send the load, kill a worker in the middle."""
    smtp_port = free_port()
    inboxes = TeamInboxes("127.0.0.1", smtp_port, SAMPLE_WEBHOOK_PORT, deployment.webhook_secret)
    inboxes.start()
    env = {
        **deployment.env(),
        "BACKBONE_PARTITIONS": str(PARTITIONS),
        "BACKBONE_WORKER_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
        "BACKBONE_NOTIFY_SMTP_HOST": "127.0.0.1",
        "BACKBONE_NOTIFY_SMTP_PORT": str(smtp_port),
    }
    teams = sorted({team for rule in load_rules().rules for team in rule.notify})
    token = issue_token(deployment.token_secret.encode(), "chaos-test", teams, "social_worker")
    codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
    producer = Producer({"bootstrap.servers": deployment.bootstrap})
    hospital = Hospital(deployment, producer, codec)
    fleet = Fleet(deployment, env, token, tmp_path_factory.mktemp("logs"), [], hospital, codec)
    try:
        for number in range(workers):
            fleet.launch(f"worker-{number}", tmp_path_factory.mktemp("worker"))
        for member in fleet.members:
            member.process.wait_healthy()
        fleet.settle(fleet.members)
        load, events = build_load(fleet, CHAOS_EVENTS, CHAOS_PERSONS)
        sending = threading.Thread(target=burst, args=(deployment.bootstrap, events))
        sending.start()
        killed = fleet.resolver_owner()
        killed_at = kill_mid_load(fleet, killed)
        if workers == 1:
            again = fleet.launch("worker-restarted", killed.data_dir, port=killed.port)
            again.process.wait_healthy(timeout_s=WAIT_S + SESSION_TIMEOUT_S)
        sending.join()
        fleet.settle(fleet.alive, timeout_s=WAIT_S + SESSION_TIMEOUT_S)
        yield Chaos(fleet, inboxes, load, killed_at)
    finally:
        stop_all([member.process for member in fleet.members])
        for member in fleet.members:
            member.api.close()
        inboxes.stop()


def kill_mid_load(fleet: Fleet, worker: Member) -> float:
    """SIGKILL the worker once the fleet has put KILL_AT of the load on timelines; returns how
    many events it had."""
    deadline = time.monotonic() + 300.0
    while (counted := sum(map(timeline_counter, fleet.alive))) < KILL_AT * CHAOS_EVENTS:
        assert time.monotonic() < deadline, f"the workers put only {counted} events on timelines"
        time.sleep(0.2)
    worker.process.process.send_signal(signal.SIGKILL)
    worker.process.process.wait()
    return counted


def all_alerts(api: httpx.Client) -> list[dict[str, Any]]:
    """Every alert `GET /alerts/{id}` shows, listed through `GET /alerts` page by page."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        page = api.get("/alerts", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        found += [api.get(f"/alerts/{a['alert_id']}").json() for a in body["alerts"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def raised_steps(chaos: Chaos) -> Counter[tuple[str, str]]:
    """(alert id, step event id) of every `raised` step on the alerts topic, counted."""
    fleet = chaos.fleet
    steps: Counter[tuple[str, str]] = Counter()
    for message in read_all(fleet.deployment.bootstrap, fleet.topics.alerts):
        assert message.value is not None
        step = fleet.codec.decode(message.value).record
        if step["change"] == "raised":
            steps[(step["alert_id"], step["event_id"])] += 1
    return steps


def test_a_worker_killed_mid_load_and_restarted_loses_doubles_and_repeats_nothing(
    chaos: Chaos,
) -> None:
    assert 0 < chaos.killed_at < CHAOS_EVENTS, "killed in the middle of the load"
    assert chaos.load.total == CHAOS_EVENTS

    persons = complete_timelines(chaos.fleet, chaos.load, chaos.worker)
    assert len(set(persons.values())) >= CHAOS_PERSONS / 2

    alerts = all_alerts(chaos.worker.api)
    assert alerts, "the load raises alerts"
    # An alert's id is its rule, person and anchor: raised again after the crash, it is the
    # same alert, and its life shows one `raised`.
    assert len({alert["alert_id"] for alert in alerts}) == len(alerts)
    for alert in alerts:
        assert [h["change"] for h in alert["history"]].count("raised") == 1, alert
    steps = raised_steps(chaos)
    assert {alert_id for alert_id, _ in steps} == {alert["alert_id"] for alert in alerts}
    assert len(steps) == len(alerts), "each alert's `raised` step has one event id"

    # Every recipient of every alert's teams was told once: the delivery log says sent, and
    # the inboxes hold the delivery once (a repeat under the same key is dropped there).
    for alert in alerts:
        opened = [d for d in alert["deliveries"] if d["stage"] == "open"]
        assert opened and {d["status"] for d in opened} == {"sent"}, alert["deliveries"]
        received = chaos.inboxes.received(alert["alert_id"])
        arrived = Counter(r.recipient for r in received if r.headline.endswith("(open)"))
        assert arrived == Counter({d["recipient"] for d in opened}), (alert["alert_id"], arrived)
    print(
        f"chaos: {CHAOS_EVENTS} events, killed at {chaos.killed_at:.0f} on timelines; "
        f"{len(alerts)} alerts; {chaos.inboxes.repeats} deliveries repeated under their key"
    )


def test_a_worker_whose_state_directory_is_deleted_answers_the_same(chaos: Chaos) -> None:
    wait_until_settled(chaos.fleet)
    old = chaos.worker
    people = person_ids(chaos.fleet)
    before = dict(zip(people, parallel(lambda p: answers(old.api, p), people), strict=True))
    alerts_before = all_alerts(old.api)
    looked_up = persons_of(chaos.load, old.api)
    assert old.process.stop() == 0
    shutil.rmtree(old.data_dir)
    old.data_dir.mkdir()

    rebuilt = chaos.fleet.launch("worker-rebuilt", old.data_dir, port=old.port)
    rebuilt.process.wait_healthy()
    chaos.fleet.settle([rebuilt])

    after = dict(zip(people, parallel(lambda p: answers(rebuilt.api, p), people), strict=True))
    differing = [person_id for person_id in people if after[person_id] != before[person_id]]
    assert not differing, [(p, before[p], after[p]) for p in differing[:3]]
    assert persons_of(chaos.load, rebuilt.api) == looked_up
    assert all_alerts(rebuilt.api) == alerts_before
