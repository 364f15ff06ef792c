"""The benchmark in order: one deployment, the measurements one after another, one report.

1. start the workers (idle) and note their memory;
2. pipeline: after a small warm-up, a burst of events, timed until the last is on a
   timeline;
3. latency: a steady offered load, send to timeline update (and alert);
4. backfill: a replay of history (1M events), its time and the lag curve; memory after it;
5. ceiling: a plain consumer reading and decoding every event the workers processed;
   logic: the same events through the processors' own code in this process (no Kafka, Faust);
6. soak: a steady load the workers sustain for N minutes; memory after it;
   messages: once every event sent is processed, Kafka messages per agency event;
7. ingest: with the workers stopped, the webhook and MLLP connectors' benchmarks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.backfill import run_backfill
from bench.ceiling import agency_records, read_and_decode
from bench.deployment import BenchDeployment, project_broker
from bench.ingest import run_ingest
from bench.latency import Observer, measure_latency
from bench.load import SteadyLoad
from bench.logic import run_logic
from bench.memory import rocksdb_now, rss_now, soak
from bench.messages import messages_per_event
from bench.mix import AgencyMix, BenchEvent
from bench.pipeline import run_burst
from bench.plot import plot
from bench.progress import ProgressWatch, Sample
from bench.report import machine, write_report

Say = Callable[[str], None]
SOAK_SHARE = 0.8  # the soak offers at most this share of the measured pipeline rate
IDLE_WAIT_S = 30.0  # the longest the count waits for the groups to have no lag
SENT_BY = ("warmup", "pipeline", "backfill", "soak")  # phases that count their events sent


@dataclass(frozen=True)
class BenchOptions:
    """Sizes of one run; `quick()` gives the tiny ones the test suite uses."""

    bootstrap: str = "127.0.0.1:19092"
    partitions: int = 4
    workers: int = 1
    warmup_events: int = 500
    pipeline_events: int = 50_000
    latency_rate: float = 1000.0
    latency_seconds: float = 30.0
    backfill_events: int = 1_000_000
    soak_seconds: float = 600.0
    ingest_records: int = 20_000
    json_path: Path = Path("bench-results/bench.json")
    plot_path: Path = Path("bench-results/bench.png")

    @classmethod
    def quick(cls, **overrides: Any) -> BenchOptions:
        """A run of well under a minute: it proves the benchmark works, not a figure."""
        sizes: dict[str, Any] = {
            "warmup_events": 50,
            "pipeline_events": 300,
            "latency_rate": 100.0,
            "latency_seconds": 2.0,
            "backfill_events": 300,
            "soak_seconds": 3.0,
            "ingest_records": 200,
        }
        return cls(**{**sizes, **overrides})


def run_bench(options: BenchOptions, say: Say = print) -> dict[str, Any]:
    """Run every measurement; write the JSON and PNG; return the figures."""
    figures: dict[str, Any] = {"machine": machine(), "options": _jsonable(asdict(options))}
    with project_broker(options.bootstrap) as started_here:
        figures["machine"]["broker_started_by_bench"] = started_here
        deployment = BenchDeployment(options.bootstrap, options.partitions)
        say(f"deployment {deployment.prefix}: creating topics, generating the agency mix")
        deployment.create_topics()
        total = options.warmup_events + options.pipeline_events + options.backfill_events
        mix = AgencyMix(
            total, deployment.codec(), deployment.topics, deployment.pseudonym_key.encode()
        )
        events = mix.events()
        figures["mix"] = {"records": mix.records, "events_sized_for": total}
        try:
            _measure(options, deployment, events, figures, say)
        except Exception as exc:
            # An hour's run keeps what it measured before the phase that failed.
            figures["failed"] = f"{type(exc).__name__}: {exc}"
            _write_figures(figures, options.json_path)
            say(f"failed; the figures measured until then are in {options.json_path}")
            raise
        finally:
            deployment.stop_workers()
            deployment.delete_topics()
        say(f"ingest: {options.ingest_records} webhook requests and MLLP messages")
        figures["ingest"] = run_ingest(options.bootstrap, options.ingest_records)
    samples = _write_figures(figures, options.json_path)
    plot(samples, figures, options.plot_path)
    say(f"figures in {options.json_path}, plot in {options.plot_path}")
    return figures


def _write_figures(figures: dict[str, Any], path: Path) -> list[Sample]:
    """Write the JSON report, the progress samples included; returns the samples."""
    samples: list[Sample] = figures.pop("_samples", [])
    figures["progress"] = [asdict(sample) for sample in samples]
    write_report(figures, path)
    return samples


def _measure(
    options: BenchOptions,
    deployment: BenchDeployment,
    events: Iterator[BenchEvent],
    figures: dict[str, Any],
    say: Say,
) -> None:
    say(f"starting {options.workers} worker(s)")
    deployment.start_workers(options.workers)
    memory: dict[str, Any] = {"start_mib": rss_now(deployment)}
    rocksdb = {"start": rocksdb_now(deployment)}
    watch = ProgressWatch(
        deployment.timeline_events,
        options.bootstrap,
        deployment.lag_groups,
        group_prefix=f"{deployment.prefix}-",
    ).start()
    try:
        warmup = _take(events, options.warmup_events)
        say(f"warm-up: {len(warmup)} events")
        figures["warmup"] = run_burst(deployment, warmup, watch, _timeout(len(warmup))).as_json()
        pipeline = _take(events, options.pipeline_events)
        say(f"pipeline: {len(pipeline)} events")
        figures["pipeline"] = run_burst(
            deployment, pipeline, watch, _timeout(len(pipeline))
        ).as_json()
        figures["latency"] = _latency(options, deployment, events, watch, say)
        history = _take(events, options.backfill_events)
        say(f"backfill: {len(history)} events")
        figures["backfill"] = run_backfill(deployment, history, watch, _timeout(len(history)))
        del history
        memory["after_backfill_mib"] = rss_now(deployment)
        rocksdb["after_backfill"] = rocksdb_now(deployment)
        say("ceiling: reading and decoding every event on the agency topics")
        ceiling = read_and_decode(
            options.bootstrap, deployment.topics.all_agency_events(), deployment.codec()
        )
        figures["ceiling"] = ceiling.as_json()
        say("logic: the same events through the processors' own code, in this process")
        figures["logic"] = run_logic(
            agency_records(
                options.bootstrap, deployment.topics.all_agency_events(), deployment.codec()
            )
        )
        for bound in ("ceiling", "logic"):
            figures["pipeline"][f"ratio_to_{bound}"] = round(
                figures["pipeline"]["events_per_s"] / figures[bound]["events_per_s"], 4
            )
        figures["soak"] = _soak(options, deployment, events, watch, figures, say)
        memory["after_soak_mib"] = rss_now(deployment)
        rocksdb["after_soak"] = rocksdb_now(deployment)
        figures["memory"] = {**memory, "rocksdb_mib": rocksdb}
        figures["messages_per_event"] = _messages(deployment, watch, figures, say)
    finally:
        figures["_samples"] = watch.stop()


def _latency(
    options: BenchOptions,
    deployment: BenchDeployment,
    events: Iterator[BenchEvent],
    watch: ProgressWatch,
    say: Say,
) -> dict[str, Any]:
    say(f"latency: {options.latency_rate:.0f} events/s for {options.latency_seconds:.0f} s")
    load = SteadyLoad(options.bootstrap, options.latency_rate)
    observer = Observer(
        options.bootstrap,
        deployment.timeline_changelog,
        deployment.topics.alerts,
        deployment.codec(),
        load.sent,
    ).start()
    before = deployment.timeline_events()
    began = watch.elapsed()

    def processed(offered: int) -> float:
        # Every offered event is on a timeline before the backfill's clock starts.
        return watch.wait_for(before + offered, _timeout(offered))

    result = measure_latency(load, events, options.latency_seconds, observer, processed)
    result["window_s"] = (round(began, 3), round(watch.elapsed(), 3))
    return result


def _soak(
    options: BenchOptions,
    deployment: BenchDeployment,
    events: Iterator[BenchEvent],
    watch: ProgressWatch,
    figures: dict[str, Any],
    say: Say,
) -> dict[str, Any]:
    rate = min(options.latency_rate, SOAK_SHARE * figures["pipeline"]["events_per_s"])
    say(f"soak: {rate:.0f} events/s for {options.soak_seconds:.0f} s")
    began = watch.elapsed()
    result = soak(deployment, events, rate, options.soak_seconds)
    result["window_s"] = (round(began, 3), round(watch.elapsed(), 3))
    return result


def _messages(
    deployment: BenchDeployment, watch: ProgressWatch, figures: dict[str, Any], say: Say
) -> dict[str, Any]:
    """Kafka messages per agency event, counted once every event sent is on a timeline and
    the groups are idle, or after IDLE_WAIT_S: the alert lifecycle can stay behind for long
    (it delivers each alert's notifications before the next), and what it still has to write
    is little. The lag left when counting is in the figures."""
    sent = sum(figures[phase]["events"] for phase in SENT_BY) + figures["latency"]["offered"]
    say(f"messages: counting on every topic once the {sent:,} events sent are processed")
    watch.wait_for(sent, _timeout(sent))
    left = watch.wait_idle(IDLE_WAIT_S)
    counted = messages_per_event(deployment.bootstrap, deployment.prefix, sent)
    return {**counted, "lag_when_counted": left.lag_by_group}


def _take(events: Iterator[BenchEvent], count: int) -> list[BenchEvent]:
    """The next `count` events, encoded now (before the clock starts)."""
    return list(itertools.islice(events, count))


def _timeout(events: int) -> float:
    """Generous: 100 events/s at worst on a crowded machine, and two minutes of start-up."""
    return 120.0 + events / 100.0


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}
