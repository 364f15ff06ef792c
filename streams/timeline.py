"""The unified person timeline: every agency's events about one person, in event-time order.

A timeline is `{"household": {person_id: relationship}, "events": [entry, ...]}` in a table
keyed by person id. Entries are deduplicated by event_id and kept sorted by occurred_at, so
late or repeated events land where they belong and only once.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import faust

from backbone.logging import get_logger
from backbone.metrics import END_TO_END_SECONDS, EVENTS_IN
from backbone.topics import Topics
from streams.dead_letters import DeadLetters
from streams.identity import person_id_for

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
    if any(existing["event_id"] == entry["event_id"] for existing in events):
        return False
    order = [(existing["occurred_at"], existing["event_id"]) for existing in events]
    events.insert(bisect.bisect(order, (entry["occurred_at"], entry["event_id"])), entry)
    return True


def household_of(record: dict[str, Any]) -> dict[str, str]:
    """Household members a social care event lists, as person id -> relationship."""
    return {
        person_id_for(member["subject"]): member["relationship"]
        for member in record.get("household", [])
    }


class Timelines:
    """Consumes person events and keeps each person's timeline in a table."""

    def __init__(self, app: faust.App, topics: Topics, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters
        self.table = app.Table("timelines", default=dict)
        source = app.topic(topics.person_events, key_serializer="raw", value_serializer="raw")

        async def record_events(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self.record(event)
                yield None

        app.agent(source, name=PROCESSOR)(record_events)

    async def record(self, event: faust.EventT[bytes]) -> None:
        """Add one person event to its person's timeline."""
        record = await self.dead_letters.decode(PROCESSOR, event)
        if record is None:
            return
        person_id = event.key.decode() if isinstance(event.key, bytes) else str(event.key)
        envelope = record["envelope"]
        EVENTS_IN.labels(PROCESSOR, envelope["agency"]).inc()
        timeline: Timeline = dict(self.table[person_id])
        added = add_event(timeline, timeline_entry(record))
        household = household_of(record)
        household.pop(person_id, None)
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
