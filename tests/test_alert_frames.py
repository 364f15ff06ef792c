"""The alert processor's framed input and its pruned views, without a broker.

Frames of person events and identity changes are handed to `AlertFrames` with the tracker's
stores as `BatchedTable`s over counting dicts: each key is written at most once per frame and
nothing waits for a flush afterwards. Pruning (streams/alerting/pruning.py) keeps a long
history's view bounded and raises exactly the alerts the unpruned view raises.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import Agency, LegalBasis, Sensitivity
from backbone.errors import BadInput
from backbone.events import (
    AgencyEvent,
    Encounter,
    Envelope,
    HealthEvent,
    JobcentreEvent,
    SocialCareEvent,
    Subject,
)
from backbone.frames import FramedEvent, encode_frame
from backbone.settings import REPO_ROOT
from streams.alerting import load_rules, parse_rules
from streams.alerting.evaluation import RuleEngine
from streams.alerting.framed import AlertFrames
from streams.alerting.in_memory import InMemoryAlerting
from streams.alerting.pruning import Pruning
from streams.alerting.rules import SHIPPED_RULES, RuleSet
from streams.alerting.tracking import AlertTracker, Reaction
from streams.framing.batched_table import BatchedTable
from streams.framing.person_events import household_of
from streams.identity.messages import encode_change
from tests.test_alert_rules import AGENCY_OF, START, day, emergency, event, notice
from tests.test_alert_tracking import classified

RULES = load_rules()
CODEC = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
LATENESS = timedelta(hours=1)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


# Household header ----------------------------------------------------------------------------
def framed(headers: dict[str, bytes]) -> FramedEvent:
    return FramedEvent(b"p", b"", headers)


def test_the_household_comes_from_the_framed_events_header() -> None:
    assert household_of(framed({})) == {}
    assert household_of(framed({"household": b""})) == {}
    members = {"tenant": "parent", "sister": "sibling"}
    assert household_of(framed({"household": json.dumps(members).encode()})) == members


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"tenant"', b'{"tenant": 1}'])
def test_a_household_header_that_is_not_a_json_object_is_bad_input(raw: bytes) -> None:
    with pytest.raises(BadInput, match="household"):
        household_of(framed({"household": raw}))


# Frames, flushed once ------------------------------------------------------------------------
class Counting(dict[str, Any]):
    """A table standing in for a Faust one: counts the writes (changelog messages) per key."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: dict[str, int] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes[key] = self.writes.get(key, 0) + 1
        # A Faust table's value goes through JSON: nothing shared with the caller survives.
        super().__setitem__(key, json.loads(json.dumps(value)))

    def __delitem__(self, key: str) -> None:
        self.writes[key] = self.writes.get(key, 0) + 1
        super().__delitem__(key)


@dataclass
class Processor:
    """`AlertFrames` as the processor wires it, over counting tables."""

    tables: list[Counting]
    stores: list[BatchedTable]
    frames: AlertFrames

    @classmethod
    def start(cls) -> Processor:
        tables = [Counting(), Counting(), Counting()]
        stores = [BatchedTable(table) for table in tables]
        views, deadlines, priors = stores
        tracker = AlertTracker(
            RuleEngine(RULES),
            views=views,
            deadlines=deadlines,
            priors=priors,
            lateness=LATENESS,
            clock=lambda: NOW,
        )
        return cls(tables, stores, AlertFrames(tracker, CODEC, stores))

    def person_events(self, *events: FramedEvent) -> list[Reaction]:
        return self._run(self.frames.person_events, encode_frame(CODEC, events))

    def identity_changes(self, *changes: dict[str, Any] | bytes) -> list[Reaction]:
        values = [c if isinstance(c, bytes) else encode_change(CODEC, c) for c in changes]
        frame = encode_frame(CODEC, [FramedEvent(b"x", value, {}) for value in values])
        return self._run(self.frames.identity_changes, frame)

    def _run(self, work: Callable[[bytes, list[Reaction]], None], data: bytes) -> list[Reaction]:
        for table in self.tables:
            table.writes.clear()
        reactions: list[Reaction] = []
        work(data, reactions)
        assert [store.flush() for store in self.stores] == [0, 0, 0]  # nothing left behind
        return reactions

    @property
    def writes(self) -> dict[str, dict[str, int]]:
        names = ("views", "deadlines", "priors")
        return {name: table.writes for name, table in zip(names, self.tables, strict=True)}

    @property
    def views(self) -> Counting:
        return self.tables[0]


def subject(person: str) -> Subject:
    return Subject(record_id=f"{abs(hash(person)) % 16**8:064x}", id_type="local")


