"""One event end to end on real parts: webhook -> Kafka -> Faust worker -> timeline API.

A webhook connector and a stream worker run as real processes against the real broker; the
simulator POSTs over HTTP and the coordinator API is read over HTTP.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import Agency
from backbone.settings import REPO_ROOT
from backbone.tokens import issue_token
from backbone.topics import Topics
from cli.kafka_probe import message_count, read_all
from cli.processes import BackboneProcess, free_port, stop_all
from simulators.social_care import CaseEvent, CaseManagementSystem, CasePerson, Relative
from tests.conftest import Deployment, distinct_identity


@dataclass
class Slice:
    deployment: Deployment
    system: CaseManagementSystem
    api: httpx.Client
    connector: BackboneProcess
    worker: BackboneProcess

    @property
    def topics(self) -> Topics:
        return Topics(self.deployment.prefix)

    def person_id(self, case_person_id: str, timeout_s: float = 30.0) -> str:
        """Wait until the worker knows the case person, then return the person id."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = self.api.get(
                "/persons/lookup",
                params={"agency": "social_care", "id_type": "case_person_id", "id": case_person_id},
            )
            if answer.status_code == 200:
                person_id: str = answer.json()["person_id"]
                return person_id
            assert answer.status_code in (404, 503), answer.text
            time.sleep(0.2)
        raise AssertionError(f"{case_person_id} never reached the worker")

    def timeline(self, case_person_id: str, events: int, timeout_s: float = 30.0) -> dict[str, Any]:
        """The person's timeline once it holds `events` events (or the last seen after timeout)."""
        person_id = self.person_id(case_person_id)
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self.api.get(f"/persons/{person_id}/timeline")
            assert answer.status_code in (200, 404), answer.text
            body: dict[str, Any] = answer.json()
            if answer.status_code == 200 and len(body["events"]) >= events:
                return body
            if time.monotonic() > deadline:
                return body
            time.sleep(0.2)


@pytest.fixture(scope="module")
def pipeline(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slice]:
    logs = tmp_path_factory.mktemp("logs")
    worker = deployment.start_worker(logs)
    connector = deployment.start_webhook_connector(logs)
    try:
        connector.wait_healthy()
        worker.wait_healthy()
        api = deployment.coordinator_api("test-coordinator")
        system = CaseManagementSystem(
            f"http://127.0.0.1:{deployment.webhook_port}", deployment.webhook_secret.encode()
        )
        yield Slice(deployment, system, api, connector, worker)
        system.close()
        api.close()
    finally:
        stop_all([connector, worker])


def new_person(**changes: Any) -> CasePerson:
    family, given, born = distinct_identity()
    person = CasePerson(f"CP-{uuid.uuid4().hex[:8]}", family, given, born, None, "LS6 1AA")
    return replace(person, **changes)


def case_event(
    person: CasePerson, event_type: str = "case_opened", days_ago: int = 1, **changes: Any
) -> CaseEvent:
    occurred = datetime(2026, 11, 1, 9, 30, tzinfo=UTC) - timedelta(days=days_ago)
    return replace(
        CaseEvent(event_type, occurred, f"CASE-{uuid.uuid4().hex[:6]}", person), **changes
    )


def test_a_posted_event_reaches_the_timeline(pipeline: Slice) -> None:
    mother = new_person(given_name="Anna", birth_date=date(1985, 2, 1))
    child = new_person()
    event = case_event(
        child,
        "safeguarding_concern",
        household=(Relative(mother, "parent"),),
        details={"raised_by": "school"},
    )
    assert pipeline.system.deliver(case_event(mother, "assessment_completed")).status_code == 202

    answer = pipeline.system.deliver(event)

    assert answer.status_code == 202, answer.text
    event_id = answer.json()["event_id"]
    timeline = pipeline.timeline(child.case_person_id, events=1)
    assert [e["event_id"] for e in timeline["events"]] == [event_id]
    entry = timeline["events"][0]
    assert entry["event_type"] == "safeguarding_concern"
    assert entry["agency"] == "social_care"
    assert entry["occurred_at"] == "2026-10-31T09:30:00.000000+00:00"
    assert entry["summary"] == "Social care: safeguarding concern"
    assert entry["details"]["details"] == {"raised_by": "school"}
    assert datetime.fromisoformat(entry["recorded_at"]) > datetime.fromisoformat(
        entry["occurred_at"]
    )
    assert timeline["household"] == [
        {"person_id": pipeline.person_id(mother.case_person_id), "relationship": "parent"}
    ]
    assert timeline["next_cursor"] is None


