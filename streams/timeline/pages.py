"""A page of a person's timeline read from the month buckets (streams/timeline/store.py).

Months are read in order and only as far as needed: those before `from` or the cursor are
skipped, and reading stops after `to` or once a page and one more entry (which says there is a
next page) are found, so a long history is paged without reading all of it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from streams.timeline.entries import Entry
from streams.timeline.store import month_key


@dataclass(frozen=True)
class TimelineQuery:
    """The filters and paging of `GET /persons/{id}/timeline`; times are `iso()` strings."""

    agency: str | None = None
    event_type: str | None = None
    since: str | None = None
    until: str | None = None
    after: str | None = None  # a cursor: `position()` of the last entry already served
    limit: int = 100

    def matches(self, entry: Entry) -> bool:
        return (
            (self.agency is None or entry["agency"] == self.agency)
            and (self.event_type is None or entry["event_type"] == self.event_type)
            and (self.since is None or entry["occurred_at"] >= self.since)
            and (self.until is None or entry["occurred_at"] <= self.until)
            and (self.after is None or position(entry) > self.after)
        )


def position(entry: Entry) -> str:
    """A stable paging cursor: the entry's place in event-time order."""
    return f"{entry['occurred_at']}|{entry['event_id']}"


def selected(
    months: Mapping[str, Any], person_id: str, head: Mapping[str, Any], query: TimelineQuery
) -> Iterator[Entry]:
    """The person's entries the query selects, in event-time order, read month by month."""
    # Every entry's occurred_at (and so its position) starts with its month: a month before
    # the first seven characters of `from` or of the cursor holds nothing at or after them.
    first = max((query.since or "")[:7], (query.after or "")[:7])
    last = query.until[:7] if query.until is not None else None
    stored: list[str] = head.get("months", [])
    for month in stored[bisect.bisect_left(stored, first) :]:
        if last is not None and month > last:
            return
        for entry in months.get(month_key(person_id, month)) or []:
            if query.matches(entry):
                yield entry


def read_page(
    months: Mapping[str, Any], person_id: str, head: Mapping[str, Any], query: TimelineQuery
) -> tuple[list[Entry], str | None]:
    """At most `limit` selected entries, and the cursor of the next page (None: last page)."""
    found = list(islice(selected(months, person_id, head, query), query.limit + 1))
    page = found[: query.limit]
    return page, position(page[-1]) if len(found) > query.limit else None
