"""Pipeline: the real workers doing the real work on a burst of agency events.

The workers (`backbone worker`: identity, timeline, and whatever else the worker runs, alerts
included once wired, since it is the real command) start idle; then a burst of pre-encoded
events lands on the agency topics and the clock runs from the first send until the timeline
processors have taken in the last event. The figure is events/s through the whole pipeline
over that time, in all and per worker. A small warm-up burst goes first (`run.py`): a worker's
first events wait for Faust to create its changelog topics. The rate over the whole burst, not
a share of it: the stages move in bursts (the timeline catches up after Faust's commit stalls),
so the timeline counter's rate between two points of the burst says little. With several
workers, each one's share of the burst is its own timeline counter's growth over the burst:
how evenly the partitions spread the work.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from bench.deployment import BenchDeployment
from bench.load import burst
from bench.mix import BenchEvent
from bench.progress import ProgressWatch


@dataclass(frozen=True)
class Throughput:
    """Events through the pipeline and how long it took, from the first send."""

    events: int
    workers: int
    seconds: float
    produce_seconds: float
    events_per_s: float
    events_per_s_per_worker: float
    # The workers' CPU (user + system) per event: steadier than the rate on a shared machine.
    worker_cpu_ms_per_event: float
    window_s: tuple[float, float]  # the phase on the progress watch's clock
    share_per_worker: list[float]  # of the events the timelines took in, in worker order

    def as_json(self) -> dict[str, object]:
        """The figures for the report."""
        return asdict(self)


def run_burst(
    deployment: BenchDeployment, events: list[BenchEvent], watch: ProgressWatch, timeout_s: float
) -> Throughput:
    """Send `events` at once and time the workers until all are on a timeline."""
    before = deployment.timeline_events_per_worker()
    target = sum(before) + len(events)
    cpu_before = deployment.worker_cpu_seconds()
    started_at = time.monotonic()
    began = watch.elapsed()
    produce_seconds = burst(deployment.bootstrap, events)
    finished = watch.wait_for(target, timeout_s)
    seconds = time.monotonic() - started_at
    cpu_ms = 1000 * (deployment.worker_cpu_seconds() - cpu_before) / len(events)
    taken = [
        after - then
        for after, then in zip(deployment.timeline_events_per_worker(), before, strict=True)
    ]
    rate = len(events) / seconds
    workers = len(deployment.workers)
    return Throughput(
        events=len(events),
        workers=workers,
        seconds=round(seconds, 3),
        produce_seconds=round(produce_seconds, 3),
        events_per_s=round(rate, 1),
        events_per_s_per_worker=round(rate / max(workers, 1), 1),
        worker_cpu_ms_per_event=round(cpu_ms, 3),
        window_s=(round(began, 3), round(finished, 3)),
        share_per_worker=[round(each / max(sum(taken), 1), 4) for each in taken],
    )
