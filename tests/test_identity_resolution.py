"""Identity resolution in the worker, against the real broker: one person across agencies.

A stream worker and the social care webhook connector run as real processes; hospital events
are published onto the health topic as the hospital connector publishes them (Avro, keyed by
the record's keyed hash). Records with no national identifier and a typo'd name end on one
timeline; twins do not, and wait for review; a record joining two persons merges them and
moves the timeline, as does a coordinator confirming a possible match; the links say which
decision linked each record; a worker restarted on empty state recovers the resolver's tables.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import HOSPITAL_NUMBER, Agency, LegalBasis, Sensitivity
from backbone.events import Encounter, Envelope, HealthEvent, Subject
from backbone.pseudonyms import Pseudonymiser, normalise_postcode, normalise_text
from backbone.settings import REPO_ROOT
from backbone.topics import Topics
from cli.processes import BackboneProcess, stop_all
from simulators.social_care import CaseEvent, CaseManagementSystem, CasePerson
from tests.conftest import Deployment, distinct_identity

WAIT_S = 30.0
OCCURRED = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


@dataclass
class Hospital:
    """Publishes admissions onto the health topic as the hospital connector would."""

    deployment: Deployment
    producer: Producer
    codec: AvroCodec

    @property
    def pseudonyms(self) -> Pseudonymiser:
        return Pseudonymiser(self.deployment.pseudonym_key.encode())

    def admit(
        self,
        hospital_number: str,
        family: str,
        given: str,
        born: date,
        *,
        national_id: str | None = None,
        postcode: str | None = None,
        days_ago: int = 0,
        merged_number: str | None = None,
    ) -> str:
        """One admission of the patient (an A40 merge of `merged_number` into this hospital
        number, if given); returns its event id once Kafka acknowledged it."""
        record_id = self.pseudonyms.record_id("health", HOSPITAL_NUMBER, hospital_number)
        subject = Subject(
            record_id=record_id,
            id_type=HOSPITAL_NUMBER,
            national_id=self.pseudonyms.national_id(national_id) if national_id else None,
            family_name=normalise_text(family),
            given_name=normalise_text(given),
            birth_date=born,
            sex="F",
            postcode=normalise_postcode(postcode) if postcode else None,
        )
        occurred = OCCURRED - timedelta(days=days_ago)
        event = HealthEvent(
            envelope=Envelope(
                event_id=str(uuid.uuid4()),
                event_type="patient_records_merged" if merged_number else "admission",
                agency=Agency.HEALTH,
                source_system="test-pas",
                occurred_at=occurred,
                recorded_at=datetime.now(UTC),
                legal_basis=LegalBasis.HEALTH_AND_SOCIAL_CARE,
                sensitivity=Sensitivity.SPECIAL_CATEGORY,
                subject=subject,
            ),
            facility="LGI",
            message_control_id=uuid.uuid4().hex,
            encounter=None if merged_number else Encounter(patient_class="I", admitted_at=occurred),
            merged_record_id=(
                self.pseudonyms.record_id("health", HOSPITAL_NUMBER, merged_number)
                if merged_number
                else None
            ),
        )
        topic = Topics(self.deployment.prefix).agency_events(Agency.HEALTH)
        value = self.codec.encode(event.schema_name(), event.to_avro())
        self.producer.produce(topic, key=record_id.encode(), value=value)
        assert self.producer.flush(10.0) == 0
        return event.envelope.event_id


@dataclass
class Backbone:
    """The worker's API, the case management system and the hospital."""

    system: CaseManagementSystem
    hospital: Hospital
    api: httpx.Client
    processes: list[BackboneProcess]  # the connector, then the worker
    env: dict[str, str]
    logs: Path

    def restart_worker(self, data_dir: Path) -> None:
        """Stop the worker and start another on an empty state directory: it must recover
        every table from the changelog topics."""
        worker = self.processes[1]
        assert worker.stop() == 0
        self.processes[1] = BackboneProcess.start(
            "worker-restarted",
            ["worker"],
            {**self.env, "BACKBONE_DATA_DIR": str(data_dir)},
            self.logs,
            worker.health_url,
        )
        self.processes[1].wait_healthy()

    def lookup(self, agency: str, id_type: str, local_id: str) -> str:
        params = {"agency": agency, "id_type": id_type, "id": local_id}
        deadline = time.monotonic() + WAIT_S
        while True:
            answer = self.api.get("/persons/lookup", params=params)
            if answer.status_code == 200:
                person_id: str = answer.json()["person_id"]
                return person_id
            assert time.monotonic() < deadline, f"{local_id} never resolved: {answer.text}"
            time.sleep(0.2)

    def timeline_with(self, person_id: str, event_ids: set[str]) -> dict[str, Any]:
        """The person's timeline once it holds every one of `event_ids`."""
        deadline = time.monotonic() + WAIT_S
        while True:
            answer = self.api.get(f"/persons/{person_id}/timeline")
            if answer.status_code == 200:
                body: dict[str, Any] = answer.json()
                if event_ids <= {e["event_id"] for e in body["events"]}:
                    return body
            assert time.monotonic() < deadline, f"timeline of {person_id}: {answer.text}"
            time.sleep(0.2)

    def links_of(self, person_id: str, count: int) -> list[dict[str, Any]]:
        """The person's links once there are `count` of them."""
        deadline = time.monotonic() + WAIT_S
        while True:
            answer = self.api.get(f"/persons/{person_id}/links")
            if answer.status_code == 200 and len(answer.json()["links"]) >= count:
                links: list[dict[str, Any]] = answer.json()["links"]
                return links
            assert time.monotonic() < deadline, f"links of {person_id}: {answer.text}"
            time.sleep(0.2)

    def lookup_until(self, agency: str, id_type: str, local_id: str, person_id: str) -> None:
        """Wait until the lookup answers `person_id` (a merge moves records a moment later)."""
        deadline = time.monotonic() + WAIT_S
        while (found := self.lookup(agency, id_type, local_id)) != person_id:
            assert time.monotonic() < deadline, f"{local_id} is still on {found}"
            time.sleep(0.2)

    def deliver(self, person: CasePerson, event_type: str = "case_opened", days: int = 5) -> str:
        event = CaseEvent(event_type, OCCURRED - timedelta(days=days), "CASE-1", person)
        answer = self.system.deliver(event)
        assert answer.status_code == 202, answer.text
        event_id: str = answer.json()["event_id"]
        return event_id


