"""The alert rule engine: the shipped rules R1-R6 fire on their situations and only on those.

Pure and fast: timelines are built here the way the timeline processor keeps them, and a small
stand-in for the alert processor feeds the engine event by event with an event-time watermark
(the highest occurred_at seen so far), household links in both directions, prior alerts for
dedup and the deadlines the engine asks it to keep.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from backbone.contracts import EVENT_TYPES
from cli.main import main
from streams.alerting import (
    SHIPPED_RULES,
    Alert,
    Deadline,
    PersonView,
    PriorAlert,
    RuleEngine,
    RuleFileError,
    load_rules,
    parse_rules,
)

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
TENANCY = "a" * 64
CASE = "c" * 64
AGENCY_OF = {etype: agency.value for agency, types in EVENT_TYPES.items() for etype in types}
ENGINE = RuleEngine(load_rules())


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def event(event_id: str, event_type: str, when: datetime, **details: Any) -> dict[str, Any]:
    """A timeline entry as streams/timeline/processor.py writes it."""
    return {
        "event_id": event_id,
        "event_type": event_type,
        "agency": AGENCY_OF[event_type],
        "occurred_at": when.isoformat(timespec="microseconds"),
        "recorded_at": when.isoformat(timespec="microseconds"),
        "summary": event_type,
        "details": details,
    }


def emergency(event_id: str, when: datetime, patient_class: str = "E") -> dict[str, Any]:
    return event(event_id, "attendance", when, encounter={"patient_class": patient_class})


def notice(event_id: str, when: datetime, kind: str = "notice_to_quit") -> dict[str, Any]:
    etype = "eviction_warrant_issued" if kind == "eviction_warrant" else "notice_served"
    return event(event_id, etype, when, tenancy={"tenancy_ref": TENANCY, "notice": kind})


def homelessness(event_id: str, etype: str, when: datetime) -> dict[str, Any]:
    return event(event_id, etype, when, tenancy={"tenancy_ref": TENANCY, "notice": "none"})


def case(event_id: str, etype: str, when: datetime, case_id: str = CASE) -> dict[str, Any]:
    return event(event_id, etype, when, case_id=case_id, details={})


def arrears(event_id: str, when: datetime, weeks: float) -> dict[str, Any]:
    return event(
        event_id,
        "arrears_threshold_crossed",
        when,
        tenancy={"tenancy_ref": TENANCY, "arrears_weeks": weeks},
        arrears_threshold_weeks=4,
    )


class AlertProcessor:
    """Stands in for the Faust alert processor: timelines, watermark, prior alerts, deadlines."""

    def __init__(self, engine: RuleEngine = ENGINE) -> None:
        self.engine = engine
        self.timelines: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"household": {}, "events": []}
        )
        self.watermark = datetime.min.replace(tzinfo=UTC)
        self.prior: dict[str, PriorAlert] = {}
        self.raised: list[Alert] = []
        self.absorbed: list[str] = []
        self.deadlines: dict[tuple[str, str, str], Deadline] = {}

    def lists(self, person: str, member: str, relationship: str) -> None:
        """`person`'s social care record lists `member` in the household as `relationship`."""
        self.timelines[person]["household"][member] = relationship

    def arrive(self, person: str, entry: dict[str, Any]) -> None:
        events = self.timelines[person]["events"]
        order = [(e["occurred_at"], e["event_id"]) for e in events]
        events.insert(bisect.bisect(order, (entry["occurred_at"], entry["event_id"])), entry)
        self.watermark = max(self.watermark, datetime.fromisoformat(entry["occurred_at"]))
        for subject in (person, *self.members(person)):
            self.take(self.engine.on_event(self.view(subject), entry, self.watermark, self.priors))

    def advance(self, watermark: datetime) -> None:
        """Event time moves on (a later event elsewhere, or the processor's timer)."""
        self.watermark = max(self.watermark, watermark)
        for key, deadline in list(self.deadlines.items()):
            del self.deadlines[key]
            view = self.view(deadline.person_id)
            self.take(self.engine.on_deadline(view, deadline, self.watermark, self.priors))

    def members(self, person: str) -> set[str]:
        listed = set(self.timelines[person]["household"])
        listing = {p for p, t in self.timelines.items() if person in t["household"]}
        return (listed | listing) - {person}

    def view(self, person: str) -> PersonView:
        household = {m: self.timelines[m] for m in self.members(person)}
        return PersonView(person, self.timelines[person], household)

    @property
    def priors(self) -> list[PriorAlert]:
        return list(self.prior.values())

    def take(self, outcome: Any) -> None:
        for alert in outcome.raised:
            self.raised.append(alert)
            self.prior[alert.alert_id] = alert.as_prior()
        for absorption in outcome.absorbed:
            self.absorbed.append(absorption.alert_id)
            earlier = self.prior[absorption.alert_id]
            added = {e.event_id for e in absorption.added}
            self.prior[absorption.alert_id] = PriorAlert(
                earlier.alert_id,
                earlier.rule_id,
                earlier.person_id,
                earlier.anchor_at,
                earlier.event_ids | added,
            )
        for deadline in outcome.deadlines:
            key = (deadline.rule_id, deadline.person_id, deadline.anchor_event_id)
            self.deadlines[key] = deadline

    def fired(self, rule_id: str) -> list[Alert]:
        return [alert for alert in self.raised if alert.rule_id == rule_id]


