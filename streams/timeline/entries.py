"""Timeline entries: what a timeline shows of one event, and how entries are kept in order.

Pure (no Faust, no Kafka), so the timeline store, the alert tracker and the benchmark's model
share one definition of an entry, its order and its deduplication.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

AGENCY_LABELS = {
    "health": "Health",
    "jobcentre": "Jobcentre",
    "housing": "Housing",
    "social_care": "Social care",
}
Entry = dict[str, Any]
Timeline = dict[str, Any]
Household = dict[str, str]
_EVENT_ID = operator.itemgetter("event_id")
_EVENT_ORDER = operator.itemgetter("occurred_at", "event_id")


def iso(moment: datetime) -> str:
    """UTC with microseconds always written, so the strings sort in time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def month_of(entry: Entry) -> str:
    """`YYYY-MM` of the entry's event time: the bucket it is stored in."""
    month: str = entry["occurred_at"][:7]
    return month


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
    """What a timeline shows of one event; `details` are the family fields of the event, and
    `initial_load: true` marks the state a connector found at go-live (absent otherwise)."""
    envelope = record["envelope"]
    details = {key: value for key, value in record.items() if key not in ("envelope", "household")}
    what = envelope["event_type"].replace("_", " ")
    entry = {
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
    if envelope.get("initial_load"):
        # Only when true: most entries are live changes, and every entry is stored.
        entry["initial_load"] = True
    return entry


def insert_entry(entries: list[Entry], entry: Entry) -> bool:
    """Insert `entry` in event-time order; False if `entries` already has its event_id."""
    # itemgetter keeps both scans in C: this runs for every event.
    if entry["event_id"] in map(_EVENT_ID, entries):
        return False
    entries.insert(bisect.bisect(entries, _EVENT_ORDER(entry), key=_EVENT_ORDER), entry)
    return True


def add_event(timeline: Timeline, entry: Entry) -> bool:
    """Insert `entry` in a whole timeline's `events`; False if it has the event_id already."""
    events: list[Entry] = timeline.setdefault("events", [])
    return insert_entry(events, entry)


def with_members(
    household: Mapping[str, str], person_id: str, members: Mapping[str, str]
) -> Household:
    """`household` with `members` added (newer relationships win), never the person itself."""
    return {**household, **{key: value for key, value in members.items() if key != person_id}}


def with_moved_links(links: Mapping[str, Any], moved: Mapping[str, Any]) -> dict[str, Any]:
    """`links` with links moved from elsewhere; a link already here is newer (a coordinator's
    decision on the record) and stays."""
    return {**moved, **links}