@pytest.fixture(scope="module")
def backbone(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backbone]:
    logs = tmp_path_factory.mktemp("logs")
    worker = deployment.start_worker(logs)
    connector = deployment.start_webhook_connector(logs)
    producer = Producer({"bootstrap.servers": deployment.bootstrap, "enable.idempotence": True})
    processes = [connector, worker]
    try:
        connector.wait_healthy()
        worker.wait_healthy()
        api = deployment.coordinator_api()
        system = CaseManagementSystem(
            f"http://127.0.0.1:{deployment.webhook_port}", deployment.webhook_secret.encode()
        )
        codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
        hospital = Hospital(deployment, producer, codec)
        yield Backbone(system, hospital, api, processes, deployment.env(), logs)
        system.close()
        api.close()
    finally:
        stop_all(processes)


def case_person(family: str, given: str, born: date, **fields: Any) -> CasePerson:
    return CasePerson(f"CP-{uuid.uuid4().hex[:8]}", family, given, born, **fields)


def test_two_agencies_records_with_a_typo_and_no_national_id_share_one_timeline(
    backbone: Backbone,
) -> None:
    family, given, born = distinct_identity()
    person = case_person(family, given, born, postcode="LS6 1AA")
    care_event = backbone.deliver(person)
    hospital_number = uuid.uuid4().hex[:8]
    typo = family[:2] + family[3] + family[2] + family[4:]  # two letters swapped
    health_event = backbone.hospital.admit(hospital_number, typo, given, born, postcode="LS6 1AA")

    person_id = backbone.lookup("social_care", "case_person_id", person.case_person_id)

    assert backbone.lookup("health", HOSPITAL_NUMBER, hospital_number) == person_id
    timeline = backbone.timeline_with(person_id, {care_event, health_event})
    assert [e["agency"] for e in timeline["events"]] == ["social_care", "health"]