def person_event(
    person: str,
    event_id: str,
    event_type: str,
    at: datetime,
    *,
    household: dict[str, str] | None = None,
    patient_class: str = "E",
) -> FramedEvent:
    """A person-events framed event as identity writes it: Avro value, person key, household."""
    envelope = Envelope(
        event_id=event_id,
        event_type=event_type,
        agency=Agency(AGENCY_OF[event_type]),
        source_system="test",
        occurred_at=at,
        recorded_at=at,
        legal_basis=LegalBasis.PUBLIC_TASK,
        sensitivity=Sensitivity.PERSONAL,
        subject=subject(person),
    )
    record: AgencyEvent
    if envelope.agency is Agency.HEALTH:
        encounter = Encounter(patient_class=patient_class)
        record = HealthEvent(
            envelope=envelope, facility="LGI", message_control_id=event_id, encounter=encounter
        )
    elif envelope.agency is Agency.JOBCENTRE:
        record = JobcentreEvent(envelope=envelope)
    else:
        record = SocialCareEvent(envelope=envelope, case_id="c" * 64)
    headers = {"household": json.dumps(household).encode()} if household else {}
    value = CODEC.encode(record.schema_name(), record.to_avro())
    return FramedEvent(person.encode(), value, headers, "person-events", 0)


def test_a_frame_writes_each_changed_key_once_and_raises_what_single_events_raise() -> None:
    frame = [
        person_event("p", "j1", "claim_applied", day(0)),
        *(person_event("p", f"a{n}", "attendance", day(n)) for n in (1, 2, 3, 4)),
        person_event("q", "q1", "discharge", day(4)),
        person_event("q", "q2", "case_opened", day(1)),
    ]
    framed = Processor.start()
    reactions = framed.person_events(*frame)
    one_by_one = Processor.start()
    singles = [r for event in frame for r in one_by_one.person_events(event)]

    assert framed.writes == {
        "views": {"p": 1, "q": 1},
        "deadlines": {"q": 1},  # R5: was anyone seen in the 7 days after q's discharge?
        "priors": {"p": 1},  # R4 raised on a3, a4 absorbed into it
    }
    changes = [step["change"] for r in reactions for _, step in r.alert_events]
    assert changes == ["raised", "absorbed"]
    assert [r.alert_events for r in reactions] == [r.alert_events for r in singles]
    assert framed.tables == one_by_one.tables
    assert framed.views["p"]["members"] == {}


def test_what_does_not_decode_is_skipped_and_the_rest_of_the_frame_goes_on() -> None:
    processor = Processor.start()
    good = person_event("p", "d1", "discharge", day(0))
    reactions = processor.person_events(
        FramedEvent(b"p", b"not avro", {}),
        FramedEvent(None, good.value, {}),
        FramedEvent(b"p", good.value, {"household": b"{oops"}),
        good,
    )
    assert len(reactions) == 1
    assert [e["event_id"] for e in processor.views["p"]["events"]] == ["d1"]

    processor.frames.person_events(b"not a frame", [])
    assert [store.flush() for store in processor.stores] == [0, 0, 0]


def test_a_household_frame_tells_the_new_member_once() -> None:
    processor = Processor.start()
    household = {"tenant": "parent"}
    reactions = processor.person_events(
        person_event("child", "c1", "case_opened", day(0), household=household),
        person_event("child", "c2", "assessment_completed", day(1), household=household),
    )
    forwards = [f for r in reactions for f in r.forwards]
    assert [(f.person_id, f.update["reply"]) for f in forwards] == [
        ("tenant", True),
        ("tenant", False),
    ]
    assert processor.writes["views"] == {"child": 1}
    assert processor.views["child"]["household"] == household


def test_an_identity_changes_frame_applies_its_merges() -> None:
    processor = Processor.start()
    processor.person_events(
        person_event("absorbed", "c1", "case_opened", day(0)),
        person_event("absorbed", "d1", "discharge", day(1)),  # R5 waits 7 days
    )
    assert list(processor.tables[1]) == ["absorbed"]
    reactions = processor.identity_changes(
        {"person_id": "other", "change": "link"},
        b"{not json",
        {"person_id": "absorbed", "change": "merge"},  # no survivor: skipped
        {"person_id": "absorbed", "change": "merge", "into": "survivor"},
        {"person_id": "absorbed", "change": "merge", "into": "survivor"},  # again: nothing
    )
    assert processor.writes == {
        "views": {"absorbed": 1},
        "deadlines": {"absorbed": 1},
        "priors": {},
    }
    assert processor.views["absorbed"] == {"merged_into": "survivor"}
    [forward] = [f for r in reactions for f in r.forwards]
    assert (forward.person_id, forward.update["kind"]) == ("survivor", "absorb")
    assert [e["event_id"] for e in forward.update["events"]] == ["c1", "d1"]


