"""`backbone rules replay`: what a rule file would have raised over the person-events history.

Reads the frames of `<prefix>.person-events` from the earliest offset to the end offsets taken
at start (in memory: the partitions are merged by message timestamp, the order the worker met
them, and each frame's events kept in order), and runs every event that occurred on or after
the given date through `AlertTracker`, the same code the alert processor runs, with its stores
in memory and its updates for other persons delivered at once (streams/alerting/in_memory.py).
The merges identity made (identity-changes frames) are applied as they stand at the start: a
merged person's events are replayed as the survivor's. Nobody is notified and nothing is
written to Kafka. At the end, event time is moved to the wall clock as the worker's timer
would, so absences that are due by now are decided too.
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from backbone.codec import AvroCodec, SchemaStore
from backbone.errors import BadInput, TransientError
from backbone.frames import FramedEvent, decode_frame
from backbone.logging import get_logger
from backbone.topics import Topics
from streams.alerting.alert import Alert, Withdrawal
from streams.alerting.alert_events import withdrawal_reason
from streams.alerting.in_memory import InMemoryAlerting, Published
from streams.alerting.rules import RuleSet
from streams.alerting.tracking import compact_entry
from streams.alerting.view import event_time
from streams.framing.person_events import household_of, person_of
from streams.identity.messages import decode_change
from streams.settings import AlertSettings

log = get_logger(__name__)

READ_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PersonEvent:
    """One event of a person-events frame: the person, the Avro value, the household header."""

    person_id: str
    value: bytes
    household: dict[str, str]


@dataclass
class ReplayResult(Published):
    """What the rules would have raised, and how much history was read."""

    read: int = 0
    replayed: int = 0
    undecodable: int = 0


def person_events(settings: AlertSettings, codec: AvroCodec) -> Iterator[PersonEvent | None]:
    """Every event of the person-events frames up to the end offsets at start, in the order the
    worker met them: each partition in offset order, the partitions merged by message
    timestamp (a household member's events sit on another partition than the tenant's), each
    frame's events in order. None for a frame, or an event's key or household, that does not
    decode (the worker skips them too)."""
    partitions: dict[int, list[Message]] = {}
    for message in _messages(settings, Topics(settings.topic_prefix).person_events):
        partitions.setdefault(message.partition() or 0, []).append(message)
    for message in heapq.merge(*partitions.values(), key=lambda m: m.timestamp()[1]):
        frame = _frame(codec, message)
        if frame is None:
            yield None
            continue
        for framed in frame:
            try:
                yield PersonEvent(person_of(framed), framed.value, household_of(framed))
            except BadInput:
                yield None


def merges(settings: AlertSettings, codec: AvroCodec) -> dict[str, str]:
    """Every merge identity made so far: absorbed person id -> the person it went into."""
    found = {}
    for message in _messages(settings, Topics(settings.topic_prefix).identity_changes):
        for framed in _frame(codec, message) or []:
            try:
                change = decode_change(codec, framed.value)
            except BadInput:
                continue
            if change["change"] == "merge":
                person_id, into = change.get("person_id"), change.get("into")
                if isinstance(person_id, str) and isinstance(into, str):
                    found[person_id] = into
    return found


def _frame(codec: AvroCodec, message: Message) -> list[FramedEvent] | None:
    """The events of one frame, or None if it does not decode."""
    try:
        return decode_frame(codec, message.value() or b"")
    except BadInput as exc:
        log.warning("replay_frame_undecodable", topic=message.topic(), reason=str(exc))
        return None


def survivor_of(person_id: str, merged: dict[str, str]) -> str:
    """Where a person's events end up after every merge (merges can chain)."""
    seen = {person_id}
    while (into := merged.get(person_id)) is not None and into not in seen:
        person_id = into
        seen.add(into)
    return person_id


def _messages(settings: AlertSettings, topic: str) -> Iterator[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.topic_prefix}-rules-replay-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        yield from _read_to_end(consumer, topic)
    finally:
        consumer.close()


def _read_to_end(consumer: Consumer, topic: str) -> Iterator[Message]:
    try:
        metadata = consumer.list_topics(topic, timeout=10)
    except KafkaException as exc:
        raise TransientError(f"Kafka is not reachable: {exc}") from exc
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise TransientError(f"topic {topic} does not exist: is the prefix right?")
    ends: dict[int, int] = {}
    for partition in described.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if high > low:
            ends[partition] = high
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    deadline = time.monotonic() + READ_TIMEOUT_S
    while ends:
        if time.monotonic() > deadline:
            raise TransientError(f"reading {topic} took longer than {READ_TIMEOUT_S:.0f} s")
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            raise TransientError(f"reading {topic}: {message.error()}")
        partition, offset = message.partition(), message.offset()
        if partition not in ends or offset is None or offset >= ends[partition]:
            continue
        if offset >= ends[partition] - 1:
            del ends[partition]
        yield message


def replay(settings: AlertSettings, rules: RuleSet, since: datetime) -> ReplayResult:
    """What `rules` would have raised over the events that occurred on or after `since`.

    Merges are taken as they stand now: a merged person's events are replayed as the
    survivor's, which is where the worker ends up keeping them.
    """
    codec = AvroCodec(SchemaStore(settings.schemas_dir))
    merged = merges(settings, codec)
    result = ReplayResult()
    alerting = InMemoryAlerting(rules, timedelta(seconds=settings.alert_lateness_s), result=result)
    for message in person_events(settings, codec):
        result.read += 1
        try:
            if message is None:
                raise BadInput("not a person event")
            record = codec.decode(message.value).record
        except BadInput:
            result.undecodable += 1
            continue
        entry = compact_entry(record)
        if event_time(entry) < since:
            continue
        result.replayed += 1
        household = {survivor_of(m, merged): role for m, role in message.household.items()}
        alerting.feed(survivor_of(message.person_id, merged), entry, household)
    alerting.finish()
    return result


def describe(alert: Alert, withdrawal: Withdrawal | None = None) -> list[str]:
    """How the replay prints one alert: rule, severity, person, anchor time, text, events, and
    the event that disproved it if it was withdrawn."""
    event_ids = ", ".join(event.event_id for event in alert.explanation.events)
    lines = [
        f"{alert.rule_id} {alert.severity} person={alert.person_id} "
        f"anchor_at={alert.anchor_at.isoformat()} alert_id={alert.alert_id}",
        f"  {alert.text}",
        f"  events: {event_ids}",
    ]
    if withdrawal is not None:
        lines.append(f"  withdrawn: {withdrawal_reason(withdrawal)}")
    return lines