def test_twins_are_two_persons_and_the_pair_waits_for_review(backbone: Backbone) -> None:
    family, _, born = distinct_identity()
    first = case_person(family, "Amelia", born, postcode="LS6 1AA")
    second = case_person(family, "Olivia", born, postcode="LS6 1AA")
    events, persons = [], []
    for twin in (first, second):  # one after the other: their records sit on any partitions
        events.append(backbone.deliver(twin))
        persons.append(backbone.lookup("social_care", "case_person_id", twin.case_person_id))

    assert persons[0] != persons[1]
    for person_id, event_id in zip(persons, events, strict=True):
        timeline = backbone.timeline_with(person_id, {event_id})
        assert [e["event_id"] for e in timeline["events"]] == [event_id]
    links = backbone.links_of(persons[1], 1)
    assert [(link["basis"], link["outcome"]) for link in links] == [
        ("first_record", "possible_match")
    ]
    assert links[0]["review_person_id"] == persons[0]
    assert "different given names" in links[0]["reason"]
    queue = backbone.api.get("/review").json()["reviews"]
    waiting = next(case for case in queue if case["review_id"] == links[0]["record_id"])
    assert waiting["review_person_id"] == persons[0]
    assert waiting["evidence"]["score"] >= 12.0


def test_links_show_the_decision_that_linked_each_record(backbone: Backbone) -> None:
    family, given, born = distinct_identity()
    person = case_person(family, given, born, postcode="M14 5RT")
    backbone.deliver(person)
    # Resolved first: the two agencies' topics are read in no particular order between them.
    person_id = backbone.lookup("social_care", "case_person_id", person.case_person_id)
    hospital_number = uuid.uuid4().hex[:8]
    backbone.hospital.admit(hospital_number, family, given, born, postcode="M14 5RT")
    assert backbone.lookup("health", HOSPITAL_NUMBER, hospital_number) == person_id

    links = backbone.links_of(person_id, 2)

    by_agency = {link["agency"]: link for link in links}
    assert by_agency["social_care"]["basis"] == "first_record"
    probabilistic = by_agency["health"]
    assert probabilistic["basis"] == "probabilistic"
    assert probabilistic["score"] >= 20.0
    assert {"given_name", "family_name", "birth_date", "postcode"} <= set(
        probabilistic["agreeing_fields"]
    )
    assert probabilistic["evidence"]["person_id"] == person_id


def test_a_record_joining_two_persons_merges_them_and_moves_the_timeline(
    backbone: Backbone,
) -> None:
    maiden, given, born = distinct_identity()
    married, _, _ = distinct_identity()
    national_id = f"QQ{uuid.uuid4().int % 10**6:06d}C"
    first_number, second_number = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    admitted = backbone.hospital.admit(
        first_number, maiden, given, born, national_id=national_id, days_ago=30
    )
    survivor = backbone.lookup("health", HOSPITAL_NUMBER, first_number)
    cared_for = case_person(married, given, born, postcode="M14 5RT")
    care_event = backbone.deliver(cared_for, days=20)
    absorbed = backbone.lookup("social_care", "case_person_id", cared_for.case_person_id)
    assert absorbed != survivor  # a new family name and nothing else to link them by
    backbone.timeline_with(absorbed, {care_event})

    bridge = backbone.hospital.admit(
        second_number, married, given, born, national_id=national_id, postcode="M14 5RT"
    )

    timeline = backbone.timeline_with(survivor, {admitted, care_event, bridge})
    assert [e["event_id"] for e in timeline["events"]] == [admitted, care_event, bridge]
    moved = backbone.api.get(f"/persons/{absorbed}/timeline")
    assert moved.status_code == 301
    assert moved.json() == {"person_id": absorbed, "merged_into": survivor}
    assert moved.headers["Location"] == f"/persons/{survivor}/timeline"
    backbone.lookup_until("social_care", "case_person_id", cared_for.case_person_id, survivor)
    # Later events of the absorbed person's record go straight to the survivor.
    later = backbone.deliver(cared_for, "case_closed", days=1)
    assert later in {e["event_id"] for e in backbone.timeline_with(survivor, {later})["events"]}
    links = backbone.links_of(survivor, 3)
    assert sorted(link["agency"] for link in links) == ["health", "health", "social_care"]


