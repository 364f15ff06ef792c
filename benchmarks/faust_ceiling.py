"""The ceiling of a Faust worker on this machine: an agent that only forwards each event.

Publishes N small events onto a fresh one-partition topic, then runs a Faust app (as the worker's:
aiokafka, acks=-1; the producer's linger and batch size as options) whose one agent forwards
each event to a second topic, optionally writing `--table-writes` keys of an in-memory table
per event (each a changelog message, as the resolver's tables do). The figure is N over the
time between the first and the last forwarded event's Kafka timestamps, as in
`identity_throughput.py`: what the identity pipeline could at best reach per worker.

    .venv/bin/python benchmarks/faust_ceiling.py --events 20000 --table-writes 0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import faust
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from identity_throughput import first_and_last_timestamps

from cli.kafka_probe import message_count
from cli.processes import free_port


def forwarding_app(args: argparse.Namespace) -> faust.App:
    """A Faust app whose one agent forwards `<prefix>-in` to `<prefix>-out`."""
    app = faust.App(
        f"{args.prefix}-ceiling",
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="faust-ceiling-"),
        web_port=free_port(),
        topic_partitions=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=args.linger_ms / 1000,
        producer_max_batch_size=args.batch_bytes,
        autodiscover=False,
    )
    source = app.topic(f"{args.prefix}-in", key_serializer="raw", value_serializer="raw")
    sink = app.topic(f"{args.prefix}-out", key_serializer="raw", value_serializer="raw")
    table = app.Table("ceiling-state", default=None, partitions=1)

    async def forward(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            for number in range(args.table_writes):
                table[f"{number}:{event.key!r}"] = len(event.value)
            await sink.send(key=event.key, value=event.value)
            yield None

    app.agent(source, name="forward")(forward)
    return app


def publish(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for number in range(count):
        producer.produce(topic, key=f"k{number % 1000}".encode(), value=b"x" * 400)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError(f"Kafka did not take every event onto {topic}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--table-writes", type=int, default=0, help="table keys set per event")
    # Faust's defaults, as the worker runs (README, "Performance": a linger stalls table writes).
    parser.add_argument("--linger-ms", type=float, default=0.0)
    parser.add_argument("--batch-bytes", type=int, default=16384)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--prefix", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=Path("bench-results/faust-ceiling.json"))
    args = parser.parse_args()
    if args.serve:  # the worker half: run the app until stopped
        faust.Worker(
            forwarding_app(args), loglevel="WARNING", quiet=True
        ).execute_from_commandline()
        return 0

    prefix = f"ceiling{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for future in admin.create_topics(
        [NewTopic(f"{prefix}-{end}", 1, 1) for end in ("in", "out")]
    ).values():
        future.result(30)
    publish(args.bootstrap, f"{prefix}-in", args.events)
    command = [sys.executable, __file__, *sys.argv[1:], "--serve", "--prefix", prefix]
    worker = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 600
        while message_count(args.bootstrap, f"{prefix}-out") < args.events:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the forwarding worker stopped or took too long")
            time.sleep(1.0)
    finally:
        worker.terminate()
        worker.wait(30)
    first, last = first_and_last_timestamps(args.bootstrap, f"{prefix}-out")
    seconds = max(last - first, 1e-3)
    figures = {
        "processor": "faust-forward",
        "events": args.events,
        "table_writes_per_event": args.table_writes,
        "seconds": round(seconds, 3),
        "events_per_s": round(args.events / seconds, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(
        f"faust forward agent ({args.table_writes} table writes per event): {args.events} "
        f"events in {seconds:.2f} s: {figures['events_per_s']} events/s on one worker"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