def test_a_frame_that_fails_half_way_still_flushes_what_it_wrote() -> None:
    processor = Processor.start()
    tracker = processor.frames.tracker
    original = tracker.on_person_event
    calls: list[str] = []

    def second_fails(person_id: str, entry: dict[str, Any], household: dict[str, str]) -> Reaction:
        calls.append(person_id)
        if len(calls) == 2:
            raise RuntimeError("a bug")
        return original(person_id, entry, household)

    tracker.on_person_event = second_fails  # type: ignore[method-assign]
    reactions: list[Reaction] = []
    frame = [person_event(p, f"{p}1", "discharge", day(0)) for p in ("p", "q")]
    with pytest.raises(RuntimeError):
        processor.frames.person_events(encode_frame(CODEC, frame), reactions)

    assert len(reactions) == 1  # the processor still sends it
    assert list(processor.views) == ["p"]
    assert [store.flush() for store in processor.stores] == [0, 0, 0]


# Pruning -------------------------------------------------------------------------------------
def test_pruning_keeps_what_a_rule_can_still_read() -> None:
    pruning = Pruning.of(RULES)
    # 7 days' lateness, R6's 14 days after, R1's 90 days before.
    assert pruning.reach == timedelta(days=111)
    watermark = day(500)
    horizon = pruning.horizon(watermark)
    assert horizon == watermark - timedelta(days=111)
    # A pending absence keeps its anchor's windows: R5's anchor is 7 days before it is due.
    assert pruning.horizon(watermark, [day(300)]) == day(300) - timedelta(days=104)

    entries = [
        emergency("old-attendance", day(10)),  # windowed conditions only: gone
        event("old-claim", "claim_applied", day(11)),  # R4 reads any time before: kept
        housing("open", "homelessness_application_opened", day(12), "A"),  # still open: kept
        housing("closed", "homelessness_application_opened", day(13), "B"),  # closed: gone
        housing("first-close", "homelessness_application_closed", day(14), "B"),  # gone
        housing("last-close", "homelessness_application_closed", day(15), "B"),  # kept
        emergency("recent", day(390)),
        housing("late-close", "homelessness_application_closed", day(400), "A"),
    ]
    kept = [e["event_id"] for e in pruning.prune(entries, horizon)]
    # The last close of B stays: it would close an older opening of B that arrives late.
    assert kept == ["old-claim", "open", "last-close", "recent", "late-close"]
    # Nothing old enough: the very list comes back (no copy).
    recent = entries[-2:]
    assert pruning.prune(recent, horizon) is recent


def housing(event_id: str, etype: str, when: datetime, tenancy_ref: str) -> dict[str, Any]:
    return event(event_id, etype, when, tenancy={"tenancy_ref": tenancy_ref, "notice": "none"})


def test_a_pruned_view_still_closes_an_old_opener_that_arrives_late() -> None:
    memory = InMemoryAlerting(RULES, LATENESS)
    memory.feed("p", classified(housing("o1", "homelessness_application_opened", day(0), "A")), {})
    memory.feed("p", classified(housing("x1", "homelessness_application_closed", day(20), "A")), {})
    memory.feed("p", classified(event("d1", "discharge", day(400))), {})
    events = memory.tracker.views["p"]["events"]
    assert [e["event_id"] for e in events] == ["x1", "d1"]
    # The application's opening again (a redelivery, or a merged record's): x1 closes it, so
    # a later discharge is no R1.
    memory.feed("p", classified(housing("o1", "homelessness_application_opened", day(0), "A")), {})
    memory.feed("p", classified(event("d2", "discharge", day(410))), {})
    assert memory.result.raised == []
    assert [e["event_id"] for e in memory.tracker.views["p"]["events"]] == ["x1", "d1", "d2"]


def test_a_pruned_view_raises_the_watermark_of_whoever_reads_it_after_a_restart() -> None:
    before = InMemoryAlerting(RULES, LATENESS)
    before.feed("p", classified(notice("n1", day(0))), {})
    before.feed("p", classified(event("d1", "discharge", day(300))), {})
    after = InMemoryAlerting(RULES, LATENESS)  # restarted: event time starts again
    after.tracker.views = before.tracker.views
    # A discharge 10 days after the notice, arriving now: too late for the worker before
    # (whose view no longer holds the notice), and still too late after the restart.
    after.feed("p", classified(event("d0", "discharge", day(10))), {})
    assert after.tracker.watermark == day(300) - LATENESS
    assert after.result.raised == []


