"""Pipeline: the real workers doing the real work on a burst of agency events.

The workers (`backbone worker`: identity, timeline, and whatever else the worker runs, alerts
included once wired, since it is the real command) start idle; then a burst of pre-encoded
events lands on the agency topics and the clock runs from the first send until the timeline
processors have taken in the last event. The figures are events/s through the whole pipeline
over that time, and sustained (between 10 % and 90 % of the burst, from the per-second
samples), in all and per worker. A small warm-up burst goes first (`run.py`): a worker's first
events wait for Faust to create its changelog topics.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from bench.deployment import BenchDeployment
from bench.load import burst
from bench.mix import BenchEvent
from bench.progress import ProgressWatch, Sample

STEADY = (0.1, 0.9)  # the share of a burst between which its rate counts as sustained


@dataclass(frozen=True)
class Throughput:
    """Events through the pipeline and how long it took, from the first send."""

    events: int
    workers: int
    seconds: float
    produce_seconds: float
    events_per_s: float
    sustained_events_per_s: float
    events_per_s_per_worker: float
    window_s: tuple[float, float]  # the phase on the progress watch's clock

    def as_json(self) -> dict[str, object]:
        """The figures for the report."""
        return asdict(self)


def run_burst(
    deployment: BenchDeployment, events: list[BenchEvent], watch: ProgressWatch, timeout_s: float
) -> Throughput:
    """Send `events` at once and time the workers until all are on a timeline."""
    target = deployment.timeline_events() + len(events)
    started_at = time.monotonic()
    began = watch.elapsed()
    produce_seconds = burst(deployment.bootstrap, events)
    finished = watch.wait_for(target, timeout_s)
    seconds = time.monotonic() - started_at
    rate = len(events) / seconds
    sustained = steady_rate(watch.samples, target - len(events), len(events)) or rate
    workers = len(deployment.workers)
    return Throughput(
        events=len(events),
        workers=workers,
        seconds=round(seconds, 3),
        produce_seconds=round(produce_seconds, 3),
        events_per_s=round(rate, 1),
        sustained_events_per_s=round(sustained, 1),
        events_per_s_per_worker=round(sustained / max(workers, 1), 1),
        window_s=(round(began, 3), round(finished, 3)),
    )


def steady_rate(samples: list[Sample], start: int, events: int) -> float | None:
    """Events/s between the samples that saw 10 % and 90 % of a burst done: the sustained
    rate, without the pick-up at the start and the tail at the end; None if too few samples."""
    low, high = (start + share * events for share in STEADY)
    inside = [sample for sample in samples if low <= sample.processed <= high]
    if len(inside) < 2 or inside[-1].at_s <= inside[0].at_s:
        return None
    return (inside[-1].processed - inside[0].processed) / (inside[-1].at_s - inside[0].at_s)