def explained(alert: Alert) -> list[str]:
    return [e.event_id for e in alert.explanation.events]


# The shipped rule file ------------------------------------------------------------------------
def test_the_shipped_file_holds_the_six_rules_of_the_spec() -> None:
    rules = load_rules(SHIPPED_RULES)
    assert [(r.id, r.name, r.severity.value) for r in rules.rules] == [
        ("R1", "discharge-into-homelessness", "high"),
        ("R2", "family-eviction-risk", "urgent"),
        ("R3", "sanction-arrears-spiral", "high"),
        ("R4", "frequent-emergency-attender", "warning"),
        ("R5", "no-follow-up-after-discharge", "high"),
        ("R6", "safeguarding-cross-signal", "urgent"),
    ]
    assert all(rule.allowed_lateness == timedelta(days=7) for rule in rules.rules)


# R1 discharge into homelessness ---------------------------------------------------------------
def test_r1_fires_for_a_discharge_while_a_homelessness_application_is_open() -> None:
    p = AlertProcessor()
    p.arrive("P1", homelessness("h1", "homelessness_application_opened", day(0)))
    p.arrive("P1", homelessness("h2", "homelessness_application_accepted", day(2)))
    p.arrive("P1", event("d1", "discharge", day(5)))
    [alert] = p.fired("R1")
    assert (alert.person_id, alert.severity, alert.rule_version) == ("P1", "high", 1)
    assert alert.teams == ("hospital-discharge-team", "housing-options")
    assert explained(alert) == ["h1", "d1"]
    assert "2026-11-06" in alert.text


def test_r1_fires_when_the_housing_notice_arrives_a_day_after_the_discharge() -> None:
    p = AlertProcessor()
    p.arrive("P1", event("d1", "discharge", day(40)))
    assert p.fired("R1") == []
    # Housing data comes a day late by nature: the notice of two days before arrives now.
    p.arrive("P1", notice("n1", day(38), "notice_to_quit"))
    [alert] = p.fired("R1")
    assert [(e.event_id, e.agency) for e in alert.explanation.events] == [
        ("n1", "housing"),
        ("d1", "health"),
    ]


def test_r1_near_misses_do_not_fire() -> None:
    p = AlertProcessor()
    # Wrong window: the notice to quit came 120 days before the discharge.
    p.arrive("P1", notice("n1", day(0)))
    p.arrive("P1", event("d1", "discharge", day(120)))
    # Case already closed: the homelessness application closed before the discharge.
    p.arrive("P2", homelessness("h1", "homelessness_application_opened", day(100)))
    p.arrive("P2", homelessness("h2", "homelessness_application_closed", day(110)))
    p.arrive("P2", event("d2", "discharge", day(115)))
    # Different person: the application is somebody else's.
    p.arrive("P3", homelessness("h3", "homelessness_application_opened", day(118)))
    p.arrive("P4", event("d4", "discharge", day(119)))
    # A notice seeking possession is not a notice to quit.
    p.arrive("P5", notice("n5", day(118), "notice_seeking_possession"))
    p.arrive("P5", event("d5", "discharge", day(120)))
    assert p.fired("R1") == []


