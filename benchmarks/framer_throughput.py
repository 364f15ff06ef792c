"""The framer's throughput: agency topics (one event per message) into frames on one machine.

Publishes N events, as the connectors write them (a 64-hex record id as key, lz4, murmur2
partitioning, `event_id` and `schema` headers), spread over the four agency topics of a fresh
deployment, then runs one Framer (streams/framing/framer.py) until every event is framed and
committed. The rate is N over the time between the first and the last frame's Kafka timestamps
(as `identity_throughput.py`, so the group join is not counted); the CPU figures are the
framer thread's own (Python: grouping, encoding) and the whole process's over the same run
(librdkafka's fetch, compression and network threads included). Figures in
`bench-results/framer.json`; the topics are deleted afterwards.

    .venv/bin/python benchmarks/framer_throughput.py --events 200000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from backbone.codec import AvroCodec, SchemaStore
from backbone.frames import decode_frame
from backbone.settings import REPO_ROOT, BackboneSettings
from backbone.topics import Topics, delete_topics, ensure_topics
from streams.framing.framer import Framer


def publish(bootstrap: str, topics: list[str], count: int, value_bytes: int) -> None:
    """`count` events round-robin over `topics`, two per record id, as a connector sends."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "compression.type": "lz4",
            "linger.ms": 20,
        }
    )
    value = b"\xc3\x01" + bytes(range(256)) * (value_bytes // 256) + b"x" * (value_bytes % 256)
    for number in range(count):
        key = hashlib.sha256(str(number // 2).encode()).hexdigest().encode()
        headers: list[tuple[str, str | bytes | None]] = [
            ("event_id", str(uuid.uuid4()).encode()),
            ("schema", b"backbone.Event"),
        ]
        while True:
            try:
                producer.produce(topics[number % len(topics)], value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("Kafka did not take every event onto the agency topics")


def frame_stats(bootstrap: str, topic: str, codec: AvroCodec) -> tuple[int, int, float, float]:
    """Frames and events on `topic`, and the first and last frame's Kafka timestamps (s)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        highs = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p, high in highs.items() if high > 0])
        left = {p for p, high in highs.items() if high > 0}
        frames = events = 0
        stamps: list[int] = []
        while left:
            message = consumer.poll(30)
            if message is None:
                raise RuntimeError(f"{topic}: nothing more to read with partitions {left} left")
            if message.error() is not None:
                continue
            value, partition, offset = message.value(), message.partition(), message.offset()
            if value is None or partition is None or offset is None:
                continue
            frames += 1
            events += len(decode_frame(codec, value))
            stamps.append(message.timestamp()[1])
            if offset + 1 >= highs[partition]:
                left.discard(partition)
        return frames, events, min(stamps) / 1000, max(stamps) / 1000
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--value-bytes", type=int, default=400, help="size of each event")
    parser.add_argument("--max-events-per-frame", type=int, default=500)
    parser.add_argument("--max-poll", type=int, default=5000)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")
    parser.add_argument("--json", type=Path, default=Path("bench-results/framer.json"))
    args = parser.parse_args()

    prefix = f"framer{uuid.uuid4().hex[:8]}"
    values: dict[str, Any] = {
        "kafka_bootstrap": args.bootstrap,
        "topic_prefix": prefix,
        "partitions": args.partitions,
        "pseudonym_key": "benchmark-only-not-a-secret",
    }
    topics = Topics(prefix)
    codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
    ensure_topics(BackboneSettings(**values))
    try:
        started = time.perf_counter()
        publish(args.bootstrap, topics.all_agency_events(), args.events, args.value_bytes)
        publish_s = time.perf_counter() - started

        framer = Framer(
            args.bootstrap,
            f"{prefix}-framer",
            topics.all_agency_events(),
            topics.record_frames,
            codec,
            max_events_per_frame=args.max_events_per_frame,
            max_poll=args.max_poll,
        )
        process_cpu = time.process_time()
        started = time.perf_counter()
        framer.start()
        try:
            deadline = started + args.timeout
            while framer.events_framed < args.events:
                if not framer.is_alive or time.perf_counter() > deadline:
                    raise RuntimeError(f"the framer stopped or took too long: {framer.failure}")
                time.sleep(0.05)
            wall_s = time.perf_counter() - started
            process_cpu = time.process_time() - process_cpu
            thread_cpu = framer.cpu_seconds
        finally:
            framer.stop()
        frames, events, first, last = frame_stats(args.bootstrap, topics.record_frames, codec)
    finally:
        delete_topics(args.bootstrap, prefix)
    if events != args.events:
        raise RuntimeError(f"{events} events in the frames, {args.events} published")

    seconds = max(last - first, 1e-3)
    figures = {
        "processor": "framer",
        "events": args.events,
        "partitions": args.partitions,
        "value_bytes": args.value_bytes,
        "frames": frames,
        "events_per_frame": round(events / frames, 1),
        "seconds": round(seconds, 3),
        "events_per_s": round(args.events / seconds, 1),
        "wall_seconds_with_group_join": round(wall_s, 3),
        "framer_thread_cpu_us_per_event": round(thread_cpu / args.events * 1e6, 2),
        "process_cpu_us_per_event": round(process_cpu / args.events * 1e6, 2),
        "publish_seconds": round(publish_s, 3),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(
        f"framer: {args.events} events ({args.value_bytes} B) in {frames} frames, "
        f"{seconds:.2f} s first to last frame: {figures['events_per_s']} events/s; "
        f"CPU per event: {figures['framer_thread_cpu_us_per_event']} us on the framer's thread, "
        f"{figures['process_cpu_us_per_event']} us for the whole process (librdkafka included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