def test_identifiers_travel_only_as_keyed_hashes(pipeline: Slice) -> None:
    person = new_person(national_id="QQ 12 34 56 C", family_name="Ó Súilleabháin")
    answer = pipeline.system.deliver(case_event(person, "referral_received"))
    assert answer.status_code == 202

    records = read_all(
        pipeline.deployment.bootstrap, pipeline.topics.agency_events(Agency.SOCIAL_CARE)
    )
    raw = next(r for r in records if r.headers["event_id"] == answer.json()["event_id"].encode())
    assert person.case_person_id.encode() not in raw.value
    assert b"QQ123456C" not in raw.value and b"QQ 12 34 56 C" not in raw.value
    record = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas")).decode(raw.value).record
    subject = record["envelope"]["subject"]
    assert raw.key == subject["record_id"].encode()
    assert len(subject["national_id"]) == 64
    assert subject["family_name"] == "o suilleabhain"
    assert subject["postcode"] == "LS61AA"
    assert record["envelope"]["legal_basis"] == "public_task"
    assert record["envelope"]["sensitivity"] == "special_category"


def test_a_bad_signature_gets_401_and_stores_nothing(pipeline: Slice) -> None:
    person = new_person()
    topics = pipeline.topics
    bootstrap = pipeline.deployment.bootstrap
    agency_topic = topics.agency_events(Agency.SOCIAL_CARE)
    before = (message_count(bootstrap, agency_topic), message_count(bootstrap, topics.dead_letter))

    forged = pipeline.system.deliver(
        case_event(person, "case_closed"), signature="sha256=" + "0" * 64
    )
    unsigned = pipeline.system.deliver(case_event(person, "case_closed"), signature="")
    # A correctly signed event afterwards: once it is acknowledged, anything the refused
    # deliveries had written would be on the topics too.
    accepted = pipeline.system.deliver(case_event(person, "case_opened", days_ago=3))

    assert forged.status_code == 401 and unsigned.status_code == 401
    assert forged.json()["error"] == "invalid_signature"
    assert accepted.status_code == 202
    after = (message_count(bootstrap, agency_topic), message_count(bootstrap, topics.dead_letter))
    assert after == (before[0] + 1, before[1])
    timeline = pipeline.timeline(person.case_person_id, events=1)
    assert [e["event_type"] for e in timeline["events"]] == ["case_opened"]


def test_an_invalid_body_gets_400_naming_the_field_and_is_dead_lettered(pipeline: Slice) -> None:
    body = case_event(new_person()).body()
    body["person"]["birth_date"] = "31/02/1990"
    raw = json.dumps(body).encode()

    answer = pipeline.system.deliver(raw)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_body"
    assert answer.json()["detail"].startswith("person.birth_date:")
    letters = read_all(pipeline.deployment.bootstrap, pipeline.topics.dead_letter)
    letter = next(r for r in letters if r.value == raw)
    assert letter.headers["connector"] == b"social-care-webhook"
    assert letter.headers["reason"].startswith(b"person.birth_date:")
    assert letter.headers["source"] == b"/webhooks/social-care"
    assert datetime.fromisoformat(letter.headers["received_at"].decode()).tzinfo is not None


def test_unknown_event_type_and_malformed_json_are_refused_by_name(pipeline: Slice) -> None:
    body = case_event(new_person()).body() | {"event_type": "case_reopened"}
    wrong_type = pipeline.system.deliver(body)
    not_json = pipeline.system.deliver(b'{"event_id": ')

    assert wrong_type.status_code == 400
    assert wrong_type.json()["detail"].startswith("event_type:")
    assert not_json.status_code == 400
    assert not_json.json()["detail"].startswith("body: not valid JSON")


def test_the_same_event_sent_twice_appears_once(pipeline: Slice) -> None:
    person = new_person()
    event = case_event(person, "assessment_completed")
    key = str(uuid.uuid4())

    first = pipeline.system.deliver(event, idempotency_key=key)
    repeat = pipeline.system.deliver(event, idempotency_key=key)
    # The sender lost its key and sent the event again: a new delivery of the same event id.
    resent = pipeline.system.deliver(event, idempotency_key=str(uuid.uuid4()))
    later = pipeline.system.deliver(case_event(person, "case_closed", days_ago=0))

    assert first.status_code == repeat.status_code == resent.status_code == 202
    assert first.json() == repeat.json() == resent.json()
    timeline = pipeline.timeline(person.case_person_id, events=2)
    assert [e["event_id"] for e in timeline["events"]] == [
        first.json()["event_id"],
        later.json()["event_id"],
    ]


