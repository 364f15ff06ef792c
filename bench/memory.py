"""Memory: resident memory of each worker, at start, after the backfill, after a soak, and
the part of it RocksDB holds for the tables (memtables, block cache, index and filter blocks).

The soak offers a steady load (a rate the workers sustain) for N minutes and samples every
worker's RSS every few seconds: memory is flat when it does not grow with the events processed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from bench.deployment import BenchDeployment
from bench.load import SteadyLoad
from bench.mix import BenchEvent

RSS_EVERY_S = 5.0
MIB = 1024 * 1024


def rss_now(deployment: BenchDeployment) -> dict[str, float]:
    """Each worker's resident memory in MiB."""
    return {
        worker.process.name: round(worker.rss_bytes() / MIB, 1) for worker in deployment.workers
    }


def rocksdb_now(deployment: BenchDeployment) -> dict[str, float]:
    """The part of each worker's memory that RocksDB holds for its tables, in MiB."""
    return {
        worker.process.name: round(worker.table_store_bytes() / MIB, 1)
        for worker in deployment.workers
    }


def soak(
    deployment: BenchDeployment, events: Iterator[BenchEvent], rate: float, seconds: float
) -> dict[str, Any]:
    """Offer `rate` events/s for `seconds`, sampling RSS; the samples and the events sent."""
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    elapsed = 0.0

    def sample() -> None:
        nonlocal elapsed
        while True:
            samples.append(
                {
                    "at_s": round(elapsed, 1),
                    "rss_mib": rss_now(deployment),
                    "rocksdb_mib": rocksdb_now(deployment),
                }
            )
            if stop.wait(RSS_EVERY_S):
                return
            elapsed += RSS_EVERY_S

    sampler = threading.Thread(target=sample, name="rss", daemon=True)
    sampler.start()
    try:
        sent = SteadyLoad(deployment.bootstrap, rate).run(events, seconds)
    finally:
        stop.set()
        sampler.join()
    return {"rate": round(rate, 1), "seconds": seconds, "events": sent, "rss_samples": samples}
