"""Frames (backbone/frames.py) and the framer (streams/framing/framer.py) on the real broker."""

from __future__ import annotations

import io
import json
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic  # type: ignore[attr-defined]

from backbone.codec import MAGIC, RELEASED_DIR, AvroCodec, SchemaStore, schema_fingerprint
from backbone.contracts import FRAME_SCHEMA
from backbone.errors import BadInput
from backbone.frames import FramedEvent, decode_frame, encode_frame, frames_of
from backbone.settings import REPO_ROOT, BackboneSettings
from backbone.topics import Topics, delete_topics, ensure_topics
from cli.kafka_probe import uncommitted
from streams.framing.framer import Framer
from tests.conftest import wait_until

SCHEMAS = REPO_ROOT / "avro_schemas"
PARTITIONS = 3

# (partition, source topic, source offset): a source event's identity; the framer keeps the
# partition number, so the target partition names the source partition.
Source = tuple[int, str, int]


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(SchemaStore(SCHEMAS))


def event(number: int, size: int = 20) -> FramedEvent:
    return FramedEvent(
        key=f"record-{number % 7}".encode(),
        value=bytes([number % 256]) * size,
        headers={"event_id": str(uuid.UUID(int=number)).encode()},
        source_topic="t.health.events",
        source_offset=number,
    )


# -- frames ------------------------------------------------------------------------------------


def test_a_frame_decodes_to_the_events_it_was_made_of(codec: AvroCodec) -> None:
    events = [
        event(1),
        FramedEvent(key=None, value=b"", headers={}),
        FramedEvent(b"k", b"\x00\xff", {"household": b"P1,P2", "empty": b""}, "x.events", 2**40),
    ]

    assert decode_frame(codec, encode_frame(codec, events)) == events
    assert decode_frame(codec, encode_frame(codec, [])) == []


def test_frames_of_keeps_order_and_both_limits(codec: AvroCodec) -> None:
    events = [event(number, size=(number * 37) % 300) for number in range(1000)]

    for max_events, max_bytes in ((500, 900_000), (10, 900_000), (500, 2_000), (7, 1_500)):
        frames = list(frames_of(events, max_events, max_bytes))

        assert [e for frame in frames for e in frame] == events
        assert all(0 < len(frame) <= max_events for frame in frames)
        assert all(len(encode_frame(codec, frame)) <= max_bytes for frame in frames)
        assert len(frames) > 1
    # Bounded by the count alone, frames are full.
    assert [len(frame) for frame in frames_of(events, 300, 900_000)] == [300, 300, 300, 100]


def test_an_event_larger_than_a_frame_goes_alone() -> None:
    events = [event(1), event(2, size=5_000), event(3), event(4)]

    frames = list(frames_of(events, max_events=10, max_bytes=1_000))

    assert frames == [[events[0]], [events[1]], [events[2], events[3]]]
    assert list(frames_of([], 10, 1_000)) == []
    with pytest.raises(ValueError):
        list(frames_of(events, max_events=0, max_bytes=1_000))


