"""The timeline stored per month (streams/timeline/store.py) on dict stores, its paging
(streams/timeline/pages.py), and the Faust shell's frame handling with dict-backed tables.

Pure and fast: no broker. The end-to-end path is in tests/test_timeline_order.py and the
integration tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import faust

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import EVENT_SCHEMAS, Agency
from backbone.frames import FramedEvent
from backbone.settings import REPO_ROOT
from backbone.topics import Topics
from streams.framing.batched_table import BatchedTable
from streams.identity.messages import decode_change, encode_change
from streams.operations.dead_letters import DeadLetters
from streams.timeline.entries import Entry, iso, month_of, timeline_entry
from streams.timeline.pages import TimelineQuery, position, read_page
from streams.timeline.processor import Timelines
from streams.timeline.store import (
    MAX_EVENTS_PER_ABSORB,
    Arrival,
    Change,
    Outcome,
    TimelineStore,
    change_problem,
    household_of_head,
    month_key,
)
from streams.topology import declare_channels, declare_tables
from tests.test_codec import social_care_record

START = datetime(2025, 11, 20, 9, 0, tzinfo=UTC)
AGENCIES = {"health": "attendance", "housing": "notice_served", "social_care": "case_opened"}


def entry(event_id: str, at: datetime, record_id: str = "r1", agency: str = "health") -> Entry:
    """A timeline entry as timeline_entry() makes it (only the fields the store reads)."""
    return {
        "event_id": event_id,
        "record_id": record_id,
        "event_type": AGENCIES[agency],
        "agency": agency,
        "occurred_at": iso(at),
        "recorded_at": iso(at),
        "summary": event_id,
        "details": {},
    }


class Counting(dict[str, Any]):
    """A dict store that remembers the keys written or deleted since `reset`."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []
        self.read: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.written.append(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.written.append(key)
        super().__delitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.append(key)
        return super().get(key, default)

    def reset(self) -> None:
        self.written.clear()
        self.read.clear()


def new_store() -> tuple[TimelineStore, Counting, Counting]:
    heads, months = Counting(), Counting()
    return TimelineStore(heads, months), heads, months


def deliver(store: TimelineStore) -> list[Change]:
    """Apply the absorb changes the store sent on, as the survivors' partitions would."""
    sent = store.drain()
    for change in sent:
        assert change_problem(change) is None
        store.apply(change)
    return sent


def note(person_id: str, **contents: Any) -> Change:
    """The absorb change the store sends `person_id` with these timeline contents."""
    return {"person_id": person_id, "change": "absorb", "timeline": contents}


def ids(entries: Any) -> list[str]:
    return [each["event_id"] for each in entries]


def test_order_and_dedup_across_months_whatever_the_arrival_order() -> None:
    events = [
        entry("c", START + timedelta(days=45)),  # January
        entry("a", START),  # November
        entry("b", START + timedelta(days=15)),  # December
        entry("b2", START + timedelta(days=15)),  # same time: event_id decides
        entry("d", START + timedelta(days=45, seconds=1)),
    ]
    for arrival in itertools.permutations([*events, events[0], events[2]]):
        store, _heads, months = new_store()
        outcomes = [store.record("P1", [(each, {})])[0] for each in arrival]
        assert ids(store.entries("P1")) == ["a", "b", "b2", "c", "d"]
        assert outcomes.count(Outcome.DUPLICATE) == 2
        assert store.heads["P1"]["months"] == ["2025-11", "2025-12", "2026-01"]
        assert set(months) == {f"P1/{m}" for m in ("2025-11", "2025-12", "2026-01")}


def test_a_frame_of_several_events_of_a_person_writes_each_key_once() -> None:
    store, heads, months = new_store()
    arrivals: list[Arrival] = [(entry(f"e{n}", START + timedelta(days=n)), {}) for n in range(20)]
    store.record("P1", [*arrivals, arrivals[3]])
    assert sorted(months.written) == ["P1/2025-11", "P1/2025-12"]
    assert heads.written == ["P1"]


def test_storing_the_1000th_event_writes_at_most_two_keys() -> None:
    store, heads, months = new_store()
    for n in range(999):
        store.record("P1", [(entry(f"e{n}", START + timedelta(hours=n * 25)), {})])
    assert len(store.heads["P1"]["months"]) > 30
    for late, at in (
        ("in-a-known-month", START + timedelta(days=300)),
        ("new-month", START + timedelta(days=2000)),
    ):
        heads.reset()
        months.reset()
        assert store.record("P1", [(entry(late, at), {})]) == [Outcome.ADDED]
        written = heads.written + months.written
        assert len(written) <= 2, written
        assert months.written == [month_key("P1", month_of(entry(late, at)))]
        # The head only when the month is new; reads: the head and one bucket.
        assert heads.written == ([] if late == "in-a-known-month" else ["P1"])
        assert len(heads.read) + len(months.read) == 2
    heads.reset()
    months.reset()
    store.record("P1", [(entry("e5", START + timedelta(hours=5 * 25)), {})])
    assert heads.written == months.written == []  # a duplicate writes nothing


def test_household_members_are_merged_newest_relationship_first_never_the_person() -> None:
    store, heads, months = new_store()
    store.record("P1", [(entry("a", START), {"P2": "parent", "P1": "self"})])
    assert store.heads["P1"]["household"] == {"P2": "parent"}
    heads.reset()
    months.reset()
    # A repeated event still brings its household; only the head is written.
    store.record("P1", [(entry("a", START), {"P3": "sibling", "P2": "carer"})])
    assert store.heads["P1"]["household"] == {"P2": "carer", "P3": "sibling"}
    assert (heads.written, months.written) == (["P1"], [])
    heads.reset()
    store.record("P1", [(entry("b", START), {"P3": "sibling"})])
    assert heads.written == []  # nothing new in the head


def test_each_side_of_a_household_reads_the_relationship_as_it_stands_to_it() -> None:
    store, _heads, _months = new_store()
    store.record("CHILD", [(entry("c1", START), {"MUM": "parent", "SIS": "sibling"})])
    sent = deliver(store)
    assert sent == [
        note("MUM", listed_by={"CHILD": "parent"}),
        note("SIS", listed_by={"CHILD": "sibling"}),
    ]
    assert household_of_head(store.heads["CHILD"]) == {"MUM": "parent", "SIS": "sibling"}
    # Mum's own records list nobody yet: she reads the child's record from her side.
    assert household_of_head(store.heads["MUM"]) == {"CHILD": "child"}
    assert household_of_head(store.heads["SIS"]) == {"CHILD": "sibling"}
    assert store.heads["MUM"]["months"] == []

    # The same household again tells nobody; a changed relationship is told again.
    store.record("CHILD", [(entry("c2", START), {"MUM": "parent"})])
    assert store.drain() == []
    store.record("CHILD", [(entry("c3", START), {"MUM": "carer"})])
    deliver(store)
    assert household_of_head(store.heads["MUM"]) == {"CHILD": "cared_for"}

    # A person's own record wins over what the other side's implies, in either order.
    store.record("MUM", [(entry("m1", START), {"CHILD": "other"})])
    deliver(store)
    assert household_of_head(store.heads["MUM"]) == {"CHILD": "other"}
    assert household_of_head(store.heads["CHILD"]) == {"MUM": "carer", "SIS": "sibling"}
    assert store.heads["CHILD"]["listed_by"] == {"MUM": "other"}


def test_the_newest_link_wins_and_a_relink_keeps_the_agency() -> None:
    store, heads, _months = new_store()
    resolver = {"record_id": "r1", "agency": "health", "basis": "deterministic"}
    assert store.apply({"person_id": "P1", "change": "link", "link": resolver})
    heads.reset()
    assert not store.apply({"person_id": "P1", "change": "link", "link": resolver})
    assert heads.written == []
    relink = {"record_id": "r1", "basis": "coordinator", "reason": "same person"}
    assert store.apply({"person_id": "P1", "change": "link", "link": relink})
    assert store.heads["P1"]["links"]["r1"] == {"agency": "health", **relink}
    # A link for a person without events yet makes a head without months.
    store.apply({"person_id": "P9", "change": "link", "link": resolver})
    assert store.heads["P9"] == {"household": {}, "links": {"r1": resolver}, "months": []}


def test_a_merge_leaves_a_stub_and_moves_everything_to_the_survivor() -> None:
    store, _heads, months = new_store()
    store.record("A", [(entry("a1", START, "ra"), {"H": "parent"})])
    store.record("A", [(entry("shared", START + timedelta(days=31), "ra"), {})])
    store.apply({"person_id": "A", "change": "link", "link": {"record_id": "ra", "agency": "x"}})
    store.apply({"person_id": "A", "change": "link", "link": {"record_id": "rb", "agency": "old"}})
    store.record("B", [(entry("shared", START + timedelta(days=31), "rb"), {})])
    store.record("B", [(entry("b1", START + timedelta(days=60), "rb"), {})])
    store.apply({"person_id": "B", "change": "link", "link": {"record_id": "rb", "agency": "new"}})
    assert store.drain() == [note("H", listed_by={"A": "parent"})]

    assert store.apply({"person_id": "A", "change": "merge", "into": "B", "reason": "r"})
    assert store.heads["A"] == {"merged_into": "B"}
    assert not [key for key in months if key.startswith("A/")]
    sent = deliver(store)
    assert {change["person_id"] for change in sent} == {"B"}
    assert ids(store.entries("B")) == ["a1", "shared", "b1"]
    assert store.heads["B"]["household"] == {"H": "parent"}
    # The member learns of the survivor.
    assert store.drain() == [note("H", listed_by={"B": "parent"})]
    # The survivor's own link is newer than a moved one.
    assert store.heads["B"]["links"]["rb"]["agency"] == "new"
    assert store.heads["B"]["links"]["ra"]["agency"] == "x"

    # The same merge again changes nothing; what still arrives for A follows.
    assert not store.apply({"person_id": "A", "change": "merge", "into": "B", "reason": "r"})
    assert store.record("A", [(entry("late", START, "ra"), {"A": "self"})]) == [Outcome.MOVED]
    store.apply({"person_id": "A", "change": "link", "link": {"record_id": "rc", "agency": "y"}})
    deliver(store)
    assert ids(store.entries("B")) == ["a1", "late", "shared", "b1"]
    assert "rc" in store.heads["B"]["links"]
    assert store.heads["A"] == {"merged_into": "B"}


def test_an_entry_is_marked_as_the_state_found_at_go_live_only_when_it_is() -> None:
    live = social_care_record()
    found = {**live, "envelope": {**live["envelope"], "initial_load": True}}  # type: ignore[dict-item]

    assert "initial_load" not in timeline_entry(live)
    assert timeline_entry(found) == {**timeline_entry(live), "initial_load": True}


def test_a_long_history_moves_in_kafka_sized_absorb_changes() -> None:
    store, _heads, _months = new_store()
    count = 2 * MAX_EVENTS_PER_ABSORB + 50
    store.record("A", [(entry(f"e{n}", START + timedelta(hours=n)), {}) for n in range(count)])
    store.apply({"person_id": "A", "change": "merge", "into": "B"})
    sent = deliver(store)
    assert len(sent) == 3
    assert all(len(change["timeline"]["events"]) <= MAX_EVENTS_PER_ABSORB for change in sent)
    assert len(list(store.entries("B"))) == count


def test_a_split_relinks_moves_the_records_events_and_in_flight_events_follow() -> None:
    store, _heads, months = new_store()
    store.record("P", [(entry("p1", START, "r1"), {})])
    store.record("P", [(entry("q1", START + timedelta(days=1), "r2"), {})])
    store.record("P", [(entry("q2", START + timedelta(days=45), "r2"), {})])  # alone in Jan
    for record_id, agency in (("r1", "health"), ("r2", "housing")):
        link = {"record_id": record_id, "agency": agency, "basis": "deterministic"}
        store.apply({"person_id": "P", "change": "link", "link": link})
    link = {"basis": "coordinator", "outcome": "split", "coordinator": "c", "reason": "two"}
    split = {"records": ["r2"], "into": "Q", "listed": ["r2"], "link": {**link, "split_from": "P"}}
    assert change_problem({"person_id": "P", "change": "split", **split}) is None

    store.apply({"person_id": "P", "change": "split", **split})
    assert ids(store.entries("P")) == ["p1"]
    assert store.heads["P"]["months"] == ["2025-11"]
    assert "P/2026-01" not in months
    assert set(store.heads["P"]["links"]) == {"r1"}
    assert store.heads["P"]["moved_records"] == {"r2": "Q"}
    deliver(store)
    assert ids(store.entries("Q")) == ["q1", "q2"]
    assert store.heads["Q"]["links"]["r2"] == {
        "record_id": "r2",
        "agency": "housing",
        **link,
        "split_from": "P",
    }

    # Identity sent these for P before the split: r2's follows it, r1's stays.
    outcomes = store.record("P", [(entry("q3", START, "r2"), {}), (entry("p2", START, "r1"), {})])
    assert outcomes == [Outcome.MOVED, Outcome.ADDED]
    deliver(store)
    assert ids(store.entries("Q")) == ["q3", "q1", "q2"]
    assert ids(store.entries("P")) == ["p1", "p2"]

    # Records coming back (a later merge) are no longer elsewhere.
    store.apply(
        {"person_id": "P", "change": "absorb", "timeline": {"links": {"r2": {"record_id": "r2"}}}}
    )
    assert "moved_records" not in store.heads["P"]


def test_erasure_deletes_the_head_and_every_month_bucket() -> None:
    store, heads, months = new_store()
    for n in range(10):
        store.record("P", [(entry(f"e{n}", START + timedelta(days=20 * n)), {"H": "parent"})])
    store.record("Q", [(entry("q", START), {})])
    store.apply({"person_id": "M", "change": "merge", "into": "P"})
    keys = [key for key in months if key.startswith("P/")]
    assert len(keys) > 5
    heads.reset()
    months.reset()

    assert store.apply({"person_id": "P", "change": "erase"})
    assert store.apply({"person_id": "M", "change": "erase"})
    assert not store.apply({"person_id": "nobody", "change": "erase"})
    assert set(heads) == {"Q"}
    assert set(months) == {"Q/2025-11"}
    assert sorted(months.written) == sorted(keys)  # each a tombstone, once


def test_malformed_changes_are_named_before_anything_is_applied() -> None:
    assert change_problem([]) == "change: not a JSON object"
    assert change_problem({"change": "erase"}) == "person_id: missing"
    assert change_problem({"person_id": "P", "change": "rename"}) is not None
    assert change_problem({"person_id": "P", "change": "merge"}) == "into: missing or not a str"
    assert change_problem({"person_id": "P", "change": "link", "link": {}}) is not None
    assert change_problem({"person_id": "P", "change": "erase"}) is None


def history(count: int, seed: int = 7) -> list[Entry]:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        at = START + timedelta(hours=rng.randrange(0, 24 * 400), microseconds=rng.choice([0, 1]))
        agency = rng.choice(list(AGENCIES))
        events.append(entry(f"{rng.randrange(16**8):08x}-{n}", at, agency=agency))
    return events


def flat(events: list[Entry], query: TimelineQuery) -> list[Entry]:
    """The old reading: every entry sorted, filtered, then cut."""
    ordered = sorted(events, key=lambda e: (e["occurred_at"], e["event_id"]))
    return [e for e in ordered if query.matches(e)]


def pages(
    store: TimelineStore, head: dict[str, Any], query: TimelineQuery
) -> Iterator[list[Entry]]:
    after = query.after
    while True:
        page, cursor = read_page(store.months, "P", head, _with(query, after=after))
        yield page
        if cursor is None:
            return
        assert cursor == position(page[-1])
        after = cursor


def _with(query: TimelineQuery, **changes: Any) -> TimelineQuery:
    return TimelineQuery(**{**query.__dict__, **changes})


def test_paging_across_months_gives_the_flat_sort_whatever_the_filters() -> None:
    events = history(300)
    store, _heads, _months = new_store()
    for at in range(0, len(events), 17):
        store.record("P", [(each, {}) for each in events[at : at + 17]])
    head = store.heads["P"]
    since, until = iso(START + timedelta(days=50)), iso(START + timedelta(days=200))
    middle = flat(events, TimelineQuery())[120]
    for agency, event_type, low, high, after, limit in itertools.product(
        (None, "health"),
        (None, "notice_served"),
        (None, since),
        (None, until),
        (None, position(middle)),
        (1, 7, 1000),
    ):
        query = TimelineQuery(agency, event_type, low, high, after, limit)
        expected = flat(events, query)
        served = list(pages(store, head, query))
        assert [e for page in served for e in page] == expected
        assert all(len(page) <= limit for page in served)


def test_a_page_reads_only_the_months_it_needs() -> None:
    events = [entry(f"e{n:03}", START + timedelta(days=n)) for n in range(400)]
    store, _heads, months = new_store()
    for each in events:
        store.record("P", [(each, {})])
    head = store.heads["P"]
    months.reset()
    page, cursor = read_page(months, "P", head, TimelineQuery(limit=5))
    assert ids(page) == [f"e{n:03}" for n in range(5)] and cursor is not None
    assert months.read == ["P/2025-11"]
    months.reset()
    query = TimelineQuery(
        since=iso(START + timedelta(days=100)), until=iso(START + timedelta(days=140))
    )
    page, cursor = read_page(months, "P", head, query)
    assert len(page) == 41 and cursor is None
    assert months.read == ["P/2026-02", "P/2026-03", "P/2026-04"]
    months.reset()
    read_page(months, "P", head, TimelineQuery(after=position(events[300]), limit=3))
    assert months.read == [month_key("P", month_of(events[300]))]


# The Faust shell, its tables replaced by dicts ---------------------------------------------

CODEC = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))


