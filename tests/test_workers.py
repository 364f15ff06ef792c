"""Several workers in one group: they share the partitions, route requests, and hand over.

Two stream workers (one Faust group, each with its own API port and state directory) and the
social care webhook connector run as real processes on one deployment with four partitions.
Timelines and lookups are asked through either worker and must be answered by the worker
owning the key; then one worker is stopped (SIGTERM) and the survivor must hold every
partition and every event, old and new.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]

from backbone.codec import AvroCodec, SchemaStore
from backbone.pseudonyms import Pseudonymiser
from backbone.settings import REPO_ROOT
from backbone.tokens import issue_token
from backbone.topics import Topics
from cli.kafka_probe import read_all
from cli.processes import BackboneProcess, free_port, stop_all
from simulators.social_care import CaseEvent, CaseManagementSystem, CasePerson
from streams.api.routing import ANSWERED_BY
from tests.conftest import Deployment, distinct_identity

PARTITIONS = 4
# Enough persons that each of the four partitions (two per worker) holds several of them.
PERSONS_PER_WAVE = 16
WAIT_S = 45.0


@dataclass
class Worker:
    """One running worker and an API client that talks to it."""

    process: BackboneProcess
    api: httpx.Client

    @property
    def url(self) -> str:
        return str(self.api.base_url).rstrip("/")

    def answered_by(self, answer: httpx.Response) -> str:
        """The worker that answered a request sent to this one (itself unless forwarded)."""
        answered: str = answer.headers.get(ANSWERED_BY, self.url)
        return answered.rstrip("/")


@dataclass
class Group:
    """Two workers in one Faust group, the webhook connector, and what was posted."""

    deployment: Deployment
    system: CaseManagementSystem
    workers: list[Worker]
    posted: dict[str, list[str]] = field(default_factory=dict)

    @property
    def links_changelog(self) -> str:
        return f"{self.deployment.prefix}-streams-record-links-changelog"

    @property
    def timelines_changelog(self) -> str:
        return f"{self.deployment.prefix}-streams-timelines-changelog"

    def post_wave(self, persons: list[CasePerson], wave: int) -> None:
        """One event per person, remembering the event ids the connector answered."""
        occurred = datetime(2026, 11, 1, 9, 0, tzinfo=UTC) + timedelta(days=wave)
        for person in persons:
            event = CaseEvent("assessment_completed", occurred, f"CASE-{wave}", person)
            answer = self.system.deliver(event)
            assert answer.status_code == 202, answer.text
            self.posted.setdefault(person.case_person_id, []).append(answer.json()["event_id"])

    def record_id(self, case_person_id: str) -> str:
        """The keyed record id the connector keys the person's events by."""
        pseudonyms = Pseudonymiser(self.deployment.pseudonym_key.encode())
        return pseudonyms.record_id("social_care", "case_person_id", case_person_id)


def new_persons(count: int) -> list[CasePerson]:
    return [
        CasePerson(f"CP-{uuid.uuid4().hex[:10]}", *distinct_identity(), None, None)
        for _ in range(count)
    ]


def start_worker(
    name: str, env: dict[str, str], data_dir: Path, logs: Path, token: str, advertised_host: str
) -> Worker:
    """A worker process with its own API port and state directory, bound to 127.0.0.1 and
    advertised to the group (and reached by the test) as `advertised_host`."""
    port = free_port()
    url = f"http://{advertised_host}:{port}"
    worker_env = {
        **env,
        "BACKBONE_WORKER_HOST": "127.0.0.1",
        "BACKBONE_WORKER_PORT": str(port),
        "BACKBONE_WORKER_ADVERTISED_URL": url,
        "BACKBONE_DATA_DIR": str(data_dir),
    }
    process = BackboneProcess.start(name, ["worker"], worker_env, logs, f"{url}/health")
    api = httpx.Client(
        base_url=url,
        timeout=15.0,
        headers={"Authorization": f"Bearer {token}", "X-Purpose": "direct_care"},
    )
    return Worker(process, api)


