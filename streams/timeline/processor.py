"""The unified person timeline: every agency's events about one person, in event-time order.

A timeline is `{"household": {person_id: relationship}, "events": [entry, ...],
"links": {record_id: link}}` in a table keyed by person id. Entries are deduplicated by
event_id and kept sorted by occurred_at, so late or repeated events land where they belong and
only once. A person merged into another keeps only `{"merged_into": survivor}`: its events,
household and links move to the survivor, and anything arriving for it later follows them.
"""

from __future__ import annotations

import bisect
import json
import operator
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import faust

from backbone.logging import get_logger
from backbone.metrics import END_TO_END_SECONDS, EVENTS_IN
from backbone.topics import Topics
from streams.operations.dead_letters import DeadLetters

log = get_logger(__name__)
PROCESSOR = "timeline"
AGENCY_LABELS = {
    "health": "Health",
    "jobcentre": "Jobcentre",
    "housing": "Housing",
    "social_care": "Social care",
}
Entry = dict[str, Any]
Timeline = dict[str, Any]
_EVENT_ID = operator.itemgetter("event_id")
_EVENT_ORDER = operator.itemgetter("occurred_at", "event_id")


def iso(moment: datetime) -> str:
    """UTC with microseconds always written, so the strings sort in time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def timeline_entry(record: dict[str, Any]) -> Entry:
    """What a timeline shows of one event; `details` are the family fields of the event."""
    envelope = record["envelope"]
    details = {key: value for key, value in record.items() if key not in ("envelope", "household")}
    what = envelope["event_type"].replace("_", " ")
    return {
        "event_id": envelope["event_id"],
        # The agency record it is about (keyed hash): a split moves the record's events.
        "record_id": envelope["subject"]["record_id"],
        "event_type": envelope["event_type"],
        "agency": envelope["agency"],
        "occurred_at": iso(envelope["occurred_at"]),
        "recorded_at": iso(envelope["recorded_at"]),
        "summary": f"{AGENCY_LABELS[envelope['agency']]}: {what}",
        "details": _jsonable(details),
    }


def add_event(timeline: Timeline, entry: Entry) -> bool:
    """Insert `entry` in event-time order; False if the timeline already has its event_id."""
    events: list[Entry] = timeline.setdefault("events", [])
    # itemgetter keeps both scans in C: this runs for every event on timelines that grow.
    if entry["event_id"] in map(_EVENT_ID, events):
        return False
    events.insert(bisect.bisect(events, _EVENT_ORDER(entry), key=_EVENT_ORDER), entry)
    return True


def household_of(event: faust.EventT[bytes]) -> dict[str, str]:
    """Household members (resolved person id -> relationship), as identity attached them."""
    raw = (event.headers or {}).get("household")
    return dict(json.loads(raw)) if raw else {}


def absorb(timeline: Timeline, person_id: str, moved: Timeline) -> bool:
    """Add what a merged person's timeline held; False if `timeline` already had all of it."""
    added = [add_event(timeline, entry) for entry in moved.get("events", [])]
    household = {k: v for k, v in moved.get("household", {}).items() if k != person_id}
    links = moved.get("links", {})
    changed = any(added) or bool(household.items() - timeline.get("household", {}).items())
    changed = changed or bool(links.keys() - timeline.get("links", {}).keys())
    timeline["household"] = {**timeline.get("household", {}), **household}
    # A link already here is newer than a moved one (a coordinator's decision on the record).
    timeline["links"] = {**links, **timeline.get("links", {})}
    return changed


