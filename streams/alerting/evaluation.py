"""The rule engine: which alerts fire when an event arrives or event time moves on.

Pure: no Kafka, no Faust, no clock. The caller (the alert processor) gives the person's view
(their timeline, already holding the event that arrived, and the household members'
timelines), the event that arrived, the event-time watermark and the alerts it raised before
for this person; it gets back the alerts to raise, the matches absorbed into open alerts,
and the deadlines of absences to check again when the watermark reaches them.

A rule is evaluated whenever ANY event that takes part in it arrives - the anchor, or an
event of one of its conditions that lies in a condition's window around an anchor already on
the timeline - so events arriving late or out of order still complete a pattern, as long as
they are not older than the watermark minus the rule's allowed lateness. Such an event may
also disprove an open alert (a closing event for an `open` condition, a follow-up an `absent`
forbids): judged again around its anchor, the rule fails, and the alert is withdrawn.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import attrgetter

from streams.alerting.alert import (
    Absorption,
    Alert,
    Deadline,
    ExplainedEvent,
    Explanation,
    Outcome,
    PriorAlert,
    Withdrawal,
    alert_id_for,
)
from streams.alerting.conditions import ZERO, Situation, State, Verdict, combine, decide, looks_at
from streams.alerting.rules import Condition, Decide, EventMatch, Rule, RuleSet
from streams.alerting.view import Entry, Occurrence, PersonView, event_time

_EVENT_TIME = attrgetter("at")


class Dedup:
    """One alert per rule and person within the rule's dedup period, in anchor event time."""

    def __init__(self, prior: Sequence[PriorAlert]) -> None:
        self.prior = list(prior)

    def settle(self, rule: Rule, alert: Alert) -> Alert | Absorption | None:
        """The alert if it is new; else what an open alert absorbs of it (or nothing)."""
        earlier = self._same_situation(alert) or self._within_period(rule, alert)
        if earlier is not None:
            return self._absorb(earlier, alert)
        self.prior.append(alert.as_prior())
        return alert

    def open_alerts(self, rule: Rule) -> list[PriorAlert]:
        """The rule's open alerts that know their anchor (those a late event may disprove)."""
        return [p for p in self.prior if p.rule_id == rule.id and p.is_open and p.anchor_event_id]

    def withdraw(self, alert: PriorAlert) -> None:
        """A withdrawn alert absorbs nothing and no longer keeps other anchors from firing."""
        self.prior[self.prior.index(alert)] = replace(alert, is_open=False, withdrawn=True)

    def _same_situation(self, alert: Alert) -> PriorAlert | None:
        return next((p for p in self.prior if p.alert_id == alert.alert_id), None)

    def _within_period(self, rule: Rule, alert: Alert) -> PriorAlert | None:
        near = [
            p
            for p in self.prior
            if p.rule_id == rule.id
            and p.person_id == alert.person_id
            and not p.withdrawn
            and abs(p.anchor_at - alert.anchor_at) <= rule.dedup
        ]
        # An open alert takes the match in; a closed one only keeps it from being sent again.
        near.sort(key=lambda p: not p.is_open)
        return near[0] if near else None

    def _absorb(self, earlier: PriorAlert, alert: Alert) -> Absorption | None:
        if not earlier.is_open:
            return None
        added = tuple(e for e in alert.explanation.events if e.event_id not in earlier.event_ids)
        if not added:
            return None
        grown = replace(earlier, event_ids=earlier.event_ids | {e.event_id for e in added})
        self.prior[self.prior.index(earlier)] = grown
        return Absorption(earlier.alert_id, alert.rule_id, alert.person_id, added)


