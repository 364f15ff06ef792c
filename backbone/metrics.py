"""Prometheus metrics shared by every process.

Names follow `backbone_<what>_<unit>`; labels name the component (connector or processor),
the agency and, for dead letters, the reason. Every process serves them on `/metrics`.
"""

from __future__ import annotations

import functools

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

EVENTS_IN = Counter(
    "backbone_events_in_total",
    "Records a component received (agency input for connectors, Kafka events for processors)",
    ["component", "agency"],
)
EVENTS_OUT = Counter(
    "backbone_events_out_total",
    "Events a component wrote to Kafka and had acknowledged",
    ["component", "agency", "topic"],
)
DEAD_LETTERS = Counter(
    "backbone_dead_letters_total",
    "Inputs sent to the dead-letter topic",
    ["component", "reason"],
)
PROCESSING_SECONDS = Histogram(
    "backbone_processing_seconds",
    "Time a component spent on one record, from receipt to acknowledged output",
    ["component"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ALERTS_RAISED = Counter(
    "backbone_alerts_raised_total",
    "Alerts the alert processor raised (not the later matches absorbed into open alerts)",
    ["rule", "severity"],
)
ALERTS_WITHDRAWN = Counter(
    "backbone_alerts_withdrawn_total",
    "Open alerts the alert processor withdrew because a late event disproved them",
    ["rule"],
)


@functools.lru_cache(maxsize=4096)
def labelled(metric: Counter, *labels: str) -> Counter:
    """`metric.labels(*labels)`, looked up once: the lookup costs microseconds, and the stream
    processors count every event."""
    return metric.labels(*labels)


def exposition() -> tuple[bytes, str]:
    """The current metrics in Prometheus text format, with its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


END_TO_END_SECONDS = Histogram(
    "backbone_end_to_end_seconds",
    "From an event's recorded_at (published by its connector) to a processor's result",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# How far each connector's position is behind its source. The source label is the position's
# source partition (as in the positions topic): `slot:<name>` for CDC, `tenancies` for housing.
# One metric per unit, so that no query ever adds bytes to seconds.
POSITION_LAG_BYTES = Gauge(
    "backbone_connector_position_lag_bytes",
    "Bytes of source log the connector has not confirmed yet (jobcentre-cdc: the database's "
    "current WAL position minus the replication slot's confirmed flush position)",
    ["connector", "source"],
)
POSITION_LAG_SECONDS = Gauge(
    "backbone_connector_position_lag_seconds",
    "Age of the oldest complete input the connector has not finished yet (housing-csv: the "
    "oldest complete export still in the drop folder), 0 when nothing waits",
    ["connector", "source"],
)
MLLP_CONNECTIONS = Gauge(
    "backbone_mllp_connections",
    "MLLP connections the connector has open with senders",
    ["connector"],
)

# Alerts and their notifications (streams/alerting/lifecycle_agent.py).
NOTIFICATIONS_SENT = Counter(
    "backbone_notifications_sent_total",
    "Notifications a channel delivered (webhook 2xx, SMTP relay accepted)",
    ["channel", "stage"],
)
NOTIFICATIONS_FAILED = Counter(
    "backbone_notifications_failed_total",
    "Notifications a channel gave up on and dead-lettered",
    ["channel", "stage"],
)
ALERTS_ESCALATED = Counter(
    "backbone_alerts_escalated_total",
    "Alerts escalated to their teams' escalation contacts, unacknowledged in time",
    ["severity"],
)
OPEN_ALERTS = Gauge(
    "backbone_alerts_open",
    "Alerts open and not yet acknowledged, on the worker owning the alerts (0 elsewhere)",
    ["severity"],
)
