"""Watching the workers work: events through the timeline and consumer lag, every second.

Progress is the workers' own counter of events taken in by the timeline processor (the last
stage), read from their /metrics. Lag is the workers' consumer group's high watermarks minus
its committed offsets over every topic it reads (agency topics, identity-input, person-events,
identity decisions and changes; not the tables' changelogs, which the workers only read when
recovering), measured from Kafka as the worker's lag gauge does
(`streams.operations.lag.ConsumerLag`). Faust commits every few seconds, so the lag curve
moves in steps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.operations.lag import ConsumerLag

SAMPLE_EVERY_S = 1.0
POLL_S = 0.25  # each poll renders the worker's whole /metrics page: finer costs it CPU


@dataclass(frozen=True)
class Sample:
    """One observation: seconds since the start, events through the timeline, total lag."""

    at_s: float
    processed: int
    lag: int


@dataclass
class ProgressWatch:
    """Samples progress and lag in a background thread until stopped."""

    processed: Callable[[], int]
    bootstrap: str
    group: str
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ProgressWatch:
        """Take the first sample now and the next ones every second."""
        self._started = time.monotonic()
        self._lag = ConsumerLag(self.bootstrap, self.group)
        self._thread = threading.Thread(target=self._watch, name="progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        """Stop sampling; the samples taken."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.samples

    def elapsed(self) -> float:
        """Seconds since the watch started."""
        return time.monotonic() - self._started

    def wait_for(self, processed: int, timeout_s: float) -> float:
        """Block until the workers processed `processed` events in all; the seconds since
        the watch started when they had (polled every 250 ms, finer than the samples)."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            seen = self.processed()
            if seen >= processed:
                return time.monotonic() - self._started
            time.sleep(POLL_S)
        raise TimeoutError(f"workers processed {seen} of {processed} events in {timeout_s:.0f} s")

    def _watch(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic() - self._started
            self.samples.append(Sample(round(at, 3), self.processed(), self._total_lag()))
            self._stop.wait(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - self._started - at)))

    def _total_lag(self) -> int:
        try:
            # Faust assigns its tables' changelogs to the group without committing there.
            return sum(
                entry.lag for entry in self._lag.measure() if not entry.topic.endswith("-changelog")
            )
        except Exception:  # a slow admin answer on a busy machine: the curve shows a gap
            return -1
