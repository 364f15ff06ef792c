"""The typed messages between stream stages: every kind decodes to the dict it was encoded from.

`identity-decisions` and `identity-changes` carry IdentityDecision and IdentityChange records in
frames, `identity-input` IdentityCommand records beside its frames, `alert-updates`
AlertViewUpdate records in frames. The features work with dicts, and `GET /persons/{id}/links`
shows links as they are: a link must come back with exactly its keys, in their order.
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from backbone.codec import MAGIC, AvroCodec, SchemaStore, schema_fingerprint
from backbone.contracts import (
    ALERT_VIEW_UPDATE_SCHEMA,
    IDENTITY_CHANGE_SCHEMA,
    IDENTITY_COMMAND_SCHEMA,
    IDENTITY_DECISION_SCHEMA,
    TOPIC_SCHEMAS,
)
from backbone.errors import BadInput
from backbone.frames import FramedEvent, encode_frame
from backbone.identity_commands import decode_command, encode_command, is_command
from backbone.settings import REPO_ROOT
from streams.alerting.messages import decode_update, encode_update
from streams.identity.linkage import Decision, Outcome
from streams.identity.messages import (
    decode_change,
    decode_decision,
    encode_change,
    encode_decision,
)
from streams.identity.processor import link_of
from tests.test_alert_frames import Processor, day, person_event

SCHEMAS = REPO_ROOT / "avro_schemas"
CODEC = AvroCodec(SchemaStore(SCHEMAS))
RECORD = "r" * 64
CANDIDATE = "c" * 64
EVIDENCE = {
    "person_id": "P" + "1" * 16,
    "candidate_record_id": CANDIDATE,
    "score": 23.41,
    "fields": [
        {"field": "family_name", "level": "exact", "weight": 9.5},
        {"field": "postcode", "level": "different", "weight": -2.25},
        {"field": "sex", "level": "missing", "weight": 0},
    ],
    "caveats": [],
}


def resolver_link(outcome: Outcome, evidence: dict[str, Any] | None) -> dict[str, Any]:
    decision = Decision(RECORD, "P" + "2" * 16, outcome, f"why {outcome}", evidence)
    return {"record_id": RECORD, "agency": "health", **link_of(decision)}


# Every kind of link a person's head can hold, as the code that makes each writes it.
LINKS: dict[str, dict[str, Any]] = {
    "deterministic": resolver_link(Outcome.MATCH, None),
    "probabilistic": resolver_link(Outcome.MATCH, EVIDENCE),
    "first record, nobody to review": resolver_link(Outcome.NEW_PERSON, None),
    "first record, closest candidate": resolver_link(Outcome.NEW_PERSON, EVIDENCE),
    "first record, possible match": resolver_link(Outcome.POSSIBLE_MATCH, EVIDENCE),
    # Identity.decide_review: the case, decided by a coordinator.
    "coordinator's review": {
        **{k: v for k, v in resolver_link(Outcome.POSSIBLE_MATCH, EVIDENCE).items()},
        "basis": "coordinator",
        "outcome": "match",
        "reason": "coordinator ann: met her",
    },
    # Identity.join_persons: relinks of a coordinator's merge and of an HL7 A40.
    "coordinator's merge relink": {
        "record_id": RECORD,
        "outcome": "match",
        "basis": "coordinator",
        "coordinator": "ann",
        "reason": "same person",
    },
    "HL7 A40 relink": {
        "record_id": RECORD,
        "outcome": "match",
        "basis": "deterministic",
        "reason": "HL7 A40",
    },
    # IdentityCommands.split: the link a split gives the listed records (no record id, agency).
    "split": {
        "basis": "coordinator",
        "outcome": "split",
        "coordinator": "ann",
        "reason": "two people",
        "split_from": "P" + "3" * 16,
    },
    # TimelineStore.split and .link: the split's link on a record, the agency the timeline knew
    # (None for a record it had no link of), and a relink given the known agency first.
    "split, on a record the timeline did not know": {
        "record_id": RECORD,
        "agency": None,
        "basis": "coordinator",
        "outcome": "split",
        "coordinator": "ann",
        "reason": "two people",
        "split_from": "P" + "3" * 16,
    },
    "relink with the known agency": {
        "agency": "housing",
        "record_id": RECORD,
        "outcome": "match",
        "basis": "deterministic",
        "reason": "HL7 A40",
    },
}


def round_trip_change(change: dict[str, Any]) -> dict[str, Any]:
    decoded = decode_change(CODEC, encode_change(CODEC, change))
    # Byte for byte as the API and the tables' JSON would show it: same keys, same order.
    assert json.dumps(decoded) == json.dumps(change)
    return decoded


@pytest.mark.parametrize("kind", list(LINKS))
def test_every_kind_of_link_comes_back_with_exactly_its_keys_in_order(kind: str) -> None:
    link = LINKS[kind]
    if kind.startswith("first record"):
        assert "review_person_id" in link  # kept even when null
    round_trip_change({"person_id": "P1", "change": "link", "link": link})


def test_a_link_with_a_field_the_schema_does_not_know_is_refused() -> None:
    with pytest.raises(BadInput, match="no field colour"):
        encode_change(CODEC, {"person_id": "P1", "change": "link", "link": {"colour": "red"}})


def entry(event_id: str, *, record_id: str | None = RECORD) -> dict[str, Any]:
    """A timeline entry as streams/timeline/entries.py makes it (older ones lack record_id)."""
    made = {
        "event_id": event_id,
        "record_id": record_id,
        "event_type": "case_opened",
        "agency": "social_care",
        "occurred_at": "2025-11-03T09:00:00.000000+00:00",
        "recorded_at": "2025-11-03T09:00:01.000000+00:00",
        "summary": "Social care: case opened",
        "details": {"source": "school", "score": 1.5, "flags": [1, None], "note": None},
    }
    if record_id is None:
        del made["record_id"]
    return made


@pytest.mark.parametrize(
    "change",
    [
        {"person_id": "P1", "change": "merge", "into": "P2", "reason": "HL7 A40"},
        {
            "person_id": "P1",
            "change": "split",
            "records": ["r1", "r2"],
            "into": "P9",
            "listed": ["r2"],
            "link": LINKS["split"],
        },
        {"person_id": "P1", "change": "erase"},
        {
            "person_id": "P2",
            "change": "absorb",
            "timeline": {
                "household": {"P7": "parent"},
                "links": {key: LINKS[key] for key in ("probabilistic", "HL7 A40 relink")},
                "events": [entry("e1"), entry("e0", record_id=None)],
            },
        },
        {"person_id": "P2", "change": "absorb", "timeline": {"events": [entry("e2")]}},
        {"person_id": "P2", "change": "absorb", "timeline": {"links": {RECORD: LINKS["split"]}}},
        {
            "person_id": "P2",
            "change": "absorb",
            "timeline": {"events": [{**entry("e3"), "initial_load": True}, entry("e4")]},
        },
        {"person_id": "P3", "change": "absorb", "timeline": {"listed_by": {"P2": "child"}}},
    ],
    ids=[
        "merge",
        "split",
        "erase",
        "absorb",
        "absorb events",
        "absorb links",
        "absorb events of an initial load",
        "listed by",
    ],
)
def test_every_kind_of_identity_change_round_trips(change: dict[str, Any]) -> None:
    decoded = round_trip_change(change)
    assert decoded == change


@pytest.mark.parametrize(
    "decision",
    [
        {"record_id": RECORD, "person_id": "P1", "fingerprint": "f" * 64},
        {"record_id": RECORD, "person_id": "P1", "fingerprint": None},
        {"record_id": RECORD, "person_id": None, "fingerprint": None},
        {
            "record_id": RECORD,
            "person_id": None,
            "fingerprint": None,
            "command_id": "c-1",
            "erased_person_id": "P1",
            "records": 3,
        },
        {
            "record_id": RECORD,
            "person_id": None,
            "fingerprint": None,
            "command_id": "c-2",
            "erased_person_id": None,
            "records": 0,
        },
    ],
    ids=["linked", "fingerprint unknown", "unlinked", "erasure confirmed", "nobody to erase"],
)
def test_every_kind_of_decision_round_trips(decision: dict[str, Any]) -> None:
    decoded = decode_decision(CODEC, encode_decision(CODEC, decision))
    assert json.dumps(decoded) == json.dumps(decision)


@pytest.mark.parametrize(
    "command",
    [
        {
            "command": "review_decision",
            "review_id": RECORD,
            "decision": "match",
            "reason": "met her",
            "coordinator": "ann",
        },
        {
            "command": "merge",
            "person_ids": ["P1", "P2"],
            "reason": "same person",
            "coordinator": "ann",
            "command_id": "c-1",
        },
        {
            "command": "split",
            "person_id": "P1",
            "records": ["r1"],
            "reason": "two people",
            "coordinator": "ann",
            "command_id": "c-2",
        },
        {
            "command": "erase",
            "command_id": "c-3",
            "record_id": RECORD,
            "reason": "subject access",
            "coordinator": "operator root",
        },
    ],
    ids=["review decision", "merge", "split", "erase"],
)
def test_every_kind_of_command_round_trips_and_is_told_from_a_frame(
    command: dict[str, Any],
) -> None:
    value = encode_command(CODEC, command)
    assert decode_command(CODEC, value) == command
    assert is_command(CODEC, value)
    frame = encode_frame(CODEC, [FramedEvent(b"k", value, {})])
    assert not is_command(CODEC, frame)
    assert not is_command(CODEC, b"") and not is_command(CODEC, b"{}")


def test_a_message_of_another_type_is_bad_input() -> None:
    decision = encode_decision(CODEC, {"record_id": RECORD, "person_id": None})
    with pytest.raises(BadInput, match=r"expected a backbone\.identity\.IdentityChange"):
        decode_change(CODEC, decision)
    with pytest.raises(BadInput):
        decode_update(CODEC, b"not avro")


def member_forwards() -> list[tuple[str, dict[str, Any]]]:
    """Real member updates: a child's events telling the tenant's partition."""
    processor = Processor.start()
    household = {"tenant": "parent"}
    reactions = processor.person_events(
        person_event("child", "c1", "case_opened", day(0), household=household),
        person_event("child", "c2", "assessment_completed", day(1), household=household),
    )
    return [(f.person_id, f.update) for r in reactions for f in r.forwards]


def test_every_kind_of_alert_view_update_round_trips() -> None:
    [(_, member), _] = member_forwards()
    assert member["kind"] == "member" and member["events"]
    updates = [
        member,
        {**member, "reply": False, "events": [], "watermark": "2025-01-01T00:00:00+00:00"},
        {
            "kind": "absorb",
            "from": "P1",
            "household": {"P3": "child"},
            "events": member["events"],
            "members": {"P3": {"events": member["events"], "household": {"P1": "parent"}}},
            "watermark": "2025-01-01T00:00:00+00:00",
        },
        {"kind": "absorb", "from": "P1", "household": {}, "events": [], "members": {}},
        {**member, "events": [{**e, "initial_load": True} for e in member["events"][:1]]},
        {"kind": "closed", "alert_id": "a-1"},
        {"kind": "check"},
    ]
    for update in updates:
        decoded = decode_update(CODEC, encode_update(CODEC, update))
        assert json.dumps(decoded) == json.dumps(update)


def test_an_alert_updates_frame_applies_each_update_in_order_and_writes_once() -> None:
    forwards = member_forwards()
    assert [person for person, _update in forwards] == ["tenant", "tenant"]
    frame = encode_frame(
        CODEC,
        [FramedEvent(b"tenant", encode_update(CODEC, update), {}) for _person, update in forwards]
        + [FramedEvent(b"tenant", b"not avro", {})],  # skipped, the rest goes on
    )
    processor = Processor.start()
    reactions = processor._run(processor.frames.updates, frame)

    assert processor.writes["views"] == {"tenant": 1}
    known = processor.views["tenant"]["members"]["child"]
    assert [e["event_id"] for e in known["events"]] == ["c1", "c2"]
    # The first asked for a reply: the tenant's partition answers the child's.
    answers = [f for r in reactions for f in r.forwards]
    assert [(f.person_id, f.update["kind"]) for f in answers] == [("child", "member")]


@pytest.mark.parametrize(
    "name",
    [
        IDENTITY_DECISION_SCHEMA,
        IDENTITY_CHANGE_SCHEMA,
        IDENTITY_COMMAND_SCHEMA,
        ALERT_VIEW_UPDATE_SCHEMA,
    ],
)
def test_what_the_released_v1_wrote_still_decodes(name: str) -> None:
    assert name in TOPIC_SCHEMAS  # under the compatibility gate
    released = json.loads((SCHEMAS / "released" / f"{name}.v1.avsc").read_text())
    parsed = fastavro.parse_schema(released)
    messages = {
        IDENTITY_DECISION_SCHEMA: (
            {"record_id": RECORD, "person_id": "P1", "fingerprint": "f" * 64},
            decode_decision,
        ),
        IDENTITY_CHANGE_SCHEMA: (
            {
                "person_id": "P1",
                "change": "link",
                "link": {
                    "keys": ["record_id", "basis", "outcome", "reason"],
                    "record_id": RECORD,
                    "basis": "deterministic",
                    "outcome": "match",
                    "reason": "same national id",
                },
            },
            decode_change,
        ),
        IDENTITY_COMMAND_SCHEMA: (
            {"command": "erase", "record_id": RECORD, "reason": "x", "coordinator": "op"},
            decode_command,
        ),
        ALERT_VIEW_UPDATE_SCHEMA: ({"kind": "closed", "alert_id": "a-1"}, decode_update),
    }
    record, decode = messages[name]
    out = io.BytesIO()
    out.write(MAGIC + schema_fingerprint(parsed))
    fastavro.schemaless_writer(out, parsed, record)
    decoded = decode(CODEC, out.getvalue())
    if name == IDENTITY_CHANGE_SCHEMA:
        assert decoded["link"] == {
            "record_id": RECORD,
            "basis": "deterministic",
            "outcome": "match",
            "reason": "same national id",
        }
    else:
        assert decoded == {key: value for key, value in record.items() if value is not None}