class RuleEngine:
    """Evaluates a rule set over person views in event time."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._interests = [_Interest.of(rule) for rule in rules.rules]

    def on_event(
        self,
        view: PersonView,
        arrived: Entry,
        watermark: datetime,
        prior: Sequence[PriorAlert] = (),
    ) -> Outcome:
        """Evaluate every rule the arrived event takes part in, around every anchor it touches,
        and withdraw the open alerts it disproves.

        `arrived` must already be on the view's timelines (the person's or a member's).
        """
        outcome = Outcome()
        dedup = Dedup(prior)
        occurrence = Occurrence(view.person_id, arrived, event_time(arrived))
        for interest in self._interests:
            rule, leaves = interest.rule, interest.leaves_matching(arrived)
            if not leaves and not interest.anchored_by(arrived):
                continue
            if occurrence.at < watermark - rule.allowed_lateness:
                outcome.too_late_for.append(rule.id)
                continue
            # Before new matches: an alert withdrawn now no longer absorbs them.
            _withdraw_disproved(rule, leaves, view, occurrence, watermark, dedup, outcome)
            for anchor in _anchors_touched(rule, leaves, view, occurrence):
                _judge(rule, Situation(view, anchor, watermark), dedup, outcome)
        return outcome

    def involves(self, entry: Entry) -> bool:
        """True if some rule looks at this event (as its anchor or in a condition)."""
        return any(
            interest.anchored_by(entry) or interest.leaves_matching(entry)
            for interest in self._interests
        )

    def on_deadline(
        self,
        view: PersonView,
        deadline: Deadline,
        watermark: datetime,
        prior: Sequence[PriorAlert] = (),
    ) -> Outcome:
        """Decide an absence once the watermark reached its deadline (else keep it pending)."""
        outcome = Outcome()
        if watermark < deadline.due_at:
            outcome.deadlines.append(deadline)
            return outcome
        rule = next((r for r in self.rules.rules if r.id == deadline.rule_id), None)
        anchor = view.find(deadline.anchor_event_id)
        if rule is not None and anchor is not None:
            _judge(rule, Situation(view, anchor, watermark), Dedup(prior), outcome)
        return outcome


Leaves = tuple[tuple[Condition, tuple[EventMatch, ...]], ...]


@dataclass(frozen=True)
class _Kinship:
    """What an event of one type and agency may be to a rule, its details aside."""

    anchor: bool  # the rule's `when` may match it
    leaves: Leaves  # the leaf conditions that may look for it, with the matches that may


@dataclass(frozen=True)
class _Interest:
    """A rule's leaf conditions with the event matches each looks for, listed once: the
    engine asks of every event which leaves it could satisfy."""

    rule: Rule
    leaves: Leaves
    # Worked out once per event type and agency: most events need no look at their details.
    _kinships: dict[tuple[str, str], _Kinship] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, rule: Rule) -> _Interest:
        return cls(rule, tuple((leaf, tuple(leaf.matchers())) for leaf in rule.leaves()))

    def leaves_matching(self, entry: Entry) -> list[Condition]:
        """The leaf conditions that look for this event (at some time around an anchor)."""
        return [
            leaf
            for leaf, matches in self._kinship(entry).leaves
            if any(match.matches(entry) for match in matches)
        ]

    def anchored_by(self, entry: Entry) -> bool:
        """True if the event is one of the rule's anchors."""
        return self._kinship(entry).anchor and self.rule.when.matches(entry)

    def _kinship(self, entry: Entry) -> _Kinship:
        kind = (entry["event_type"], entry["agency"])
        kinship = self._kinships.get(kind)
        if kinship is None:
            leaves = (
                (leaf, tuple(match for match in matches if match.may_match(*kind)))
                for leaf, matches in self.leaves
            )
            kinship = self._kinships[kind] = _Kinship(
                anchor=self.rule.when.may_match(*kind),
                leaves=tuple((leaf, matches) for leaf, matches in leaves if matches),
            )
        return kinship


def _anchors_touched(
    rule: Rule, leaves: list[Condition], view: PersonView, arrived: Occurrence
) -> Iterator[Occurrence]:
    """The rule's anchors on the timeline that the arrived event is, or is in a window of;
    `leaves` are the rule's leaf conditions that look for the arrived event."""
    # No anchor earlier than this has the arrived event in a window: skip them (timelines
    # only grow, and most events arrive after everything on them).
    earliest = arrived.at - max((_reach_back(leaf) for leaf in leaves), default=ZERO)
    events = view.own_events
    for anchor in events[bisect.bisect_left(events, earliest, key=_EVENT_TIME) :]:
        if not rule.when.matches(anchor.entry):
            continue
        if anchor.entry.get("initial_load") and not rule.fire_on_initial_load:
            continue  # the state found at go-live is old news (README, "Initial loads")
        if anchor.event_id == arrived.event_id or any(
            looks_at(leaf, anchor.at, arrived.at) for leaf in leaves
        ):
            yield anchor


