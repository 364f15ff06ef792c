"""Faust's own sensor numbers on the worker's existing `/metrics`.

Faust ships a Prometheus monitor (`faust.sensors.prometheus`). Its `setup_prometheus_sensors`
would also register a second `/metrics` page, clashing with the coordinator API's; so this
bridge only installs the monitor, with its metrics in prometheus_client's default registry,
which `backbone.metrics.exposition` already serves. Names start with `faust_` whatever the
app id, so dashboards and alerts do not depend on the deployment's topic prefix.
"""

from __future__ import annotations

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import REGISTRY

FAUST_METRICS_PREFIX = "faust"

_metrics: FaustMetrics | None = None


def faust_metrics() -> FaustMetrics:
    """Faust's metric families, registered once per process (a second registration fails)."""
    global _metrics
    if _metrics is None:
        _metrics = FaustMetrics.create(REGISTRY, FAUST_METRICS_PREFIX)
    return _metrics


def bridge_faust_sensors(app: faust.App) -> None:
    """Make `app` report its consumer, producer, table, rebalance and web numbers."""
    app.monitor = PrometheusMonitor(metrics=faust_metrics())
