"""What the rule engine sees of a person: their timeline and their household members' timelines.

Timelines are the timeline processor's values (streams/timeline/processor.py):
`{"household": {person_id: relationship}, "events": [entry, ...]}`, where each entry has
`event_id`, `event_type`, `agency`, `occurred_at` (ISO 8601 UTC), `summary` and `details`.
A member's `household` map says what others are to that member: a child's map lists its
parent as `{parent_id: "parent"}`, so from the parent's side `person_is: [parent]` picks
the parent's children. A member whose map does not name the person reads the person's own map
from the other side (backbone/household.py): a parent whose map lists a `child` is that
child's `parent`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, NamedTuple

from backbone.household import relationship_to

Entry = dict[str, Any]
Timeline = dict[str, Any]


def event_time(entry: Entry) -> datetime:
    """An entry's occurred_at as an aware datetime."""
    return datetime.fromisoformat(entry["occurred_at"])


class Occurrence(NamedTuple):
    """One event on somebody's timeline, with its event time parsed once (a named tuple: a
    view makes one per entry on every evaluation, at half a dataclass's cost)."""

    person_id: str
    entry: Entry
    at: datetime

    @property
    def event_id(self) -> str:
        """The event's id (unique across the backbone)."""
        return str(self.entry["event_id"])


def occurrences(person_id: str, timeline: Timeline) -> tuple[Occurrence, ...]:
    """A timeline's events as occurrences, in event-time order."""
    found = [
        Occurrence(person_id, entry, event_time(entry)) for entry in timeline.get("events", [])
    ]
    found.sort(key=_event_order)
    return tuple(found)


def _event_order(occurrence: Occurrence) -> tuple[datetime, str]:
    return occurrence.at, str(occurrence.entry["event_id"])


@dataclass(frozen=True)
class PersonView:
    """A person's timeline and the timelines of the household members the caller knows of."""

    person_id: str
    timeline: Timeline
    household: Mapping[str, Timeline] = field(default_factory=dict)

    @cached_property
    def own_events(self) -> tuple[Occurrence, ...]:
        """The person's own events, in event-time order."""
        return occurrences(self.person_id, self.timeline)

    @cached_property
    def _member_events(self) -> dict[str, tuple[Occurrence, ...]]:
        return {
            member_id: occurrences(member_id, timeline)
            for member_id, timeline in self.household.items()
            if member_id != self.person_id
        }

    def member_events(self, person_is: Collection[str] | None) -> Iterator[Occurrence]:
        """Household members' events; with `person_is`, only members who list the person so."""
        for events in self.member_timelines(person_is):
            yield from events

    def member_timelines(
        self, person_is: Collection[str] | None
    ) -> Iterator[tuple[Occurrence, ...]]:
        """`member_events` member by member, each in event-time order."""
        for member_id, events in self._member_events.items():
            if person_is is None or self.role_for(member_id) in person_is:
                yield events

    def role_for(self, member_id: str) -> str | None:
        """What the person is to this member: as the member's household map records it, else
        the reciprocal of what the person's own map says the member is."""
        listed = self.household[member_id].get("household", {}).get(self.person_id)
        own = self.timeline.get("household", {}).get(member_id)
        return relationship_to(listed, own)

    def find(self, event_id: str) -> Occurrence | None:
        """The person's own event with this id, if on the timeline."""
        return next((o for o in self.own_events if o.event_id == event_id), None)
