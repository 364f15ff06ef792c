"""Each person's timeline stored per month, so storing an event costs the same at any length.

Two dict-like stores (Faust tables in the worker, dicts in tests):

- `heads`, keyed by person id: `{"household": {person_id: relationship}, "links": {record_id:
  link}, "months": ["YYYY-MM", ...]}` (sorted, the months holding entries), plus
  `"listed_by": {person_id: relationship}` once others' records list the person (what the
  person is to each of them) and `"moved_records": {record_id: person_id}` once a split moved
  records away; a person merged into another keeps only `{"merged_into": survivor}`.
- `months`, keyed `<person id>/<YYYY-MM>`: that month's entries, sorted by (occurred_at,
  event_id), each event_id once (an event id always has the same occurred_at, so it can only
  be in one month).

Storing an event writes its month bucket, and the head only when the month or a household
member is new. Values read from the stores are never changed in place: a Faust table's memory
store hands out its own objects, and an unwritten change there would never reach the changelog.

Contents that leave a person (a merge, a split, an event arriving for a merged person or a
moved record) are queued in `outgoing` as `absorb` changes for the person they go to; the
Faust shell sends them to that person's partition, where `apply` adds them. So do the members a
person's household newly lists, or lists as something else: each is told how it is listed
(`listed_by`), so both sides of a household read the relationship (backbone/household.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from enum import Enum
from typing import Any

from backbone.household import household_as_read
from streams.timeline.entries import (
    Entry,
    Household,
    insert_entry,
    month_of,
    with_members,
    with_moved_links,
)

Head = dict[str, Any]
Change = dict[str, Any]
Arrival = tuple[Entry, Household]
# Entries per outgoing absorb change: a long history moves in several Kafka-sized pieces.
MAX_EVENTS_PER_ABSORB = 200


class Outcome(Enum):
    """What storing one arriving event did."""

    ADDED = "added"
    DUPLICATE = "duplicate"
    MOVED = "moved"


def month_key(person_id: str, month: str) -> str:
    """The `months` key of a person's month bucket."""
    return f"{person_id}/{month}"


def new_head() -> Head:
    return {"household": {}, "links": {}, "months": []}


def household_of_head(head: Head) -> Household:
    """The person's household as the timeline shows it: whom the person's records list, and
    whose records list the person, each relationship read from the person's side."""
    return household_as_read(head.get("household", {}), head.get("listed_by", {}))


def change_problem(change: Any) -> str | None:
    """What makes an identity change unusable (the field), or None; checked before applying,
    so a malformed change is dead-lettered instead of stopping the agent half-way."""
    if not isinstance(change, dict):
        return "change: not a JSON object"
    if not isinstance(change.get("person_id"), str):
        return "person_id: missing"
    required: dict[str, tuple[tuple[str, type], ...]] = {
        "link": (("link", dict),),
        "merge": (("into", str),),
        "split": (("records", list), ("into", str), ("listed", list), ("link", dict)),
        "absorb": (("timeline", dict),),
        "erase": (),
    }
    kind = change.get("change")
    if kind not in required:
        return f"change: unknown kind {kind!r}"
    for field, kind_of in required[kind]:
        if not isinstance(change.get(field), kind_of):
            return f"{field}: missing or not a {kind_of.__name__}"
    if kind == "link" and not isinstance(change["link"].get("record_id"), str):
        return "link.record_id: missing"
    return None