# R2 family eviction risk ----------------------------------------------------------------------
def test_r2_fires_across_the_household_when_the_childs_case_arrives_after_the_notice() -> None:
    p = AlertProcessor()
    p.lists("CHILD", "MUM", "parent")
    p.arrive("MUM", notice("n1", day(10), "notice_seeking_possession"))
    assert p.fired("R2") == []
    # The child's case was opened before the notice, but its event arrives afterwards.
    p.arrive("CHILD", case("c1", "case_opened", day(5)))
    [alert] = p.fired("R2")
    assert (alert.person_id, alert.household_person_ids, alert.severity) == (
        "MUM",
        ("CHILD",),
        "urgent",
    )
    assert [(e.event_id, e.person_id) for e in alert.explanation.events] == [
        ("c1", "CHILD"),
        ("n1", "MUM"),
    ]
    assert "CHILD" in alert.text


def test_r2_fires_for_a_child_protection_plan_and_an_eviction_warrant() -> None:
    p = AlertProcessor()
    p.lists("CHILD", "DAD", "carer")
    p.arrive("CHILD", case("c1", "child_protection_plan_started", day(1)))
    p.arrive("DAD", notice("w1", day(3), "eviction_warrant"))
    assert [a.person_id for a in p.fired("R2")] == ["DAD"]


def test_r2_reads_a_household_only_the_tenants_own_record_lists_from_the_childs_side() -> None:
    p = AlertProcessor()
    # Only the tenants' records name the children: each child reads them as parent or carer.
    p.lists("MUM", "CHILD", "child")
    p.lists("GRAN", "GRANDCHILD", "cared_for")
    p.lists("BROTHER", "SISTER", "sibling")
    for child, tenant, n in (
        ("CHILD", "MUM", 1),
        ("GRANDCHILD", "GRAN", 2),
        ("SISTER", "BROTHER", 3),
    ):
        p.arrive(child, case(f"c{n}", "case_opened", day(1), case_id=f"{n}" * 64))
        p.arrive(tenant, notice(f"n{n}", day(3)))
    # A sibling is neither parent nor carer: R2 is not for them.
    assert sorted(a.person_id for a in p.fired("R2")) == ["GRAN", "MUM"]


def test_r2_near_misses_do_not_fire() -> None:
    p = AlertProcessor()
    # Case already closed before the notice.
    p.lists("CHILD1", "MUM1", "parent")
    p.arrive("CHILD1", case("c1", "case_opened", day(1)))
    p.arrive("CHILD1", case("c2", "case_closed", day(4)))
    p.arrive("MUM1", notice("n1", day(6)))
    # Plan ended before the warrant.
    p.lists("CHILD2", "MUM2", "parent")
    p.arrive("CHILD2", case("c3", "child_protection_plan_started", day(1), case_id="d" * 64))
    p.arrive("CHILD2", case("c4", "child_protection_plan_ended", day(3), case_id="d" * 64))
    p.arrive("MUM2", notice("n2", day(6), "eviction_warrant"))
    # Different household: the open case is of a child who does not live with this tenant.
    p.lists("CHILD3", "SOMEONE", "parent")
    p.arrive("CHILD3", case("c5", "case_opened", day(1), case_id="e" * 64))
    p.arrive("MUM3", notice("n3", day(6)))
    # Wrong window: the case was opened only after the notice was served.
    p.lists("CHILD4", "MUM4", "parent")
    p.arrive("MUM4", notice("n4", day(6)))
    p.arrive("CHILD4", case("c6", "case_opened", day(7), case_id="f" * 64))
    assert p.fired("R2") == []


# R3 sanction arrears spiral -------------------------------------------------------------------
def test_r3_fires_for_arrears_of_four_weeks_within_sixty_days_after_a_sanction() -> None:
    p = AlertProcessor()
    p.arrive("P1", event("s1", "sanction_imposed", day(0)))
    p.arrive("P1", arrears("a1", day(45), 4.5))
    [alert] = p.fired("R3")
    assert explained(alert) == ["s1", "a1"]
    assert alert.teams == ("work-coaches", "housing-officers")


