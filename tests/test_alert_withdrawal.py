"""Alerts that a late event disproves are withdrawn; `decide: after_lateness` waits instead.

On the alert tracker with in-memory stores (the code the worker and `rules replay` run), and
on the lifecycle's pure state. The worker's end-to-end case is in tests/test_alert_processor.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import ALERT_SCHEMA
from backbone.settings import REPO_ROOT
from streams.alerting import load_rules, parse_rules
from streams.alerting.alert_events import raised_event
from streams.alerting.in_memory import InMemoryAlerting
from streams.alerting.lifecycle import Change, Status, apply_change, detail, refusal
from streams.alerting.lifecycle_agent import step_of
from tests.test_alert_rules import case, day, event, homelessness, notice
from tests.test_alert_tracking import Clock, classified

RULES = load_rules()
CODEC = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
LATENESS = timedelta(hours=1)


def alerting(rules_yaml: str | None = None, clock: Clock | None = None) -> InMemoryAlerting:
    rules = RULES if rules_yaml is None else parse_rules(rules_yaml)
    memory = InMemoryAlerting(rules, LATENESS)
    if clock is not None:
        memory.tracker.clock = clock
    return memory


def feed(memory: InMemoryAlerting, person: str, *entries: dict[str, Any], **household: str) -> None:
    for entry in entries:
        memory.feed(person, classified(entry), dict(household))


def states(memory: InMemoryAlerting) -> list[tuple[str, str, str]]:
    """(rule, person, open | withdrawn) of every alert raised, in order."""
    return [
        (a.rule_id, a.person_id, "withdrawn" if a.alert_id in memory.result.withdrawn else "open")
        for a in memory.result.raised
    ]


def disproved_by(memory: InMemoryAlerting) -> list[str]:
    return [w.disproved_by.event_id for w in memory.result.withdrawn.values()]


def test_r1_is_withdrawn_when_the_homelessness_closure_arrives_after_the_discharge() -> None:
    # The week: application open on day 5, closed on day 8 (housing's nightly export
    # comes late); admitted on day 6, discharged on day 10.
    memory = alerting()
    feed(memory, "p", homelessness("h1", "homelessness_application_opened", day(5)))
    feed(memory, "p", event("a1", "admission", day(6)), event("d1", "discharge", day(10)))
    assert states(memory) == [("R1", "p", "open")]

    feed(memory, "p", homelessness("h2", "homelessness_application_closed", day(8)))

    assert states(memory) == [("R1", "p", "withdrawn")]
    assert disproved_by(memory) == ["h2"]
    prior = memory.tracker.priors["p"][0]
    assert (prior["is_open"], prior["withdrawn"]) == (False, True)


def test_a_closure_after_the_discharge_does_not_withdraw_r1() -> None:
    memory = alerting()
    feed(memory, "p", homelessness("h1", "homelessness_application_opened", day(5)))
    feed(memory, "p", event("d1", "discharge", day(10)))
    feed(memory, "p", homelessness("h2", "homelessness_application_closed", day(11)))

    assert states(memory) == [("R1", "p", "open")]


def test_r1_stays_when_another_reason_still_holds_after_the_closure() -> None:
    # The application closed, but a notice to quit came in the 90 days before the discharge.
    memory = alerting()
    feed(memory, "p", homelessness("h1", "homelessness_application_opened", day(5)))
    feed(memory, "p", notice("n1", day(6)), event("d1", "discharge", day(10)))
    feed(memory, "p", homelessness("h2", "homelessness_application_closed", day(8)))

    assert states(memory) == [("R1", "p", "open")]


def test_r5_is_withdrawn_when_a_follow_up_inside_its_seven_days_arrives_after_it_fired() -> None:
    memory = alerting()
    feed(memory, "p", case("c1", "case_opened", day(0)), event("d1", "discharge", day(1)))
    feed(memory, "p", event("x1", "admission", day(9.5)))  # event time passes the 7 days
    assert states(memory) == [("R5", "p", "open")]

    feed(memory, "p", case("v1", "assessment_completed", day(9)))  # late, but outside the
    assert states(memory) == [("R5", "p", "open")]  # 7 days: the alert stands
    feed(memory, "p", case("v2", "assessment_completed", day(4)))

    assert states(memory) == [("R5", "p", "withdrawn")]
    assert disproved_by(memory) == ["v2"]


def test_r2_is_withdrawn_when_the_childs_case_closure_reaches_the_tenants_partition() -> None:
    memory = alerting()
    feed(memory, "child", case("c1", "case_opened", day(0)), tenant="parent")
    feed(memory, "tenant", notice("n1", day(5)))
    assert states(memory) == [("R2", "tenant", "open")]

    feed(memory, "child", case("c2", "case_closed", day(3)), tenant="parent")

    assert states(memory) == [("R2", "tenant", "withdrawn")]
    assert disproved_by(memory) == ["c2"]


def test_an_event_beyond_the_allowed_lateness_withdraws_nothing() -> None:
    memory = alerting()
    feed(memory, "p", homelessness("h1", "homelessness_application_opened", day(5)))
    feed(memory, "p", event("d1", "discharge", day(10)), event("x1", "admission", day(30)))
    # R1 allows 7 days: a closure of day 8 arriving when event time is day 30 comes too late.
    feed(memory, "p", homelessness("h2", "homelessness_application_closed", day(8)))

    assert states(memory) == [("R1", "p", "open")]


def test_after_a_withdrawal_a_new_match_in_the_dedup_period_raises_a_new_alert() -> None:
    memory = alerting()
    feed(memory, "p", homelessness("h1", "homelessness_application_opened", day(5)))
    feed(memory, "p", event("d1", "discharge", day(10)))
    feed(memory, "p", homelessness("h2", "homelessness_application_closed", day(8)))
    # Within R1's 30-day dedup, but the withdrawn alert was false: it suppresses nothing.
    feed(memory, "p", notice("n1", day(12)), event("d2", "discharge", day(14)))

    assert states(memory) == [("R1", "p", "withdrawn"), ("R1", "p", "open")]
    assert memory.result.absorbed == 0


def test_the_withdrawn_step_fits_the_contract_and_repeats_its_id() -> None:
    steps = []
    for _ in range(2):
        memory = alerting()
        feed(memory, "p", homelessness("h1", "homelessness_application_opened", day(5)))
        feed(memory, "p", event("d1", "discharge", day(10)))
        reaction = memory.tracker.on_person_event(
            "p", classified(homelessness("h2", "homelessness_application_closed", day(8))), {}
        )
        steps.append([record for _, record in reaction.alert_events])

    first, again = steps
    assert [step["change"] for step in first] == ["withdrawn"]
    assert first[0]["event_id"] == again[0]["event_id"]
    assert [e["event_id"] for e in first[0]["added_events"]] == ["h2"]
    assert "homelessness application closed" in first[0]["note"]
    decoded = CODEC.decode(CODEC.encode(ALERT_SCHEMA, first[0])).record
    assert decoded["change"] == "withdrawn"


def after_lateness_r1() -> str:
    shipped = (REPO_ROOT / "deploy" / "rules" / "rules.yaml").read_text("utf-8")
    anchor = "    version: 1\n    when: [discharge]\n"
    return shipped.replace(anchor, anchor + "    decide: after_lateness\n", 1)


def test_decide_after_lateness_fires_only_once_the_lateness_has_passed() -> None:
    clock = Clock(day(11))
    memory = alerting(after_lateness_r1(), clock)
    assert memory.tracker.engine.rules.by_id("R1").decide.value == "after_lateness"
    feed(memory, "p", homelessness("h1", "homelessness_application_opened", day(5)))
    feed(memory, "p", event("d1", "discharge", day(10)))
    assert states(memory) == []  # waits: a closure may still come within 7 days

    clock.now = day(17) + LATENESS + timedelta(minutes=1)
    memory.finish()

    assert states(memory) == [("R1", "p", "open")]


def test_decide_after_lateness_never_raises_what_a_late_event_disproves() -> None:
    clock = Clock(day(11))
    memory = alerting(after_lateness_r1(), clock)
    feed(memory, "p", homelessness("h1", "homelessness_application_opened", day(5)))
    feed(memory, "p", event("d1", "discharge", day(10)))
    feed(memory, "p", homelessness("h2", "homelessness_application_closed", day(8)))
    clock.now = day(30)
    memory.finish()

    assert states(memory) == []


def test_a_withdrawn_alert_ends_its_life_and_shows_what_disproved_it() -> None:
    memory = alerting()
    feed(memory, "p", homelessness("h1", "homelessness_application_opened", day(5)))
    feed(memory, "p", event("d1", "discharge", day(10)))
    withdrawn = memory.tracker.on_person_event(
        "p", classified(homelessness("h2", "homelessness_application_closed", day(8))), {}
    )
    raised_step = _raised_step(memory)

    state = apply_change(None, step_of(raised_step))
    assert state is not None
    state = apply_change(state, step_of(withdrawn.alert_events[0][1]))
    assert state is not None
    shown = detail(state)
    assert shown["status"] == Status.WITHDRAWN
    assert [e["event_id"] for e in shown["explanation"]["disproved_by"]] == ["h2"]
    assert shown["history"][-1]["change"] == "withdrawn"
    for change in (Change.ACKNOWLEDGED, Change.RESOLVED, Change.ESCALATED, Change.ABSORBED):
        assert refusal(state, change) is not None
    assert apply_change(state, step_of(withdrawn.alert_events[0][1])) is None  # seen before


def _raised_step(memory: InMemoryAlerting) -> dict[str, Any]:
    """The `raised` AlertEvent of the memory's one alert, as the worker would publish it."""
    alert = memory.result.raised[0]
    entries = {e["event_id"]: e for e in memory.tracker.views["p"]["events"]}
    return raised_event(alert, entries, datetime(2026, 11, 20, tzinfo=UTC))
