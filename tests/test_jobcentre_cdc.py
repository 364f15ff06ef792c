"""The jobcentre CDC connector on real parts: PostgreSQL logical decoding -> real Kafka.

The simulator writes rows into a fresh database of the project's PostgreSQL; the connector runs
as a real process (`backbone connector run jobcentre-cdc`); the topics are read back directly.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import Agency
from backbone.events import Subject
from backbone.pseudonyms import Pseudonymiser
from backbone.settings import REPO_ROOT
from backbone.topics import Topics
from cli.kafka_probe import Record, message_count, read_all
from cli.processes import BackboneProcess, free_port
from connectors.jobcentre_cdc.changes import Change, Kind, snapshot_change
from connectors.jobcentre_cdc.mapping import EVENT_ID_NAMESPACE, EventBuilder
from connectors.jobcentre_cdc.tables import REFERENCE_COLUMNS, Table
from simulators.jobcentre import (
    CaseManagementSystem,
    Jobseeker,
    create_database,
    drop_database,
)
from tests.conftest import Deployment, jobcentre_database, wait_until

CODEC = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))


@dataclass
class Cdc:
    deployment: Deployment
    system: CaseManagementSystem
    env: dict[str, str]
    logs: Path
    connector: BackboneProcess
    pseudonyms: Pseudonymiser

    @property
    def topic(self) -> str:
        return Topics(self.deployment.prefix).agency_events(Agency.JOBCENTRE)

    @property
    def dead_letter_topic(self) -> str:
        return Topics(self.deployment.prefix).dead_letter

    def restart_connector(self, name: str) -> None:
        self.connector = start_connector(self.deployment, self.env, self.logs, name)

    def key_of(self, jobseeker_id: int) -> bytes:
        return self.pseudonyms.record_id("jobcentre", "jobseeker_id", str(jobseeker_id)).encode()

    def events_of(self, jobseeker_id: int, count: int, timeout_s: float = 30.0) -> list[Any]:
        """The decoded events about one jobseeker, once there are at least `count`."""
        key = self.key_of(jobseeker_id)
        found: list[Any] = []

        def enough() -> bool:
            nonlocal found
            found = [
                CODEC.decode(r.value).record
                for r in read_all(self.deployment.bootstrap, self.topic)
                if r.key == key
            ]
            return len(found) >= count

        wait_until(enough, timeout_s, f"{count} events about jobseeker {jobseeker_id}")
        return found


def start_connector(
    deployment: Deployment, env: dict[str, str], logs: Path, name: str
) -> BackboneProcess:
    """`backbone connector run jobcentre-cdc` as a real process, once it is healthy."""
    connector = BackboneProcess.start(
        name,
        ["connector", "run", "jobcentre-cdc"],
        env,
        logs,
        f"http://127.0.0.1:{deployment.connector_metrics_port}/health",
    )
    connector.wait_healthy()
    return connector


def expected_id(lsn: str, table: str, row_id: int, event_type: str) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"jobcentre:{lsn}:{table}:{row_id}:{event_type}"))


ZOFIA = Jobseeker(1001, "Nowák ", "Zofia", date(1990, 5, 17), "qq 12 34 56 c", "ls6 1aa")


@pytest.fixture(scope="module")
def cdc(
    deployment: Deployment, postgres: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cdc]:
    database = f"jobcentre_{uuid.uuid4().hex[:10]}"
    dsn = create_database(postgres, database)
    system = CaseManagementSystem(dsn)
    system.create_schema()
    # Rows that exist before the connector first starts: they come from the snapshot.
    system.register(ZOFIA)
    system.apply_claim(2001, ZOFIA.id, "jobseekers_allowance")
    system.set_claim_status(2001, "awarded")
    system.impose_sanction(3001, ZOFIA.id, "missed appointment", date(2026, 10, 1), 20)
    system.schedule_appointment(4001, ZOFIA.id, datetime(2026, 9, 30, 10, tzinfo=UTC))
    system.record_attendance(4001, False)
    system.schedule_appointment(4002, ZOFIA.id, datetime(2026, 10, 30, 10, tzinfo=UTC))
    system.record_attendance(4002, True)
    env = deployment.env() | {
        "BACKBONE_CDC_DSN": dsn,
        "BACKBONE_CDC_SLOT": f"t_{uuid.uuid4().hex[:12]}",
        "BACKBONE_CDC_BATCH_CHANGES": "200",
        "BACKBONE_CDC_IDLE_POLL_S": "0.05",
    }
    logs = tmp_path_factory.mktemp("logs")
    pseudonyms = Pseudonymiser(deployment.pseudonym_key.encode())
    state: Cdc | None = None
    try:
        connector = start_connector(deployment, env, logs, "jobcentre-cdc")
        state = Cdc(deployment, system, env, logs, connector, pseudonyms)
        yield state
    finally:
        if state is not None:
            state.connector.stop()
        system.close()
        drop_database(postgres, database)


def test_the_snapshot_publishes_the_rows_that_existed_before(cdc: Cdc) -> None:
    events = cdc.events_of(ZOFIA.id, 4)

    assert sorted(e["envelope"]["event_type"] for e in events) == [
        "appointment_missed",
        "claim_awarded",
        "jobseeker_registered",
        "sanction_imposed",
    ]
    by_type = {e["envelope"]["event_type"]: e for e in events}
    assert by_type["claim_awarded"]["envelope"]["event_id"] == expected_id(
        "snapshot", "benefit_claims", 2001, "claim_awarded"
    )
    assert all(e["source_lsn"] is None for e in events)
    subject = by_type["jobseeker_registered"]["envelope"]["subject"]
    assert subject["record_id"] == cdc.key_of(ZOFIA.id).decode()
    assert subject["id_type"] == "jobseeker_id"
    assert subject["national_id"] == cdc.pseudonyms.national_id("QQ123456C")
    assert (subject["family_name"], subject["given_name"]) == ("nowak", "zofia")
    assert subject["postcode"] == "LS61AA"
    assert by_type["claim_awarded"]["claim"]["claim_id"] == cdc.pseudonyms.record_id(
        "jobcentre", "claim_id", "2001"
    )
    assert by_type["appointment_missed"]["envelope"]["occurred_at"] == datetime(
        2026, 9, 30, 10, tzinfo=UTC
    )
    assert by_type["sanction_imposed"]["sanction"]["reduction_pct"] == 20
    # What the database held before the connector first started: its initial load.
    assert all(e["envelope"]["initial_load"] for e in events)


def test_inserts_updates_and_deletes_stream_in_commit_order(cdc: Cdc) -> None:
    system = cdc.system
    person = Jobseeker(1002, "Okafor", "Daniel", date(1984, 11, 2), None, "M1 2AB")
    system.register(person)
    system.apply_claim(2002, person.id, "universal_credit")
    system.set_claim_status(2002, "awarded")
    system.set_claim_status(2002, "awarded", ended_on=None)  # no status change: no event
    system.touch_jobseeker(person.id)  # nothing the backbone cares about: no event
    with system.transaction():  # one commit, two changes
        system.change_details(Jobseeker(1002, "Okafor-Smith", "Daniel", date(1984, 11, 2)))
        system.impose_sanction(3002, person.id, "left job voluntarily", date(2026, 11, 1), 40)
    system.lift_sanction(3002, date(2026, 12, 1))
    system.impose_sanction(3003, person.id, "missed appointment", date(2026, 11, 5), 10)
    system.delete_sanction(3003)
    system.schedule_appointment(4003, person.id, datetime(2026, 11, 9, 9, 30, tzinfo=UTC))
    system.record_attendance(4003, False)
    system.set_claim_status(2002, "ended", ended_on=date(2026, 12, 31))

    events = cdc.events_of(person.id, 10)

    assert [e["envelope"]["event_type"] for e in events] == [
        "jobseeker_registered",
        "claim_applied",
        "claim_awarded",
        "jobseeker_details_changed",
        "sanction_imposed",
        "sanction_lifted",
        "sanction_imposed",
        "sanction_lifted",
        "appointment_missed",
        "claim_ended",
    ]
    lsns = [int(e["source_lsn"].replace("/", ""), 16) for e in events]
    assert lsns == sorted(lsns) and len(set(lsns)) == len(lsns)
    changed = events[3]["envelope"]
    assert changed["subject"]["family_name"] == "okafor-smith"
    assert changed["subject"]["postcode"] is None
    assert events[4]["envelope"]["subject"]["family_name"] == "okafor-smith"
    tables = ["jobseekers", *["benefit_claims"] * 2, "jobseekers", *["sanctions"] * 4]
    rows = [1002, 2002, 2002, 1002, 3002, 3002, 3003, 3003]
    for event, table, row_id in zip(
        events, [*tables, "appointments", "benefit_claims"], [*rows, 4003, 2002], strict=True
    ):
        envelope = event["envelope"]
        assert envelope["event_id"] == expected_id(
            event["source_lsn"], table, row_id, envelope["event_type"]
        )
        assert envelope["agency"] == "jobcentre" and envelope["source_system"] == "jobcentre-cms"
    assert events[-1]["claim"]["ended_on"] == date(2026, 12, 31)
    assert events[7]["sanction"]["reason"] == "missed appointment"  # the deleted row, whole
    assert len(read_all_keys(cdc, person.id)) == 10  # nothing else about this person
    assert not any(e["envelope"]["initial_load"] for e in events)


def test_only_the_snapshot_of_existing_rows_is_the_initial_load() -> None:
    sanctions = Table(
        "sanctions", "public", "sanctions", {c: c for c in REFERENCE_COLUMNS["sanctions"]}
    )
    row = {
        "id": 3009,
        "jobseeker_id": ZOFIA.id,
        "reason": "missed appointment",
        "starts_on": "2026-10-01",
        "ends_on": "2026-10-29",
        "reduction_pct": 20,
        "created_at": "2026-10-01 09:30:00+00",
    }
    at = datetime(2026, 11, 1, tzinfo=UTC)
    builder = EventBuilder(Pseudonymiser(b"k" * 32), "jobcentre-cms")
    subject = Subject(record_id="a" * 64, id_type="jobseeker_id")

    found = builder.events(snapshot_change(sanctions, row, at), subject)
    inserted = builder.events(
        Change(Kind.INSERT, sanctions, "0/16B3748", at, row, None, b""), subject
    )

    assert [(e.envelope.event_type, e.envelope.initial_load) for e in found] == [
        ("sanction_imposed", True),
        ("sanction_lifted", True),
    ]
    assert [(e.envelope.event_type, e.envelope.initial_load) for e in inserted] == [
        ("sanction_imposed", False)
    ]


def read_all_keys(cdc: Cdc, jobseeker_id: int) -> list[Record]:
    key = cdc.key_of(jobseeker_id)
    return [r for r in read_all(cdc.deployment.bootstrap, cdc.topic) if r.key == key]


def test_a_row_it_cannot_map_is_dead_lettered_and_the_stream_goes_on(cdc: Cdc) -> None:
    person = Jobseeker(1003, "Lindqvist", "Maja", date(2001, 3, 9))
    cdc.system.register(person)
    cdc.system.apply_claim(2003, person.id, "housing_support", status="pending")
    cdc.system.apply_claim(2004, person.id, "universal_credit")

    events = cdc.events_of(person.id, 2)

    assert [e["envelope"]["event_type"] for e in events] == [
        "jobseeker_registered",
        "claim_applied",
    ]
    letters = [
        r
        for r in read_all(cdc.deployment.bootstrap, cdc.dead_letter_topic)
        if b'"pending"' in r.value
    ]
    assert len(letters) == 1
    letter = letters[0]
    assert letter.headers["connector"] == b"jobcentre-cdc"
    assert letter.headers["reason"].startswith(b"benefit_claims.status:")
    assert letter.headers["source"].startswith(b"postgres:public.benefit_claims@")
    assert b'"action":"I"' in letter.value and b'"table":"benefit_claims"' in letter.value
    metrics = httpx.get(f"http://127.0.0.1:{cdc.deployment.connector_metrics_port}/metrics").text
    assert (
        'backbone_dead_letters_total{component="jobcentre-cdc",reason="benefit_claims.status"} 1.0'
        in metrics
    )


def test_after_sigkill_mid_stream_a_restart_loses_nothing(cdc: Cdc) -> None:
    system = cdc.system
    people = [Jobseeker(5000 + n, "Kowalski", f"Jan{n}", date(1970, 1, 1 + n)) for n in range(20)]
    system.register_many(people)
    claims = [(10_000 + n, people[n % 20].id, "universal_credit") for n in range(4000)]
    before = message_count(cdc.deployment.bootstrap, cdc.topic)
    for start in range(0, len(claims), 50):  # 80 commits
        system.apply_claims(claims[start : start + 50])
    total = before + len(people) + len(claims)

    # Kill as soon as the stream has started publishing these changes, before it can finish.
    wait_until(
        lambda: message_count(cdc.deployment.bootstrap, cdc.topic) > before + 30,
        30,
        "the connector to publish the first changes",
    )
    cdc.connector.process.kill()
    cdc.connector.process.wait()
    at_kill = message_count(cdc.deployment.bootstrap, cdc.topic)
    cdc.restart_connector("jobcentre-cdc-restarted")

    def claim_ids() -> dict[str, set[str]]:
        ids: dict[str, set[str]] = defaultdict(set)
        for record in read_all(cdc.deployment.bootstrap, cdc.topic):
            event = CODEC.decode(record.value).record
            if event["claim"] is not None and event["envelope"]["event_type"] == "claim_applied":
                ids[event["claim"]["claim_id"]].add(event["envelope"]["event_id"])
        return ids

    expected_claims = {
        cdc.pseudonyms.record_id("jobcentre", "claim_id", str(claim_id))
        for claim_id, _, _ in claims
    }
    seen: dict[str, set[str]] = {}

    def all_claims_seen() -> bool:
        nonlocal seen
        seen = claim_ids()
        return expected_claims <= set(seen)

    # Duplicates count towards the topic's size: wait for every claim by its id instead.
    wait_until(all_claims_seen, 60, "every claim after the restart")
    assert at_kill < total, "the connector finished before it was killed"
    assert all(len(ids) == 1 for ids in seen.values()), "a change was published with two ids"
    for person in people:
        registered = [e for e in cdc.events_of(person.id, 1) if e["claim"] is None]
        assert len({e["envelope"]["event_id"] for e in registered}) == 1
    log = cdc.connector.log.read_text()
    assert '"event": "cdc_resuming"' in log and "cdc_snapshot_started" not in log


def test_rows_the_reference_schema_forbids_are_dead_lettered_and_the_stream_goes_on(
    cdc: Cdc,
) -> None:
    # This deployment's database is looser than the reference schema: starts_on may be null.
    with psycopg.connect(cdc.env["BACKBONE_CDC_DSN"], autocommit=True) as database:
        database.execute("alter table sanctions alter column starts_on drop not null")
        database.execute(
            "insert into sanctions (id, jobseeker_id, reason, starts_on, reduction_pct) "
            "values (3900, %s, 'no start', null, 10)",
            (ZOFIA.id,),
        )
    # Its event is more than Kafka takes: once retried for ever as if Kafka were down.
    huge = Jobseeker(1900, "N" * 1_000_000, "Long", date(1980, 1, 1))
    cdc.system.register(huge)
    after = Jobseeker(1901, "Okafor", "Ngozi", date(1979, 6, 2))
    cdc.system.register(after)

    assert [e["envelope"]["event_type"] for e in cdc.events_of(after.id, 1)] == [
        "jobseeker_registered"
    ]
    letters = {
        r.headers["source"].decode().split("@")[0]: r
        for r in read_all(cdc.deployment.bootstrap, cdc.dead_letter_topic)
    }
    assert (
        letters["postgres:public.sanctions"].headers["reason"].startswith(b"sanctions.starts_on: ")
    )
    too_large = letters["postgres:public.jobseekers"]
    assert too_large.headers["reason"].startswith(b"size: the event is ")
    # The raw change is over a megabyte too: its first bytes are kept, and how many it had.
    assert len(too_large.value) == 900_000
    assert int(too_large.headers["original_bytes"]) > 1_000_000
    assert cdc.connector.process.poll() is None, "the connector stopped"


def test_the_connector_starts_while_kafka_is_away_and_stops_cleanly(
    deployment: Deployment, postgres: str, tmp_path: Path
) -> None:
    with jobcentre_database(postgres, "kafka_away") as (dsn, _system):
        settings = {
            "BACKBONE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # nothing listens there
            "BACKBONE_CDC_DSN": dsn,
            "BACKBONE_CDC_SLOT": f"t_{uuid.uuid4().hex[:12]}",
            # The module's own connector keeps the deployment's metrics port.
            "BACKBONE_METRICS_PORT": str(free_port()),
        }
        connector = deployment.start_connector("jobcentre-cdc", tmp_path, settings)
        try:
            connector.wait_healthy()
            # Healthy, and waiting for Kafka to read its saved position from, not stopped.
            wait_until(
                lambda: "position_unavailable" in connector.log.read_text("utf-8"),
                60,
                "the connector to say its position cannot be read yet",
            )
            assert connector.process.poll() is None
        finally:
            assert connector.stop() == 0
