"""The broker stopped in the middle of a load and started again, against real processes.

The test runs a Kafka broker of its own (`deploy/kafka/kafka.sh` on free ports with its own
data directory: the shared test broker is never touched), a stream worker and the four
connectors against it, and plays the four agencies through their public inputs only: the
hospital's ADT messages over MLLP, social care's webhook posts, the jobcentre's table changes
(read by change data capture) and housing's nightly exports. While the load is arriving the
broker is stopped (`kafka.sh stop`); while it is down

- an MLLP message gets `MSA|AR` (the hospital resends it once the broker is back),
- a webhook post gets 503 (resent later, with the same Idempotency-Key, as the sender would),
- jobcentre changes committed meanwhile stay on the replication slot: one that means no
  event is confirmed (the connector has nothing to publish) and one after it is not,
- an export dropped meanwhile is deferred and stays in the drop folder;

then it is started again on the same data directory. Once the pipeline has settled, every
event the agencies produced must be on its person's timeline exactly once.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backbone.contracts import CASE_PERSON_ID, HOSPITAL_NUMBER, JOBSEEKER_ID, TENANT_REF
from backbone.pseudonyms import Pseudonymiser
from backbone.topics import Topics
from cli.kafka_probe import read_all
from cli.processes import BackboneProcess, free_port, stop_all
from connectors.jobcentre_cdc.slot import lsn_value
from simulators.hospital import AdtMessage, HospitalPas, Patient, Visit
from simulators.housing import HousingManagementSystem, Tenancy
from simulators.jobcentre import CaseManagementSystem, Jobseeker
from simulators.social_care import CaseEvent, CasePerson
from simulators.social_care import CaseManagementSystem as CaseSystem
from tests.conftest import (
    KAFKA_SCRIPT,
    Deployment,
    distinct_identity,
    fresh_deployment,
    jobcentre_database,
    settled,
    wait_until,
)
from tests.test_scale_out import lookup, timeline_of

# Under `make chaos`, not `make test`: the worker sometimes aborts inside librdkafka as the
# broker comes back (README, "Broker outages").
pytestmark = pytest.mark.chaos

PERSONS = 30  # each known to all four agencies: about 400 events in all
# Between one sender's inputs, so that the load is still arriving when the broker stops.
PACE_S = 0.15
# The broker is stopped once the hospital and social care had this share of their inputs
# accepted (the jobcentre a third of its changes, all read by then).
STOP_AT = 0.25
# How long a connector waits for Kafka before refusing (README: 503 / AR); short, so that the
# refusals come within the outage.
DELIVERY_TIMEOUT_S = 2
RESEND_PAUSE_S = 0.5
GIVE_UP_S = 120.0  # a sender stops resending an input after this long
WAIT_S = 90.0
NOW = datetime.now(UTC).replace(microsecond=0)
NIGHTS = [NOW.date() - timedelta(days=5 - number) for number in range(5)]
DOWN_NIGHT = 2  # the export dropped while the broker is down

Record = tuple[str, str, str]  # agency, identifier type, the agency's own identifier
JobcentreChange = Callable[[CaseManagementSystem], None]


@dataclass(frozen=True)
class OwnBroker:
    """This test's own broker: kafka.sh on free ports, with its own data directory."""

    port: int
    controller_port: int
    data: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, command: str) -> float:
        """`kafka.sh start` or `stop` for this broker; the seconds it took."""
        env = {
            **os.environ,
            "BACKBONE_KAFKA_PORT": str(self.port),
            "BACKBONE_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "BACKBONE_KAFKA_DATA": str(self.data),
            "BACKBONE_KAFKA_HEAP": "512m",
        }
        began = time.monotonic()
        done = subprocess.run([str(KAFKA_SCRIPT), command], env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"kafka.sh {command} failed: {done.stderr[-2000:]}"
        return time.monotonic() - began


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    own = OwnBroker(free_port(), free_port(), tmp_path_factory.mktemp("kafka"))
    try:
        own.run("start")
        yield own
    finally:
        own.run("stop")


@dataclass
class Backbone:
    """The worker and the four connectors on the test's broker, and their inputs."""

    broker: OwnBroker
    deployment: Deployment
    processes: list[BackboneProcess]
    api: httpx.Client
    mllp_port: int
    drop_dir: Path
    housing_metrics: str
    jobcentre_dsn: str
    slot: str

    def case_system(self) -> CaseSystem:
        """The social care case system, posting to the webhook (close it after use)."""
        url = f"http://127.0.0.1:{self.deployment.webhook_port}"
        return CaseSystem(url, self.deployment.webhook_secret.encode())


@pytest.fixture(scope="module")
def backbone(
    broker: OwnBroker, postgres: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backbone]:
    logs = tmp_path_factory.mktemp("logs")
    drop_dir = tmp_path_factory.mktemp("housing-drop")
    mllp_port, housing_port, slot = free_port(), free_port(), f"t_{uuid.uuid4().hex[:12]}"
    with (
        fresh_deployment(broker.bootstrap, tmp_path_factory) as deployment,
        jobcentre_database(postgres, "outage") as (dsn, _),
    ):
        refusing = {"BACKBONE_DELIVERY_TIMEOUT_S": str(DELIVERY_TIMEOUT_S)}
        connectors = {
            "social-care-webhook": {},
            "hl7-mllp": {
                "BACKBONE_METRICS_PORT": str(free_port()),
                "BACKBONE_MLLP_PORT": str(mllp_port),
            },
            "jobcentre-cdc": {
                "BACKBONE_METRICS_PORT": str(free_port()),
                "BACKBONE_CDC_DSN": dsn,
                "BACKBONE_CDC_SLOT": slot,
                "BACKBONE_CDC_IDLE_POLL_S": "0.05",
            },
            "housing-csv": {
                "BACKBONE_METRICS_PORT": str(housing_port),
                "BACKBONE_DATA_DIR": str(tmp_path_factory.mktemp("housing-state")),
                "BACKBONE_HOUSING_DROP_DIR": str(drop_dir),
                "BACKBONE_HOUSING_POLL_INTERVAL_S": "0.2",
            },
        }
        # The load raises alerts and nothing listens at the sample routing's addresses: one
        # try each, as in the scale-out test.
        processes = [deployment.start_worker(logs, {"BACKBONE_NOTIFY_TRIES": "1"})]
        try:
            for name, settings in connectors.items():
                processes.append(deployment.start_connector(name, logs, refusing | settings))
            for process in processes:
                process.wait_healthy()
            with deployment.coordinator_api() as api:
                yield Backbone(
                    broker,
                    deployment,
                    processes,
                    api,
                    mllp_port,
                    drop_dir,
                    f"http://127.0.0.1:{housing_port}/metrics",
                    dsn,
                    slot,
                )
        finally:
            # Before the database goes: its slot cannot be dropped while the connector runs.
            stop_all(processes)


# -- the load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """One person as all four agencies record them (the same national identifier)."""

    number: int
    family: str
    given: str
    born: date
    national_id: str

    @classmethod
    def new(cls, number: int) -> Person:
        family, given, born = distinct_identity()
        return cls(number, family, given, born, f"QQ{number:06d}C")

    @property
    def records(self) -> dict[str, Record]:
        return {
            "health": ("health", HOSPITAL_NUMBER, f"RBH{self.number:05d}"),
            "social_care": ("social_care", CASE_PERSON_ID, f"CP-{self.number}"),
            "jobcentre": ("jobcentre", JOBSEEKER_ID, str(self.number)),
            "housing": ("housing", TENANT_REF, f"PER-{self.number}"),
        }

    def patient(self) -> Patient:
        number = self.records["health"][2]
        return Patient(number, self.family, self.given, self.born, "F", self.national_id)

    def case_person(self) -> CasePerson:
        number = self.records["social_care"][2]
        return CasePerson(number, self.family, self.given, self.born, self.national_id)

    def jobseeker(self) -> Jobseeker:
        return Jobseeker(self.number, self.family, self.given, self.born, self.national_id)

    def tenancy(self) -> Tenancy:
        tenant = self.records["housing"][2]
        return Tenancy(
            f"TEN-{self.number}",
            tenant,
            self.national_id,
            self.family,
            self.given,
            self.born,
            f"{self.number} Moor Road, Leeds",
            None,
        )


@dataclass
class Load:
    """What the agencies send, and the events (record, event type) the timelines must hold in
    the end."""

    persons: list[Person]
    hospital: list[AdtMessage] = field(default_factory=list)
    social_care: list[CaseEvent] = field(default_factory=list)
    jobcentre: list[JobcentreChange] = field(default_factory=list)
    nights: list[list[Tenancy]] = field(default_factory=list)
    expected: Counter[tuple[Record, str]] = field(default_factory=Counter)

    def expect(self, person: Person, agency: str, *event_types: str) -> None:
        self.expected.update((person.records[agency], kind) for kind in event_types)

    @property
    def records(self) -> list[Record]:
        return [record for person in self.persons for record in person.records.values()]


def adt(trigger: str, person: Person, days_ago: int, visit: str) -> AdtMessage:
    moment = NOW - timedelta(days=days_ago)
    control_id = f"{trigger}-{person.number}-{days_ago}"
    return AdtMessage(trigger, person.patient(), control_id, moment, visit=Visit(visit))


def build_load(persons: list[Person]) -> Load:
    load = Load(persons)
    for person in persons:
        load.hospital += [adt("A04", person, 30, "E"), adt("A01", person, 20, "I")]
        load.hospital.append(adt("A03", person, 18, "I"))
        load.expect(person, "health", "attendance", "admission", "discharge")
        case = f"CASE-{person.number}"
        load.social_care += [
            CaseEvent("referral_received", NOW - timedelta(days=25), case, person.case_person()),
            CaseEvent("case_opened", NOW - timedelta(days=24), case, person.case_person()),
        ]
        load.expect(person, "social_care", "referral_received", "case_opened")
        load.jobcentre += jobcentre_story(person)
        load.expect(person, "jobcentre", "jobseeker_registered", "claim_applied", "claim_awarded")
    tenancies = [person.tenancy() for person in persons]
    # Night by night, and what it tells of every tenancy: the tenancies found (the initial
    # load), arrears over 4 and then 8 weeks, a notice seeking possession, an eviction warrant.
    for changes, event_type in (
        ({}, "tenancy_started"),
        ({"arrears_amount": "500.00", "arrears_weeks": 5.0}, "arrears_threshold_crossed"),
        ({"arrears_amount": "900.00", "arrears_weeks": 9.0}, "arrears_threshold_crossed"),
        ({"notice": "notice_seeking_possession"}, "notice_served"),
        ({"notice": "eviction_warrant"}, "eviction_warrant_issued"),
    ):
        tenancies = [tenancy.changed(**changes) for tenancy in tenancies]
        load.nights.append(tenancies)
        for person in persons:
            load.expect(person, "housing", event_type)
    return load


def jobcentre_story(person: Person) -> list[JobcentreChange]:
    claim = 10_000 + person.number
    return [
        lambda system: system.register(person.jobseeker()),
        lambda system: system.apply_claim(claim, person.number, "universal_credit"),
        lambda system: system.set_claim_status(claim, "awarded"),
    ]


@dataclass(frozen=True)
class Probes:
    """What the test itself offers while the broker is down (housing's: the export of night
    DOWN_NIGHT of the load)."""

    message: AdtMessage
    delivery: CaseEvent
    delivery_key: str
    # A change the backbone makes no event of (an appointment booked): the connector has
    # nothing to publish, so it confirms it on the slot and saves its position at once.
    booking: JobcentreChange
    sanction: JobcentreChange


def probes(load: Load) -> Probes:
    """The test's own inputs for the outage, their events added to what `load` expects."""
    person = load.persons[0]
    load.expect(person, "health", "attendance")
    load.expect(person, "social_care", "safeguarding_concern")
    load.expect(person, "jobcentre", "sanction_imposed")
    case = f"CASE-{person.number}"
    concern = CaseEvent("safeguarding_concern", NOW - timedelta(days=2), case, person.case_person())
    return Probes(
        adt("A04", person, 1, "E"),
        concern,
        str(uuid.uuid4()),
        lambda system: system.schedule_appointment(30_000, person.number, NOW + timedelta(days=7)),
        lambda system: system.impose_sanction(
            20_000, person.number, "missed appointment", NOW.date(), 20
        ),
    )


# -- the senders: each plays one agency system and resends what was refused ------------------


class Progress:
    """Inputs accepted and refusals met, per agency, counted by the sender threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def count(self, agency: str, accepted: int = 0, refused: int = 0) -> None:
        with self._lock:
            self.accepted[agency] += accepted
            self.refused[agency] += refused


def play_hospital(port: int, messages: list[AdtMessage], progress: Progress) -> None:
    """The PAS sends each message until it is acknowledged (it resends on AR)."""
    with closing(HospitalPas("127.0.0.1", port, give_up_after_s=GIVE_UP_S)) as pas:
        for message in messages:
            resent = pas.resent
            ack = pas.send(message)
            assert ack.code == "AA", (message.control_id, ack.text)
            progress.count("health", accepted=1, refused=pas.resent - resent)
            time.sleep(PACE_S)


def deliver_until_accepted(
    system: CaseSystem, event: CaseEvent, key: str, progress: Progress
) -> None:
    """POST the delivery, and again with the same key after each 503, until it is taken."""
    deadline = time.monotonic() + GIVE_UP_S
    while (answer := system.deliver(event, idempotency_key=key)).status_code == 503:
        progress.count("social_care", refused=1)
        assert time.monotonic() < deadline, f"{event.event_type} refused for {GIVE_UP_S} s"
        time.sleep(RESEND_PAUSE_S)
    assert answer.status_code == 202, answer.text
    progress.count("social_care", accepted=1)


def play_social_care(system: CaseSystem, events: list[CaseEvent], progress: Progress) -> None:
    """The case system posts each event (a fresh Idempotency-Key each) until it is taken."""
    with closing(system):
        for event in events:
            deliver_until_accepted(system, event, str(uuid.uuid4()), progress)
            time.sleep(PACE_S)


def play_jobcentre(dsn: str, changes: list[JobcentreChange], progress: Progress) -> int:
    """The case system commits its changes, whatever Kafka does; returns the WAL position
    just before the last one."""
    system = CaseManagementSystem(dsn)
    mark = 0
    try:
        for change in changes:
            mark = commit(system, dsn, change)
            progress.count("jobcentre", accepted=1)
            time.sleep(PACE_S)
    finally:
        system.close()
    return mark


# -- what the backbone shows ------------------------------------------------------------------


def commit(system: CaseManagementSystem, dsn: str, change: JobcentreChange) -> int:
    """Commit `change`; the WAL position just before it (the slot confirms the change's
    transaction when its confirmed position passes this)."""
    mark = wal_position(dsn)
    change(system)
    return mark


def wal_position(dsn: str) -> int:
    with psycopg.connect(dsn) as connection:
        found = connection.execute("select pg_current_wal_lsn()::text").fetchone()
    assert found is not None
    return lsn_value(str(found[0]))


def slot_confirmed(dsn: str, slot: str) -> int:
    """The slot's confirmed position: what the connector had on Kafka when it confirmed."""
    with psycopg.connect(dsn) as connection:
        found = connection.execute(
            "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = %s",
            (slot,),
        ).fetchone()
    assert found is not None, f"no slot {slot}"
    return lsn_value(str(found[0]))


def snapshots_deferred(backbone: Backbone) -> float:
    """`backbone_housing_snapshots_total{outcome="deferred"}` of the housing connector."""
    text = httpx.get(backbone.housing_metrics, timeout=5.0).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "backbone_housing_snapshots_total"
        and sample.labels.get("outcome") == "deferred"
    )