def test_a_reused_idempotency_key_with_another_body_gets_409(pipeline: Slice) -> None:
    key = str(uuid.uuid4())
    person = new_person()
    first = pipeline.system.deliver(case_event(person), idempotency_key=key)
    other = pipeline.system.deliver(case_event(person, "case_closed"), idempotency_key=key)
    assert first.status_code == 202
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_conflict"


def test_a_body_over_one_mebibyte_gets_413(pipeline: Slice) -> None:
    body = case_event(new_person()).body()
    body["details"] = {"notes": "x" * (1024 * 1024)}
    answer = pipeline.system.deliver(body)
    assert answer.status_code == 413
    assert answer.json()["error"] == "body_too_large"


def test_events_arriving_out_of_order_are_shown_in_event_time(pipeline: Slice) -> None:
    person = new_person()
    closed = case_event(person, "case_closed", days_ago=1)
    opened = case_event(person, "case_opened", days_ago=30)
    referral = case_event(person, "referral_received", days_ago=40)
    for event in (closed, opened, referral):
        assert pipeline.system.deliver(event).status_code == 202

    timeline = pipeline.timeline(person.case_person_id, events=3)

    assert [e["event_type"] for e in timeline["events"]] == [
        "referral_received",
        "case_opened",
        "case_closed",
    ]


