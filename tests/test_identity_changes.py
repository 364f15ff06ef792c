"""Identity changes someone asserts, against the real broker and a real worker: a coordinator's
merge of two persons, a hospital's A40 merge of two hospital numbers, a coordinator's split,
and `backbone erase` (last: it restarts the worker on empty state).

The worker, the social care webhook connector and the hospital publisher are those of
tests/test_identity_resolution.py (its `backbone` fixture, one worker for this module).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import HOSPITAL_NUMBER
from backbone.settings import REPO_ROOT
from backbone.tokens import issue_token
from backbone.topics import Topics
from cli.kafka_probe import read_all
from tests import test_identity_resolution as resolution
from tests.conftest import distinct_identity, wait_until
from tests.test_identity_resolution import WAIT_S, Backbone, case_person

# The worker, connector and hospital of the resolution tests: one set for this module.
backbone = resolution.backbone


def links_by_record(backbone: Backbone, person_id: str, count: int) -> dict[str, dict[str, Any]]:
    return {link["record_id"]: link for link in backbone.links_of(person_id, count)}


def wait_for_basis(
    backbone: Backbone, person_id: str, record_id: str, basis: str
) -> dict[str, Any]:
    """The link of `record_id` on the person once its basis is `basis`."""
    deadline = time.monotonic() + WAIT_S
    while True:
        links = links_by_record(backbone, person_id, 1)
        if links.get(record_id, {}).get("basis") == basis:
            return links[record_id]
        assert time.monotonic() < deadline, links
        time.sleep(0.2)


def test_a_coordinator_merges_two_persons(backbone: Backbone) -> None:
    family, given, born = distinct_identity()
    other_family, other_given, other_born = distinct_identity()
    cared_for = case_person(family, given, born, postcode="LS6 1AA")
    care_event = backbone.deliver(cared_for, days=9)
    first = backbone.lookup("social_care", "case_person_id", cared_for.case_person_id)
    hospital_number = uuid.uuid4().hex[:8]
    admitted = backbone.hospital.admit(hospital_number, other_family, other_given, other_born)
    second = backbone.lookup("health", HOSPITAL_NUMBER, hospital_number)
    assert first != second
    reason = "same person: confirmed with the family"

    bad = [
        backbone.api.post("/persons/merge", json={"person_ids": [first], "reason": reason}),
        backbone.api.post("/persons/merge", json={"person_ids": [first, second]}),
        backbone.api.post("/persons/merge", content=b"not json"),
    ]
    unknown = backbone.api.post(
        "/persons/merge", json={"person_ids": [first, "Pnobody"], "reason": reason}
    )
    merged = backbone.api.post(
        "/persons/merge", json={"person_ids": [second, first], "reason": reason}
    )

    assert [answer.status_code for answer in bad] == [400, 400, 400]
    assert [answer.json()["detail"].split(":")[0] for answer in bad] == [
        "person_ids",
        "reason",
        "body",
    ]
    assert unknown.status_code == 404 and "Pnobody" in unknown.json()["detail"]
    assert merged.status_code == 200, merged.text
    # The earlier-seen person's id survives every merge.
    assert merged.json() == {"person_id": first, "merged_person_ids": [second]}
    backbone.timeline_with(first, {care_event, admitted})
    assert backbone.api.get(f"/persons/{second}/timeline").status_code == 301
    backbone.lookup_until("health", HOSPITAL_NUMBER, hospital_number, first)
    record_id = backbone.hospital.pseudonyms.record_id("health", HOSPITAL_NUMBER, hospital_number)
    link = wait_for_basis(backbone, first, record_id, "coordinator")
    assert link["coordinator"] == "coordinator" and link["reason"] == reason
    assert link["agency"] == "health"
    again = backbone.api.post(
        "/persons/merge", json={"person_ids": [first, second], "reason": reason}
    )
    assert again.status_code == 404  # the absorbed person is no longer one


def test_an_hl7_a40_merges_the_prior_hospital_numbers_person(backbone: Backbone) -> None:
    family, given, born = distinct_identity()
    other_family, other_given, other_born = distinct_identity()
    prior_number, number = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    before = backbone.hospital.admit(prior_number, family, given, born, days_ago=40)
    prior = backbone.lookup("health", HOSPITAL_NUMBER, prior_number)
    # The hospital registered her again under another name by mistake, then merged the two.
    admitted = backbone.hospital.admit(number, other_family, other_given, other_born, days_ago=8)
    current = backbone.lookup("health", HOSPITAL_NUMBER, number)
    assert prior != current

    merge = backbone.hospital.admit(
        number, other_family, other_given, other_born, days_ago=1, merged_number=prior_number
    )

    timeline = backbone.timeline_with(prior, {before, admitted, merge})
    assert [e["event_id"] for e in timeline["events"]] == [before, admitted, merge]
    assert backbone.api.get(f"/persons/{current}/timeline").status_code == 301
    backbone.lookup_until("health", HOSPITAL_NUMBER, number, prior)
    record_id = backbone.hospital.pseudonyms.record_id("health", HOSPITAL_NUMBER, number)
    link = wait_for_basis(backbone, prior, record_id, "deterministic")
    assert link["reason"] == "HL7 A40"


def event_ids_of(backbone: Backbone, person_id: str) -> set[str]:
    answer = backbone.api.get(f"/persons/{person_id}/timeline")
    assert answer.status_code == 200, answer.text
    return {entry["event_id"] for entry in answer.json()["events"]}


def test_a_coordinator_splits_a_record_off_and_it_stays_apart(backbone: Backbone) -> None:
    family, given, born = distinct_identity()
    cared_for = case_person(family, given, born, postcode="M14 5RT")
    care_event = backbone.deliver(cared_for, days=6)
    person = backbone.lookup("social_care", "case_person_id", cared_for.case_person_id)
    hospital_number = uuid.uuid4().hex[:8]
    admitted = backbone.hospital.admit(
        hospital_number, family, given, born, postcode="M14 5RT", days_ago=3
    )
    assert backbone.lookup("health", HOSPITAL_NUMBER, hospital_number) == person  # linked by score
    record_id = backbone.hospital.pseudonyms.record_id("health", HOSPITAL_NUMBER, hospital_number)
    timeline = backbone.timeline_with(person, {care_event, admitted})
    assert record_id in {entry["record_id"] for entry in timeline["events"]}
    reason = "two people: different GP practices"
    split = f"/persons/{person}/split"

    bad = [
        backbone.api.post(split, json={"reason": reason}),
        backbone.api.post(split, json={"records": ["Rnothing"], "reason": reason}),
        backbone.api.post(split, json={"records": [record_id]}),
    ]
    unknown = backbone.api.post(
        "/persons/Pnobody/split", json={"records": [record_id], "reason": reason}
    )
    answer = backbone.api.post(split, json={"records": [record_id], "reason": reason})

    assert [response.status_code for response in bad] == [400, 400, 400]
    assert [response.json()["detail"].split(":")[0] for response in bad] == [
        "records",
        "records",
        "reason",
    ]
    assert unknown.status_code == 404
    assert answer.status_code == 200, answer.text
    split_off = answer.json()["person_id"]
    assert answer.json() == {"person_id": split_off, "remaining_person_id": person}
    assert split_off != person
    wait_until(lambda: admitted not in event_ids_of(backbone, person), 30, "the events to move")
    assert event_ids_of(backbone, person) == {care_event}
    assert [e["event_id"] for e in backbone.timeline_with(split_off, {admitted})["events"]] == [
        admitted
    ]
    backbone.lookup_until("health", HOSPITAL_NUMBER, hospital_number, split_off)
    link = wait_for_basis(backbone, split_off, record_id, "coordinator")
    assert (link["outcome"], link["reason"], link["agency"]) == ("split", reason, "health")
    assert record_id not in links_by_record(backbone, person, 1)
    # Later events of the record go to its new person, and the resolver does not re-merge.
    later = backbone.hospital.admit(hospital_number, family, given, born, postcode="M14 5RT")
    backbone.timeline_with(split_off, {later})
    closed = backbone.deliver(cared_for, "case_closed", days=1)
    backbone.timeline_with(person, {closed})
    assert backbone.lookup("health", HOSPITAL_NUMBER, hospital_number) == split_off
    assert backbone.lookup("social_care", "case_person_id", cared_for.case_person_id) == person
    assert event_ids_of(backbone, person) == {care_event, closed}


def test_splitting_off_the_first_record_keeps_its_person_id_with_it(backbone: Backbone) -> None:
    family, given, born = distinct_identity()
    cared_for = case_person(family, given, born, postcode="LS6 1AA")
    care_event = backbone.deliver(cared_for, days=6)
    person = backbone.lookup("social_care", "case_person_id", cared_for.case_person_id)
    hospital_number = uuid.uuid4().hex[:8]
    admitted = backbone.hospital.admit(hospital_number, family, given, born, postcode="LS6 1AA")
    assert backbone.lookup("health", HOSPITAL_NUMBER, hospital_number) == person
    backbone.timeline_with(person, {care_event, admitted})
    care_record = next(
        link["record_id"]
        for link in backbone.links_of(person, 2)
        if link["agency"] == "social_care"
    )

    answer = backbone.api.post(
        f"/persons/{person}/split", json={"records": [care_record], "reason": "two people"}
    )

    assert answer.status_code == 200, answer.text
    rest = answer.json()["remaining_person_id"]
    assert answer.json() == {"person_id": person, "remaining_person_id": rest} and rest != person
    backbone.timeline_with(rest, {admitted})
    wait_until(lambda: event_ids_of(backbone, person) == {care_event}, 30, "the events to move")
    backbone.lookup_until("health", HOSPITAL_NUMBER, hospital_number, rest)
    assert backbone.lookup("social_care", "case_person_id", cared_for.case_person_id) == person
    assert wait_for_basis(backbone, person, care_record, "coordinator")["outcome"] == "split"


def review_ids(backbone: Backbone, role: str) -> set[str]:
    """The review queue as a coordinator in `role` sees it."""
    token = issue_token(backbone.env["BACKBONE_TOKEN_SECRET"].encode(), "rev", ["team"], role)
    answer = backbone.api.get("/review", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return {case["review_id"] for case in answer.json()["reviews"]}


def test_the_review_queue_shows_each_role_the_agencies_it_may_see(backbone: Backbone) -> None:
    family, _, born = distinct_identity()
    first_number, second_number = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    backbone.hospital.admit(first_number, family, "Amelia", born, postcode="LS6 1AA")
    backbone.lookup("health", HOSPITAL_NUMBER, first_number)
    backbone.hospital.admit(second_number, family, "Olivia", born, postcode="LS6 1AA")  # a twin
    twin = backbone.lookup("health", HOSPITAL_NUMBER, second_number)
    review_id = backbone.links_of(twin, 1)[0]["record_id"]
    wait_until(
        lambda: review_id in review_ids(backbone, "health_practitioner"), 30, "the health case"
    )

    assert review_id not in review_ids(backbone, "social_worker")  # health details: not theirs
    assert review_ids(backbone, "auditor") == set()
    token = issue_token(
        backbone.env["BACKBONE_TOKEN_SECRET"].encode(), "officer", ["housing"], "housing_officer"
    )
    refused = backbone.api.post(
        f"/review/{review_id}",
        json={"decision": "no_match", "reason": "twins"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 403
    assert review_id in review_ids(backbone, "safeguarding_lead")


def backbone_erase(backbone: Backbone, *identifier: str) -> subprocess.CompletedProcess[str]:
    agency, id_type, local_id = identifier
    return subprocess.run(
        [
            *(sys.executable, "-m", "cli", "erase", "--agency", agency, "--id-type", id_type),
            *("--id", local_id, "--reason", "erasure request ER-42", "--timeout", "30"),
        ],
        env=backbone.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def gone(backbone: Backbone, path: str, **params: str) -> bool:
    return backbone.api.get(path, params=params).status_code == 404


def all_gone(backbone: Backbone, person: str, identifiers: list[tuple[str, str, str]]) -> bool:
    """No lookup finds the identifiers, and the person has no timeline and no links."""
    return (
        all(
            gone(backbone, "/persons/lookup", agency=agency, id_type=id_type, id=local_id)
            for agency, id_type, local_id in identifiers
        )
        and gone(backbone, f"/persons/{person}/timeline")
        and gone(backbone, f"/persons/{person}/links")
    )


def test_erase_forgets_the_person_and_a_restarted_worker_does_not_bring_them_back(
    backbone: Backbone, tmp_path: Path
) -> None:
    family, given, born = distinct_identity()
    cared_for = case_person(family, given, born, postcode="LS6 1AA")
    care_event = backbone.deliver(cared_for, days=4)
    person = backbone.lookup("social_care", "case_person_id", cared_for.case_person_id)
    hospital_number = uuid.uuid4().hex[:8]
    admitted = backbone.hospital.admit(hospital_number, family, given, born, postcode="LS6 1AA")
    assert backbone.lookup("health", HOSPITAL_NUMBER, hospital_number) == person
    backbone.timeline_with(person, {care_event, admitted})
    backbone.links_of(person, 2)

    erased = backbone_erase(backbone, "health", HOSPITAL_NUMBER, hospital_number)
    unknown = backbone_erase(backbone, "health", HOSPITAL_NUMBER, "never-seen")

    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.strip() == f"erased person {person}: 2 agency record(s)"
    assert unknown.returncode == 2 and "no person has that identifier" in unknown.stderr
    identifiers = [
        ("social_care", "case_person_id", cared_for.case_person_id),
        ("health", HOSPITAL_NUMBER, hospital_number),
    ]
    wait_until(lambda: all_gone(backbone, person, identifiers), 30, "the person to be gone")
    codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
    audit = [
        codec.decode(record.value).record
        for record in read_all(
            backbone.env["BACKBONE_KAFKA_BOOTSTRAP"],
            Topics(backbone.env["BACKBONE_TOPIC_PREFIX"]).audit,
        )
    ]
    erasures = [(a["outcome"], a["purpose"]) for a in audit if a["action"] == "erase"]
    assert sorted(erasures) == [(200, "erasure request ER-42"), (404, "erasure request ER-42")]

    backbone.restart_worker(tmp_path / "state")

    assert all_gone(backbone, person, identifiers)
    # The resolver forgot the records too: the same details again make a new person.
    again = case_person(family, given, born, postcode="LS6 1AA")
    backbone.deliver(again)
    assert backbone.lookup("social_care", "case_person_id", again.case_person_id) != person