def waiting(backbone: Backbone, night: int) -> bool:
    """Whether the night's export still waits in the drop folder (not taken yet)."""
    return (backbone.drop_dir / HousingManagementSystem.file_name(NIGHTS[night])).exists()


def export(backbone: Backbone, load: Load, night: int) -> None:
    """Housing drops the night's export in the folder."""
    HousingManagementSystem(backbone.drop_dir).export(NIGHTS[night], load.nights[night])


def wait_taken(backbone: Backbone, night: int) -> None:
    """Until the connector took the night's export (moved it out of the folder)."""
    wait_until(lambda: not waiting(backbone, night), WAIT_S, f"night {night}'s export taken")


@dataclass
class Tally:
    """The load's events against what the timelines hold."""

    on_timelines: int = 0  # the load's events found on their records' persons' timelines
    lost: int = 0  # expected, not found
    duplicates: int = 0  # found more often than sent (an event id twice counts here too)
    ids_twice: int = 0  # entries whose event id another entry of the timeline has
    strays: list[str] = field(default_factory=list)  # entries of no record of that person
    persons: dict[Record, str | None] = field(default_factory=dict)
    missing: Counter[str] = field(default_factory=Counter)  # "agency event_type" -> how many


def tally(backbone: Backbone, load: Load) -> Tally:
    """Look every record's person up and count its events on that person's timeline."""
    api = backbone.api
    pseudonyms = Pseudonymiser(backbone.deployment.pseudonym_key.encode())
    result = Tally(persons={record: lookup(api, *record) for record in load.records})
    found: Counter[tuple[Record, str]] = Counter()
    for person_id in {p for p in result.persons.values() if p is not None}:
        body = timeline_of(api, person_id)
        if body is None or "merged_into" in body:
            continue  # merged since it was looked up: its events count as missing this time
        records = {
            pseudonyms.record_id(*record): record
            for record, person in result.persons.items()
            if person == person_id
        }
        ids = [entry["event_id"] for entry in body["events"]]
        result.ids_twice += len(ids) - len(set(ids))
        for entry in body["events"]:
            record = records.get(entry["record_id"])
            if record is None:
                result.strays.append(f"{entry['event_id']} on {person_id}")
            else:
                found[(record, entry["event_type"])] += 1
    missing = load.expected - found
    result.on_timelines = sum((found & load.expected).values())
    result.lost = sum(missing.values())
    result.missing = Counter(f"{record[0]} {kind}" for record, kind in missing.elements())
    result.duplicates = sum((found - load.expected).values())
    return result


