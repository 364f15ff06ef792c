"""Latency at a steady offered load: from an agency's send to the timeline update (and alert).

What is measured, per event: from the moment the load generator hands the event to its Kafka
producer (wall clock) to the timestamp Faust's producer gives the changelog record of the
timeline's month bucket that first contains it (CreateTime, stamped when the worker writes the
table). So it covers the produce, the broker, the framer, the identity router (or resolver),
person-events and the timeline update; both clocks are this machine's.

A changelog record holds one month of one person's timeline; the event a write adds is the
newest one (the offered events are the latest in event time), which is the last `event_id` in
its JSON, found with a reverse search rather than parsing the whole bucket. An event that is
not the newest of its bucket when written (a merge moving it, say) is not timed: `count` says
how many were.

Alerts: when the worker writes alerts to `<prefix>.alerts` (`backbone.alerts.AlertEvent`),
each raised alert is timed from the send of the latest of its events to the alert record's
timestamp. Nothing needs changing here when the alert processor lands in the worker.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from backbone.codec import AvroCodec
from backbone.errors import BadInput
from bench.load import SteadyLoad
from bench.mix import BenchEvent

_EVENT_ID = re.compile(rb'\s*:\s*"([^"]+)"')
_EVENT_ID_KEY = b'"event_id"'
# Once the workers counted every offered event, their last changelog records are seconds away.
GRACE_S = 5.0
HISTOGRAM_MS = (5, 10, 25, 50, 100, 150, 200, 250, 500, 1000, 2500, 5000, 10000)


def newest_event_id(changelog_value: bytes) -> str | None:
    """The last event id in a timeline's JSON (the event that write added)."""
    at = changelog_value.rfind(_EVENT_ID_KEY)
    if at < 0:
        return None
    found = _EVENT_ID.match(changelog_value, at + len(_EVENT_ID_KEY))
    return found.group(1).decode() if found else None


@dataclass
class Observer:
    """Follows the timeline changelog and the alerts topic from their current ends."""

    bootstrap: str
    changelog: str
    alerts: str
    codec: AvroCodec
    sent: dict[str, float]
    timeline_ms: dict[str, float] = field(default_factory=dict)
    alert_ms: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Observer:
        """Assign the topics at their ends and follow them in a background thread."""
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"bench-latency-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        # Concrete end offsets, read now: OFFSET_END would be resolved at the first fetch,
        # after the first offered events may already be there.
        partitions = [
            TopicPartition(topic, number, self._end_of(topic, number))
            for topic in (self.changelog, self.alerts)
            for number in self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        self._consumer.assign(partitions)
        self._thread = threading.Thread(target=self._follow, name="latency", daemon=True)
        self._thread.start()
        return self

    def _end_of(self, topic: str, partition: int) -> int:
        return int(
            self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
        )

    def stop(self) -> None:
        """Stop following and close the consumer."""
        self._stop.set()
        self._thread.join()
        self._consumer.close()

    def _follow(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, timeout=0.2):
                value = message.value()
                if message.error() is not None or value is None:
                    continue
                at = message.timestamp()[1] / 1000.0
                if message.topic() == self.changelog:
                    self._on_timeline(value, at)
                else:
                    self._on_alert(value, at)

    def _on_timeline(self, value: bytes, at: float) -> None:
        event_id = newest_event_id(value)
        if event_id in self.sent and event_id not in self.timeline_ms:
            self.timeline_ms[event_id] = (at - self.sent[event_id]) * 1000.0

    def _on_alert(self, value: bytes, at: float) -> None:
        try:
            record = self.codec.decode(value).record
        except BadInput:
            return
        if record.get("change") != "raised" or not record.get("alert"):
            return
        sends = [
            self.sent[e["event_id"]]
            for e in record["alert"]["events"]
            if e["event_id"] in self.sent
        ]
        if sends:
            self.alert_ms.append((at - max(sends)) * 1000.0)


def measure_latency(
    load: SteadyLoad,
    events: Iterator[BenchEvent],
    seconds: float,
    observer: Observer,
    processed: Callable[[int], object],
) -> dict[str, Any]:
    """Offer `load.rate` events/s for `seconds`; latency quantiles of what reached a timeline.
    `processed(n)` blocks until the workers have taken in the `n` offered events."""
    offered = load.run(events, seconds)
    processed(offered)
    deadline = time.monotonic() + GRACE_S
    while len(observer.timeline_ms) < offered and time.monotonic() < deadline:
        time.sleep(0.1)
    observer.stop()
    timeline = sorted(observer.timeline_ms.values())
    return {
        "offered_rate": load.rate,
        "seconds": seconds,
        "offered": offered,
        "measured": "send to the changelog record of the month bucket holding the event",
        "timeline": summary(timeline),
        "alerts": summary(sorted(observer.alert_ms)),
    }


def summary(latencies_ms: list[float]) -> dict[str, Any]:
    """Count, p50/p95/p99/max in ms and a histogram, of sorted latencies."""
    if not latencies_ms:
        return {"count": 0}
    edges = [*HISTOGRAM_MS, float("inf")]
    counts = [0] * len(edges)
    for value in latencies_ms:
        counts[next(n for n, edge in enumerate(edges) if value <= edge)] += 1
    return {
        "count": len(latencies_ms),
        "p50_ms": round(quantile(latencies_ms, 0.50), 1),
        "p95_ms": round(quantile(latencies_ms, 0.95), 1),
        "p99_ms": round(quantile(latencies_ms, 0.99), 1),
        "max_ms": round(latencies_ms[-1], 1),
        "mean_ms": round(statistics.fmean(latencies_ms), 1),
        "histogram_ms": {f"<={edge}": count for edge, count in zip(edges, counts, strict=True)},
        "samples_ms": [round(value, 1) for value in latencies_ms],
    }


def quantile(ordered: list[float], share: float) -> float:
    """The nearest-rank quantile of sorted values."""
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]
