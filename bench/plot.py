"""The benchmark's picture: throughput and lag over the run, the latency histogram, and the
workers' memory during the soak."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server
import matplotlib.pyplot as plt

from bench.progress import Sample

PHASES = ("pipeline", "latency", "backfill", "soak")


def plot(samples: list[Sample], figures: dict[str, Any], path: Path) -> None:
    """Write a PNG: events/s and consumer lag per second with the phases marked, and the
    distribution of send-to-timeline latency; memory in the soak."""
    figure, (rate_axes, lag_axes, latency_axes, memory_axes) = plt.subplots(4, 1, figsize=(10, 14))
    times = [sample.at_s for sample in samples[1:]]
    rates = [
        (now.processed - before.processed) / max(now.at_s - before.at_s, 1e-9)
        for before, now in itertools.pairwise(samples)
    ]
    rate_axes.plot(times, rates, color="tab:blue")
    # Log scale: the ceiling and the pipeline are orders of magnitude apart.
    rate_axes.set_yscale("symlog", linthresh=10)
    rate_axes.set(title="Events through the pipeline", xlabel="s", ylabel="events/s")
    ceiling = figures.get("ceiling", {}).get("events_per_s")
    if ceiling:
        rate_axes.axhline(ceiling, color="tab:gray", linestyle="--", label="ceiling (read+decode)")
        rate_axes.legend(loc="upper right")
    _plot_lag(lag_axes, [sample for sample in samples if sample.lag >= 0])
    for axes in (rate_axes, lag_axes):
        _mark_phases(axes, figures)
    latencies = figures.get("latency", {}).get("timeline", {}).get("samples_ms", [])
    latency_axes.hist(latencies or [0.0], bins=50, color="tab:green")
    rate = figures.get("latency", {}).get("offered_rate", 0)
    latency_axes.set(
        title=f"Send to timeline update at {rate:,.0f} events/s offered",
        xlabel="ms",
        ylabel="events",
    )
    _plot_soak_memory(memory_axes, figures.get("soak", {}).get("rss_samples", []))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_lag(axes: Any, samples: list[Sample]) -> None:
    """The summed lag and each group's: messages, so events before the framer, frames after."""
    times = [sample.at_s for sample in samples]
    axes.plot(times, [sample.lag for sample in samples], color="tab:red", label="all groups")
    groups = sorted({group for sample in samples for group in sample.lag_by_group})
    for group in groups:
        lags = [sample.lag_by_group.get(group, 0) for sample in samples]
        axes.plot(times, lags, linewidth=0.8, linestyle=":", label=group)
    # Log scale: a backfill's unframed events dwarf the frames the workers have yet to read.
    axes.set_yscale("symlog", linthresh=10)
    axes.set(
        title="Consumer lag: framer group (events) + workers' group (mostly frames)",
        xlabel="s",
        ylabel="messages",
    )
    if groups:
        axes.legend(loc="lower right")


def _mark_phases(axes: Any, figures: dict[str, Any]) -> None:
    for number, phase in enumerate(PHASES):
        window = figures.get(phase, {}).get("window_s")
        if window:
            axes.axvspan(*window, alpha=0.08, color=f"C{number}")
            axes.text(window[0], axes.get_ylim()[1] * 0.9, phase, fontsize=8)


def _plot_soak_memory(axes: Any, samples: list[dict[str, Any]]) -> None:
    seconds = [sample["at_s"] for sample in samples]
    for key, label in (("rss_mib", "resident (all workers)"), ("rocksdb_mib", "of it RocksDB")):
        axes.plot(seconds, [sum(sample[key].values()) for sample in samples], label=label)
    axes.set(title="Worker memory during the soak", xlabel="s into the soak", ylabel="MiB")
    axes.set_ylim(bottom=0)
    axes.legend(loc="lower right")
