"""Alert tracking: the state the rule engine needs, kept per person, and what to do on input.

One implementation for the Faust alert processor (streams/alerting/processor.py, stores are
tables co-partitioned with person-events) and for `backbone rules replay` (stores are dicts):
both hand it person events, updates for a person and merges, and carry out its `Reaction`.

Per person (all keyed by person id):
- `views`: the rule-relevant entries of the person's timeline (only events some rule looks
  at, in the compact shape of `compact_entry`), the person's household map, and `members`:
  the entries and household maps of the household members, copied here by the members'
  partitions (the household reverse index, README "Design decisions");
- `deadlines`: absences the engine is waiting on, decided when the watermark reaches them;
- `priors`: the alerts raised for the person, for dedup; a resolved one is marked closed.

Household: a member's events live on the member's partition. When an event lists household
members, the person's partition sends each new member (a `member` update keyed by the member's
person id) the person's entries and household map and asks for theirs (`reply`); from then on
each side forwards its new rule-relevant entries to the other, which evaluates them as
household events. Merges move the absorbed person's view to the survivor (`absorb`).

Event time: the watermark is the highest occurred_at seen minus `lateness`; the caller's
timer also moves it to the wall clock minus `lateness` (`advance_clock`), so absences are
decided when no later event comes.

Pruning (streams/alerting/pruning.py): each view is written without the entries no rule can
read any more, so an event's write holds what the rules can still read rather than the whole
history (what conditions without `within` match stays for ever). A pruned view and the updates
made from it carry the watermark they were pruned under (`watermark`); reading one raises this
tracker's watermark to it, so after a restart or a partition move event time does not go back
to where the pruned entries would be read again.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.alerting.alert import Absorption, Alert, Deadline, Outcome, PriorAlert, Withdrawal
from streams.alerting.alert_events import absorbed_event, raised_event, withdrawn_event
from streams.alerting.evaluation import RuleEngine
from streams.alerting.pruning import EARLIEST, Pruning
from streams.alerting.view import Entry, PersonView, event_time
from streams.timeline.entries import add_event, timeline_entry

Store = MutableMapping[str, Any]
State = dict[str, Any]
Update = dict[str, Any]
LATEST = datetime.max.replace(tzinfo=UTC)
# What the engine and the explanation read of a timeline entry; the rest stays on the timeline.
ENTRY_FIELDS = ("event_id", "event_type", "agency", "occurred_at", "details")


def compact_entry(record: dict[str, Any]) -> Entry:
    """A person event as the alert views keep it: the timeline entry's rule-relevant fields and
    the envelope's classification (an alert inherits the most sensitive one)."""
    entry = timeline_entry(record)
    envelope = record["envelope"]
    return {
        **{key: entry[key] for key in ENTRY_FIELDS},
        "legal_basis": str(envelope["legal_basis"]),
        "sensitivity": str(envelope["sensitivity"]),
        # Still a condition for later anchors; only when true, as on the timeline.
        **({"initial_load": True} if "initial_load" in entry else {}),
    }


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Forward:
    """An update for another person's partition (the alert-updates topic, keyed by person)."""

    person_id: str
    update: dict[str, Any]


@dataclass
class Reaction:
    """What one input asks of the caller: updates to forward and alert steps to publish."""

    forwards: list[Forward] = field(default_factory=list)
    raised: list[Alert] = field(default_factory=list)
    absorbed: list[Absorption] = field(default_factory=list)
    withdrawn: list[Withdrawal] = field(default_factory=list)
    # (alert id, backbone.alerts.AlertEvent record) for the alerts topic.
    alert_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def member_update(person_id: str, state: State, events: list[Entry], *, reply: bool) -> Update:
    """What a household member's partition is told: this person's map and entries."""
    return {
        "kind": "member",
        "member_id": person_id,
        "household": state["household"],
        "events": events,
        "reply": reply,
        **_stamp_of(state),
    }


def _stamp_of(state: State) -> dict[str, str]:
    """The watermark a view was pruned under, for what is sent from it."""
    return {"watermark": state["watermark"]} if "watermark" in state else {}


def members_of(state: State) -> set[str]:
    """Everyone in the person's household: whom the person lists, and who lists the person."""
    return set(state["household"]) | set(state["members"])


def _prior_of(stored: dict[str, Any]) -> PriorAlert:
    return PriorAlert(
        alert_id=stored["alert_id"],
        rule_id=stored["rule_id"],
        person_id=stored["person_id"],
        anchor_at=datetime.fromisoformat(stored["anchor_at"]),
        event_ids=frozenset(stored["event_ids"]),
        is_open=stored["is_open"],
        anchor_event_id=stored.get("anchor_event_id"),
        withdrawn=stored.get("withdrawn", False),
    )