def wait_until_complete(backbone: Backbone, load: Load) -> None:
    """Wait until every event of the load is on a timeline; say what is missing if not."""
    last = Tally()

    def complete() -> bool:
        nonlocal last
        last = tally(backbone, load)
        return last.lost == 0

    try:
        wait_until(complete, WAIT_S, "every event on a timeline")
    except AssertionError as timed_out:
        exited = [p.name for p in backbone.processes if p.process.poll() is not None]
        raise AssertionError(f"{timed_out}: missing {last.missing}; exited: {exited}") from None


def repeats_on_kafka(deployment: Deployment) -> int:
    """Agency events written more than once (same event id) to the agency topics."""
    ids = [
        message.headers["event_id"]
        for topic in Topics(deployment.prefix).all_agency_events()
        for message in read_all(deployment.bootstrap, topic)
    ]
    return len(ids) - len(set(ids))


# -- the outage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outage:
    """How long `kafka.sh stop` took, how long the broker was away (from the stop until the
    start had it answering) and how long `kafka.sh start` took."""

    stopping_s: float
    down_s: float
    starting_s: float


def break_the_broker(backbone: Backbone, load: Load, probe: Probes) -> Outage:
    """Stop the broker, offer each agency's input while it is away, start it again."""
    began = time.monotonic()
    stopping_s = backbone.broker.run("stop")
    try:
        refused_or_held(backbone, load, probe)
    finally:
        starting_s = backbone.broker.run("start")
    return Outage(stopping_s, time.monotonic() - began, starting_s)


