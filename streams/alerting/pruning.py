"""Pruning alert views: entries no evaluation can read any more go when a view is written.

Every event rewrites its person's view (one changelog message), so a view holding the whole
history makes each event cost more the longer the person's history. Given the event-time
watermark W (which never goes back), what a rule can still read is bounded:
- an arriving event is evaluated only if it is not older than W minus the rule's allowed
  lateness; the anchors it touches lie at most the largest `within.after` before it, and a
  windowed condition reads back at most the largest `within.before` from its anchor; a
  pending absence reads around its anchor, at most `after` before its deadline. So no
  evaluation reads a windowed condition's entries older than the horizon
  `min(W - lateness, deadlines) - after - before`;
- a condition without `within` (`exists`, `at_least`, `absent` any time up to the anchor)
  reads the whole history, and explains an alert with every entry it matched: those entries
  are kept for ever;
- `open` reads the whole history too, but an opener closed before the horizon is closed at
  every anchor still to be judged, and of the closers before the horizon only the last per
  `same` value can close an older opener that arrives late (or moves in with a merge).
Keeping more than this is always safe: pruning only has to keep at least this.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from streams.alerting.conditions import ZERO
from streams.alerting.rules import EventMatch, OpenState, RuleSet, detail
from streams.alerting.view import Entry, event_time

EARLIEST = datetime.min.replace(tzinfo=UTC)


def _earlier(moment: datetime, span: timedelta) -> datetime:
    """`moment - span`, or EARLIEST where that is before the calendar starts."""
    return moment - span if moment - EARLIEST > span else EARLIEST


def _same_value(entry: Entry, same: str | None) -> tuple[str, str]:
    """The value an opener and its closer must share, as a dict key: a string as it is (as
    `==` compares it), anything else as JSON (finer than `==`, which only keeps more)."""
    value = detail(entry.get("details") or {}, same) if same else None
    if isinstance(value, str):
        return ("str", value)
    return ("json", json.dumps(value, sort_keys=True, default=str))


@dataclass(frozen=True)
class _Roles:
    """What an event of one type and agency may be to the rules, its details aside."""

    always_kept: bool  # a condition without `within` matches it whatever its details
    kept: tuple[EventMatch, ...]  # else: these may, by its details
    opens: tuple[int, ...]  # indexes in Pruning.states
    closes: tuple[int, ...]


Old = list[tuple[Entry, datetime, _Roles]]


@dataclass(frozen=True)
class Pruning:
    """What a rule set can still read of a view, given the watermark and pending deadlines."""

    lateness: timedelta
    back: timedelta  # the largest `within.after` plus the largest `within.before`
    kept: tuple[EventMatch, ...]  # what conditions without `within` (other than `open`) match
    states: tuple[OpenState, ...]
    _roles: dict[tuple[str, str], _Roles] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, rules: RuleSet) -> Pruning:
        """The reach of every rule of `rules`."""
        leaves = [leaf for rule in rules.rules for leaf in rule.leaves()]
        windows = [leaf.within for leaf in leaves if leaf.within is not None]
        after = max((max(window.after, ZERO) for window in windows), default=ZERO)
        before = max((max(window.before, ZERO) for window in windows), default=ZERO)
        unbounded = [leaf for leaf in leaves if leaf.within is None and leaf.open is None]
        return cls(
            lateness=max((rule.allowed_lateness for rule in rules.rules), default=ZERO),
            back=after + before,
            kept=tuple(match for leaf in unbounded for match in leaf.matchers()),
            states=tuple(leaf.open for leaf in leaves if leaf.open is not None),
        )

    @property
    def reach(self) -> timedelta:
        """How far behind the watermark a windowed condition may still read."""
        return self.lateness + self.back

    def horizon(self, watermark: datetime, due: Iterable[datetime] = ()) -> datetime:
        """Windowed conditions read no entry older than this any more (`due`: the person's
        pending deadlines)."""
        return _earlier(min([_earlier(watermark, self.lateness), *due]), self.back)

    def prune(self, entries: list[Entry], horizon: datetime) -> list[Entry]:
        """`entries` (one person's, in event-time order) without those nothing can read."""
        old: Old = []
        for entry in entries:
            at = event_time(entry)
            if at >= horizon:
                # Sorted by occurred_at: what follows is newer (stopping early keeps more).
                break
            old.append((entry, at, self._roles_of(entry)))
        needed = self._needed(old)
        if len(needed) == len(old):
            return entries
        gone = {id(entry) for entry, _, _ in old} - needed
        return [entry for entry in entries if id(entry) not in gone]

    def _needed(self, old: Old) -> set[int]:
        """Of entries older than the horizon: those a condition without `within` matches, the
        last closer of each `open` state per `same` value (it closes any older opener that
        comes later), and the openers no closer before the horizon closed."""
        needed: set[int] = set()
        last: list[dict[tuple[str, str], tuple[Entry, datetime]]] = [{} for _ in self.states]
        for entry, at, roles in old:
            if roles.always_kept or any(match.matches(entry) for match in roles.kept):
                needed.add(id(entry))
            for index in roles.closes:
                state = self.states[index]
                if state.closed_by.matches(entry):
                    value = _same_value(entry, state.same)
                    if value not in last[index] or at >= last[index][value][1]:
                        last[index][value] = (entry, at)
        needed.update(id(entry) for closers in last for entry, _ in closers.values())
        for entry, at, roles in old:
            if id(entry) not in needed and any(
                self.states[index].opened_by.matches(entry)
                and _still_open(at, last[index].get(_same_value(entry, self.states[index].same)))
                for index in roles.opens
            ):
                needed.add(id(entry))
        return needed

    def _roles_of(self, entry: Entry) -> _Roles:
        kind = (str(entry["event_type"]), str(entry["agency"]))
        roles = self._roles.get(kind)
        if roles is None:
            kept = [match for match in self.kept if match.may_match(*kind)]
            roles = self._roles[kind] = _Roles(
                always_kept=any(not match.where for match in kept),
                kept=tuple(kept),
                opens=tuple(
                    i for i, state in enumerate(self.states) if state.opened_by.may_match(*kind)
                ),
                closes=tuple(
                    i for i, state in enumerate(self.states) if state.closed_by.may_match(*kind)
                ),
            )
        return roles


def _still_open(opened_at: datetime, closer: tuple[Entry, datetime] | None) -> bool:
    return closer is None or closer[1] < opened_at