def _reach_back(leaf: Condition) -> timedelta:
    """How long after an anchor this leaf condition still looks at events."""
    window = None if leaf.open is not None else leaf.within
    return max(window.after, ZERO) if window is not None else ZERO


def _withdraw_disproved(
    rule: Rule,
    leaves: list[Condition],
    view: PersonView,
    arrived: Occurrence,
    watermark: datetime,
    dedup: Dedup,
    outcome: Outcome,
) -> None:
    """Withdraw the rule's open alerts that the arrived event disproves: it lies in a window
    of their anchor and, judged again with it on the timeline, the rule no longer holds."""
    for alert in dedup.open_alerts(rule) if leaves else ():
        assert alert.anchor_event_id is not None  # nosec B101 # open_alerts keeps only those that know it
        anchor = view.find(alert.anchor_event_id)
        if anchor is None or not any(looks_at(leaf, anchor.at, arrived.at) for leaf in leaves):
            continue
        if _verdict(rule, Situation(view, anchor, watermark)).state is State.FAILS:
            dedup.withdraw(alert)
            disproof = ExplainedEvent.of(arrived)
            outcome.withdrawn.append(Withdrawal(alert.alert_id, rule.id, alert.person_id, disproof))


def _verdict(rule: Rule, situation: Situation) -> Verdict:
    """All the rule's conditions around the anchor; with `decide: after_lateness`, pending
    until the watermark has passed the anchor by the allowed lateness."""
    verdict = combine([decide(condition, situation) for condition in rule.conditions])
    if rule.decide is Decide.AT_ONCE or verdict.state is State.FAILS:
        return verdict
    settled_at = situation.anchor.at + rule.allowed_lateness
    if verdict.due_at is not None:
        settled_at = max(settled_at, verdict.due_at)
    if situation.watermark < settled_at:
        return Verdict(State.PENDING, due_at=settled_at)
    return verdict


def _judge(rule: Rule, situation: Situation, dedup: Dedup, outcome: Outcome) -> None:
    verdict = _verdict(rule, situation)
    if verdict.state is State.PENDING and verdict.due_at is not None:
        anchor = situation.anchor
        outcome.deadlines.append(
            Deadline(rule.id, anchor.person_id, anchor.event_id, verdict.due_at)
        )
        return
    if verdict.state is not State.HOLDS:
        return
    settled = dedup.settle(rule, build_alert(rule, situation, verdict))
    if isinstance(settled, Alert):
        outcome.raised.append(settled)
    elif isinstance(settled, Absorption):
        outcome.absorbed.append(settled)


def build_alert(rule: Rule, situation: Situation, verdict: Verdict) -> Alert:
    """The alert of a rule that holds around an anchor, with its explanation and text."""
    anchor, person_id = situation.anchor, situation.view.person_id
    unique = {o.event_id: o for o in (anchor, *verdict.events)}
    events = sorted(unique.values(), key=lambda o: (o.at, o.event_id))
    household = tuple(sorted({o.person_id for o in events} - {person_id}))
    completed = max([o.at for o in events] + ([verdict.due_at] if verdict.due_at else []))
    text = rule.text.format(
        rule_id=rule.id,
        rule_name=rule.name,
        severity=rule.severity.value,
        person_id=person_id,
        household_person_ids=", ".join(household) or "none",
        anchor_type=str(anchor.entry["event_type"]).replace("_", " "),
        anchor_agency=anchor.entry["agency"],
        anchor_at=anchor.entry["occurred_at"],
        anchor_date=anchor.at.date().isoformat(),
        event_count=len(events),
    )
    return Alert(
        alert_id=alert_id_for(rule.id, person_id, anchor.event_id),
        rule_id=rule.id,
        rule_version=rule.version,
        rule_name=rule.name,
        severity=rule.severity.value,
        teams=tuple(rule.notify),
        person_id=person_id,
        household_person_ids=household,
        anchor_event_id=anchor.event_id,
        anchor_at=anchor.at,
        matched_at=completed,
        text=" ".join(text.split()),
        explanation=Explanation(rule.id, rule.version, tuple(ExplainedEvent.of(o) for o in events)),
    )