# A long history --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    at: float  # days after START, when the worker gets it
    person: str
    entry: dict[str, Any]
    household: dict[str, str]


class History:
    """A seeded multi-year history of a tenant, their child and a record later merged into the
    tenant; events arrive late, very late (too late for the rules) and again."""

    def __init__(self, seed: int, years: int) -> None:
        self.rng = random.Random(seed)
        self.days = 365 * years
        self.events: list[tuple[float, str, dict[str, Any], dict[str, str]]] = []
        self.count = 0

    def add(self, person: str, entry: dict[str, Any], household: dict[str, str]) -> None:
        self.events.append((self._occurred(entry), person, classified(entry), household))

    def _occurred(self, entry: dict[str, Any]) -> float:
        return (datetime.fromisoformat(entry["occurred_at"]) - START) / timedelta(days=1)

    def new_id(self, person: str) -> str:
        self.count += 1
        return f"{person}-{self.count}"

    def chance(self, per_day: float) -> bool:
        return self.rng.random() < per_day

    def person(self, name: str, first: int, last: int, household: dict[str, str]) -> None:
        cases: dict[str, str] = {}  # kind -> open case id
        for n in range(first, last):
            at = day(n + self.rng.random())
            if self.chance(0.08):
                klass = "E" if self.chance(0.7) else "I"
                self.add(name, emergency(self.new_id(name), at, klass), household)
            for etype, rate in (
                ("discharge", 0.02),
                ("patient_details_changed", 0.02),
                ("appointment_missed", 0.02),
                ("sanction_imposed", 0.008),
                ("assessment_completed", 0.01),
                ("safeguarding_concern", 0.004),
            ):
                if self.chance(rate):
                    self.add(name, event(self.new_id(name), etype, at), household)
            if self.chance(0.01):
                weeks = self.rng.choice([2, 4, 5, 6])
                tenancy = {"tenancy_ref": "t" * 64, "arrears_weeks": weeks}
                arrears = event(self.new_id(name), "arrears_threshold_crossed", at, tenancy=tenancy)
                self.add(name, arrears, household)
            if self.chance(0.015):
                kind = self.rng.choice(["notice_to_quit", "notice_seeking_possession"])
                self.add(name, notice(self.new_id(name), at, kind), household)
            for opened, closed, rate in (
                ("case_opened", "case_closed", 0.006),
                ("care_package_started", "care_package_ended", 0.003),
                ("child_protection_plan_started", "child_protection_plan_ended", 0.002),
                ("homelessness_application_opened", "homelessness_application_closed", 0.003),
            ):
                self._state(name, at, household, cases, opened, closed, rate)

    def _state(
        self,
        name: str,
        at: datetime,
        household: dict[str, str],
        cases: dict[str, str],
        opened: str,
        closed: str,
        rate: float,
    ) -> None:
        if opened not in cases and self.chance(rate):
            cases[opened] = f"{name}-{opened}-{self.count}"
            etype = opened
        elif opened in cases and self.chance(0.03):
            etype = closed
        else:
            return
        key = cases[opened] if etype == opened else cases.pop(opened)
        tenancy = {"tenancy_ref": key, "notice": "none"}
        self.add(name, event(self.new_id(name), etype, at, case_id=key, tenancy=tenancy), household)

    def deliveries(self) -> list[Delivery]:
        arriving = []
        self.events.sort(key=lambda each: each[0])
        for index, (occurred, person, entry, household) in enumerate(self.events):
            roll = self.rng.random()
            delay = self.rng.uniform(0, 1) if roll < 0.7 else self.rng.uniform(1, 5)
            if roll > 0.96:
                delay = self.rng.uniform(8, 60)  # later than every rule's allowed lateness
            arriving.append(Delivery(occurred + delay, person, entry, household))
            if index and self.chance(0.02):  # an earlier event delivered again, however old
                old = self.events[self.rng.randrange(index)]
                arriving.append(Delivery(occurred + delay, old[1], old[2], old[3]))
        return sorted(arriving, key=lambda d: d.at)


MERGE_DAY = 550.0


def long_history(years: int = 4) -> list[Delivery]:
    history = History(seed=20261207, years=years)
    history.person("tenant", 0, history.days, {})
    history.person("child", 0, history.days, {"tenant": "parent"})
    history.person("duplicate", 0, int(MERGE_DAY) + 200, {})  # merged, and still sending
    return history.deliveries()


