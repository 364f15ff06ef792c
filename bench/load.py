"""The load generator: pre-encoded agency events straight onto the agency topics.

confluent-kafka with batching and lz4 (as the connectors compress), murmur2 partitioning like
the connectors and Faust, so a record lands on the partition its connector would choose. A
burst sends as fast as the broker takes it (the producer is never the bottleneck: it runs at
well over 100,000 events/s here); a steady load sends at a fixed rate, in small slices every
few milliseconds, and notes when each event was handed to the producer.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import Producer

from bench.mix import BenchEvent

SLICE_S = 0.005  # a steady load sends what is due every 5 ms


def bench_producer(bootstrap: str) -> Producer:
    """A producer tuned for throughput: large lz4 batches, a short linger."""
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": "lz4",
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "partitioner": "murmur2_random",
            "acks": "all",
            "enable.idempotence": True,
        }
    )


def send(producer: Producer, event: BenchEvent) -> None:
    """Hand one event to the producer, waiting for room in its queue when it is full."""
    while True:
        try:
            producer.produce(event.topic, event.value, event.key)
            return
        except BufferError:
            producer.poll(0.05)


def burst(bootstrap: str, events: Iterable[BenchEvent]) -> float:
    """Send every event as fast as possible and wait for the acks; the seconds it took."""
    producer = bench_producer(bootstrap)
    started = time.perf_counter()
    for number, event in enumerate(events):
        send(producer, event)
        if number % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)
    return time.perf_counter() - started


@dataclass
class SteadyLoad:
    """Events offered at `rate` per second; `sent` maps event id -> wall-clock send time."""

    bootstrap: str
    rate: float
    sent: dict[str, float] = field(default_factory=dict)

    def run(self, events: Iterator[BenchEvent], seconds: float) -> int:
        """Offer events for `seconds`; the number sent. Encoding happens here, lazily, at
        well over ten times the rate, so the events carry a fresh `recorded_at`."""
        producer = bench_producer(self.bootstrap)
        started = time.monotonic()
        count = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * self.rate) - count
            for event in itertools.islice(events, max(due, 0)):
                self.sent[event.event_id] = time.time()
                send(producer, event)
                count += 1
            producer.poll(0)
            time.sleep(SLICE_S)
        producer.flush(60)
        return count
