"""Metrics of the housing connector beyond the shared ones (events in/out, dead letters)."""

from __future__ import annotations

from prometheus_client import Counter

SNAPSHOTS = Counter(
    "backbone_housing_snapshots_total",
    "Snapshot files the housing connector dealt with, by outcome: processed, "
    "already_processed (the same file again), refused (not newer than the last one, or "
    "unreadable header), deferred (Kafka or the file was unavailable; tried again later)",
    ["component", "outcome"],
)
