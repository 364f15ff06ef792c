"""Scale-out of the streaming core, against the real broker and real worker processes.

Two stream workers form one group on a deployment with four partitions; agency events are
published onto the agency topics as the connectors publish them. The identity router must send
an event of a linked, unchanged record straight to `person-events` and only new or changed
records to the one-partition `identity-input` (read here frame by frame); the two workers must
share the partitions, and when one is killed (SIGKILL, during a load) the survivor must take
its partitions over without losing or doubling an event; a worker rebuilt from an empty state
directory must serve the very same timelines and links.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import EVENT_SCHEMAS, HOSPITAL_NUMBER, Agency
from backbone.frames import decode_frame
from backbone.identity_commands import is_command
from backbone.pseudonyms import Pseudonymiser
from backbone.settings import REPO_ROOT
from backbone.tokens import issue_token
from backbone.topics import Topics
from bench.load import burst
from bench.mix import EVENTS_PER_RECORD, RECORDS_PER_PERSON, AgencyMix, BenchEvent
from cli.kafka_probe import read_all
from cli.processes import BackboneProcess, free_port, stop_all
from simulators.population import PopulationSettings, generate
from streams.identity.known_records import fingerprint
from tests.conftest import Deployment, behind, distinct_identity, settled
from tests.test_identity_resolution import Hospital
from tests.test_workers import Worker, owners

PARTITIONS = 4
# Kafka hands a killed worker's partitions to the survivor after this long without heartbeat
# (BACKBONE_WORKER_SESSION_TIMEOUT_S; its default, 60 s, would outlast the test's budget).
# The framer's own consumer group keeps librdkafka's session timeout (45 s): the agency
# partitions a killed worker framed wait that long, whatever this says.
SESSION_TIMEOUT_S = 10
WAIT_S = 45.0
# After a SIGKILL: the session timeouts, the survivor's recovery of the killed worker's tables,
# and the events that waited meanwhile.
TAKE_OVER_S = 150.0
POSTCODE = "LS6 1AA"

# The load: AgencyMix sizes its population from the events it is sized for; this many persons
# (several hundred), of about 3.4 agency records each, and a few thousand of their events.
LOAD_PERSONS = 300
LOAD_SEED = 11
LOAD_EVENTS = 3000
# Every so many social care events after the first round lists another social care record
# as a household member (the mix lists none), so that timelines have households to compare.
HOUSEHOLD_EVERY = 4

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Member:
    """One worker of the group: its process and API, its port and state directory."""

    name: str
    worker: Worker
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return self.worker.url

    @property
    def api(self) -> httpx.Client:
        return self.worker.api

    @property
    def process(self) -> BackboneProcess:
        return self.worker.process


@dataclass
class Fleet:
    """Two workers in one group on a four-partition deployment, and a hospital publishing
    admissions straight onto the health topic as its connector would."""

    deployment: Deployment
    env: dict[str, str]
    token: str
    logs: Path
    members: list[Member]
    hospital: Hospital
    codec: AvroCodec

    @property
    def topics(self) -> Topics:
        return Topics(self.deployment.prefix)

    def changelog(self, table: str) -> str:
        return f"{self.deployment.prefix}-streams-{table}-changelog"

    @property
    def alive(self) -> list[Member]:
        return [member for member in self.members if member.process.process.poll() is None]

    def launch(self, name: str, data_dir: Path, port: int | None = None) -> Member:
        """A worker of this deployment with its own port and state directory (not waited
        for), advertised to the group at 127.0.0.1."""
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **self.env,
            "BACKBONE_WORKER_HOST": "127.0.0.1",
            "BACKBONE_WORKER_PORT": str(port),
            "BACKBONE_WORKER_ADVERTISED_URL": url,
            "BACKBONE_DATA_DIR": str(data_dir),
        }
        process = BackboneProcess.start(name, ["worker"], env, self.logs, f"{url}/health")
        api = httpx.Client(
            base_url=url,
            timeout=15.0,
            headers={"Authorization": f"Bearer {self.token}", "X-Purpose": "direct_care"},
        )
        member = Member(name, Worker(process, api), port, data_dir)
        self.members.append(member)
        return member

    def settle(self, expected: list[Member], timeout_s: float = WAIT_S) -> None:
        """Wait until every expected member is ready and sees the partitions of the router's
        and the timeline's tables, and the resolver's one partition, owned by exactly them."""
        urls = {member.url for member in expected}
        tables = {
            self.changelog("record-links"): PARTITIONS,
            self.changelog("timelines"): PARTITIONS,
            self.changelog("linkage-records"): 1,
        }
        deadline = time.monotonic() + timeout_s
        views: list[dict[int, str]] = []
        while time.monotonic() < deadline:
            ready = all(_status(member.api, "/health") == 200 for member in expected)
            views = [owners(m.worker, table) for m in expected for table in tables]
            counts = [count for _ in expected for count in tables.values()]
            if ready and all(
                len(view) == count and set(view.values()) <= urls
                for view, count in zip(views, counts, strict=True)
            ):
                return
            time.sleep(0.3)
        raise AssertionError(f"partitions never settled on {sorted(urls)}: {views}")

    def resolver_owner(self) -> Member:
        """The member holding the one partition of `identity-input` (the resolver's tables)."""
        owner = owners(self.alive[0].worker, self.changelog("linkage-records"))[0]
        return next(member for member in self.alive if member.url == owner)


def _status(api: httpx.Client, path: str) -> int:
    try:
        return api.get(path).status_code
    except httpx.HTTPError:
        return 0


@pytest.fixture(scope="module")
def fleet(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    logs = tmp_path_factory.mktemp("logs")
    env = {
        **deployment.env(),
        "BACKBONE_PARTITIONS": str(PARTITIONS),
        "BACKBONE_WORKER_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
        # The load raises alerts, and nothing listens at the sample routing's webhook and SMTP
        # addresses: one try each. With five, the lifecycle agent retries for minutes, and a
        # rebalance (the hand-over of a killed worker's partitions) waits for its event.
        "BACKBONE_NOTIFY_TRIES": "1",
    }
    token = issue_token(
        deployment.token_secret.encode(), "scale-out-test", ["children-services"], "social_worker"
    )
    codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
    # As the connectors publish (connectors/runtime/publisher.py): murmur2, the partitioner
    # Faust's tables are partitioned by, so a record's events meet its `record-links` entry.
    producer = Producer(
        {
            "bootstrap.servers": deployment.bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    built = Fleet(deployment, env, token, logs, [], Hospital(deployment, producer, codec), codec)
    try:
        for name in ("worker-a", "worker-b"):
            built.launch(name, tmp_path_factory.mktemp(name))
        for member in built.members:
            member.process.wait_healthy()
        built.settle(built.members)
        yield built
    finally:
        stop_all([member.process for member in built.members])
        for member in built.members:
            member.api.close()


# -- reading what the workers and the topics hold ---------------------------------------------


def lookup(api: httpx.Client, agency: str, id_type: str, local_id: str) -> str | None:
    """The person of an agency record as `GET /persons/lookup` answers now (None: not yet)."""
    params = {"agency": agency, "id_type": id_type, "id": local_id}
    answer = api.get("/persons/lookup", params=params)
    if answer.status_code == 200:
        person_id: str = answer.json()["person_id"]
        return person_id
    assert answer.status_code in (404, 503), answer.text
    return None


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = WAIT_S) -> T:
    """Repeat `probe` until it answers something other than None."""
    deadline = time.monotonic() + timeout_s
    while (found := probe()) is None:
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s: {what}"
        time.sleep(0.2)
    return found


def timeline_of(api: httpx.Client, person_id: str) -> dict[str, Any] | None:
    """A person's whole timeline (every page joined), `{"person_id", "merged_into"}` for a
    person merged into another, or None while it cannot be read."""
    body: dict[str, Any] | None = None
    cursor: str | None = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        answer = api.get(f"/persons/{person_id}/timeline", params=params)
        if answer.status_code in (404, 503):
            return None
        if answer.status_code == 301:
            merged: dict[str, Any] = answer.json()  # {"person_id", "merged_into"}
            return merged
        assert answer.status_code == 200, (person_id, answer.status_code, answer.text)
        page: dict[str, Any] = answer.json()
        if body is None:
            body = page
        else:
            body["events"].extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            return body


def timeline_with(api: httpx.Client, person_id: str, event_ids: set[str]) -> list[str]:
    """The event ids on the person's timeline once it holds every one of `event_ids`."""

    def holding() -> list[str] | None:
        body = timeline_of(api, person_id)
        ids = [entry["event_id"] for entry in body.get("events", [])] if body else []
        return ids if event_ids <= set(ids) else None

    return wait_for(f"{sorted(event_ids)} on the timeline of {person_id}", holding)


def timeline_counter(member: Member) -> float:
    """`backbone_events_in_total{component="timeline"}` on the member's /metrics, all agencies."""
    answer = member.api.get("/metrics")
    assert answer.status_code == 200, answer.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == "backbone_events_in_total"
        and sample.labels.get("component") == "timeline"
    )


def resolver_input(fleet: Fleet) -> list[dict[str, Any]]:
    """Every agency event framed on `identity-input`, as `{"record_id", "event_id",
    "subject"}` from its decoded Avro envelope; commands (review decisions, merges, splits,
    erasures: IdentityCommand records, not frames) are left out."""
    found = []
    for message in read_all(fleet.deployment.bootstrap, fleet.topics.identity_input):
        assert message.value is not None
        if is_command(fleet.codec, message.value):
            continue
        for framed in decode_frame(fleet.codec, message.value):
            envelope = fleet.codec.decode(framed.value).record["envelope"]
            found.append(
                {
                    "record_id": envelope["subject"]["record_id"],
                    "event_id": envelope["event_id"],
                    "subject": envelope["subject"],
                }
            )
    return found


def resolved_events(fleet: Fleet, record_id: str) -> list[str]:
    """The event ids of `record_id`'s events that went to the resolver, in topic order, each
    once (the framer may frame an event twice after a failed delivery; README)."""
    found = (
        event["event_id"] for event in resolver_input(fleet) if event["record_id"] == record_id
    )
    return list(dict.fromkeys(found))


def record_link(fleet: Fleet, record_id: str) -> dict[str, Any] | None:
    """The latest value of `record_id` in the `record-links` table's changelog: the link the
    router decides by, written by `identity-links` when it applies a decision."""
    latest = None
    for message in read_all(fleet.deployment.bootstrap, fleet.changelog("record-links")):
        if message.key is not None and record_id.encode() in message.key:
            latest = orjson.loads(message.value) if message.value is not None else None
    return latest


# -- 1, 2: the router: linked and unchanged records bypass the resolver ------------------------


def admit(fleet: Fleet, number: str, family: str, given: str, born: date, days_ago: int) -> str:
    return fleet.hospital.admit(number, family, given, born, postcode=POSTCODE, days_ago=days_ago)


def test_a_linked_records_events_bypass_the_resolver(fleet: Fleet) -> None:
    api = fleet.alive[0].api  # forwards to the owners of the record's and person's keys
    family, given, born = distinct_identity()
    number = uuid.uuid4().hex[:8]
    record_id = fleet.hospital.pseudonyms.record_id("health", HOSPITAL_NUMBER, number)
    first = admit(fleet, number, family, given, born, days_ago=20)
    person_id = wait_for(
        "the new record's person", lambda: lookup(api, "health", HOSPITAL_NUMBER, number)
    )
    timeline_with(api, person_id, {first})
    resolved_before = resolved_events(fleet, record_id)

    later = [admit(fleet, number, family, given, born, days_ago=19 - day) for day in range(5)]

    assert timeline_with(api, person_id, {first, *later}) == [first, *later]
    assert lookup(api, "health", HOSPITAL_NUMBER, number) == person_id
    # The new record went through the resolver, its linked and unchanged events did not.
    assert first in resolved_before
    assert resolved_events(fleet, record_id) == resolved_before, (
        "linked and unchanged, yet sent to the resolver; the router's link:",
        record_link(fleet, record_id),
    )


@pytest.mark.parametrize("changed", ["family_name", "birth_date"])
def test_a_changed_name_or_birth_date_is_resolved_again_then_bypasses(
    fleet: Fleet, changed: str
) -> None:
    api = fleet.alive[-1].api
    family, given, born = distinct_identity()
    number = uuid.uuid4().hex[:8]
    record_id = fleet.hospital.pseudonyms.record_id("health", HOSPITAL_NUMBER, number)
    first = admit(fleet, number, family, given, born, days_ago=20)
    person_id = wait_for(
        "the new record's person", lambda: lookup(api, "health", HOSPITAL_NUMBER, number)
    )
    timeline_with(api, person_id, {first})
    same = admit(fleet, number, family, given, born, days_ago=19)
    timeline_with(api, person_id, {first, same})
    if changed == "family_name":
        family = distinct_identity()[0]  # married, say
    else:
        born += timedelta(days=40)  # a corrected birth date

    renamed = admit(fleet, number, family, given, born, days_ago=18)

    assert timeline_with(api, person_id, {renamed}) == [first, same, renamed]
    assert resolved_events(fleet, record_id) == [first, renamed]
    # The resolver's decision carries the new attributes' fingerprint; once `record-links`
    # holds it, the record's next event with the same attributes bypasses again.
    subject = next(e["subject"] for e in resolver_input(fleet) if e["event_id"] == renamed)
    wait_for(
        "record-links to hold the changed attributes' fingerprint",
        lambda: (
            (record_link(fleet, record_id) or {}).get("fingerprint") == fingerprint(subject) or None
        ),
    )
    assert (record_link(fleet, record_id) or {}).get("person_id") == person_id
    after = admit(fleet, number, family, given, born, days_ago=17)
    assert timeline_with(api, person_id, {after}) == [first, same, renamed, after]
    assert resolved_events(fleet, record_id) == [first, renamed]
    assert lookup(api, "health", HOSPITAL_NUMBER, number) == person_id


# -- 3, 4: a load over two workers, one killed; a worker rebuilt from empty state -------------


@dataclass
class Load:
    """What was published: each record's events, and how to look the record up."""

    events: dict[str, list[str]]  # record id -> event ids, in publishing order
    local_ids: dict[str, tuple[str, str, str]]  # record id -> agency, id type, local id
    households: int  # events that list a household member
    counted_before_kill: dict[str, float] = field(default_factory=dict)  # worker -> timeline in
    killed: Member | None = None
    survivor: Member | None = None

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.events.values())


def build_load(
    fleet: Fleet, size: int = LOAD_EVENTS, persons: int = LOAD_PERSONS
) -> tuple[Load, list[BenchEvent]]:
    """`size` events of `persons` persons' agency records (bench.mix), some social care events
    listing another social care record as household member."""
    key = fleet.deployment.pseudonym_key.encode()
    sized_for = round(persons * EVENTS_PER_RECORD * RECORDS_PER_PERSON)
    mix = AgencyMix(sized_for, fleet.codec, fleet.topics, key, seed=LOAD_SEED)
    # The same population the mix draws (it sizes `persons` persons for `sized_for` events),
    # for the local identifiers the lookup asks by.
    population = generate(PopulationSettings(persons=persons, seed=LOAD_SEED))
    assert len(population.records) == mix.records
    pseudonyms = Pseudonymiser(key)
    subjects = {}
    local_ids = {}
    for record in population.records:
        subject = record.as_subject(pseudonyms)
        subjects[subject["record_id"]] = (Agency(record.agency), subject)
        local_ids[subject["record_id"]] = (record.agency, record.id_type, record.local_id)
    care = [s for agency, s in subjects.values() if agency is Agency.SOCIAL_CARE]
    events = []
    load = Load({}, local_ids, 0)
    social_care = 0
    for number, event in enumerate(itertools.islice(mix.events(), size)):
        record_id = event.key.decode()
        assert record_id in local_ids, "the mix's population is not the one sized here"
        agency = subjects[record_id][0]
        if agency is Agency.SOCIAL_CARE and number >= mix.records:
            social_care += 1
            if social_care % HOUSEHOLD_EVERY == 0:
                # Another person's record: the population lists each person's together.
                member = care[(care.index(subjects[record_id][1]) + len(care) // 2) % len(care)]
                event = with_household(fleet.codec, event, member)
                load.households += 1
        load.events.setdefault(record_id, []).append(event.event_id)
        events.append(event)
    return load, events


def with_household(codec: AvroCodec, event: BenchEvent, member: dict[str, Any]) -> BenchEvent:
    record = codec.decode(event.value).record
    record["household"] = [{"subject": member, "relationship": "sibling"}]
    value = codec.encode(EVENT_SCHEMAS[Agency.SOCIAL_CARE], record)
    return BenchEvent(event.topic, event.key, value, event.event_id)


@pytest.fixture(scope="module")
def load(fleet: Fleet) -> Load:
    """The load published while both workers run; once both have put events on timelines, the
    worker holding the resolver's partition is killed (SIGKILL: no flush, no leaving the
    group) and the rest published. That worker, so that the resolver's tables are handed over
    too, and at the moment it is storing the load's new records: the worst moment to crash."""
    built, events = build_load(fleet)
    half = len(events) // 2
    burst(fleet.deployment.bootstrap, events[:half])
    members = fleet.alive
    assert len(members) == 2, "the load needs both workers"
    deadline = time.monotonic() + WAIT_S
    while True:
        counted = {member.name: timeline_counter(member) for member in members}
        if all(count > 0 for count in counted.values()):
            break
        assert time.monotonic() < deadline, f"a worker put no event on a timeline: {counted}"
        time.sleep(0.1)
    killed = fleet.resolver_owner()
    resolver_writing(fleet)
    killed.process.process.send_signal(signal.SIGKILL)
    killed.process.process.wait()
    built.counted_before_kill, built.killed = counted, killed
    built.survivor = next(member for member in members if member is not killed)
    burst(fleet.deployment.bootstrap, events[half:])
    fleet.settle([built.survivor], timeout_s=SESSION_TIMEOUT_S + WAIT_S)
    return built


def resolver_writing(fleet: Fleet, timeout_s: float = 10.0) -> None:
    """Return as soon as the resolver's `linkage-records` changelog grows (it is storing new
    records), or after `timeout_s` if it does not."""
    changelog = TopicPartition(fleet.changelog("linkage-records"), 0)
    consumer = Consumer(
        {"bootstrap.servers": fleet.deployment.bootstrap, "group.id": f"probe-{uuid.uuid4()}"}
    )
    try:
        seen = consumer.get_watermark_offsets(changelog, timeout=10)[1]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if consumer.get_watermark_offsets(changelog, timeout=10)[1] > seen:
                return
    finally:
        consumer.close()


def parallel(function: Callable[[T], R], items: list[T]) -> list[R]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(function, items))


def persons_of(load: Load, api: httpx.Client) -> dict[str, str | None]:
    """Record id -> its person as the lookup answers now."""
    records = list(load.local_ids)
    found = parallel(lambda record: lookup(api, *load.local_ids[record]), records)
    return dict(zip(records, found, strict=True))


def complete_timelines(fleet: Fleet, load: Load, member: Member) -> dict[str, str]:
    """Once the pipeline has finished, every published event must be on the timeline of its
    record's person, once, and on no other (read through `member`); returns record id ->
    person id."""
    wait_until_settled(fleet)
    deadline = time.monotonic() + 10.0  # the answers may trail the commits by a moment
    while True:
        persons = persons_of(load, member.api)
        problems = [f"record {r} has no person" for r, p in persons.items() if p is None]
        missing: dict[str, str] = {}  # event id -> the person whose timeline lacks it
        strays: dict[str, str] = {}  # event id -> the person whose timeline has it, not its
        if not problems:
            expected: dict[str, set[str]] = {}
            for record_id, person_id in persons.items():
                assert person_id is not None
                expected.setdefault(person_id, set()).update(load.events.get(record_id, []))
            people = sorted(expected)
            bodies = parallel(lambda person_id: timeline_of(member.api, person_id), people)
            for person_id, body in zip(people, bodies, strict=True):
                if body is not None and "merged_into" in body:
                    problems.append(f"{person_id}: a lookup's answer, merged into {body}")
                    missing.update(dict.fromkeys(expected[person_id], person_id))
                    continue
                ids = [entry["event_id"] for entry in body["events"]] if body else []
                doubled = {event_id for event_id in ids if ids.count(event_id) > 1}
                assert not doubled, f"events twice on the timeline of {person_id}: {doubled}"
                lacking, extra = expected[person_id] - set(ids), set(ids) - expected[person_id]
                missing.update(dict.fromkeys(lacking, person_id))
                strays.update(dict.fromkeys(extra, person_id))
                if lacking or extra:
                    problems.append(f"{person_id}: {len(lacking)} missing, {len(extra)} not its")
        if not problems:
            return {record: person for record, person in persons.items() if person is not None}
        if time.monotonic() > deadline:
            owner_of = {event: record for record, ids in load.events.items() for event in ids}
            raise AssertionError(
                f"with the pipeline idle, {len(problems)} timelines are not their records' "
                f"events: {problems[:10]}; where identity sent the missing events: "
                f"{sent_to(fleet, missing)}; events on another record's person's timeline: "
                + str(
                    [
                        f"{event_id} of record {owner_of.get(event_id)} (its person "
                        f"{persons.get(owner_of.get(event_id, ''))}) on {person_id}'s"
                        for event_id, person_id in itertools.islice(strays.items(), 6)
                    ]
                )
            )
        time.sleep(1.0)


def sent_to(fleet: Fleet, missing: dict[str, str]) -> list[str]:
    """For a few missing events: the persons `person-events` carried them to (each framed
    event's key), against the person the lookup names now."""
    keys: dict[str, list[str]] = {}
    for message in read_all(fleet.deployment.bootstrap, fleet.topics.person_events):
        assert message.value is not None
        for framed in decode_frame(fleet.codec, message.value):
            event_id = fleet.codec.decode(framed.value).record["envelope"]["event_id"]
            if event_id in missing:
                keys.setdefault(event_id, []).append((framed.key or b"").decode())
    return [
        f"{event_id} sent to {keys.get(event_id, [])}, looked up {person_id}"
        for event_id, person_id in itertools.islice(missing.items(), 6)
    ]


def wait_until_settled(fleet: Fleet) -> None:
    """Wait for the pipeline to finish the load; say where it is behind if it does not."""
    deployment = fleet.deployment
    try:
        wait_for(
            "the pipeline to finish the load", lambda: settled(deployment) or None, TAKE_OVER_S
        )
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; committed behind: {behind(deployment)}") from None


def person_ids(fleet: Fleet) -> list[str]:
    """Every person id `person-events` ever carried events for: the persons there are, those
    merged into others, any left behind."""
    found: set[str] = set()
    for message in read_all(fleet.deployment.bootstrap, fleet.topics.person_events):
        assert message.value is not None
        found.update(
            (framed.key or b"").decode() for framed in decode_frame(fleet.codec, message.value)
        )
    return sorted(found)


def answers(api: httpx.Client, person_id: str) -> dict[str, Any]:
    """What the API answers about a person: the whole timeline (or the merged person's 301),
    the links."""
    timeline = api.get(f"/persons/{person_id}/timeline", params={"limit": "1000"})
    links = api.get(f"/persons/{person_id}/links")
    return {
        "timeline": (timeline.status_code, timeline.json()),
        "links": (links.status_code, links.json()),
    }


def test_two_workers_share_the_load_and_a_killed_workers_partitions_are_taken_over(
    fleet: Fleet, load: Load
) -> None:
    assert load.killed is not None and load.survivor is not None

    persons = complete_timelines(fleet, load, load.survivor)

    # Both workers had put events on timelines before one was killed mid-load.
    assert len(load.counted_before_kill) == 2
    assert all(count > 0 for count in load.counted_before_kill.values())
    assert load.total == LOAD_EVENTS and load.households > 0
    assert len(set(persons.values())) >= LOAD_PERSONS / 2, "several hundred persons"


def test_a_worker_rebuilt_from_an_empty_state_directory_serves_the_same_timelines(
    fleet: Fleet, load: Load
) -> None:
    assert load.survivor is not None
    wait_until_settled(fleet)
    people = person_ids(fleet)
    old = load.survivor
    before = dict(zip(people, parallel(lambda p: answers(old.api, p), people), strict=True))
    looked_up = persons_of(load, old.api)
    assert old.process.stop() == 0
    shutil.rmtree(old.data_dir)
    old.data_dir.mkdir()

    rebuilt = fleet.launch("worker-rebuilt", old.data_dir, port=old.port)
    rebuilt.process.wait_healthy()
    fleet.settle([rebuilt])

    after = dict(zip(people, parallel(lambda p: answers(rebuilt.api, p), people), strict=True))
    differing = [person_id for person_id in people if after[person_id] != before[person_id]]
    assert not differing, [
        (person_id, before[person_id], after[person_id]) for person_id in differing[:3]
    ]
    assert persons_of(load, rebuilt.api) == looked_up
    # What was compared: timelines with events and households, and links, of each person.
    current = [answer for answer in before.values() if answer["timeline"][0] == 200]
    assert len(current) >= LOAD_PERSONS / 2
    empty = [
        (person_id, answer)
        for person_id, answer in before.items()
        if answer["timeline"][0] == 200
        and not (answer["links"][0] == 200 and answer["timeline"][1]["events"])
    ]
    assert not empty, empty[:3]
    assert any(answer["timeline"][1]["household"] for answer in current)
