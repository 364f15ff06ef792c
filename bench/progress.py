"""Watching the workers work: events through the timeline and consumer lag, every second.

Progress is the workers' own counter of events taken in by the timeline processor (the last
stage), read from their /metrics. Lag is high watermarks minus committed offsets, measured
from Kafka as the worker's lag gauge does (`streams.operations.lag.ConsumerLag`), summed over
the pipeline's two groups and kept per group:
- the framers' (`<prefix>-framer`) on the agency topics: events not framed yet, one message
  each;
- the workers' Faust group (`<prefix>-streams`) on every topic it reads (record-frames,
  identity-input, person-events, identity decisions and changes, alert-updates, alerts; not the
  tables' changelogs, which the workers only read when recovering). Most of these carry
  frames, so this part of the lag counts frames, not events: up to
  `BACKBONE_WORKER_FRAME_MAX_EVENTS` events each.
So the sum is messages, not events; it is zero exactly when nothing is left to process. Faust
commits every few seconds, so the curve moves in steps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.operations.lag import ConsumerLag

SAMPLE_EVERY_S = 1.0
POLL_S = 0.25  # each poll renders the worker's whole /metrics page: finer costs it CPU
SAMPLE_WAIT_S = 30.0  # a sample takes longer than a second when the broker is slow to answer


# For the JSON: what a lag figure counts.
LAG_UNIT = (
    "messages: events on the agency topics (framer group), mostly frames of many events on the "
    "topics the workers' group reads"
)


@dataclass(frozen=True)
class Sample:
    """One observation: seconds since the start, events through the timeline, lag in messages
    summed over the groups (-1: not measured) and per group."""

    at_s: float
    processed: int
    lag: int
    lag_by_group: dict[str, int]


@dataclass
class ProgressWatch:
    """Samples progress and lag in a background thread until stopped. Every one of `groups`
    starts with `group_prefix`, so one admin round per sample measures them all."""

    processed: Callable[[], int]
    bootstrap: str
    groups: tuple[str, ...]
    group_prefix: str
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ProgressWatch:
        """Take the first sample now and the next ones every second."""
        self._started = time.monotonic()
        self._lag = ConsumerLag(self.bootstrap, self.group_prefix)
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

    def wait_idle(self, timeout_s: float) -> Sample:
        """Block until a sample taken from now on shows no lag in any group (everything
        consumed and committed); that sample, or the last one when `timeout_s` ran out."""
        deadline = time.monotonic() + timeout_s
        seen = len(self.samples)
        while time.monotonic() < deadline:
            idle = next((sample for sample in self.samples[seen:] if sample.lag == 0), None)
            if idle is not None:
                return idle
            time.sleep(POLL_S)
        return self.samples[-1]

    def samples_over(self, began: float, finished: float) -> list[Sample]:
        """A phase's samples: from the last one taken before it began to the first one after
        it finished, waited for (a phase shorter than a second has its lag measured too)."""
        deadline = time.monotonic() + SAMPLE_WAIT_S
        while self.samples[-1].at_s < finished and time.monotonic() < deadline:
            time.sleep(POLL_S)
        first = max((n for n, sample in enumerate(self.samples) if sample.at_s <= began), default=0)
        after = (n for n, sample in enumerate(self.samples) if sample.at_s >= finished)
        return self.samples[first : next(after, len(self.samples) - 1) + 1]

    def _watch(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic() - self._started
            by_group = self._lag_by_group()
            lag = sum(by_group.values()) if by_group else -1
            self.samples.append(Sample(round(at, 3), self.processed(), lag, by_group))
            self._stop.wait(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - self._started - at)))

    def _lag_by_group(self) -> dict[str, int]:
        """Each group's lag; empty when Kafka did not answer."""
        try:
            entries = self._lag.measure()
        except Exception:  # a slow admin answer on a busy machine: the curve shows a gap
            return {}
        lags = dict.fromkeys(self.groups, 0)
        for entry in entries:
            # Faust assigns its tables' changelogs to the group without committing there.
            if entry.group in lags and not entry.topic.endswith("-changelog"):
                lags[entry.group] += entry.lag
        return lags