@pytest.fixture(scope="module")
def group(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    logs = tmp_path_factory.mktemp("logs")
    env = {**deployment.env(), "BACKBONE_PARTITIONS": str(PARTITIONS)}
    token = issue_token(
        deployment.token_secret.encode(), "test-coordinator", ["children-services"], "social_worker"
    )
    connector = BackboneProcess.start(
        "social-care-webhook",
        ["connector", "run", "social-care-webhook"],
        env,
        logs,
        f"http://127.0.0.1:{deployment.connector_metrics_port}/health",
    )
    # Worker b advertises another name than the address it binds: the group must route to
    # BACKBONE_WORKER_ADVERTISED_URL.
    workers = [
        start_worker(name, env, tmp_path_factory.mktemp(name), logs, token, host)
        for name, host in (("worker-a", "127.0.0.1"), ("worker-b", "localhost"))
    ]
    try:
        connector.wait_healthy()
        for worker in workers:
            worker.process.wait_healthy()
        system = CaseManagementSystem(
            f"http://127.0.0.1:{deployment.webhook_port}", deployment.webhook_secret.encode()
        )
        built = Group(deployment, system, workers)
        wait_for_owners(built, workers, {worker.url for worker in workers})
        yield built
        system.close()
    finally:
        stop_all([connector, *(worker.process for worker in workers)])
        for worker in workers:
            worker.api.close()


def owners(worker: Worker, changelog: str) -> dict[int, str]:
    """Partition -> URL of the worker that owns it, as `worker` sees the group's assignment."""
    answer = worker.api.get("/router/")
    if answer.status_code != 200:
        return {}
    distribution: dict[str, dict[str, list[int]]] = answer.json()
    return {
        partition: url.rstrip("/")
        for url, topics in distribution.items()
        for partition in topics.get(changelog, [])
    }


def wait_for_owners(group: Group, askers: list[Worker], expected: set[str]) -> None:
    """Wait until every asker is ready and sees all partitions owned by exactly `expected`."""
    deadline = time.monotonic() + WAIT_S
    views: list[dict[int, str]] = []
    while time.monotonic() < deadline:
        views = [
            owners(asker, changelog)
            for asker in askers
            for changelog in (group.links_changelog, group.timelines_changelog)
        ]
        ready = all(asker.api.get("/health").status_code == 200 for asker in askers)
        if ready and all(
            len(view) == PARTITIONS and set(view.values()) == expected for view in views
        ):
            return
        time.sleep(0.3)
    raise AssertionError(f"partitions never settled on {sorted(expected)}: {views}")


def partition_of(key: str) -> int:
    """Kafka's default partition of a raw key (murmur2): the connector's and Faust's."""
    partition: int = (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS
    return partition


def lookup(worker: Worker, case_person_id: str, deadline: float) -> httpx.Response:
    """`GET /persons/lookup` through `worker`, repeated until the person is known."""
    params = {"agency": "social_care", "id_type": "case_person_id", "id": case_person_id}
    while True:
        answer = worker.api.get("/persons/lookup", params=params)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        assert answer.status_code in (404, 503), answer.text
        time.sleep(0.2)


def timeline(
    worker: Worker, person_id: str, expected: list[str], deadline: float
) -> httpx.Response:
    """The person's timeline through `worker`, repeated until it holds the `expected` events."""
    while True:
        answer = worker.api.get(f"/persons/{person_id}/timeline")
        assert answer.status_code in (200, 404, 503), answer.text
        if answer.status_code == 200 and len(ids_in(answer)) >= len(expected):
            return answer
        if time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def ids_in(answer: httpx.Response) -> list[str]:
    return [entry["event_id"] for entry in answer.json()["events"]]


def assert_complete_through(group: Group, worker: Worker) -> dict[str, str]:
    """Every posted event is on its person's timeline, once, through `worker`, and each answer
    came from the worker owning the key's partition. Returns case person id -> person id."""
    deadline = time.monotonic() + WAIT_S
    links_owner = owners(worker, group.links_changelog)
    timelines_owner = owners(worker, group.timelines_changelog)
    persons: dict[str, str] = {}
    for case_person_id, expected in group.posted.items():
        found = lookup(worker, case_person_id, deadline)
        assert found.status_code == 200, (worker.url, case_person_id, found.text)
        assert (
            worker.answered_by(found) == links_owner[partition_of(group.record_id(case_person_id))]
        )
        person_id = persons[case_person_id] = found.json()["person_id"]
        answer = timeline(worker, person_id, expected, deadline)
        assert answer.status_code == 200, (worker.url, case_person_id, answer.text)
        # Posted in event-time order, so the timeline lists them in the same order, once each.
        assert ids_in(answer) == expected, (worker.url, case_person_id)
        assert worker.answered_by(answer) == timelines_owner[partition_of(person_id)]
    return persons


def test_the_two_workers_share_the_partitions_of_both_tables(group: Group) -> None:
    urls = sorted(worker.url for worker in group.workers)
    for asker in group.workers:
        for changelog in (group.links_changelog, group.timelines_changelog):
            view = owners(asker, changelog)
            assert sorted(view) == list(range(PARTITIONS))
            assert sorted(view.values()) == sorted(urls * (PARTITIONS // 2)), view


def test_every_timeline_and_lookup_is_answered_by_its_owner_through_either_worker(
    group: Group,
) -> None:
    group.post_wave(new_persons(PERSONS_PER_WAVE), wave=1)

    through = [assert_complete_through(group, worker) for worker in group.workers]

    assert through[0] == through[1]
    # Both workers own some of these persons, so some answers above were forwarded.
    first = group.workers[0]
    links, timelines = (
        owners(first, group.links_changelog),
        owners(first, group.timelines_changelog),
    )
    assert {links[partition_of(group.record_id(case))] for case in through[0]} == {
        worker.url for worker in group.workers
    }
    assert {timelines[partition_of(person)] for person in through[0].values()} == {
        worker.url for worker in group.workers
    }


def test_a_forwarded_request_is_audited_once_by_the_worker_that_answered(group: Group) -> None:
    case_person_id, events = next(iter(group.posted.items()))
    deadline = time.monotonic() + WAIT_S
    person_id = lookup(group.workers[0], case_person_id, deadline).json()["person_id"]
    owner = owners(group.workers[0], group.timelines_changelog)[partition_of(person_id)]
    asked = next(worker for worker in group.workers if worker.url != owner)
    marker = uuid.uuid4().hex  # a filter value no other request uses

    answer = asked.api.get(f"/persons/{person_id}/timeline", params={"event_type": marker})

    assert answer.status_code == 200 and answer.json()["events"] == []
    assert asked.answered_by(answer) == owner
    codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
    audit = [
        codec.decode(record.value).record
        for record in read_all(group.deployment.bootstrap, Topics(group.deployment.prefix).audit)
    ]
    mine = [entry for entry in audit if marker in entry["resource"]]
    assert [(entry["outcome"], entry["coordinator"]) for entry in mine] == [
        (200, "test-coordinator")
    ]
    assert events


def test_a_forwarded_post_keeps_its_body(group: Group) -> None:
    # The identity resolver's tables live on one worker; the other forwards commands to it.
    unknown = [uuid.uuid4().hex, uuid.uuid4().hex]
    answers = [
        worker.api.post("/persons/merge", json={"person_ids": unknown, "reason": "same person"})
        for worker in group.workers
    ]

    # Both read the body the caller sent: the person ids are unknown, not the body missing.
    assert [answer.status_code for answer in answers] == [404, 404], [a.text for a in answers]
    answered_by = {w.answered_by(a) for w, a in zip(group.workers, answers, strict=True)}
    assert len(answered_by) == 1


def test_a_stopped_workers_partitions_and_tables_are_taken_over_without_loss(
    group: Group,
) -> None:
    earlier = new_persons(PERSONS_PER_WAVE)
    group.post_wave(earlier, wave=2)
    survivor, leaving = group.workers
    persons = assert_complete_through(group, leaving)
    timelines_owner = owners(survivor, group.timelines_changelog)
    handed_over = {
        person.case_person_id
        for person in earlier
        if timelines_owner[partition_of(persons[person.case_person_id])] == leaving.url
    }
    assert handed_over, "the stopping worker owned no timeline: nothing would be handed over"

    assert leaving.process.stop() == 0

    wait_for_owners(group, [survivor], {survivor.url})
    group.post_wave(earlier + new_persons(PERSONS_PER_WAVE), wave=3)
    # Every event of every wave, old and new, also of the persons the stopped worker held.
    after = assert_complete_through(group, survivor)
    assert {case: after[case] for case in persons} == persons
    assert all(len(group.posted[case]) == 2 for case in handed_over)
