"""Backfill: a replay of history (1 million events by default) through the real workers.

The whole history is sent at once, as after an outage or when a new agency's past is loaded;
the figures are the time until the last event is on a timeline, the rate, and the consumer
lag curve sampled every second while it runs: the framers' group on the agency topics (events)
plus the workers' group over every topic it reads (mostly frames), in all and per group
(`bench.progress`).
"""

from __future__ import annotations

from typing import Any

from bench.deployment import BenchDeployment
from bench.mix import BenchEvent
from bench.pipeline import run_burst
from bench.progress import LAG_UNIT, ProgressWatch, Sample


def run_backfill(
    deployment: BenchDeployment, events: list[BenchEvent], watch: ProgressWatch, timeout_s: float
) -> dict[str, Any]:
    """Replay `events`; the time it took and the lag curve while it ran."""
    throughput = run_burst(deployment, events, watch, timeout_s)
    began, finished = throughput.window_s
    curve = watch.samples_over(began, finished)
    return {
        **throughput.as_json(),
        "max_lag": max((sample.lag for sample in curve), default=0),
        "max_lag_by_group": {
            group: max((sample.lag_by_group.get(group, 0) for sample in curve), default=0)
            for group in watch.groups
        },
        "lag_unit": LAG_UNIT,
        "lag_curve": [_point(sample, began) for sample in curve],
    }


def _point(sample: Sample, began: float) -> dict[str, Any]:
    return {
        "at_s": round(sample.at_s - began, 3),
        "lag": sample.lag,
        "lag_by_group": sample.lag_by_group,
        "processed": sample.processed,
    }