class Timelines:
    """Consumes person events and keeps each person's timeline in a table."""

    def __init__(self, app: faust.App, topics: Topics, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters
        self.table = app.Table("timelines", default=dict)
        source = app.topic(topics.person_events, key_serializer="raw", value_serializer="raw")
        self.changes = app.topic(
            topics.identity_changes, key_serializer="raw", value_serializer="json"
        )

        async def record_events(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self.record(event)
                yield None

        async def apply_changes(stream: faust.StreamT[dict[str, Any]]) -> AsyncIterator[None]:
            async for change in stream:
                await self.apply(change)
                yield None

        app.agent(source, name=PROCESSOR)(record_events)
        app.agent(self.changes, name=f"{PROCESSOR}-identity-changes")(apply_changes)

    async def record(self, event: faust.EventT[bytes]) -> None:
        """Add one person event to its person's timeline."""
        record = await self.dead_letters.decode(PROCESSOR, event)
        if record is None:
            return
        person_id = event.key.decode() if isinstance(event.key, bytes) else str(event.key)
        envelope = record["envelope"]
        EVENTS_IN.labels(PROCESSOR, envelope["agency"]).inc()
        timeline: Timeline = dict(self.table[person_id])
        entry = timeline_entry(record)
        household = household_of(event)
        household.pop(person_id, None)
        moved_to = timeline.get("merged_into") or timeline.get("moved_records", {}).get(
            entry["record_id"]
        )
        if moved_to:
            # Identity merged this person, or split the record off it, after sending the
            # event: it follows the others.
            await self._move(moved_to, {"events": [entry], "household": household})
            return
        added = add_event(timeline, entry)
        if added or household.items() - timeline.get("household", {}).items():
            timeline["household"] = {**timeline.get("household", {}), **household}
            # Reassigning the value is what writes the table's changelog.
            self.table[person_id] = timeline
        END_TO_END_SECONDS.labels(PROCESSOR).observe(
            (datetime.now(UTC) - envelope["recorded_at"]).total_seconds()
        )
        log.info(
            "timeline_updated" if added else "duplicate_event_dropped",
            event_id=envelope["event_id"],
            person_id=person_id,
        )

    async def apply(self, change: dict[str, Any]) -> None:
        """Apply an identity change keyed by this person: a link, a merge, moved contents."""
        person_id = change["person_id"]
        if change["change"] == "erase":
            if person_id in self.table:
                del self.table[person_id]  # a tombstone on the changelog: gone on recovery
                log.info("timeline_erased", person_id=person_id)
            return
        timeline: Timeline = dict(self.table[person_id])
        if "merged_into" in timeline and change["change"] != "merge":
            await self._move(timeline["merged_into"], _contents_of(change))
            return
        if change["change"] == "merge":
            if timeline.get("merged_into") == change["into"]:
                return
            self.table[person_id] = {"merged_into": change["into"]}
            await self._move(change["into"], timeline)
            log.info("timeline_merged", person_id=person_id, into=change["into"])
            return
        if change["change"] == "link":
            # The newest decision on a record wins (a coordinator's over the resolver's).
            link = change["link"]
            known = timeline.get("links", {}).get(link["record_id"])
            if known is not None and "agency" not in link:
                # A relink by a merge someone asserted names the basis, not the agency.
                link = {"agency": known.get("agency"), **link}
            if known != link:
                timeline["links"] = {**timeline.get("links", {}), link["record_id"]: link}
                self.table[person_id] = timeline
            return
        if change["change"] == "split":
            await self._split(person_id, timeline, change)
            return
        contents = _contents_of(change)
        # Records coming (back) here are no longer elsewhere.
        returned = timeline.get("moved_records", {}).keys() & contents.get("links", {}).keys()
        if absorb(timeline, person_id, contents) or returned:
            for record_id in returned:
                del timeline["moved_records"][record_id]
            self.table[person_id] = timeline

    async def _split(self, person_id: str, timeline: Timeline, change: dict[str, Any]) -> None:
        """Relink the records a coordinator split off, and move the moved group's events and
        links to their new person; later events of those records follow them there."""
        links = dict(timeline.get("links", {}))
        for record_id in change["listed"]:
            agency = links.get(record_id, {}).get("agency")
            links[record_id] = {"record_id": record_id, "agency": agency, **change["link"]}
        moved = set(change["records"])
        events = timeline.get("events", [])
        timeline["events"] = [entry for entry in events if entry.get("record_id") not in moved]
        timeline["links"] = {key: link for key, link in links.items() if key not in moved}
        timeline["moved_records"] = {
            **timeline.get("moved_records", {}),
            **dict.fromkeys(moved, change["into"]),
        }
        self.table[person_id] = timeline
        contents = {
            "events": [entry for entry in events if entry.get("record_id") in moved],
            "links": {key: link for key, link in links.items() if key in moved},
        }
        await self._move(change["into"], contents)
        log.info("timeline_split", person_id=person_id, into=change["into"])

    async def _move(self, survivor: str, contents: Timeline) -> None:
        """Send timeline contents to the survivor's partition, where `apply` adds them."""
        await self.changes.send(
            key=survivor.encode(),
            value={"person_id": survivor, "change": "absorb", "timeline": contents},
        )


def _contents_of(change: dict[str, Any]) -> Timeline:
    """The timeline contents a link or absorb change carries."""
    if change["change"] == "link":
        return {"links": {change["link"]["record_id"]: change["link"]}}
    contents: Timeline = change.get("timeline", {})
    return contents