def test_r3_fires_when_the_sanction_event_arrives_after_the_arrears() -> None:
    p = AlertProcessor()
    p.arrive("P1", arrears("a1", day(10), 4.0))
    p.arrive("P1", event("s1", "sanction_imposed", day(5)))
    assert [explained(a) for a in p.fired("R3")] == [["s1", "a1"]]


def test_r3_near_misses_do_not_fire() -> None:
    p = AlertProcessor()
    # Wrong window: arrears 70 days after the sanction.
    p.arrive("P1", event("s1", "sanction_imposed", day(0)))
    p.arrive("P1", arrears("a1", day(70), 5.0))
    # Wrong order: the arrears came before the sanction.
    p.arrive("P2", arrears("a2", day(65), 4.0))
    p.arrive("P2", event("s2", "sanction_imposed", day(68)))
    # Different person.
    p.arrive("P3", event("s3", "sanction_imposed", day(66)))
    p.arrive("P4", arrears("a4", day(69), 4.0))
    # Arrears under four weeks.
    p.arrive("P5", event("s5", "sanction_imposed", day(66)))
    p.arrive("P5", arrears("a5", day(70), 3.5))
    assert p.fired("R3") == []


# R4 frequent emergency attender ---------------------------------------------------------------
def test_r4_fires_for_three_emergency_attendances_in_any_arrival_order() -> None:
    p = AlertProcessor()
    p.arrive("P1", event("j1", "jobseeker_registered", day(0)))
    # Arrival order 3rd, 1st, 2nd (within the 7 days' lateness): the last to arrive completes
    # the pattern around the latest attendance.
    p.arrive("P1", emergency("e3", day(20)))
    p.arrive("P1", emergency("e1", day(14)))
    assert p.fired("R4") == []
    p.arrive("P1", event("e2", "admission", day(17), encounter={"patient_class": "E"}))
    [alert] = p.fired("R4")
    assert explained(alert) == ["j1", "e1", "e2", "e3"]
    assert (alert.severity, alert.teams) == ("warning", ("social-prescribing",))


def test_r4_near_misses_do_not_fire() -> None:
    p = AlertProcessor()
    # Wrong window: spread over 40 days.
    p.arrive("P1", event("j1", "jobseeker_registered", day(0)))
    for n, when in enumerate((1, 21, 41)):
        p.arrive("P1", emergency(f"a{n}", day(when)))
    # Not emergencies: patient class I.
    p.arrive("P2", case("s2", "referral_received", day(30)))
    for n in range(3):
        p.arrive("P2", emergency(f"b{n}", day(31 + n), patient_class="I"))
    # Not known to the jobcentre or social care (known to housing only).
    p.arrive("P3", event("t3", "tenancy_started", day(30)))
    for n in range(3):
        p.arrive("P3", emergency(f"c{n}", day(31 + n)))
    # Different person: the jobcentre knows somebody else.
    p.arrive("P4", event("j4", "jobseeker_registered", day(30)))
    for n in range(3):
        p.arrive("P5", emergency(f"d{n}", day(31 + n)))
    assert p.fired("R4") == []


# R5 no follow-up after discharge --------------------------------------------------------------
def test_r5_fires_only_once_the_watermark_passes_seven_days_without_a_visit() -> None:
    p = AlertProcessor()
    p.arrive("P1", case("o1", "case_opened", day(0)))
    p.arrive("P1", event("d1", "discharge", day(10)))
    assert p.fired("R5") == []
    assert [d.due_at for d in p.deadlines.values()] == [day(17)]
    p.advance(day(16.9))
    assert p.fired("R5") == []
    assert len(p.deadlines) == 1  # still pending
    p.advance(day(17))
    [alert] = p.fired("R5")
    assert explained(alert) == ["o1", "d1"]
    assert alert.matched_at == day(17)
    assert p.deadlines == {}


def test_r5_fires_at_once_for_a_late_discharge_whose_deadline_has_passed() -> None:
    p = AlertProcessor()
    p.arrive("P1", case("o1", "care_package_started", day(0)))
    p.arrive("P2", event("x", "jobseeker_registered", day(20)))  # event time is at day 20
    p.arrive("P1", event("d1", "discharge", day(13)))  # 7 days late: still within lateness
    assert [a.person_id for a in p.fired("R5")] == ["P1"]


