"""Deciding one rule condition around one anchor event, in event time.

A condition either holds (with the events that satisfied it), fails, or - for an absence
whose window reaches past the watermark - is pending until a known event time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from operator import attrgetter

from streams.alerting.rules import Condition, OpenState, Window, detail
from streams.alerting.view import Occurrence, PersonView


class State(Enum):
    """Where a condition stands at the current watermark."""

    HOLDS = "holds"
    PENDING = "pending"
    FAILS = "fails"


@dataclass(frozen=True)
class Verdict:
    """A condition's state, the events that satisfied it, and when an absence is decided."""

    state: State
    events: tuple[Occurrence, ...] = ()
    due_at: datetime | None = None


FAILS = Verdict(State.FAILS)
ZERO = timedelta(0)
_EVENT_TIME = attrgetter("at")


@dataclass(frozen=True)
class Situation:
    """One anchor event of a rule, the person's view and the event-time watermark."""

    view: PersonView
    anchor: Occurrence
    watermark: datetime

    def in_reach(self, condition: Condition, window: Window | None) -> list[Occurrence]:
        """The events a condition looks at (the person's own, or the household members', in
        that order) that lie in the window around the anchor; bisected, as views keep long
        histories."""
        start = None if window is None else self.anchor.at - window.before
        end = self.anchor.at + (window.after if window is not None else ZERO)
        if condition.scope == "household":
            timelines = self.view.member_timelines(condition.person_is)
            return [o for events in timelines for o in _between(events, start, end)]
        return list(_between(self.view.own_events, start, end))


def _between(
    events: tuple[Occurrence, ...], start: datetime | None, end: datetime
) -> tuple[Occurrence, ...]:
    """Of events in event-time order, those from `start` (None: the first) to `end`, both
    included."""
    low = 0 if start is None else bisect.bisect_left(events, start, key=_EVENT_TIME)
    return events[low : bisect.bisect_right(events, end, key=_EVENT_TIME)]


def in_window(anchor_at: datetime, at: datetime, window: Window | None) -> bool:
    """True if `at` lies in the window around the anchor; no window means any time up to it."""
    if window is None:
        return at <= anchor_at
    return anchor_at - window.before <= at <= anchor_at + window.after


def decide(condition: Condition, situation: Situation) -> Verdict:
    """The verdict of one condition (any_of: the first that holds, else pending, else fails)."""
    if condition.any_of is not None:
        return _any_of([decide(inner, situation) for inner in condition.any_of])
    if condition.open is not None:
        # An open state is read at the anchor's time: from every event up to it.
        return _open(condition.open, situation.in_reach(condition, None))
    matching = _matching(condition, situation)
    if condition.exists is not None:
        return Verdict(State.HOLDS, matching) if matching else FAILS
    if condition.of is not None and condition.at_least is not None:
        return Verdict(State.HOLDS, matching) if len(matching) >= condition.at_least else FAILS
    return _absent(condition, situation, matching)


def _matching(condition: Condition, situation: Situation) -> tuple[Occurrence, ...]:
    match = condition.exists or condition.of or condition.absent
    assert match is not None  # nosec B101 # the rule model guarantees one of them for these kinds
    in_reach = situation.in_reach(condition, condition.within)
    return tuple(o for o in in_reach if match.matches(o.entry))


def _absent(
    condition: Condition, situation: Situation, matching: tuple[Occurrence, ...]
) -> Verdict:
    if matching:
        return FAILS
    window_end = situation.anchor.at + (condition.within.after if condition.within else ZERO)
    # An absence is only known once event time has passed the end of its window.
    if situation.watermark < window_end:
        return Verdict(State.PENDING, due_at=window_end)
    return Verdict(State.HOLDS, due_at=window_end)


def _open(state: OpenState, before: list[Occurrence]) -> Verdict:
    openers = [o for o in before if state.opened_by.matches(o.entry)]
    closers = [o for o in before if state.closed_by.matches(o.entry)]
    still_open = tuple(opener for opener in openers if not _closed(opener, closers, state.same))
    return Verdict(State.HOLDS, still_open) if still_open else FAILS


def _closed(opener: Occurrence, closers: Iterable[Occurrence], same: str | None) -> bool:
    return any(
        closer.person_id == opener.person_id
        and closer.at >= opener.at
        and (same is None or _key(closer, same) == _key(opener, same))
        for closer in closers
    )


def _key(occurrence: Occurrence, path: str) -> object:
    return detail(occurrence.entry.get("details") or {}, path)


def _any_of(verdicts: list[Verdict]) -> Verdict:
    for verdict in verdicts:
        if verdict.state is State.HOLDS:
            return verdict
    pending = [v.due_at for v in verdicts if v.state is State.PENDING and v.due_at]
    return Verdict(State.PENDING, due_at=min(pending)) if pending else FAILS


def combine(verdicts: list[Verdict]) -> Verdict:
    """All conditions together: fails if one fails, pending until the last is decided."""
    if any(v.state is State.FAILS for v in verdicts):
        return FAILS
    pending = [v.due_at for v in verdicts if v.state is State.PENDING and v.due_at]
    if pending:
        return Verdict(State.PENDING, due_at=max(pending))
    # A held absence completes the pattern only when its window ended: that is its due_at.
    decided = [v.due_at for v in verdicts if v.due_at]
    events = tuple(o for v in verdicts for o in v.events)
    return Verdict(State.HOLDS, events, due_at=max(decided) if decided else None)


def looks_at(condition: Condition, anchor_at: datetime, at: datetime) -> bool:
    """True if this leaf condition looks at events of time `at` around an anchor at `anchor_at`
    (an open state: any time up to the anchor)."""
    window = None if condition.open is not None else condition.within
    return in_window(anchor_at, at, window)