def test_timeline_filters_and_pages(pipeline: Slice) -> None:
    person = new_person()
    for days_ago in (50, 40, 30, 20, 10):
        assert (
            pipeline.system.deliver(
                case_event(person, "assessment_completed", days_ago=days_ago)
            ).status_code
            == 202
        )
    pipeline.timeline(person.case_person_id, events=5)
    person_id = pipeline.person_id(person.case_person_id)

    first = pipeline.api.get(f"/persons/{person_id}/timeline", params={"limit": 2}).json()
    second = pipeline.api.get(
        f"/persons/{person_id}/timeline", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    window = pipeline.api.get(
        f"/persons/{person_id}/timeline",
        params={"from": "2026-09-20T00:00:00+00:00", "to": "2026-10-15T00:00:00Z"},
    ).json()
    other_agency = pipeline.api.get(
        f"/persons/{person_id}/timeline", params={"agency": "housing"}
    ).json()

    days = [e["occurred_at"][:10] for e in first["events"] + second["events"]]
    assert days == ["2026-09-12", "2026-09-22", "2026-10-02", "2026-10-12"]
    assert [e["occurred_at"][:10] for e in window["events"]] == [
        "2026-09-22",
        "2026-10-02",
        "2026-10-12",
    ]
    assert other_agency["events"] == []


def test_the_api_requires_a_token_and_a_purpose_and_audits_every_request(pipeline: Slice) -> None:
    person = new_person()
    assert pipeline.system.deliver(case_event(person)).status_code == 202
    person_id = pipeline.person_id(person.case_person_id)
    url = f"/persons/{person_id}/timeline"
    base = pipeline.api.base_url

    allowed = pipeline.api.get(url)
    no_purpose = httpx.get(
        f"{base}{url}", headers={"Authorization": pipeline.api.headers["Authorization"]}
    )
    no_token = httpx.get(f"{base}{url}", headers={"X-Purpose": "direct_care"})
    forged = httpx.get(
        f"{base}{url}",
        headers={
            "Authorization": "Bearer "
            + issue_token(b"not-the-secret-at-all", "x", ["t"], "auditor"),
            "X-Purpose": "direct_care",
        },
    )
    unknown = pipeline.api.get(
        "/persons/lookup",
        params={"agency": "social_care", "id_type": "case_person_id", "id": "CP-NOBODY"},
    )
    bad_agency = pipeline.api.get(
        "/persons/lookup", params={"agency": "police", "id_type": "x", "id": "1"}
    )

    answers = [allowed, no_purpose, no_token, forged, unknown, bad_agency]
    assert [a.status_code for a in answers] == [200, 400, 401, 401, 404, 400], [
        a.text for a in answers
    ]
    assert no_purpose.status_code == 400 and no_purpose.json()["error"] == "missing_purpose"
    assert no_token.status_code == 401 and forged.status_code == 401
    assert unknown.status_code == 404
    assert bad_agency.status_code == 400 and "agency" in bad_agency.json()["detail"]

    codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
    audit = [
        codec.decode(r.value).record
        for r in read_all(pipeline.deployment.bootstrap, pipeline.topics.audit)
    ]
    mine = [a for a in audit if a["resource"].startswith(url)]
    assert {(a["outcome"], a["purpose"], a["coordinator"]) for a in mine} >= {
        (400, None, "test-coordinator"),
        (401, "direct_care", None),
        (200, "direct_care", "test-coordinator"),
    }
    assert all(a["action"] == "GET /persons/{person_id}/timeline" for a in mine)
    assert any(a["outcome"] == 404 and a["action"] == "GET /persons/lookup" for a in audit)


def test_a_lookup_by_an_identifier_type_no_connector_sets_gets_400_naming_the_agencys(
    pipeline: Slice,
) -> None:
    person = new_person()
    assert pipeline.system.deliver(case_event(person)).status_code == 202
    pipeline.person_id(person.case_person_id)

    def lookup(agency: str, id_type: str) -> httpx.Response:
        params = {"agency": agency, "id_type": id_type, "id": person.case_person_id}
        return pipeline.api.get("/persons/lookup", params=params)

    # The hospital's word for its identifier, asked of social care: not "nobody has it".
    wrong = lookup("social_care", "MR")
    assert wrong.status_code == 400, wrong.text
    assert wrong.json() == {
        "error": "invalid_parameter",
        "detail": "id_type must be one of: case_person_id",
    }
    health = lookup("health", "nhs_number")
    assert health.status_code == 400
    assert health.json()["detail"] == "id_type must be one of: hospital_number"
    assert lookup("social_care", "case_person_id").status_code == 200
    # A right type and an identifier nobody has is still 404.
    assert lookup("health", "hospital_number").status_code == 404


def test_details_are_shown_only_to_roles_that_may_see_them(pipeline: Slice) -> None:
    person = new_person()
    assert pipeline.system.deliver(case_event(person, details={"note": "x"})).status_code == 202
    person_id = pipeline.person_id(person.case_person_id)
    auditor = issue_token(pipeline.deployment.token_secret.encode(), "a", ["audit"], "auditor")
    answer = httpx.get(
        f"{pipeline.api.base_url}/persons/{person_id}/timeline",
        headers={"Authorization": f"Bearer {auditor}", "X-Purpose": "audit"},
    )
    assert answer.status_code == 200
    assert [e["details"] for e in answer.json()["events"]] == [None]


def test_every_process_serves_metrics_and_logs_json_with_the_event_id(pipeline: Slice) -> None:
    person = new_person()
    answer = pipeline.system.deliver(case_event(person))
    event_id = answer.json()["event_id"]
    assert pipeline.system.deliver(b"not json").status_code == 400  # counted as a dead letter
    pipeline.timeline(person.case_person_id, events=1)

    connector_metrics = httpx.get(
        f"http://127.0.0.1:{pipeline.deployment.connector_metrics_port}/metrics"
    ).text
    worker_metrics = httpx.get(f"{pipeline.api.base_url}/metrics").text

    assert (
        'backbone_events_in_total{agency="social_care",component="social-care-webhook"}'
        in connector_metrics
    )
    assert (
        'backbone_events_out_total{agency="social_care",component="social-care-webhook",'
        in connector_metrics
    )
    assert 'backbone_dead_letters_total{component="social-care-webhook"' in connector_metrics
    assert 'backbone_events_in_total{agency="social_care",component="timeline"}' in worker_metrics
    assert "backbone_end_to_end_seconds_bucket" in worker_metrics
    for process, event in (
        (pipeline.connector, "event_published"),
        (pipeline.worker, "timeline_updated"),
    ):
        lines = [
            json.loads(line)
            for line in process.log.read_text().splitlines()
            if line.startswith("{")
        ]
        assert any(
            line.get("event") == event and line.get("event_id") == event_id for line in lines
        )


def test_a_household_member_without_events_of_their_own_has_an_empty_timeline(
    pipeline: Slice,
) -> None:
    father = new_person(given_name="Piotr")
    child = new_person()
    event = case_event(child, "referral_received", household=(Relative(father, "parent"),))
    assert pipeline.system.deliver(event).status_code == 202
    household = pipeline.timeline(child.case_person_id, events=1)["household"]
    father_id = household[0]["person_id"]

    answer = pipeline.api.get(f"/persons/{father_id}/timeline")

    assert answer.status_code in (200, 404), answer.text
    if answer.status_code == 200:
        assert answer.json()["events"] == []


def test_each_side_of_a_household_reads_the_relationship_as_it_stands_to_it(
    pipeline: Slice,
) -> None:
    mother, child, brother = new_person(given_name="Mira"), new_person(), new_person()
    household = (Relative(mother, "parent"), Relative(brother, "sibling"))
    assert pipeline.system.deliver(case_event(child, household=household)).status_code == 202
    child_id = pipeline.person_id(child.case_person_id)

    def household_of(case_person: CasePerson) -> list[dict[str, str]]:
        """The person's household once it lists somebody (their own records list nobody)."""
        person_id = pipeline.person_id(case_person.case_person_id)
        deadline = time.monotonic() + 30.0
        while True:
            answer = pipeline.api.get(f"/persons/{person_id}/timeline")
            if answer.status_code == 200 and answer.json()["household"]:
                members: list[dict[str, str]] = answer.json()["household"]
                return members
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)

    assert sorted(m["relationship"] for m in household_of(child)) == ["parent", "sibling"]
    assert household_of(mother) == [{"person_id": child_id, "relationship": "child"}]
    assert household_of(brother) == [{"person_id": child_id, "relationship": "sibling"}]


