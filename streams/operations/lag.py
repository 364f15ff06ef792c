"""Consumer lag per group, topic and partition, exported as a Prometheus gauge.

Lag is the partition's high watermark minus the group's committed offset: a handful of admin
requests per refresh (list groups, describe them, their committed offsets, the partitions' end
offsets), whatever the traffic, and no consumer joins any group. A partition assigned to a
group that has committed nothing yet counts from its earliest offset, because the workers
start there (`consumer_auto_offset_reset="earliest"`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import faust
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from prometheus_client import Counter, Gauge

from backbone.logging import get_logger

log = get_logger(__name__)

# Why 5 s: lag is read by operators and the autoscaler at scrape intervals of 15 s or more;
# four admin requests every 5 s per deployment is negligible load on the brokers.
LAG_REFRESH_S = 5.0
ADMIN_TIMEOUT_S = 5.0
NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group committed nothing there

CONSUMER_LAG = Gauge(
    "backbone_consumer_lag",
    "Records on a partition the consumer group has not committed yet (high watermark - committed)",
    ["group", "topic", "partition"],
)
LAG_REFRESH_FAILURES = Counter(
    "backbone_consumer_lag_refresh_failures_total",
    "Times the consumer lag could not be read from Kafka (the gauge keeps its last values)",
)


@dataclass(frozen=True)
class PartitionLag:
    """How far one consumer group is behind on one partition."""

    group: str
    topic: str
    partition: int
    committed: int
    high_watermark: int

    @property
    def lag(self) -> int:
        """Records written to the partition and not yet committed by the group."""
        return max(self.high_watermark - self.committed, 0)


class ConsumerLag:
    """Measures the lag of every consumer group whose id starts with `group_prefix`."""

    def __init__(self, bootstrap: str, group_prefix: str) -> None:
        self.group_prefix = group_prefix
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._exported: set[tuple[str, str, str]] = set()

    def measure(self) -> list[PartitionLag]:
        """The lag of each partition the matching groups have committed to or are assigned."""
        positions = self._positions(self._groups())
        ends = self._offsets(
            {tp for committed in positions.values() for tp in committed},
            OffsetSpec.latest(),  # type: ignore[no-untyped-call]
        )
        starts = self._offsets(
            {tp for committed in positions.values() for tp, at in committed.items() if at < 0},
            OffsetSpec.earliest(),  # type: ignore[no-untyped-call]
        )
        return [
            PartitionLag(group, tp[0], tp[1], at if at >= 0 else starts[tp], ends[tp])
            for group, committed in sorted(positions.items())
            for tp, at in sorted(committed.items())
            if tp in ends
        ]

    def _positions(self, groups: list[str]) -> dict[str, dict[tuple[str, int], int]]:
        """Each group's committed offset per partition; NO_OFFSET where it is only assigned."""
        if not groups:
            return {}
        positions = {group: self._committed(group) for group in groups}
        for group, assigned in self._assignments(groups).items():
            for partition in assigned:
                positions[group].setdefault(partition, NO_OFFSET)
        return positions

    def export(self, lags: Iterable[PartitionLag]) -> None:
        """Set the gauge to `lags`, dropping series of partitions no longer measured."""
        current: set[tuple[str, str, str]] = set()
        for entry in lags:
            labels = (entry.group, entry.topic, str(entry.partition))
            CONSUMER_LAG.labels(*labels).set(entry.lag)
            current.add(labels)
        for labels in self._exported - current:
            CONSUMER_LAG.remove(*labels)
        self._exported = current

    async def refresh(self) -> None:
        """Measure (off the event loop: the admin calls block) and export; log failures."""
        try:
            lags = await asyncio.to_thread(self.measure)
        except Exception as exc:  # a broker hiccup must not stop the worker's timer
            LAG_REFRESH_FAILURES.inc()
            log.warning("consumer_lag_unavailable", error=str(exc))
            return
        self.export(lags)

    def _groups(self) -> list[str]:
        listing = self._admin.list_consumer_groups(request_timeout=ADMIN_TIMEOUT_S)
        return sorted(
            group.group_id
            for group in _result(listing).valid
            if group.group_id.startswith(self.group_prefix)
        )

    def _committed(self, group: str) -> dict[tuple[str, int], int]:
        request = [ConsumerGroupTopicPartitions(group)]
        futures = self._admin.list_consumer_group_offsets(request, request_timeout=ADMIN_TIMEOUT_S)
        answer = _result(futures[group])
        return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions or []}

    def _assignments(self, groups: list[str]) -> dict[str, set[tuple[str, int]]]:
        futures = self._admin.describe_consumer_groups(groups, request_timeout=ADMIN_TIMEOUT_S)
        assigned: dict[str, set[tuple[str, int]]] = {}
        for group, future in futures.items():
            members = _result(future).members or []
            assigned[group] = {
                (tp.topic, tp.partition)
                for member in members
                if member.assignment is not None
                for tp in member.assignment.topic_partitions
            }
        return assigned

    def _offsets(self, partitions: set[tuple[str, int]], spec: Any) -> dict[tuple[str, int], int]:
        if not partitions:
            return {}
        request = {TopicPartition(topic, partition): spec for topic, partition in partitions}
        futures = self._admin.list_offsets(request, request_timeout=ADMIN_TIMEOUT_S)
        return {(tp.topic, tp.partition): _result(f).offset for tp, f in futures.items()}


def _result(future: Future[Any]) -> Any:
    return future.result(timeout=ADMIN_TIMEOUT_S * 2)


def watch_consumer_lag(app: faust.App, bootstrap: str, group_prefix: str) -> ConsumerLag:
    """Refresh the lag gauge on a Faust timer; only the group's leader worker exports it.

    One exporter per group keeps the series unique: with several workers every one would
    otherwise report the same partitions. A worker that stops being leader drops its series.
    """
    lag = ConsumerLag(bootstrap, group_prefix)

    async def refresh_consumer_lag() -> None:
        if app.is_leader():
            await lag.refresh()
        else:
            lag.export([])

    app.timer(LAG_REFRESH_S)(refresh_consumer_lag)
    return lag