def encoded_event(event_id: str, at: datetime) -> bytes:
    record = social_care_record()
    record["envelope"] = {
        **record["envelope"],  # type: ignore[dict-item]
        "event_id": event_id,
        "occurred_at": at,
        "recorded_at": at,
    }
    return CODEC.encode(EVENT_SCHEMAS[Agency.SOCIAL_CARE], record)


class Sent:
    """Stands in for a Faust topic and the dead-letter topic: remembers what was sent."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self.dead: list[tuple[bytes, str]] = []

    async def send(self, *, value: bytes, partition: int) -> None:
        self.frames.append((partition, value))

    async def dead_letter(self, _processor: str, raw: bytes, reason: str, _source: str) -> None:
        self.dead.append((raw, reason))


def shell() -> tuple[Timelines, Sent]:
    app = faust.App("timeline-store-test", store="memory://", autodiscover=False)
    sent = Sent()
    dead_letters = cast(DeadLetters, type("Dead", (), {"send": staticmethod(sent.dead_letter)})())
    topics = Topics("test")
    timelines = Timelines(
        declare_channels(app, topics, 4), declare_tables(app), CODEC, dead_letters, 4
    )
    # Faust tables write only inside a running agent: dicts behind the same batching.
    timelines._heads = BatchedTable({})
    timelines._months = BatchedTable({})
    timelines.store = TimelineStore(timelines._heads, timelines._months)
    for outbox in (timelines._moved_events, timelines._moved_contents):
        outbox.topic = cast(faust.TopicT, sent)
    return timelines, sent


def test_the_shell_records_a_frame_and_dead_letters_only_its_bad_events() -> None:
    timelines, sent = shell()
    household = {"household": json.dumps({"P2": "parent"}).encode(), "event_id": b"e1"}
    frame = [
        FramedEvent(b"P1", encoded_event("e1", START), household),
        FramedEvent(b"P1", b"not avro", {}),
        FramedEvent(None, encoded_event("e2", START), {}),
        FramedEvent(b"P3", encoded_event("e3", START), {"household": b"[1]"}),
        FramedEvent(b"P1", encoded_event("e1", START), {}),
        FramedEvent(b"P4", encoded_event("e4", START + timedelta(days=30)), {}),
    ]
    asyncio.run(timelines.record_frame(frame, "test.person-events"))

    heads, months = timelines._heads.table, timelines._months.table
    assert heads["P1"]["household"] == {"P2": "parent"}
    assert ids(months["P1/2025-11"]) == ["e1"]
    assert set(heads) == {"P1", "P4"} and "P4/2025-12" in months
    assert [reason.split(":")[0] for _raw, reason in sent.dead] == [
        "undecodable",
        "key",
        "household",
    ]
    assert not timelines._heads._pending and not timelines._months._pending


def test_the_shell_applies_identity_changes_and_sends_moves_after_the_flush() -> None:
    timelines, sent = shell()
    asyncio.run(
        timelines.record_frame(
            [FramedEvent(b"A", encoded_event("e1", START), {})], "test.person-events"
        )
    )
    changes = [
        {"person_id": "A", "change": "merge", "into": "B"},
        {"person_id": "A", "change": "merge"},  # malformed: dead-lettered, the rest goes on
    ]
    frame = [FramedEvent(c["person_id"].encode(), encode_change(CODEC, c), {}) for c in changes]
    asyncio.run(timelines.apply_frame([*frame, FramedEvent(b"A", b"{", {})], "test.changes"))

    assert timelines._heads.table["A"] == {"merged_into": "B"}
    assert "A/2025-11" not in timelines._months.table
    assert [reason.split(" (")[0] for _raw, reason in sent.dead] == [
        "into: missing or not a str",
        "undecodable: not Avro single-object encoded",
    ]
    ((_partition, value),) = sent.frames
    (moved,) = CODEC.decode(value).record["events"]
    assert moved["key"] == b"B"
    assert decode_change(CODEC, moved["value"])["change"] == "absorb"
