"""The alert processor in a real worker, against the real broker: R1-R6 raised on Kafka.

One worker for the module; agency events are published onto the agency topics as the
connectors publish them (Avro single-object, keyed by the record's keyed hash), and identity
links each person's records by their national identifier. Each scenario has its own persons.
Event times are around now, because the worker's timer moves event time with the wall clock
(lateness 2 s here, so absences are decided within seconds). The raised and absorbed
AlertEvents are read back from `<prefix>.alerts`; near misses are checked once the worker has
consumed everything (its consumer group has no lag left).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import ALERT_SCHEMA, ID_TYPES, Agency, LegalBasis, Sensitivity
from backbone.events import (
    AgencyEvent,
    Encounter,
    Envelope,
    HealthEvent,
    HouseholdMember,
    HousingEvent,
    JobcentreEvent,
    SocialCareEvent,
    Subject,
    Tenancy,
)
from backbone.pseudonyms import Pseudonymiser, normalise_postcode, normalise_text
from backbone.settings import REPO_ROOT
from backbone.tokens import issue_token
from backbone.topics import Topics
from cli.processes import BackboneProcess, stop_all
from streams.operations.lag import ConsumerLag
from tests.conftest import Deployment, distinct_identity, wait_until

# The module's first test meets a fresh worker, whose first frames wait for Faust to create
# about twenty changelog topics on a broker that, late in the suite, holds thousands.
WAIT_S = 90.0
LATENESS_S = 2.0
NOW = datetime.now(UTC)
ALERT_ENV = {"BACKBONE_ALERT_LATENESS_S": str(LATENESS_S), "BACKBONE_ALERT_TIMER_INTERVAL_S": "0.5"}


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def keyed(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Person:
    """A test person: distinct name and birth date, a national id all agencies record."""

    national_id: str | None = field(default_factory=lambda: uuid.uuid4().hex[:9].upper())
    local_ids: dict[str, str] = field(default_factory=dict)
    postcode: str | None = None

    def __post_init__(self) -> None:
        self.family, self.given, self.born = distinct_identity()

    def local_id(self, agency: Agency) -> str:
        return self.local_ids.setdefault(agency.value, f"{agency.value}-{uuid.uuid4().hex[:8]}")


@dataclass
class Agencies:
    """Publishes agency events onto the agency topics, as the connectors do."""

    deployment: Deployment
    producer: Producer
    codec: AvroCodec
    tenancy: str = field(default_factory=lambda: keyed(uuid.uuid4().hex))

    def subject(self, person: Person, agency: Agency) -> Subject:
        pseudonyms = Pseudonymiser(self.deployment.pseudonym_key.encode())
        return Subject(
            record_id=pseudonyms.record_id(
                agency.value, ID_TYPES[agency][0], person.local_id(agency)
            ),
            id_type=ID_TYPES[agency][0],
            national_id=pseudonyms.national_id(person.national_id) if person.national_id else None,
            family_name=normalise_text(person.family),
            given_name=normalise_text(person.given),
            birth_date=person.born,
            sex="F",
            postcode=normalise_postcode(person.postcode) if person.postcode else None,
        )

    def envelope(
        self,
        person: Person,
        agency: Agency,
        event_type: str,
        at: datetime,
        sensitivity: Sensitivity = Sensitivity.PERSONAL,
    ) -> Envelope:
        return Envelope(
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            agency=agency,
            source_system="test",
            occurred_at=at,
            recorded_at=datetime.now(UTC),
            legal_basis=LegalBasis.PUBLIC_TASK,
            sensitivity=sensitivity,
            subject=self.subject(person, agency),
        )

    def publish(self, event: AgencyEvent) -> str:
        topic = Topics(self.deployment.prefix).agency_events(event.envelope.agency)
        value = self.codec.encode(event.schema_name(), event.to_avro())
        key = event.envelope.subject.record_id.encode()
        self.producer.produce(topic, key=key, value=value)
        assert self.producer.flush(10.0) == 0
        return event.envelope.event_id

    def health(
        self, person: Person, event_type: str, at: datetime, patient_class: str = "I"
    ) -> str:
        envelope = self.envelope(
            person, Agency.HEALTH, event_type, at, Sensitivity.SPECIAL_CATEGORY
        )
        return self.publish(
            HealthEvent(
                envelope=envelope,
                facility="LGI",
                message_control_id=uuid.uuid4().hex,
                encounter=Encounter(patient_class=patient_class, admitted_at=at),
            )
        )

    def emergency(self, person: Person, at: datetime) -> str:
        return self.health(person, "attendance", at, patient_class="E")

    def housing(
        self,
        person: Person,
        event_type: str,
        at: datetime,
        *,
        notice: str = "none",
        arrears_weeks: float = 0.0,
        homelessness: str = "none",
    ) -> str:
        tenancy = Tenancy(
            tenancy_ref=self.tenancy,
            as_of=at.date(),
            status="active",
            arrears_pence=int(arrears_weeks * 10000),
            arrears_weeks=arrears_weeks,
            notice=notice,  # type: ignore[arg-type]
            homelessness_application=homelessness,  # type: ignore[arg-type]
            household_size=2,
        )
        return self.publish(
            HousingEvent(
                envelope=self.envelope(person, Agency.HOUSING, event_type, at),
                tenancy=tenancy,
                arrears_threshold_weeks=4 if event_type == "arrears_threshold_crossed" else None,
                snapshot_file="tenancies.csv",
            )
        )

    def jobcentre(self, person: Person, event_type: str, at: datetime) -> str:
        envelope = self.envelope(person, Agency.JOBCENTRE, event_type, at)
        return self.publish(JobcentreEvent(envelope=envelope))

    def social_care(
        self,
        person: Person,
        event_type: str,
        at: datetime,
        *,
        case: str = "CASE-1",
        household: tuple[tuple[Person, str], ...] = (),
    ) -> str:
        sensitivity = (
            Sensitivity.SAFEGUARDING
            if event_type == "safeguarding_concern"
            else Sensitivity.SPECIAL_CATEGORY
        )
        members = [
            HouseholdMember(
                subject=self.subject(member, Agency.SOCIAL_CARE),
                relationship=relationship,  # type: ignore[arg-type]
            )
            for member, relationship in household
        ]
        return self.publish(
            SocialCareEvent(
                envelope=self.envelope(person, Agency.SOCIAL_CARE, event_type, at, sensitivity),
                case_id=keyed(f"{person.national_id}:{case}"),
                household=members,
            )
        )


@dataclass
class AlertLog:
    """Everything on the deployment's alerts topic, decoded, read from the beginning."""

    consumer: Consumer
    codec: AvroCodec
    steps: list[dict[str, Any]] = field(default_factory=list)

    def refresh(self) -> list[dict[str, Any]]:
        while (message := self.consumer.poll(0.2)) is not None:
            assert not message.error(), message.error()
            self.steps.append(self.codec.decode(message.value() or b"").record)
        return self.steps

    def raised_for(self, person_id: str, rule_id: str | None = None) -> list[dict[str, Any]]:
        return [
            step
            for step in self.refresh()
            if step["change"] == "raised"
            and step["alert"]["person_id"] == person_id
            and (rule_id is None or step["alert"]["rule_id"] == rule_id)
        ]

    def wait_step(self, alert_id: str, change: str) -> dict[str, Any]:
        """The first step of this change for the alert, once it is on the topic."""

        def steps() -> list[dict[str, Any]]:
            return [
                step
                for step in self.refresh()
                if step["alert_id"] == alert_id and step["change"] == change
            ]

        wait_until(lambda: bool(steps()), WAIT_S, f"a {change} step of alert {alert_id}")
        return steps()[0]

    def wait_raised(self, person_id: str, rule_id: str) -> dict[str, Any]:
        wait_until(
            lambda: bool(self.raised_for(person_id, rule_id)), WAIT_S, f"{rule_id} for a person"
        )
        return self.raised_for(person_id, rule_id)[0]