def test_r5_near_misses_do_not_fire() -> None:
    p = AlertProcessor()
    # A social care assessment within the 7 days (arriving after the discharge).
    p.arrive("P1", case("o1", "case_opened", day(0)))
    p.arrive("P1", event("d1", "discharge", day(10)))
    p.arrive("P1", case("v1", "assessment_completed", day(14)))
    # Case already closed before the discharge.
    p.arrive("P2", case("o2", "case_opened", day(0)))
    p.arrive("P2", case("k2", "case_closed", day(5)))
    p.arrive("P2", event("d2", "discharge", day(10)))
    # Different person: the open case is somebody else's.
    p.arrive("P3", case("o3", "case_opened", day(0)))
    p.arrive("P4", event("d4", "discharge", day(10)))
    p.advance(day(30))
    assert p.fired("R5") == []


# R6 safeguarding cross signal -----------------------------------------------------------------
@pytest.mark.parametrize("concern_first", [True, False])
def test_r6_fires_for_a_concern_and_an_emergency_attendance_in_either_order(
    concern_first: bool,
) -> None:
    p = AlertProcessor()
    concern = case("s1", "safeguarding_concern", day(5))
    attendance = emergency("e1", day(15) if concern_first else day(1))
    for entry in (concern, attendance) if concern_first else (attendance, concern):
        p.arrive("P1", entry)
    [alert] = p.fired("R6")
    assert sorted(explained(alert)) == ["e1", "s1"]
    assert {e.agency for e in alert.explanation.events} == {"social_care", "health"}


def test_r6_near_misses_do_not_fire() -> None:
    p = AlertProcessor()
    # Wrong window: 20 days apart.
    p.arrive("P1", case("s1", "safeguarding_concern", day(0)))
    p.arrive("P1", emergency("e1", day(20)))
    # Different person.
    p.arrive("P2", case("s2", "safeguarding_concern", day(20)))
    p.arrive("P3", emergency("e3", day(21)))
    # An outpatient attendance is not an emergency.
    p.arrive("P4", case("s4", "safeguarding_concern", day(20)))
    p.arrive("P4", emergency("e4", day(21), patient_class="O"))
    assert p.fired("R6") == []


# Event time, lateness, dedup ------------------------------------------------------------------
def test_an_event_later_than_the_allowed_lateness_does_not_complete_a_pattern() -> None:
    p = AlertProcessor()
    p.arrive("P1", case("s1", "safeguarding_concern", day(20)))
    p.arrive("P2", event("x", "jobseeker_registered", day(30)))  # watermark: day 30
    late = emergency("e1", day(22))  # 8 days behind the watermark
    p.timelines["P1"]["events"].append(late)
    outcome = ENGINE.on_event(p.view("P1"), late, p.watermark)
    assert outcome.raised == []
    assert "R6" in outcome.too_late_for
    # The same event within the lateness (watermark day 28, 6 days behind) completes it.
    in_time = ENGINE.on_event(p.view("P1"), late, day(28))
    assert [a.rule_id for a in in_time.raised] == ["R6"]


def test_dedup_one_alert_per_rule_and_person_within_the_period() -> None:
    p = AlertProcessor()
    p.arrive("P1", case("s1", "safeguarding_concern", day(0)))
    p.arrive("P1", emergency("e1", day(2)))
    p.arrive("P1", case("s2", "safeguarding_concern", day(5)))  # absorbed into the open alert
    [alert] = p.fired("R6")
    assert p.absorbed == [alert.alert_id]
    assert p.prior[alert.alert_id].event_ids == {"s1", "e1", "s2"}
    p.arrive("P1", emergency("e1", day(2)))  # the same event again changes nothing
    assert len(p.absorbed) == 1
    # Past the 14 day period a new match is a new alert.
    p.arrive("P1", case("s3", "safeguarding_concern", day(30)))
    p.arrive("P1", emergency("e3", day(31)))
    assert [explained(a) for a in p.fired("R6")] == [["s1", "e1"], ["s3", "e3"]]


