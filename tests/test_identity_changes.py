"""Identity changes someone asserts, against the real broker and a real worker: a coordinator's
merge of two persons, a hospital's A40 merge of two hospital numbers, a coordinator's split.

The worker, the social care webhook connector and the hospital publisher are those of
tests/test_identity_resolution.py (its `backbone` fixture, one worker for this module).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

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
    second = backbone.lookup("health", "MR", hospital_number)
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
    backbone.lookup_until("health", "MR", hospital_number, first)
    record_id = backbone.hospital.pseudonyms.record_id("health", "MR", hospital_number)
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
    prior = backbone.lookup("health", "MR", prior_number)
    # The hospital registered her again under another name by mistake, then merged the two.
    admitted = backbone.hospital.admit(number, other_family, other_given, other_born, days_ago=8)
    current = backbone.lookup("health", "MR", number)
    assert prior != current

    merge = backbone.hospital.admit(
        number, other_family, other_given, other_born, days_ago=1, merged_number=prior_number
    )

    timeline = backbone.timeline_with(prior, {before, admitted, merge})
    assert [e["event_id"] for e in timeline["events"]] == [before, admitted, merge]
    assert backbone.api.get(f"/persons/{current}/timeline").status_code == 301
    backbone.lookup_until("health", "MR", number, prior)
    record_id = backbone.hospital.pseudonyms.record_id("health", "MR", number)
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
    assert backbone.lookup("health", "MR", hospital_number) == person  # linked by score
    record_id = backbone.hospital.pseudonyms.record_id("health", "MR", hospital_number)
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
    backbone.lookup_until("health", "MR", hospital_number, split_off)
    link = wait_for_basis(backbone, split_off, record_id, "coordinator")
    assert (link["outcome"], link["reason"], link["agency"]) == ("split", reason, "health")
    assert record_id not in links_by_record(backbone, person, 1)
    # Later events of the record go to its new person, and the resolver does not re-merge.
    later = backbone.hospital.admit(hospital_number, family, given, born, postcode="M14 5RT")
    backbone.timeline_with(split_off, {later})
    closed = backbone.deliver(cared_for, "case_closed", days=1)
    backbone.timeline_with(person, {closed})
    assert backbone.lookup("health", "MR", hospital_number) == split_off
    assert backbone.lookup("social_care", "case_person_id", cared_for.case_person_id) == person
    assert event_ids_of(backbone, person) == {care_event, closed}