def _stored_prior(prior: PriorAlert) -> dict[str, Any]:
    return {
        "alert_id": prior.alert_id,
        "rule_id": prior.rule_id,
        "person_id": prior.person_id,
        "anchor_at": prior.anchor_at.isoformat(),
        "event_ids": sorted(prior.event_ids),
        "is_open": prior.is_open,
        "anchor_event_id": prior.anchor_event_id,
        "withdrawn": prior.withdrawn,
    }


class AlertTracker:
    """Feeds the rule engine from per-person stores and says what to publish and forward."""

    def __init__(
        self,
        engine: RuleEngine,
        *,
        views: Store,
        deadlines: Store,
        priors: Store,
        lateness: timedelta,
        clock: Callable[[], datetime] = utc_now,
        prune: bool = True,
    ) -> None:
        self.engine = engine
        self.pruning = Pruning.of(engine.rules) if prune else None
        self.views = views
        self.deadlines = deadlines
        self.priors = priors
        self.lateness = lateness
        self.clock = clock
        self.latest = EARLIEST
        self.watermark = EARLIEST
        # Unknown after a start: the first event sweeps the deadlines table once.
        self.next_due = EARLIEST
        self._swept = False
        # Every deadline stored since the last sweep, earliest first: an event finds the
        # persons whose deadlines it made due here, not by reading the whole table again.
        self._coming: list[tuple[datetime, str]] = []

    # Event time ---------------------------------------------------------------------------
    def observe(self, at: datetime) -> None:
        """An event's occurred_at: the watermark follows the highest one, minus lateness."""
        if at > self.latest:
            self.latest = at
            self.watermark = max(self.watermark, at - self.lateness)

    def advance_clock(self) -> list[str]:
        """The timer: event time moves with the wall clock; returns persons with due deadlines."""
        self.watermark = max(self.watermark, self.clock() - self.lateness)
        return self.due_persons()

    def due_persons(self) -> list[str]:
        """Persons (in the local stores) with a deadline the watermark has reached."""
        due, upcoming = [], []
        for person_id, pending in list(self.deadlines.items()):
            times = [datetime.fromisoformat(d["due_at"]) for d in pending or []]
            if any(at <= self.watermark for at in times):
                due.append(str(person_id))
            upcoming += [(at, str(person_id)) for at in times if at > self.watermark]
        heapq.heapify(upcoming)
        self._coming, self._swept = upcoming, True
        self.next_due = upcoming[0][0] if upcoming else LATEST
        return due

    def newly_due(self) -> list[str]:
        """Persons whose deadlines the watermark reached since the last sweep or call, each
        once: a check already sent for a person is not sent again with every event."""
        if not self._swept:
            return self.due_persons()
        reached: dict[str, None] = {}
        while self._coming and self._coming[0][0] <= self.watermark:
            reached[heapq.heappop(self._coming)[1]] = None
        self.next_due = self._coming[0][0] if self._coming else LATEST
        # A deadline checked, or moved by a merge, since it was stored is no longer due.
        return [person_id for person_id in reached if self._has_due(person_id)]

    def _has_due(self, person_id: str) -> bool:
        pending = self.deadlines.get(person_id) or []
        return any(datetime.fromisoformat(d["due_at"]) <= self.watermark for d in pending)

    # Inputs -------------------------------------------------------------------------------
    def on_person_event(self, person_id: str, entry: Entry, household: dict[str, str]) -> Reaction:
        """A person event (from person-events): keep it if relevant, evaluate, tell members."""
        state = self._state(person_id)
        household = {member: role for member, role in household.items() if member != person_id}
        relevant = self.engine.involves(entry)
        if "merged_into" in state:
            # Identity merged this person after sending the event: it follows the others.
            moved = {"household": household, "events": [entry] if relevant else [], "members": {}}
            return Reaction(forwards=[Forward(state["merged_into"], _absorb(person_id, moved))])
        self.observe(event_time(entry))
        reaction = Reaction()
        before = dict(state["household"])
        state["household"] = {**before, **household}
        map_changed = state["household"] != before
        added = relevant and add_event(state, entry)
        if added:
            self._evaluate(person_id, state, entry, reaction)
        self._check_deadlines(person_id, state, reaction)
        if added or map_changed:
            # An entry too old for any rule goes at once: nobody needs to hear of it.
            added = entry["event_id"] not in self._store(person_id, state)
        joined = set(household) - set(before) - set(state["members"])
        reaction.forwards += self._tell_members(
            person_id, state, [entry] if added else [], joined, map_changed
        )
        if self.watermark >= self.next_due:
            checks = [p for p in self.newly_due() if p != person_id]
            reaction.forwards += [Forward(p, {"kind": "check"}) for p in checks]
        return reaction

    def on_update(self, person_id: str, update: Update) -> Reaction:
        """An update for this person: a member's entries, a merged person's view, a closed
        alert, or a deadline check."""
        state = self._state(person_id)
        reaction = Reaction()
        kind = update["kind"]
        if kind in ("member", "absorb"):
            self._raise_watermark(update.get("watermark"))
        if "merged_into" in state and kind in ("member", "absorb"):
            reaction.forwards.append(Forward(state["merged_into"], update))
        elif kind == "member":
            self._take_member(person_id, state, update, reaction)
        elif kind == "absorb":
            self._take_absorbed(person_id, state, update, reaction)
        elif kind == "closed":
            self._close(person_id, update["alert_id"])
        elif kind == "check":
            self._check_deadlines(person_id, state, reaction)
        return reaction

    def on_merge(self, person_id: str, survivor: str) -> Reaction:
        """Identity merged this person into `survivor`: the view moves there."""
        state = self._state(person_id)
        if state.get("merged_into") == survivor or person_id == survivor:
            return Reaction()
        self.views[person_id] = {"merged_into": survivor}
        if person_id in self.deadlines:
            # The survivor evaluates the moved events again and keeps its own deadlines.
            del self.deadlines[person_id]
        return Reaction(forwards=[Forward(survivor, _absorb(person_id, state))])

    # Household and merges -----------------------------------------------------------------
    def _tell_members(
        self,
        person_id: str,
        state: State,
        new_entries: list[Entry],
        joined: Iterable[str],
        map_changed: bool,
    ) -> list[Forward]:
        forwards = []
        for member in sorted(members_of(state)):
            if member in joined:
                # A new member gets everything, and is asked for its entries in return.
                update = member_update(person_id, state, state["events"], reply=True)
                forwards.append(Forward(member, update))
            elif new_entries or map_changed:
                update = member_update(person_id, state, new_entries, reply=False)
                forwards.append(Forward(member, update))
        return forwards

    def _take_member(
        self, person_id: str, state: State, update: Update, reaction: Reaction
    ) -> None:
        member_id = update["member_id"]
        if member_id == person_id:
            return
        known = dict(state["members"].get(member_id) or {"events": []})
        known["events"] = list(known["events"])
        known["household"] = update["household"]
        new = [entry for entry in update["events"] if add_event(known, entry)]
        state["members"] = {**state["members"], member_id: known}
        for entry in new:
            self._evaluate(person_id, state, entry, reaction)
        self._store(person_id, state)
        if update["reply"]:
            answer = member_update(person_id, state, state["events"], reply=False)
            reaction.forwards.append(Forward(member_id, answer))

    def _take_absorbed(
        self, person_id: str, state: State, update: Update, reaction: Reaction
    ) -> None:
        absorbed = update["from"]
        before = members_of(state)
        new = [entry for entry in update["events"] if add_event(state, entry)]
        moved_household = {m: r for m, r in update["household"].items() if m != person_id}
        state["household"] = {**moved_household, **state["household"]}
        moved_members = {m: v for m, v in update["members"].items() if m != person_id}
        state["members"] = {**moved_members, **state["members"]}
        for entry in new:
            self._evaluate(person_id, state, entry, reaction)
        gone = self._store(person_id, state)
        new = [entry for entry in new if entry["event_id"] not in gone]
        # Members who knew the absorbed person now learn of the survivor.
        joined = members_of(state) - before - {absorbed}
        reaction.forwards += self._tell_members(person_id, state, new, joined, False)

    # Rules, dedup, deadlines --------------------------------------------------------------
    def _evaluate(self, person_id: str, state: State, arrived: Entry, reaction: Reaction) -> None:
        view = self._view(person_id, state)
        outcome = self.engine.on_event(view, arrived, self.watermark, self._priors(person_id))
        self._take(person_id, view, outcome, reaction)

    def _check_deadlines(self, person_id: str, state: State, reaction: Reaction) -> None:
        pending: list[dict[str, str]] = list(self.deadlines.get(person_id) or [])
        due = [d for d in pending if datetime.fromisoformat(d["due_at"]) <= self.watermark]
        if not due:
            return
        self._store_deadlines(person_id, [d for d in pending if d not in due])
        view = self._view(person_id, state)
        for stored in due:
            deadline = Deadline(
                stored["rule_id"],
                person_id,
                stored["anchor_event_id"],
                datetime.fromisoformat(stored["due_at"]),
            )
            outcome = self.engine.on_deadline(
                view, deadline, self.watermark, self._priors(person_id)
            )
            self._take(person_id, view, outcome, reaction)

    def _take(self, person_id: str, view: PersonView, outcome: Outcome, reaction: Reaction) -> None:
        """Record what the engine decided and turn it into alert steps."""
        if outcome.raised or outcome.absorbed or outcome.withdrawn:
            entries = {o.event_id: o.entry for o in (*view.own_events, *view.member_events(None))}
            at = self.clock()
            priors = {p["alert_id"]: p for p in self.priors.get(person_id) or []}
            for alert in outcome.raised:
                priors[alert.alert_id] = _stored_prior(alert.as_prior())
                reaction.raised.append(alert)
                reaction.alert_events.append((alert.alert_id, raised_event(alert, entries, at)))
            for absorption in outcome.absorbed:
                prior = priors[absorption.alert_id]
                added = {event.event_id for event in absorption.added}
                priors[absorption.alert_id] = {
                    **prior,
                    "event_ids": sorted(set(prior["event_ids"]) | added),
                }
                reaction.absorbed.append(absorption)
                record = absorbed_event(absorption, entries, at)
                reaction.alert_events.append((absorption.alert_id, record))
            for withdrawal in outcome.withdrawn:
                prior = priors[withdrawal.alert_id]
                priors[withdrawal.alert_id] = {**prior, "is_open": False, "withdrawn": True}
                reaction.withdrawn.append(withdrawal)
                record = withdrawn_event(withdrawal, entries, at)
                reaction.alert_events.append((withdrawal.alert_id, record))
            self.priors[person_id] = list(priors.values())
        if outcome.deadlines:
            self._keep_deadlines(person_id, outcome.deadlines)

    def _keep_deadlines(self, person_id: str, deadlines: list[Deadline]) -> None:
        pending = {
            (d["rule_id"], d["anchor_event_id"]): d for d in self.deadlines.get(person_id) or []
        }
        for deadline in deadlines:
            pending[(deadline.rule_id, deadline.anchor_event_id)] = {
                "rule_id": deadline.rule_id,
                "anchor_event_id": deadline.anchor_event_id,
                "due_at": deadline.due_at.isoformat(),
            }
            heapq.heappush(self._coming, (deadline.due_at, person_id))
            self.next_due = min(self.next_due, deadline.due_at)
        self._store_deadlines(person_id, list(pending.values()))

    def _store_deadlines(self, person_id: str, pending: list[dict[str, str]]) -> None:
        if pending:
            self.deadlines[person_id] = pending
        elif person_id in self.deadlines:
            del self.deadlines[person_id]

    def _close(self, person_id: str, alert_id: str) -> None:
        """A resolved alert keeps suppressing repeats in its dedup period, but absorbs none."""
        priors = list(self.priors.get(person_id) or [])
        closed = [{**p, "is_open": False} if p["alert_id"] == alert_id else p for p in priors]
        if closed != priors:
            self.priors[person_id] = closed

    # Stores -------------------------------------------------------------------------------
    def _state(self, person_id: str) -> State:
        stored = self.views.get(person_id)
        if stored and "merged_into" in stored:
            return dict(stored)
        if stored:
            self._raise_watermark(stored.get("watermark"))
        return {"household": {}, "events": [], "members": {}, **(stored or {})}

    def _store(self, person_id: str, state: State) -> set[str]:
        """Write the view, pruned (streams/alerting/pruning.py); returns the event ids that went."""
        gone: set[str] = set()
        if self.pruning is not None and self.watermark > EARLIEST:
            pending = self.deadlines.get(person_id) or []
            due = [datetime.fromisoformat(d["due_at"]) for d in pending]
            horizon = self.pruning.horizon(self.watermark, due)
            gone = _prune(state, self.pruning, horizon)
            state["watermark"] = self.watermark.isoformat()
        self.views[person_id] = state
        return gone

    def _raise_watermark(self, stamp: object) -> None:
        """Event time never goes back behind a watermark something was pruned under."""
        if isinstance(stamp, str):
            self.watermark = max(self.watermark, datetime.fromisoformat(stamp))

    def _view(self, person_id: str, state: State) -> PersonView:
        timeline = {"household": state["household"], "events": state["events"]}
        return PersonView(person_id, timeline, dict(state["members"]))

    def _priors(self, person_id: str) -> list[PriorAlert]:
        return [_prior_of(stored) for stored in self.priors.get(person_id) or []]


def _absorb(person_id: str, state: State) -> Update:
    """What a merged person's partition sends the survivor's: its whole alert view."""
    return {
        "kind": "absorb",
        "from": person_id,
        "household": state.get("household", {}),
        "events": state.get("events", []),
        "members": state.get("members", {}),
        **_stamp_of(state),
    }


def _prune(state: State, pruning: Pruning, horizon: datetime) -> set[str]:
    """Prune the person's entries and each member's copy; the person's event ids that went."""
    own = state["events"]
    state["events"] = pruning.prune(own, horizon)
    members = {}
    for member_id, known in state["members"].items():
        events = known.get("events", [])
        kept = pruning.prune(events, horizon)
        members[member_id] = known if kept is events else {**known, "events": kept}
    state["members"] = members
    if state["events"] is own:
        return set()
    return {e["event_id"] for e in own} - {e["event_id"] for e in state["events"]}