@dataclass
class Backbone:
    deployment: Deployment
    agencies: Agencies
    alerts: AlertLog
    api: httpx.Client
    lag: ConsumerLag

    def person_id(self, person: Person, agency: Agency) -> str:
        """The resolved person id of the person's record at this agency."""
        params = {
            "agency": agency.value,
            "id_type": ID_TYPES[agency][0],
            "id": person.local_id(agency),
        }
        found: list[str] = []

        def resolved() -> bool:
            answer = self.api.get("/persons/lookup", params=params)
            if answer.status_code == 200:
                found.append(answer.json()["person_id"])
            return bool(found)

        wait_until(resolved, WAIT_S, f"the {agency.value} record to resolve")
        return found[0]

    def settled(self) -> None:
        """Wait until the worker consumed everything (twice in a row: updates beget updates)."""
        group = f"{self.deployment.prefix}-streams"
        for _ in range(2):
            deadline = time.monotonic() + WAIT_S
            while behind := [
                f"{p.topic}[{p.partition}]={p.lag}"
                for p in self.lag.measure()
                # Changelogs are read only to recover tables, never committed.
                if p.group == group and p.lag and not p.topic.endswith("-changelog")
            ]:
                assert time.monotonic() < deadline, f"the worker is behind on {behind}"
                time.sleep(0.2)
            time.sleep(1.0)  # lets a just-sent update reach the broker before measuring again

    def resolve(self, raised: dict[str, Any]) -> None:
        """Publish a coordinator's `resolved` step, as the alert lifecycle would."""
        step = {
            "event_id": str(uuid.uuid4()),
            "alert_id": raised["alert_id"],
            "change": "resolved",
            "at": datetime.now(UTC),
            "by": "coordinator",
            "note": "seen to",
            "alert": None,
            "added_events": [],
            "legal_basis": raised["legal_basis"],
            "sensitivity": raised["sensitivity"],
        }
        topic = Topics(self.deployment.prefix).alerts
        value = self.agencies.codec.encode(ALERT_SCHEMA, step)
        self.agencies.producer.produce(topic, key=raised["alert_id"].encode(), value=value)
        assert self.agencies.producer.flush(10.0) == 0

    def event_ids(self, step: dict[str, Any]) -> set[str]:
        return {event["event_id"] for event in step["alert"]["events"]}


