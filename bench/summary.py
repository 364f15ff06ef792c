"""The run's figures as one Markdown table: ours, beside the bounds and the targets.

The bounds are measured in the same run (the plain consumer's ceiling, the processors' own code
in process); the targets are the scale-out issue's, for this 2-core machine.
"""

from __future__ import annotations

from typing import Any

TARGETS = {
    "logic": "at least 20,000 events/s",
    "pipeline": "one worker: at least 3,000 events/s, at most 0.3 ms worker CPU per event",
    "backfill": "1M events in < 6 min",
    "latency": "p99 < 250 ms at 1,000 events/s offered",
    "messages": "at most 3",
    "webhook": "at least 3,000 requests/s",
    "memory": "flat in the soak",
}
SHOWN_SHARE = 0.05  # topics with fewer messages per event are left out of the row


def summary(figures: dict[str, Any]) -> str:
    """A Markdown table of the run's headline figures."""
    rows = [("measurement", "ours", "bound / target"), ("---", "---", "---")]
    rows += [_ceiling(figures), _logic(figures), _pipeline(figures), _backfill(figures)]
    rows += _latency(figures["latency"])
    rows.append(_messages(figures["messages_per_event"]))
    rows += _ingest(figures.get("ingest", {}))
    rows.append(_memory(figures))
    return "\n".join(f"| {' | '.join(row)} |" for row in rows)


def _rate(value: float, unit: str = "events/s") -> str:
    return f"{value:,.0f} {unit}"


def _ceiling(figures: dict[str, Any]) -> tuple[str, str, str]:
    ceiling = figures["ceiling"]
    what = f"read + Avro-decode, plain confluent-kafka consumer, {ceiling['events']:,} events"
    return (what, "", f"**{_rate(ceiling['events_per_s'])}** (ceiling)")


def _logic(figures: dict[str, Any]) -> tuple[str, str, str]:
    logic = figures["logic"]
    stages = ", ".join(f"{stage} {us:.0f}" for stage, us in logic["us_per_event"].items())
    what = f"the processors' own code in process, same events (µs per event: {stages})"
    ours = f"**{_rate(logic['events_per_s'])}** (logic) over {logic['events']:,} events"
    if early := logic.get("early"):
        ours += f", {_rate(early['events_per_s'])} over the first {early['events']:,}"
    return (what, ours, TARGETS["logic"])


def _pipeline(figures: dict[str, Any]) -> tuple[str, str, str]:
    pipeline = figures["pipeline"]
    what = f"pipeline, {pipeline['workers']} worker(s), {pipeline['events']:,}-event burst"
    ours = (
        f"**{_rate(pipeline['events_per_s_per_worker'])}** per worker, "
        f"{pipeline['ratio_to_ceiling']:.1%} of the ceiling, "
        f"{pipeline['ratio_to_logic']:.1%} of logic; "
        f"{pipeline['worker_cpu_ms_per_event']:.2f} ms worker CPU per event"
    )
    if pipeline["workers"] > 1:
        shares = pipeline["share_per_worker"]
        ours += "; worker shares " + " / ".join(f"{share:.0%}" for share in shares)
    return (what, ours, TARGETS["pipeline"])


def _backfill(figures: dict[str, Any]) -> tuple[str, str, str]:
    backfill = figures["backfill"]
    ours = (
        f"{backfill['seconds']:,.0f} s, **{_rate(backfill['events_per_s'])}**, "
        f"{backfill['worker_cpu_ms_per_event']:.2f} ms worker CPU per event, "
        f"lag peak {backfill['max_lag']:,} messages (events unframed + frames)"
    )
    return (f"backfill of {backfill['events']:,} events", ours, TARGETS["backfill"])


def _latency(latency: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for name, what in (("timeline", "send to timeline update"), ("alerts", "send to alert")):
        quantiles = latency.get(name) or {}
        if not quantiles.get("count"):
            continue
        ours = (
            f"p50 {quantiles['p50_ms']:.0f} ms, p95 {quantiles['p95_ms']:.0f} ms, "
            f"**p99 {quantiles['p99_ms']:.0f} ms**, max {quantiles['max_ms']:.0f} ms"
        )
        offered = f"{latency['offered_rate']:,.0f} events/s offered"
        offered += f", {quantiles['count']:,} measured"
        rows.append((f"latency, {what} ({offered})", ours, TARGETS["latency"]))
    return rows


def _messages(messages: dict[str, Any]) -> tuple[str, str, str]:
    """The total, then the topics that weigh (the agency topics as one: 1 per event)."""
    shares: dict[str, float] = {"agency topics": 0.0}
    for topic, share in messages["by_topic"].items():
        if topic.endswith(".events"):
            shares["agency topics"] += share
        elif share >= SHOWN_SHARE:
            shares[topic.removeprefix("streams-")] = share
    largest = ", ".join(f"{topic} {share:.2f}" for topic, share in shares.items())
    ours = f"**{messages['total']:.2f}** ({largest})"
    if left := sum(messages["lag_when_counted"].values()):
        ours += f"; counted with {left:,} messages still unconsumed"
    return ("Kafka messages per agency event (changelogs included)", ours, TARGETS["messages"])


def _ingest(ingest: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    if webhook := ingest.get("webhook"):
        ours = (
            f"**{_rate(webhook['records_per_s'], 'requests/s')}**, "
            f"{webhook['connector_cpu_ms_per_request']:.2f} ms connector CPU per request"
        )
        what = f"webhook ingest (202 after the Kafka ack, {webhook['concurrency']} concurrent)"
        rows.append((what, ours, TARGETS["webhook"]))
    if mllp := ingest.get("mllp"):
        what = f"MLLP ingest (AA after the Kafka ack, {mllp['connections']} connections)"
        rows.append((what, _rate(mllp["records_per_s"], "messages/s"), ""))
    return rows


def _memory(figures: dict[str, Any]) -> tuple[str, str, str]:
    memory = figures["memory"]
    rocksdb = memory["rocksdb_mib"]

    def mib(points: list[dict[str, float]], worker: str) -> str:
        return " / ".join(f"{point[worker]:.0f}" for point in points) + " MiB"

    resident = [memory["start_mib"], memory["after_backfill_mib"], memory["after_soak_mib"]]
    held = [rocksdb["start"], rocksdb["after_backfill"], rocksdb["after_soak"]]
    ours = "; ".join(
        f"{worker}: **{mib(resident, worker)}**, of it RocksDB {mib(held, worker)}"
        for worker in memory["start_mib"]
    )
    soak = figures["soak"]
    what = (
        f"worker RSS: start / after the backfill / after a {soak['seconds']:.0f} s soak "
        f"({soak['events']:,} events at {soak['rate']:,.0f}/s)"
    )
    return (what, ours, TARGETS["memory"])
