"""Timeline assembly: event-time order whatever the arrival order, each event once."""

from __future__ import annotations

import itertools

from streams.timeline.entries import add_event


def entry(event_id: str, occurred_at: str) -> dict[str, str]:
    return {"event_id": event_id, "occurred_at": occurred_at}


def test_every_arrival_order_gives_the_same_timeline_without_duplicates() -> None:
    entries = [
        entry("c", "2026-01-03T00:00:00.000000+00:00"),
        entry("a", "2026-01-01T00:00:00.000000+00:00"),
        entry("b", "2026-01-02T00:00:00.000000+00:00"),
        entry("b2", "2026-01-02T00:00:00.000000+00:00"),
    ]
    for arrival in itertools.permutations([*entries, entries[0]]):
        timeline: dict[str, object] = {}
        added = [add_event(timeline, e) for e in arrival]
        assert [e["event_id"] for e in timeline["events"]] == ["a", "b", "b2", "c"]  # type: ignore[index]
        assert added.count(False) == 1