def test_a_coordinator_confirming_a_possible_match_merges_the_two_persons(
    backbone: Backbone,
) -> None:
    family, _, born = distinct_identity()
    known = case_person(family, "Katherine", born, postcode="LS6 1AA")
    first = backbone.deliver(known, days=10)
    survivor = backbone.lookup("social_care", "case_person_id", known.case_person_id)
    renamed = case_person(family, "Kasia", born, postcode="LS6 1AA")  # a name she goes by
    second = backbone.deliver(renamed, days=2)
    absorbed = backbone.lookup("social_care", "case_person_id", renamed.case_person_id)
    assert absorbed != survivor
    review_id = backbone.links_of(absorbed, 1)[0]["record_id"]
    deadline = time.monotonic() + WAIT_S
    while review_id not in {c["review_id"] for c in backbone.api.get("/review").json()["reviews"]}:
        assert time.monotonic() < deadline, "the possible match never reached the review queue"
        time.sleep(0.2)

    refused = backbone.api.post(f"/review/{review_id}", json={"decision": "maybe", "reason": "x"})
    answer = backbone.api.post(
        f"/review/{review_id}", json={"decision": "match", "reason": "same person, met her"}
    )

    assert refused.status_code == 400 and refused.json()["detail"].startswith("decision:")
    assert answer.status_code == 202, answer.text
    timeline = backbone.timeline_with(survivor, {first, second})
    assert [e["event_id"] for e in timeline["events"]] == [first, second]
    backbone.lookup_until("social_care", "case_person_id", renamed.case_person_id, survivor)
    assert backbone.api.get(f"/persons/{absorbed}/timeline").status_code == 301
    deadline = time.monotonic() + WAIT_S
    while True:
        links = {link["record_id"]: link for link in backbone.links_of(survivor, 2)}
        if links[review_id]["basis"] == "coordinator":
            break
        assert time.monotonic() < deadline, links
        time.sleep(0.2)
    assert "same person, met her" in links[review_id]["reason"]
    queue = backbone.api.get("/review").json()["reviews"]
    assert review_id not in {case["review_id"] for case in queue}
    again = backbone.api.post(f"/review/{review_id}", json={"decision": "match", "reason": "x"})
    assert again.status_code == 404


def test_a_restarted_worker_recovers_the_resolver_tables(
    backbone: Backbone, tmp_path: Path
) -> None:
    family, given, born = distinct_identity()
    person = case_person(family, given, born, postcode="LS6 1AA")
    before = backbone.deliver(person, days=3)
    person_id = backbone.lookup("social_care", "case_person_id", person.case_person_id)

    backbone.restart_worker(tmp_path / "state")
    hospital_number = uuid.uuid4().hex[:8]
    typo = family[:2] + family[3] + family[2] + family[4:]
    after = backbone.hospital.admit(hospital_number, typo, given, born, postcode="LS6 1AA")

    assert backbone.lookup("health", HOSPITAL_NUMBER, hospital_number) == person_id
    timeline = backbone.timeline_with(person_id, {before, after})
    assert [e["event_id"] for e in timeline["events"]] == [before, after]