@dataclass
class Run:
    memory: InMemoryAlerting
    steps: list[dict[str, Any]]
    sizes: list[tuple[float, int, int]]  # (day, tenant's own entries, entries in all)


def run(rules: RuleSet, deliveries: list[Delivery], *, prune: bool) -> Run:
    """Feed the history to an in-memory tracker, with the worker's timer every week."""
    memory = InMemoryAlerting(rules, LATENESS, prune=prune)
    now = [START]
    memory.tracker.clock = lambda: now[0]
    steps: list[dict[str, Any]] = []
    tracker = memory.tracker
    for name in ("on_person_event", "on_update", "on_merge"):
        method = getattr(tracker, name)

        def recorded(*args: Any, _method: Any = method) -> Reaction:
            reaction: Reaction = _method(*args)
            steps.extend(step for _, step in reaction.alert_events)
            return reaction

        setattr(tracker, name, recorded)
    sizes = []
    merged = timer = 0.0
    for delivery in deliveries:
        now[0] = day(delivery.at)
        if delivery.at >= timer + 7:
            memory.finish()
            timer = delivery.at
        if delivery.at >= MERGE_DAY and not merged:
            memory.carry_out(tracker.on_merge("duplicate", "tenant"))
            merged = delivery.at
        memory.feed(delivery.person, delivery.entry, delivery.household)
        view = tracker.views.get("tenant") or {"events": [], "members": {}}
        members = sum(len(m["events"]) for m in view["members"].values())
        sizes.append((delivery.at, len(view["events"]), len(view["events"]) + members))
    memory.finish()
    return Run(memory, steps, sizes)


def assert_same_alerts(pruned: Run, full: Run) -> None:
    assert pruned.steps == full.steps
    assert [a.as_dict() for a in pruned.memory.result.raised] == [
        a.as_dict() for a in full.memory.result.raised
    ]
    assert pruned.memory.tracker.priors == full.memory.tracker.priors
    assert pruned.memory.tracker.deadlines == full.memory.tracker.deadlines


def largest(sizes: list[tuple[float, int, int]], year: int, column: int) -> int:
    return max(int(size[column]) for size in sizes if 365 * (year - 1) <= size[0] < 365 * year)


def test_a_long_history_raises_the_same_alerts_with_a_bounded_view() -> None:
    # R4 asks for a jobcentre or social care event at any time before: bound it to a year,
    # so that every condition has a window and the whole view is bounded.
    text = SHIPPED_RULES.read_text(encoding="utf-8")
    unbounded = "      - exists: {agencies: [jobcentre, social_care]}\n"
    assert unbounded in text
    rules = parse_rules(text.replace(unbounded, unbounded + "        within: {before: 365d}\n"))
    deliveries = long_history()
    pruned, full = run(rules, deliveries, prune=True), run(rules, deliveries, prune=False)

    assert_same_alerts(pruned, full)
    rules_raised = {step["alert"]["rule_id"] for step in full.steps if step["alert"]}
    assert rules_raised == {"R1", "R2", "R3", "R4", "R5", "R6"}
    assert sum(step["change"] == "absorbed" for step in full.steps) > 0
    # The unpruned view (the tenant's entries and the child's) grows year by year; the pruned
    # one stays at what R4's year, the lateness and R6's 14 days after span.
    assert largest(full.sizes, 4, 2) > 1.5 * largest(full.sizes, 2, 2)
    assert largest(pruned.sizes, 4, 2) <= 1.1 * largest(pruned.sizes, 2, 2)
    assert largest(pruned.sizes, 4, 2) < 0.4 * largest(full.sizes, 4, 2)


def test_with_the_shipped_rules_only_r4s_history_stays_in_the_view() -> None:
    deliveries = long_history()
    pruned, full = run(RULES, deliveries, prune=True), run(RULES, deliveries, prune=False)

    assert_same_alerts(pruned, full)
    # R4 explains an alert with every jobcentre and social care event the person ever had,
    # so those stay; everything else stays bounded.
    view = pruned.memory.tracker.views["tenant"]
    by_agency = {agency: 0 for agency in ("health", "housing", "jobcentre", "social_care")}
    for entry in view["events"]:
        by_agency[entry["agency"]] += 1
    everything = full.memory.tracker.views["tenant"]["events"]
    kept_for_ever = [e for e in everything if e["agency"] in ("jobcentre", "social_care")]
    assert by_agency["jobcentre"] + by_agency["social_care"] == len(kept_for_ever)
    full_other = len(everything) - len(kept_for_ever)
    assert by_agency["health"] + by_agency["housing"] < 0.25 * full_other