def alert_env(deployment: Deployment, **more: str) -> dict[str, str]:
    return {**deployment.env(), **ALERT_ENV, **more}


@pytest.fixture(scope="module")
def backbone(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backbone]:
    logs = tmp_path_factory.mktemp("logs")
    worker = BackboneProcess.start(
        "worker",
        ["worker"],
        alert_env(deployment),
        logs,
        f"http://127.0.0.1:{deployment.worker_port}/health",
    )
    # murmur2, as Kafka's Java clients and Faust partition: a resolved step lands on its alert's
    # partition, where the worker keeps whose alert it is.
    producer = Producer(
        {
            "bootstrap.servers": deployment.bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
    consumer = Consumer(
        {"bootstrap.servers": deployment.bootstrap, "group.id": f"test-{uuid.uuid4().hex}"}
    )
    try:
        worker.wait_healthy()
        topic = Topics(deployment.prefix).alerts
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        api = deployment.coordinator_api()
        yield Backbone(
            deployment,
            Agencies(deployment, producer, codec),
            AlertLog(consumer, codec),
            api,
            ConsumerLag(deployment.bootstrap, f"{deployment.prefix}-streams"),
        )
        api.close()
    finally:
        consumer.close()
        stop_all([worker])


def test_r5_fires_by_the_wall_clock_timer_when_no_later_event_comes(backbone: Backbone) -> None:
    agencies = backbone.agencies
    alone, visited = Person(), Person()
    # Discharged 7 days ago give or take seconds: the 7-day window ends moments from now.
    discharged_at = datetime.now(UTC) - timedelta(days=7) + timedelta(seconds=8)
    for person in (alone, visited):
        agencies.social_care(person, "case_opened", ago(8))
    visited_discharge = agencies.health(visited, "discharge", discharged_at)
    agencies.social_care(visited, "assessment_completed", discharged_at + timedelta(days=1))
    discharge = agencies.health(alone, "discharge", discharged_at)
    person_id = backbone.person_id(alone, Agency.HEALTH)
    # Nothing later arrives: only the timer can move event time past the window's end.
    step = backbone.alerts.wait_raised(person_id, "R5")

    assert step["at"] >= discharged_at + timedelta(days=7, seconds=LATENESS_S)
    assert discharge in backbone.event_ids(step)
    assert step["alert"]["severity"] == "high"
    assert step["alert"]["teams"] == ["social-care-duty"]
    backbone.settled()
    visited_id = backbone.person_id(visited, Agency.HEALTH)
    assert backbone.alerts.raised_for(visited_id) == []
    assert visited_discharge  # a discharge with a follow-up: no alert


def test_r1_fires_on_a_discharge_after_a_notice_to_quit_and_not_outside_90_days(
    backbone: Backbone,
) -> None:
    agencies = backbone.agencies
    tenant, long_ago, other = Person(), Person(), Person()
    agencies.housing(long_ago, "notice_served", ago(120), notice="notice_to_quit")
    agencies.health(long_ago, "discharge", ago(1))
    agencies.housing(other, "notice_served", ago(5), notice="notice_to_quit")
    # Within the allowed lateness (7 days): identity forwards the agencies' topics in no
    # particular order between them, so the notice may arrive after the discharge.
    notice = agencies.housing(tenant, "notice_served", ago(5), notice="notice_to_quit")
    discharge = agencies.health(tenant, "discharge", ago(1))

    person_id = backbone.person_id(tenant, Agency.HEALTH)
    step = backbone.alerts.wait_raised(person_id, "R1")

    assert backbone.event_ids(step) == {notice, discharge}
    assert step["alert"]["severity"] == "high"
    assert step["sensitivity"] == "special_category"  # the discharge's, the most sensitive
    assert backbone.person_id(tenant, Agency.HOUSING) == person_id
    backbone.settled()
    for near_miss, agency in ((long_ago, Agency.HEALTH), (other, Agency.HOUSING)):
        assert backbone.alerts.raised_for(backbone.person_id(near_miss, agency)) == []


def test_r1_raised_before_the_housing_closure_arrived_is_withdrawn_and_listed_so(
    backbone: Backbone,
) -> None:
    agencies = backbone.agencies
    tenant = Person()
    # The issue's week, in days ago: application open 6, admitted 5, closed 4, discharged 3;
    # housing's nightly export brings the closure after the discharge. (All within R1's 7 days
    # of lateness: the agencies' topics reach the alert processor in no order between them.)
    agencies.housing(tenant, "homelessness_application_opened", ago(6), homelessness="open")
    agencies.health(tenant, "admission", ago(5))
    discharge = agencies.health(tenant, "discharge", ago(3))
    person_id = backbone.person_id(tenant, Agency.HEALTH)
    raised = backbone.alerts.wait_raised(person_id, "R1")
    assert discharge in backbone.event_ids(raised)

    closure = agencies.housing(
        tenant, "homelessness_application_closed", ago(4), homelessness="closed"
    )
    step = backbone.alerts.wait_step(raised["alert_id"], "withdrawn")

    assert [event["event_id"] for event in step["added_events"]] == [closure]
    token = issue_token(
        backbone.deployment.token_secret.encode(),
        "discharge lead",
        ["hospital-discharge-team"],
        "social_worker",
    )
    headers = {"Authorization": f"Bearer {token}", "X-Purpose": "direct_care"}
    shown: dict[str, Any] = {}

    def withdrawn() -> bool:
        answer = backbone.api.get(f"/alerts/{raised['alert_id']}", headers=headers)
        shown.update(answer.json())
        return answer.status_code == 200 and shown["status"] == "withdrawn"

    wait_until(withdrawn, WAIT_S, "GET /alerts/{id} to show the alert withdrawn")
    assert [e["event_id"] for e in shown["explanation"]["disproved_by"]] == [closure]
    assert [entry["change"] for entry in shown["history"]] == ["raised", "withdrawn"]
    listed = backbone.api.get("/alerts", params={"status": "withdrawn"}, headers=headers)
    assert raised["alert_id"] in [alert["alert_id"] for alert in listed.json()["alerts"]]


def test_r2_fires_for_a_tenant_whose_child_has_an_open_case_and_not_once_it_closed(
    backbone: Backbone,
) -> None:
    agencies = backbone.agencies
    parent, child = Person(), Person()
    closed_parent, closed_child = Person(), Person()
    agencies.social_care(
        closed_child, "case_opened", ago(3), household=((closed_parent, "parent"),)
    )
    agencies.social_care(
        closed_child, "case_closed", ago(2), household=((closed_parent, "parent"),)
    )
    # The closing reaches the tenant's partition through the household index: a notice judged
    # before it arrives would see the case open, and be raised and then withdrawn.
    backbone.settled()
    agencies.housing(closed_parent, "notice_served", ago(1), notice="notice_seeking_possession")
    case = agencies.social_care(child, "case_opened", ago(2), household=((parent, "parent"),))
    notice = agencies.housing(parent, "notice_served", ago(1), notice="notice_seeking_possession")

    parent_id = backbone.person_id(parent, Agency.HOUSING)
    child_id = backbone.person_id(child, Agency.SOCIAL_CARE)
    step = backbone.alerts.wait_raised(parent_id, "R2")

    assert backbone.event_ids(step) == {case, notice}
    assert step["alert"]["household_person_ids"] == [child_id]
    assert {e["person_id"] for e in step["alert"]["events"]} == {parent_id, child_id}
    assert step["alert"]["severity"] == "urgent"
    backbone.settled()
    assert backbone.alerts.raised_for(backbone.person_id(closed_parent, Agency.HOUSING)) == []


def test_r3_fires_on_arrears_within_60_days_after_a_sanction_only(backbone: Backbone) -> None:
    agencies = backbone.agencies
    claimant, earlier = Person(), Person()
    agencies.jobcentre(earlier, "sanction_imposed", ago(70))
    agencies.housing(earlier, "arrears_threshold_crossed", ago(1), arrears_weeks=5)
    sanction = agencies.jobcentre(claimant, "sanction_imposed", ago(6))
    arrears = agencies.housing(claimant, "arrears_threshold_crossed", ago(1), arrears_weeks=5)

    person_id = backbone.person_id(claimant, Agency.HOUSING)
    step = backbone.alerts.wait_raised(person_id, "R3")

    assert backbone.event_ids(step) == {sanction, arrears}
    backbone.settled()
    assert backbone.alerts.raised_for(backbone.person_id(earlier, Agency.HOUSING)) == []


def test_r4_out_of_order_attendances_fire_once_and_a_fourth_is_absorbed(
    backbone: Backbone,
) -> None:
    agencies = backbone.agencies
    attender, unknown, known_elsewhere = Person(), Person(), Person()
    agencies.jobcentre(known_elsewhere, "jobseeker_registered", ago(10))
    for days in (1, 3, 2):  # three attendances of a person no other agency knows
        agencies.emergency(unknown, ago(days))
    registered = agencies.jobcentre(attender, "jobseeker_registered", ago(6))
    # Newest first: the pattern completes when the oldest arrives.
    attendances = [agencies.emergency(attender, ago(days)) for days in (1, 3, 2)]

    person_id = backbone.person_id(attender, Agency.HEALTH)
    step = backbone.alerts.wait_raised(person_id, "R4")
    assert backbone.event_ids(step) == {registered, *attendances}

    fourth = agencies.emergency(attender, ago(0.5))
    wait_until(
        lambda: any(
            s["change"] == "absorbed" and s["alert_id"] == step["alert_id"]
            for s in backbone.alerts.refresh()
        ),
        WAIT_S,
        "the fourth attendance to be absorbed",
    )
    backbone.settled()
    absorbed = [s for s in backbone.alerts.refresh() if s["alert_id"] == step["alert_id"]]
    assert [s["change"] for s in absorbed] == ["raised", "absorbed"]
    assert [e["event_id"] for e in absorbed[1]["added_events"]] == [fourth]
    assert len(backbone.alerts.raised_for(person_id, "R4")) == 1
    metrics = backbone.api.get("/metrics").text  # the absorbed match is not counted
    assert 'backbone_alerts_raised_total{rule="R4",severity="warning"} 1.0' in metrics
    assert backbone.alerts.raised_for(backbone.person_id(unknown, Agency.HEALTH)) == []


def test_r6_fires_on_a_concern_then_an_attendance_and_not_20_days_apart(
    backbone: Backbone,
) -> None:
    agencies = backbone.agencies
    child, apart = Person(), Person()
    agencies.emergency(apart, ago(20))
    agencies.social_care(apart, "safeguarding_concern", ago(1))
    concern = agencies.social_care(child, "safeguarding_concern", ago(2))
    attendance = agencies.emergency(child, ago(1))

    person_id = backbone.person_id(child, Agency.HEALTH)
    step = backbone.alerts.wait_raised(person_id, "R6")

    assert backbone.event_ids(step) == {concern, attendance}
    assert (step["legal_basis"], step["sensitivity"]) == ("public_task", "safeguarding")
    backbone.settled()
    assert backbone.alerts.raised_for(backbone.person_id(apart, Agency.HEALTH)) == []

    # A coordinator resolves it (the lifecycle's step); a new concern days later is the same
    # situation within R6's 14 days: suppressed, and not absorbed into the closed alert.
    backbone.resolve(step)
    backbone.settled()
    agencies.social_care(child, "safeguarding_concern", ago(0.5))
    backbone.settled()
    steps = [s["change"] for s in backbone.alerts.refresh() if s["alert_id"] == step["alert_id"]]
    assert steps == ["raised", "resolved"]
    assert len(backbone.alerts.raised_for(person_id, "R6")) == 1


def test_a_merge_brings_the_absorbed_persons_events_to_the_survivors_rules(
    backbone: Backbone,
) -> None:
    agencies = backbone.agencies
    known = Person()  # the hospital knows her by her maiden name and national id
    # Housing knows her by her married name and the name she goes by, without national id:
    # nothing but the birth date in common with the hospital's record.
    married = Person(national_id=None, postcode="M14 5RT")
    married.born = known.born
    married.given = "Zofia" if known.given != "Zofia" else "Maria"
    bridge = Person(national_id=known.national_id, postcode="M14 5RT")
    bridge.family, bridge.given, bridge.born = married.family, married.given, married.born
    agencies.health(known, "admission", ago(30))
    survivor = backbone.person_id(known, Agency.HEALTH)
    notice = agencies.housing(married, "notice_served", ago(5), notice="notice_to_quit")
    absorbed = backbone.person_id(married, Agency.HOUSING)
    assert absorbed != survivor
    backbone.settled()

    # A discharge under her married name with her national id: both persons are one.
    discharge = agencies.health(bridge, "discharge", ago(1))

    step = backbone.alerts.wait_raised(survivor, "R1")
    assert backbone.event_ids(step) == {notice, discharge}
    assert backbone.alerts.raised_for(absorbed) == []


def test_rules_replay_prints_what_the_history_would_have_raised(backbone: Backbone) -> None:
    backbone.settled()
    since = ago(30).date().isoformat()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "rules",
            "replay",
            "--rules",
            str(REPO_ROOT / "deploy" / "rules" / "rules.yaml"),
            "--from",
            since,
        ],
        env=alert_env(backbone.deployment),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    raised = [s["alert"] for s in backbone.alerts.refresh() if s["change"] == "raised"]
    for alert in raised:
        events = ", ".join(e["event_id"] for e in alert["events"])
        assert (
            f"{alert['rule_id']} {alert['severity']} person={alert['person_id']}" in result.stdout
        )
        assert f"events: {events}" in result.stdout
    # R1: the merge's too, and the one the late housing closure withdrew, as the worker did.
    counts = {"R1": (3, 1), "R2": (1, 0), "R3": (1, 0), "R4": (1, 0), "R5": (1, 0), "R6": (1, 0)}
    for rule_id, (count, withdrawn) in counts.items():
        line = f"{rule_id}: {count} alert(s), {withdrawn} of them withdrawn"
        assert line in result.stdout, result.stdout
    withdrawn_ids = {s["alert_id"] for s in backbone.alerts.steps if s["change"] == "withdrawn"}
    assert len(withdrawn_ids) == 1
    assert result.stdout.count("  withdrawn: housing homelessness application closed") == 1
    # The replay knows nothing of resolutions: R6's later concern is absorbed there.
    assert (
        "8 alert(s) would have been raised, 1 of them withdrawn later (2 later match(es) absorbed)"
        in result.stdout
    )


def test_a_worker_with_a_wrong_rule_file_refuses_to_start_naming_rule_and_field(
    deployment: Deployment, tmp_path: Path
) -> None:
    rules = (REPO_ROOT / "deploy" / "rules" / "rules.yaml").read_text()
    broken = tmp_path / "rules.yaml"
    broken.write_text(rules.replace("within: {before: 60d}", "within: {before: sixty days}"))
    result = subprocess.run(
        [sys.executable, "-m", "cli", "worker"],
        env=alert_env(deployment, BACKBONE_ALERT_RULES_FILE=str(broken)),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "R3 conditions[0].within.before" in result.stderr