def test_a_resolved_alert_suppresses_but_does_not_absorb_within_the_period() -> None:
    p = AlertProcessor()
    p.arrive("P1", case("s1", "safeguarding_concern", day(0)))
    p.arrive("P1", emergency("e1", day(2)))
    [alert] = p.fired("R6")
    p.prior[alert.alert_id] = PriorAlert(
        alert.alert_id, "R6", "P1", alert.anchor_at, frozenset({"s1", "e1"}), is_open=False
    )
    p.arrive("P1", case("s2", "safeguarding_concern", day(6)))
    assert (len(p.fired("R6")), p.absorbed) == (1, [])


def test_evaluating_the_same_situation_again_gives_the_same_alert_id() -> None:
    first, second = AlertProcessor(), AlertProcessor()
    for p in (first, second):
        p.arrive("P1", case("s1", "safeguarding_concern", day(0)))
        p.arrive("P1", emergency("e1", day(2)))
    assert first.raised[0].alert_id == second.raised[0].alert_id
    assert first.raised[0].as_dict()["explanation"]["rule_version"] == 1


# Initial loads -------------------------------------------------------------------------------
def initial(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry of an event a connector found at go-live (its initial load)."""
    return {**entry, "initial_load": True}


def test_the_state_found_at_go_live_anchors_no_alert_whatever_the_arrival_order() -> None:
    p = AlertProcessor()
    p.arrive("P1", initial(event("s1", "sanction_imposed", day(0))))
    p.arrive("P1", initial(arrears("a1", day(45), 5.0)))
    p.arrive("P2", initial(arrears("a2", day(45), 5.0)))
    p.arrive("P2", initial(event("s2", "sanction_imposed", day(0))))
    # A live event in the window of an anchor found at go-live does not raise it either.
    p.arrive("P3", initial(arrears("a3", day(45), 5.0)))
    p.arrive("P3", event("s3", "sanction_imposed", day(40)))
    assert p.raised == []


def test_the_state_found_at_go_live_still_completes_a_later_anchor() -> None:
    p = AlertProcessor()
    p.arrive("P1", initial(event("s1", "sanction_imposed", day(0))))
    p.arrive("P1", initial(arrears("a1", day(45), 5.0)))
    p.arrive("P1", arrears("a2", day(46), 8.0))  # the next night's export
    # An application open at go-live, then a discharge.
    p.arrive("P2", initial(homelessness("h1", "homelessness_application_opened", day(50))))
    p.arrive("P2", event("d1", "discharge", day(52)))
    # A case open at go-live, then a discharge with no follow-up.
    p.arrive("P3", initial(case("c1", "case_opened", day(50))))
    p.arrive("P3", event("d3", "discharge", day(52)))
    p.advance(day(60))

    assert [explained(a) for a in p.fired("R3")] == [["s1", "a2"]]
    assert [explained(a) for a in p.fired("R1")] == [["h1", "d1"]]
    assert [explained(a) for a in p.fired("R5")] == [["c1", "d3"]]


OPTED_IN = """
rules:
  - id: R3
    name: sanction-arrears-spiral
    version: 2
    when:
      types: [arrears_threshold_crossed]
      where: {tenancy.arrears_weeks: {at_least: 4}}
    conditions:
      - exists: [sanction_imposed]
        within: {before: 60d}
    severity: high
    notify: [work-coaches]
    dedup: 60d
    fire_on_initial_load: FIRE
    text: arrears after a sanction
"""


def test_a_rule_can_ask_to_fire_on_the_state_found_at_go_live(tmp_path: Path) -> None:
    rules = parse_rules(OPTED_IN.replace("FIRE", "true"))
    p = AlertProcessor(RuleEngine(rules))
    p.arrive("P1", initial(event("s1", "sanction_imposed", day(0))))
    p.arrive("P1", initial(arrears("a1", day(45), 5.0)))
    assert [explained(a) for a in p.fired("R3")] == [["s1", "a1"]]

    opted_in = tmp_path / "rules.yaml"
    opted_in.write_text(OPTED_IN.replace("FIRE", "true"))
    shown = CliRunner().invoke(main, ["rules", "check", str(opted_in)]).output
    when = "when arrears_threshold_crossed where tenancy.arrears_weeks>=4 (initial loads too)"
    assert f"  {when}\n" in shown
    shipped = CliRunner().invoke(main, ["rules", "check", str(SHIPPED_RULES)]).output
    assert "initial loads" not in shipped
    with pytest.raises(RuleFileError) as caught:
        parse_rules(OPTED_IN.replace("FIRE", "sometimes"))
    assert caught.value.problems == [
        "R3 fire_on_initial_load: Input should be a valid boolean, unable to interpret input"
    ]


# Rules are data ------------------------------------------------------------------------------
def test_a_new_rule_of_an_existing_shape_needs_only_yaml() -> None:
    rules = parse_rules(
        """
        rules:
          - id: R7
            name: missed-appointment-after-sanction
            version: 2
            when: [appointment_missed]
            conditions:
              - exists: [sanction_imposed]
                within: {before: 30d}
            severity: info
            notify: [work-coaches]
            dedup: 7d
            allowed_lateness: 2d
            text: "{rule_name} for {person_id} ({event_count} events)"
        """
    )
    p = AlertProcessor(RuleEngine(rules))
    p.arrive("P1", event("s1", "sanction_imposed", day(0)))
    p.arrive("P1", event("m1", "appointment_missed", day(3)))
    [alert] = p.fired("R7")
    assert (alert.rule_version, alert.text) == (
        2,
        "missed-appointment-after-sanction for P1 (2 events)",
    )


BAD_RULE = """
rules:
  - id: R1
    name: fine
    version: 1
    when: [discharge]
    severity: high
    notify: [team]
    dedup: 1d
    text: ok
  - id: R3
    name: broken
    version: 1
    when: [arrears_threshold_crossed]
    conditions:
      - exists: [sanction_imposed]
        within: {before: 60 days}
      - exists: [sanction_imposd]
      - at_least: 3
      - open: {opened_by: [case_opened], closed_by: [case_closed]}
        within: {before: 1d}
    severity: loud
    notify: [team]
    dedup: 1d
    text: "{who}"
  - name: no-id
"""


def test_validation_errors_name_the_rule_and_the_field() -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(BAD_RULE, "bad.yaml")
    problems = caught.value.problems
    assert problems[0].startswith("R3 conditions[0].within.before: '60 days' is not a duration")
    assert problems[1].startswith("R3 conditions[1].exists.types[0]: 'sanction_imposd'")
    assert problems[2] == "R3 conditions[2]: at_least and of go together"
    assert problems[3].startswith("R3 conditions[3]: within: not allowed with open")
    assert problems[4].startswith("R3 severity: ")
    assert problems[5].startswith("R3 text: unknown placeholder {who}")
    assert any(p.startswith("rules[2] id: Field required") for p in problems)
    assert not any(p.startswith("R1") for p in problems)
    assert str(caught.value).startswith("bad.yaml: R3 conditions[0].within.before")


def test_duplicate_ids_and_unknown_keys_are_errors() -> None:
    rule = "{id: R1, name: a, version: 1, when: [discharge], severity: info, notify: [t], "
    text = f"rules: [{rule}dedup: 1d, text: a}}, {rule}dedup: 1d, text: a, colour: red}}]"
    with pytest.raises(RuleFileError) as caught:
        parse_rules(text + "\nrulez: []")
    assert caught.value.problems == [
        "R1 colour: Extra inputs are not permitted",
        "rulez: unknown top-level key",
    ]
    with pytest.raises(RuleFileError) as caught:
        parse_rules(f"rules: [{rule}dedup: 1d, text: a}}, {rule}dedup: 2d, text: b}}]")
    assert caught.value.problems == ["R1 id: used by an earlier rule too"]


def test_backbone_rules_check(tmp_path: Path) -> None:
    runner = CliRunner()
    shipped = runner.invoke(main, ["rules", "check", str(SHIPPED_RULES)])
    assert shipped.exit_code == 0, shipped.output
    assert "R4 v1 frequent-emergency-attender: warning -> social-prescribing" in shipped.output
    assert shipped.output.rstrip().endswith("6 rules ok")
    bad = tmp_path / "rules.yaml"
    bad.write_text(BAD_RULE)
    failed = runner.invoke(main, ["rules", "check", str(bad)])
    assert failed.exit_code == 1
    assert f"{bad}: R3 conditions[0].within.before:" in failed.output