def refused_or_held(backbone: Backbone, load: Load, probe: Probes) -> None:
    """Each agency's input, while the broker is away, is refused or held where it is."""
    with closing(HospitalPas("127.0.0.1", backbone.mllp_port)) as pas:
        ack = pas.send_once(probe.message)
    assert ack.code == "AR", f"MLLP while the broker is down: {ack.code} {ack.text}"

    with closing(backbone.case_system()) as system:
        answer = system.deliver(probe.delivery, idempotency_key=probe.delivery_key)
    assert answer.status_code == 503, f"webhook while the broker is down: {answer.status_code}"

    dsn, slot = backbone.jobcentre_dsn, backbone.slot
    with closing(CaseManagementSystem(dsn)) as jobcentre:
        booked = commit(jobcentre, dsn, probe.booking)
        # Nothing to publish: confirmed on the slot at once; its position copy cannot be saved.
        wait_until(lambda: slot_confirmed(dsn, slot) > booked, WAIT_S, "the booking confirmed")
        sanctioned = commit(jobcentre, dsn, probe.sanction)

    deferred = snapshots_deferred(backbone)
    export(backbone, load, DOWN_NIGHT)
    wait_until(lambda: snapshots_deferred(backbone) > deferred, WAIT_S, "the export deferred")
    assert waiting(backbone, DOWN_NIGHT), "an export deferred stays in the drop folder"
    # The sanction's event is not on Kafka: the slot holds its change (checked last, after
    # the seconds the export took to be deferred).
    assert slot_confirmed(dsn, slot) <= sanctioned, "the slot confirmed a change not on Kafka"