def test_a_frame_written_with_an_older_release_still_reads(tmp_path: Path) -> None:
    schemas = tmp_path / "avro_schemas"
    shutil.copytree(SCHEMAS, schemas)
    # v0: events were key and value only (released files are fully inlined, names qualified).
    older = {
        "type": "record",
        "name": "backbone.frames.EventFrame",
        "fields": [
            {
                "name": "events",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "backbone.frames.FramedEvent",
                        "fields": [
                            {"name": "key", "type": ["null", "bytes"], "default": None},
                            {"name": "value", "type": "bytes"},
                        ],
                    },
                },
            },
            {"name": "framed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }
    (schemas / RELEASED_DIR / f"{FRAME_SCHEMA}.v0.avsc").write_text(json.dumps(older))
    parsed: dict[str, Any] = fastavro.parse_schema(older)  # type: ignore[assignment]
    out = io.BytesIO()
    out.write(MAGIC + schema_fingerprint(parsed))
    record = {
        "events": [{"key": b"r1", "value": b"one"}, {"key": None, "value": b"two"}],
        "framed_at": 1_765_000_000_000,
    }
    fastavro.schemaless_writer(out, parsed, record)

    events = decode_frame(AvroCodec(SchemaStore(schemas)), out.getvalue())

    assert events == [FramedEvent(b"r1", b"one", {}), FramedEvent(None, b"two", {})]


def test_what_is_not_a_frame_is_bad_input(codec: AvroCodec) -> None:
    frame = encode_frame(codec, [event(1), event(2)])
    not_frames = {
        b"garbage": "not Avro single-object encoded",
        MAGIC + b"\x00" * 8 + b"body": "unknown writer schema fingerprint",
        frame[:-5]: "does not decode",
    }
    for data, problem in not_frames.items():
        with pytest.raises(BadInput, match=problem):
            decode_frame(codec, data)


# -- the framer on the broker ------------------------------------------------------------------


@pytest.fixture
def topics(kafka: str) -> Iterator[Topics]:
    """The topics of a fresh deployment (PARTITIONS each), deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {
        "kafka_bootstrap": kafka,
        "topic_prefix": prefix,
        "partitions": PARTITIONS,
        "pseudonym_key": "not-used-by-these-tests",
    }
    settings = BackboneSettings(**values)
    ensure_topics(settings)
    yield Topics(prefix)
    delete_topics(kafka, prefix)


def produce(
    bootstrap: str, topics: list[str], count: int, start: int = 0
) -> dict[Source, tuple[bytes, bytes, dict[str, bytes]]]:
    """`count` keyed events spread over `topics` as a connector writes them (murmur2, like
    Faust and Java); what landed where, by (partition, topic, offset)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    landed: dict[Source, tuple[bytes, bytes, dict[str, bytes]]] = {}
    failed: list[str] = []

    def on_delivery(headers: dict[str, bytes], err: KafkaError | None, message: Message) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        key, value = message.key(), message.value()
        if err is not None or topic is None or partition is None or offset is None:
            failed.append(str(err))
        elif key is not None and value is not None:
            landed[(partition, topic, offset)] = (key, value, headers)

    for number in range(start, start + count):
        headers = {"event_id": uuid.uuid4().bytes, "number": str(number).encode()}
        producer.produce(
            topics[number % len(topics)],
            value=f"event {number}".encode(),
            key=f"record-{number % 211:04d}".encode(),  # several events per record
            headers=list(headers.items()),
            on_delivery=partial(on_delivery, headers),
        )
        producer.poll(0)
    assert producer.flush(30) == 0 and not failed, failed
    return landed


def read_frames(bootstrap: str, topic: str, codec: AvroCodec) -> list[tuple[int, FramedEvent]]:
    """Every event in the frames now on `topic`, with its partition, in order per partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        highs = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p, high in highs.items() if high > 0])
        read: dict[int, list[FramedEvent]] = {p: [] for p in partitions}
        left = {p: high for p, high in highs.items() if high > 0}
        while left:
            message = consumer.poll(10)
            assert message is not None, f"{topic}: nothing more to read, {left} left"
            assert message.error() is None, message.error()
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            value = message.value()
            assert message.key() is None and value is not None
            read[partition].extend(decode_frame(codec, value))
            if offset + 1 >= highs[partition]:
                left.pop(partition, None)
        return [(p, e) for p in sorted(read) for e in read[p]]
    finally:
        consumer.close()


def committed_up_to_end(bootstrap: str, group: str, topics: list[str]) -> bool:
    """Whether `group` has committed every partition of `topics` at its high watermark."""
    return not uncommitted(bootstrap, group, topics)


def check_framed(
    framed: list[tuple[int, FramedEvent]],
    produced: dict[Source, tuple[bytes, bytes, dict[str, bytes]]],
) -> None:
    """Each produced event once, on its own partition number, as it was, in source order."""
    seen: Counter[Source] = Counter()
    last_offset: dict[tuple[int, str], int] = {}
    for partition, framed_event in framed:
        assert framed_event.source_topic is not None and framed_event.source_offset is not None
        source = (partition, framed_event.source_topic, framed_event.source_offset)
        seen[source] += 1
        assert source in produced, f"{source} was framed but never produced to that partition"
        assert (framed_event.key, framed_event.value, framed_event.headers) == produced[source]
        previous = last_offset.get(source[:2], -1)
        assert framed_event.source_offset > previous, f"{source} framed out of order"
        last_offset[source[:2]] = framed_event.source_offset
    assert set(seen) == set(produced)
    assert [source for source, times in seen.items() if times > 1] == []


def test_the_framer_frames_every_event_once_on_its_partition_and_resumes_where_it_committed(
    kafka: str, topics: Topics, codec: AvroCodec
) -> None:
    sources = topics.all_agency_events()
    group = f"{topics.prefix}-framer"
    produced = produce(kafka, sources, 3000)
    assert {partition for partition, _, _ in produced} == set(range(PARTITIONS))

    def framer() -> Framer:
        return Framer(kafka, group, sources, topics.record_frames, codec, max_events_per_frame=100)

    first = framer()
    first.start()
    try:
        wait_until(lambda: first.events_framed >= 3000, 60, "the framer to frame 3000 events")
        wait_until(lambda: committed_up_to_end(kafka, group, sources), 30, "the commits")
    finally:
        first.stop()
    assert first.failure is None
    assert not first.is_alive
    framed = read_frames(kafka, topics.record_frames, codec)
    check_framed(framed, produced)
    assert first.frames_written >= 3000 // 100

    second = framer()
    second.start()
    try:
        wait_until(lambda: len(second.assignment) == len(sources) * PARTITIONS, 30, "an assignment")
        # It starts at the committed offsets: a framer starting over would have re-framed
        # by now (the first framed all 3000 in well under a second).
        time.sleep(1.0)
        assert second.events_framed == 0
        assert read_frames(kafka, topics.record_frames, codec) == framed

        more = produce(kafka, sources, 100, start=3000)
        wait_until(lambda: second.events_framed >= 100, 60, "the 100 new events")
        wait_until(lambda: committed_up_to_end(kafka, group, sources), 30, "the commits")
    finally:
        second.stop()
    assert second.failure is None
    assert second.events_framed == 100
    check_framed(read_frames(kafka, topics.record_frames, codec), {**produced, **more})


def test_a_frame_the_broker_refuses_is_not_committed_and_arrives_once_it_can(
    kafka: str, codec: AvroCodec
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    source, target, group = f"{prefix}.source", f"{prefix}.frames", f"{prefix}-framer"
    admin = AdminClient({"bootstrap.servers": kafka})
    # The target lacks partition 1: every frame of source partition 1 is refused.
    for future in admin.create_topics([NewTopic(source, 2, 1), NewTopic(target, 1, 1)]).values():
        future.result(30)
    # Metadata refreshed each second, so the producer soon sees the partition added below.
    refresh = {"topic.metadata.refresh.interval.ms": 1000}
    framer = Framer(
        kafka, group, [source], target, codec, retry_backoff_s=0.2, client_config=refresh
    )
    try:
        produced = produce(kafka, [source], 200)
        on_partition_0 = sum(1 for partition, _, _ in produced if partition == 0)
        assert 0 < on_partition_0 < 200
        framer.start()
        wait_until(lambda: framer.events_framed >= on_partition_0, 30, "partition 0's frames")
        consumer = Consumer({"bootstrap.servers": kafka, "group.id": group})
        try:
            wait_until(
                lambda: consumer.committed([TopicPartition(source, 0)], 10)[0].offset > 0,
                10,
                "partition 0's commit",
            )
            time.sleep(1.0)  # several retries (every 0.2 s) later
            committed = consumer.committed([TopicPartition(source, 1)], timeout=10)
        finally:
            consumer.close()
        # Partition 1 is committed at most at its first event: nothing was skipped.
        assert committed[0].offset <= 0, "offsets committed past events that never landed"
        assert framer.events_framed == on_partition_0

        for future in admin.create_partitions([NewPartitions(target, 2)]).values():
            future.result(30)
        wait_until(lambda: framer.events_framed >= 200, 60, "partition 1's frames")
        wait_until(lambda: committed_up_to_end(kafka, group, [source]), 30, "the commits")
        assert framer.is_alive and framer.failure is None
        framed = read_frames(kafka, target, codec)
    finally:
        framer.stop()
        delete_topics(kafka, prefix)
    # Refused frames were never written: each event landed once, where it belongs.
    check_framed(framed, produced)