class TimelineStore:
    """Persons' timelines over a `heads` and a `months` store."""

    def __init__(self, heads: MutableMapping[str, Any], months: MutableMapping[str, Any]) -> None:
        self.heads = heads
        self.months = months
        self.outgoing: list[Change] = []

    def drain(self) -> list[Change]:
        """The absorb changes queued since the last drain, for the survivors' partitions."""
        outgoing, self.outgoing = self.outgoing, []
        return outgoing

    def entries(self, person_id: str) -> Iterator[Entry]:
        """Every entry of the person, in event-time order (reads every month: for tests and
        moves, not for serving pages)."""
        head = self.heads.get(person_id) or {}
        for month in head.get("months", []):
            yield from self.months.get(month_key(person_id, month)) or []

    # Person events

    def record(self, person_id: str, arrivals: Sequence[Arrival]) -> list[Outcome]:
        """Store a person's arriving events (each with the household identity attached), in
        arrival order; events for a merged person or a moved record follow them."""
        stored = self.heads.get(person_id)
        if stored is not None and "merged_into" in stored:
            self._move_arrivals(person_id, stored["merged_into"], arrivals)
            return [Outcome.MOVED] * len(arrivals)
        head = stored or new_head()
        moved_records: dict[str, str] = head.get("moved_records", {})
        household: Household = head.get("household", {})
        leaving: dict[str, list[Arrival]] = {}
        staying: list[Entry] = []
        decided: list[Outcome | None] = []
        for entry, members in arrivals:
            moved_to = moved_records.get(entry["record_id"])
            if moved_to is not None:
                # Split off after identity sent the event: it follows its record.
                leaving.setdefault(moved_to, []).append((entry, members))
                decided.append(Outcome.MOVED)
                continue
            staying.append(entry)
            decided.append(None)
            household = with_members(household, person_id, members)
        added, months = self._add_entries(person_id, head, staying)
        new = iter(added)
        outcomes = [
            outcome or (Outcome.ADDED if next(new) else Outcome.DUPLICATE) for outcome in decided
        ]
        self._write_head(person_id, stored, {**head, "household": household, "months": months})
        self._tell_members(person_id, head.get("household", {}), household)
        for moved_to, moved in leaving.items():
            self._move_arrivals(person_id, moved_to, moved)
        return outcomes

    # Identity changes

    def apply(self, change: Change) -> bool:
        """Apply one identity change keyed by its person (see `change_problem` for the
        shapes); False if it changed nothing here."""
        person_id, kind = change["person_id"], change["change"]
        if kind == "erase":
            return self.erase(person_id)
        stored = self.heads.get(person_id)
        if stored is not None and "merged_into" in stored and kind != "merge":
            return self._send(stored["merged_into"], _contents_of(change))
        if kind == "merge":
            return self.merge(person_id, change["into"])
        if kind == "link":
            return self.link(person_id, change["link"])
        if kind == "split":
            return self.split(person_id, change)
        return self.absorb(person_id, change["timeline"])

    def link(self, person_id: str, link: dict[str, Any]) -> bool:
        """Keep the newest decision on a record (a coordinator's over the resolver's)."""
        stored = self.heads.get(person_id)
        head = stored or new_head()
        links: dict[str, Any] = head.get("links", {})
        known = links.get(link["record_id"])
        if known is not None and "agency" not in link:
            # A relink by a merge someone asserted names the basis, not the agency.
            link = {"agency": known.get("agency"), **link}
        if known == link:
            return False
        return self._write_head(
            person_id, stored, {**head, "links": {**links, link["record_id"]: link}}
        )

    def merge(self, person_id: str, into: str) -> bool:
        """Leave a `merged_into` stub and send everything the person held to the survivor."""
        stored = self.heads.get(person_id) or {}
        if into == person_id or stored.get("merged_into") == into:
            return False
        self.heads[person_id] = {"merged_into": into}
        events = self._take_months(person_id, stored.get("months", []))
        contents = {
            "events": events,
            "household": stored.get("household", {}),
            "listed_by": stored.get("listed_by", {}),
            "links": stored.get("links", {}),
        }
        self._send(into, contents)
        return True

    def split(self, person_id: str, change: Change) -> bool:
        """Relink the records a coordinator split off, and move the moved group's events and
        links to their new person; later events of those records follow them there."""
        stored = self.heads.get(person_id)
        head = stored or new_head()
        links = dict(head.get("links", {}))
        for record_id in change["listed"]:
            agency = links.get(record_id, {}).get("agency")
            links[record_id] = {"record_id": record_id, "agency": agency, **change["link"]}
        moved = set(change["records"])
        kept_months: list[str] = []
        leaving: list[Entry] = []
        for month in head.get("months", []):
            key = month_key(person_id, month)
            bucket: list[Entry] = self.months.get(key) or []
            kept = [entry for entry in bucket if entry.get("record_id") not in moved]
            if len(kept) != len(bucket):
                leaving.extend(entry for entry in bucket if entry.get("record_id") in moved)
                if kept:
                    self.months[key] = kept
                else:
                    _delete(self.months, key)
            if kept:
                kept_months.append(month)
        into: str = change["into"]
        self.heads[person_id] = {
            **head,
            "links": {key: link for key, link in links.items() if key not in moved},
            "months": kept_months,
            "moved_records": {**head.get("moved_records", {}), **dict.fromkeys(moved, into)},
        }
        moved_links = {key: link for key, link in links.items() if key in moved}
        self._send(into, {"events": leaving, "links": moved_links})
        return True

    def absorb(self, person_id: str, contents: dict[str, Any]) -> bool:
        """Add contents moved here from another person (merged, or split from), deduplicated
        by event id, or how another person's household lists this one (`listed_by`); records
        coming (back) here are no longer elsewhere."""
        stored = self.heads.get(person_id)
        head = stored or new_head()
        _added, months = self._add_entries(person_id, head, contents.get("events", []))
        moved_links = contents.get("links", {})
        moved_records = {
            record_id: to
            for record_id, to in head.get("moved_records", {}).items()
            if record_id not in moved_links
        }
        household: Household = head.get("household", {})
        updated = {
            **head,
            "months": months,
            "household": with_members(household, person_id, contents.get("household", {})),
            "links": with_moved_links(head.get("links", {}), moved_links),
            "listed_by": with_members(
                head.get("listed_by", {}), person_id, contents.get("listed_by", {})
            ),
            "moved_records": moved_records,
        }
        for optional in ("listed_by", "moved_records"):
            if not updated[optional]:
                del updated[optional]
        self._tell_members(person_id, household, updated["household"])
        return self._write_head(person_id, stored, updated)

    def erase(self, person_id: str) -> bool:
        """Delete the head and every month bucket: tombstones on the changelogs."""
        stored = self.heads.get(person_id)
        if stored is None:
            return False
        for month in stored.get("months", []):
            _delete(self.months, month_key(person_id, month))
        del self.heads[person_id]
        return True

    # Internals

    def _add_entries(
        self, person_id: str, head: Head, entries: Iterable[Entry]
    ) -> tuple[list[bool], list[str]]:
        """Insert entries into their month buckets, each changed bucket written once; returns
        whether each entry was new, and the head's months with the new ones."""
        buckets: dict[str, list[Entry]] = {}
        changed: set[str] = set()
        added = []
        for entry in entries:
            month = month_of(entry)
            bucket = buckets.get(month)
            if bucket is None:
                bucket = buckets[month] = list(self.months.get(month_key(person_id, month)) or [])
            if insert_entry(bucket, entry):
                changed.add(month)
                added.append(True)
            else:
                added.append(False)
        months: list[str] = list(head.get("months", []))
        for month in changed:
            self.months[month_key(person_id, month)] = buckets[month]
            if month not in months:
                bisect.insort(months, month)
        return added, months

    def _write_head(self, person_id: str, stored: Head | None, head: Head) -> bool:
        """Write the head if it differs from what is stored; True if it was written."""
        if head == stored:
            return False
        self.heads[person_id] = head
        return True

    def _take_months(self, person_id: str, months: Iterable[str]) -> list[Entry]:
        """Every entry of these months, the buckets deleted."""
        entries: list[Entry] = []
        for month in months:
            key = month_key(person_id, month)
            entries.extend(self.months.get(key) or [])
            _delete(self.months, key)
        return entries

    def _tell_members(self, person_id: str, before: Household, after: Household) -> None:
        """Each member `after` lists anew, or as something else than `before`, is told what
        it is to this person, for its own side of the household."""
        for member, relationship in after.items():
            if before.get(member) != relationship:
                self._send(member, {"listed_by": {person_id: relationship}})

    def _move_arrivals(self, person_id: str, to: str, arrivals: Sequence[Arrival]) -> None:
        household: Household = {}
        for _entry, members in arrivals:
            household = with_members(household, person_id, members)
        self._send(to, {"events": [entry for entry, _members in arrivals], "household": household})

    def _send(self, to: str, contents: dict[str, Any]) -> bool:
        """Queue `contents` for person `to`, a long history in several absorb changes."""
        events: list[Entry] = contents.get("events", [])
        first = {key: value for key, value in contents.items() if key != "events" and value}
        pieces = [
            events[at : at + MAX_EVENTS_PER_ABSORB]
            for at in range(0, len(events), MAX_EVENTS_PER_ABSORB)
        ]
        if first and pieces:
            first["events"] = pieces.pop(0)
        timelines = ([first] if first else []) + [{"events": piece} for piece in pieces]
        for timeline in timelines:
            self.outgoing.append({"person_id": to, "change": "absorb", "timeline": timeline})
        return bool(timelines)


def _contents_of(change: Change) -> dict[str, Any]:
    """The timeline contents a change carries on to the person a merged one went to."""
    if change["change"] == "link":
        return {"links": {change["link"]["record_id"]: change["link"]}}
    contents: dict[str, Any] = change.get("timeline", {})
    return contents


def _delete(store: MutableMapping[str, Any], key: str) -> None:
    if key in store:
        del store[key]