def test_the_coordinator_page_is_served_and_reads_only_through_the_api(pipeline: Slice) -> None:
    page = httpx.get(f"{pipeline.api.base_url}/ui/")

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    # The page carries no data: it calls the audited API with the coordinator's token.
    for call in ("/persons/lookup?", "/timeline", "/links", "/alerts", "/review", "X-Purpose"):
        assert call in page.text


def test_hostile_bodies_get_400_naming_the_problem_and_are_dead_lettered(pipeline: Slice) -> None:
    person = new_person()
    body = case_event(person).body()
    hostile: dict[str, bytes] = {
        # Each once answered 500 (an exception escaped) with nothing dead-lettered.
        "body: not read: arrays or objects nested too deeply": b"[" * 100_000,
        "body: not valid JSON: Exceeds the limit": b'{"case_id": ' + b"1" * 5000 + b"}",
        "occurred_at: Value error, is outside the years 1 to 9999": json.dumps(
            body | {"occurred_at": "0001-01-01T00:00:00+14:00"}
        ).encode(),
        "body: must be a JSON object": b"[]",
        # Valid, but its event is more than Kafka takes: once 503 for ever, as if Kafka were down.
        "size: the event is": json.dumps(body | {"details": {"notes": "x" * 1_000_000}}).encode(),
    }

    answers = {reason: pipeline.system.deliver(raw) for reason, raw in hostile.items()}
    accepted = pipeline.system.deliver(case_event(person, "case_closed"))

    for reason, answer in answers.items():
        assert answer.status_code == 400, (reason, answer.text)
        assert answer.json()["detail"].startswith(reason)
    assert accepted.status_code == 202
    letters = read_all(pipeline.deployment.bootstrap, pipeline.topics.dead_letter)
    by_reason = {r.headers["reason"].decode(): r for r in letters}
    for reason, raw in hostile.items():
        letter = next(r for text, r in by_reason.items() if text.startswith(reason))
        if len(raw) <= 900_000:
            assert letter.value == raw
        else:  # Kafka takes about 1 MB: the first bytes are kept, and how many there were
            assert letter.value == raw[:900_000]
            assert letter.headers["original_bytes"] == str(len(raw)).encode()
    assert [e["event_type"] for e in pipeline.timeline(person.case_person_id, 1)["events"]] == [
        "case_closed"
    ]


def test_a_sender_that_never_finishes_its_request_is_cut_off(
    deployment: Deployment, tmp_path: Path
) -> None:
    own = replace(deployment, webhook_port=free_port(), connector_metrics_port=free_port())
    connector = BackboneProcess.start(
        "social-care-webhook-slow",
        ["connector", "run", "social-care-webhook"],
        own.env() | {"BACKBONE_WEBHOOK_READ_TIMEOUT_S": "1"},
        tmp_path,
        f"http://127.0.0.1:{own.connector_metrics_port}/health",
    )
    try:
        connector.wait_healthy()
        half_body = send_and_read_until_closed(
            own.webhook_port,
            b"POST /webhooks/social-care HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: 1000\r\n\r\n" + b'{"event_id": ',
        )
        half_head = send_and_read_until_closed(own.webhook_port, b"POST /webhooks/social-care HT")
        system = CaseManagementSystem(
            f"http://127.0.0.1:{own.webhook_port}", deployment.webhook_secret.encode()
        )
        after = system.deliver(case_event(new_person()))
        system.close()
    finally:
        stop_all([connector])

    assert half_body.startswith(b"HTTP/1.1 408 ")
    assert b'"error": "request_timeout"' in half_body
    assert half_head == b""  # closed without an answer
    assert after.status_code == 202


def send_and_read_until_closed(port: int, data: bytes) -> bytes:
    """Send `data` and nothing more; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        # A guard against a server that never closes: the test fails rather than hangs.
        connection.settimeout(60)
        connection.sendall(data)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer
