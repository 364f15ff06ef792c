"""AlertTracker, the alert processor's logic, on in-memory stores (as `rules replay` runs it).

Fast and pure: the household reverse index in both orders, merges, closed alerts, the timer's
wall-clock watermark, and the AlertEvents it publishes fitting the released contract. The same
code runs in the worker (tests/test_alert_processor.py, against Kafka).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import ALERT_SCHEMA
from backbone.settings import REPO_ROOT
from streams.alerting import load_rules
from streams.alerting.in_memory import InMemoryAlerting
from streams.alerting.messages import decode_update, encode_update
from streams.alerting.tracking import Reaction, compact_entry
from tests.test_alert_rules import arrears, case, day, emergency, event, notice
from tests.test_codec import social_care_record

RULES = load_rules()
CODEC = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))


def classified(entry: dict[str, Any], sensitivity: str = "personal") -> dict[str, Any]:
    """A timeline entry in the alert views' compact shape."""
    kept = {k: entry[k] for k in ("event_id", "event_type", "agency", "occurred_at", "details")}
    return {**kept, "legal_basis": "public_task", "sensitivity": sensitivity}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def alerting(clock: Clock | None = None) -> InMemoryAlerting:
    memory = InMemoryAlerting(RULES, timedelta(hours=1))
    if clock is not None:
        memory.tracker.clock = clock
    return memory


def raised(memory: InMemoryAlerting) -> list[tuple[str, str, set[str]]]:
    return [
        (a.rule_id, a.person_id, {e.event_id for e in a.explanation.events})
        for a in memory.result.raised
    ]


def test_a_household_rule_fires_whichever_partition_hears_first() -> None:
    child_first = alerting()
    child_first.feed("child", classified(case("c1", "case_opened", day(0))), {"tenant": "parent"})
    child_first.feed("tenant", classified(notice("n1", day(2))), {})
    tenant_first = alerting()
    tenant_first.feed("tenant", classified(notice("n1", day(2))), {})
    tenant_first.feed("child", classified(case("c1", "case_opened", day(0))), {"tenant": "parent"})

    for memory in (child_first, tenant_first):
        assert raised(memory) == [("R2", "tenant", {"c1", "n1"})]
        members = memory.tracker.views["tenant"]["members"]
        assert [e["event_id"] for e in members["child"]["events"]] == ["c1"]


def test_views_keep_only_the_events_a_rule_looks_at() -> None:
    memory = alerting()
    memory.feed("p", classified(event("x1", "patient_details_changed", day(0))), {})
    memory.feed("p", classified(event("x2", "discharge", day(1))), {})

    assert [e["event_id"] for e in memory.tracker.views["p"]["events"]] == ["x2"]


def test_a_merged_persons_events_complete_a_pattern_on_the_survivor() -> None:
    memory = alerting()
    memory.feed("absorbed", classified(notice("n1", day(0))), {})
    memory.carry_out(memory.tracker.on_merge("absorbed", "survivor"))
    memory.feed("survivor", classified(event("d1", "discharge", day(3))), {})
    # An event identity sent for the absorbed person before the merge follows it too.
    memory.feed("absorbed", classified(event("d2", "discharge", day(10))), {})

    assert memory.tracker.views["absorbed"] == {"merged_into": "survivor"}
    assert [(rule, person) for rule, person, _ in raised(memory)] == [("R1", "survivor")]
    assert memory.result.absorbed == 1  # d2: the same situation within R1's 30 days
    assert {e["event_id"] for e in memory.tracker.views["survivor"]["events"]} == {
        "n1",
        "d1",
        "d2",
    }


def test_views_mark_the_state_found_at_go_live_only_when_it_is() -> None:
    live = social_care_record()
    found = {**live, "envelope": {**live["envelope"], "initial_load": True}}  # type: ignore[dict-item]

    assert "initial_load" not in compact_entry(live)
    assert compact_entry(found) == {**compact_entry(live), "initial_load": True}


def test_the_state_found_at_go_live_keeps_its_mark_through_a_merge() -> None:
    memory = alerting()
    found = {**classified(arrears("a1", day(45), 5.0)), "initial_load": True}
    memory.feed("absorbed", found, {})
    memory.feed("survivor", classified(event("s1", "sanction_imposed", day(40))), {})
    [moved] = memory.tracker.on_merge("absorbed", "survivor").forwards
    # The view travels to the survivor's partition as an AlertViewUpdate.
    update = decode_update(CODEC, encode_update(CODEC, moved.update))
    memory.carry_out(memory.tracker.on_update(moved.person_id, update))
    assert raised(memory) == []  # the moved arrears were found at go-live: no anchor

    memory.feed("survivor", classified(arrears("a2", day(46), 8.0)), {})
    assert raised(memory) == [("R3", "survivor", {"s1", "a2"})]


def test_a_resolved_alert_suppresses_repeats_but_absorbs_no_more() -> None:
    memory = alerting()
    memory.feed("p", classified(event("j1", "claim_applied", day(0))), {})
    for n in (1, 2, 3):
        memory.feed("p", classified(emergency(f"a{n}", day(n))), {})
    alert_id = memory.result.raised[0].alert_id
    memory.carry_out(memory.tracker.on_update("p", {"kind": "closed", "alert_id": alert_id}))
    memory.feed("p", classified(emergency("a4", day(4))), {})

    assert [rule for rule, _, _ in raised(memory)] == ["R4"]
    assert memory.result.absorbed == 0
    assert memory.tracker.priors["p"][0]["is_open"] is False


def test_the_timer_decides_an_absence_from_the_wall_clock() -> None:
    clock = Clock(day(5))
    memory = alerting(clock)
    memory.feed("p", classified(case("c1", "case_opened", day(0))), {})
    memory.feed("p", classified(event("d1", "discharge", day(1))), {})
    assert memory.tracker.due_persons() == []
    assert memory.tracker.advance_clock() == []  # day 5 - 1 h: the 7 days are not over

    clock.now = day(8) + timedelta(hours=1)
    result = memory.finish()

    assert [(a.rule_id, a.matched_at) for a in result.raised] == [("R5", day(8))]
    assert "p" not in memory.tracker.deadlines


def test_a_due_absence_is_sent_for_a_check_once_not_with_every_later_event() -> None:
    tracker = alerting().tracker  # its checks are not delivered: the deadlines stay due
    for person, discharged in (("p", day(1)), ("r", day(3))):
        tracker.on_person_event(person, classified(case(f"c{person}", "case_opened", day(0))), {})
        tracker.on_person_event(
            person, classified(event(f"d{person}", "discharge", discharged)), {}
        )
    checks = []
    for n in (9, 11):  # p's 7 days are over, then r's
        reaction = tracker.on_person_event(
            "q", classified(event(f"x{n}", "claim_applied", day(n))), {}
        )
        checks.append([f.person_id for f in reaction.forwards if f.update == {"kind": "check"}])

    assert checks == [["p"], ["r"]]
    assert tracker.due_persons() == ["p", "r"]  # the timer's sweep still lists every due one


def test_published_steps_fit_the_alert_contract_and_repeat_their_ids() -> None:
    steps: list[dict[str, Any]] = []
    for _ in range(2):  # a replay of the same events publishes the same event ids
        memory = alerting()
        reactions: list[Reaction] = []
        memory.tracker.clock = Clock(datetime(2026, 11, 20, tzinfo=UTC))
        for entry in (
            classified(event("j1", "claim_applied", day(0))),
            *(classified(emergency(f"a{n}", day(n)), "special_category") for n in (1, 2, 3, 4)),
        ):
            reactions.append(memory.tracker.on_person_event("p", entry, {}))
        steps.append(
            {r[1]["event_id"]: r[1] for reaction in reactions for r in reaction.alert_events}
        )

    assert steps[0].keys() == steps[1].keys()
    changes = sorted(step["change"] for step in steps[0].values())
    assert changes == ["absorbed", "raised"]
    for step in steps[0].values():
        decoded = CODEC.decode(CODEC.encode(ALERT_SCHEMA, step)).record
        assert decoded["event_id"] == step["event_id"]
        assert decoded["sensitivity"] == "special_category"