def test_a_broker_outage_mid_load_refuses_input_and_loses_or_doubles_nothing(
    backbone: Backbone,
) -> None:
    load = build_load([Person.new(number) for number in range(1, PERSONS + 1)])
    probe = probes(load)
    progress = Progress()
    # The jobcentre commits a third of its changes before the outage and the rest after; while
    # the broker is down, the test's own two.
    before = len(load.jobcentre) // 3
    dsn = backbone.jobcentre_dsn
    with ThreadPoolExecutor(max_workers=3) as pool:
        senders = [
            pool.submit(play_hospital, backbone.mllp_port, load.hospital, progress),
            pool.submit(play_social_care, backbone.case_system(), load.social_care, progress),
        ]
        jobcentre = pool.submit(play_jobcentre, dsn, load.jobcentre[:before], progress)
        for night in range(DOWN_NIGHT):
            export(backbone, load, night)
            wait_taken(backbone, night)
        # So that the connector is not held on a batch when the broker stops (it confirms
        # nothing while one is refused), and reads the booking while the broker is down.
        last = jobcentre.result()
        wait_until(lambda: slot_confirmed(dsn, backbone.slot) > last, WAIT_S, "jobcentre read")
        wait_until(
            lambda: (
                progress.accepted["health"] >= STOP_AT * len(load.hospital)
                and progress.accepted["social_care"] >= STOP_AT * len(load.social_care)
            ),
            WAIT_S,
            "a share of the load accepted",
        )
        assert sum(progress.refused.values()) == 0, "nothing is refused while the broker is up"
        accepted_before = dict(progress.accepted)

        outage = break_the_broker(backbone, load, probe)

        # The broker is back: the hospital resends what got AR, the case system what got 503.
        jobcentre = pool.submit(play_jobcentre, dsn, load.jobcentre[before:], progress)
        with closing(HospitalPas("127.0.0.1", backbone.mllp_port)) as pas:
            assert pas.send(probe.message).code == "AA"
        with closing(backbone.case_system()) as system:
            deliver_until_accepted(system, probe.delivery, probe.delivery_key, progress)
        wait_taken(backbone, DOWN_NIGHT)
        for night in range(DOWN_NIGHT + 1, len(NIGHTS)):
            export(backbone, load, night)
            wait_taken(backbone, night)
        for sender in senders:
            sender.result()
        jobcentre.result()

    wait_until_complete(backbone, load)
    wait_until(lambda: settled(backbone.deployment), WAIT_S, "the pipeline to settle")
    final = tally(backbone, load)

    assert all(process.process.poll() is None for process in backbone.processes)
    assert (final.lost, final.duplicates, final.ids_twice, final.strays) == (0, 0, 0, [])
    assert final.on_timelines == sum(load.expected.values())
    split = [p for p in load.persons if len({final.persons[r] for r in p.records.values()}) > 1]
    assert not split, "each person's four records are on one timeline"
    print(
        f"outage: {sum(load.expected.values())} events sent, {final.on_timelines} on timelines, "
        f"{final.duplicates} duplicates, {final.lost} lost; accepted before the stop "
        f"{accepted_before}; refused and resent {dict(progress.refused)}; "
        f"{repeats_on_kafka(backbone.deployment)} events written twice to Kafka; "
        f"kafka.sh stop took {outage.stopping_s:.1f} s, the broker was away "
        f"{outage.down_s:.1f} s, kafka.sh start took {outage.starting_s:.1f} s"
    )
