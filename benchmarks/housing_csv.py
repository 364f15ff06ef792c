"""Throughput of the housing CSV connector on real parts, and its peak memory.

Runs the connector as a real process against the real broker and a real drop folder, then:
1. first night: a snapshot of N new tenancies -> N tenancy_started events;
2. next night: the same N tenancies with 10 % of them changed (arrears, notices, details).
For each, the wall time from the file appearing under its final name to the connector moving
it to processed/ (all events acknowledged, store and position committed). Prints records/s
(events acknowledged / wall time) and rows/s, and the connector's peak RSS (VmHWM).

    .venv/bin/python benchmarks/housing_csv.py --records 20000
    .venv/bin/python benchmarks/housing_csv.py --records 1000000 \
        --json bench-results/housing_csv_1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from backbone.topics import delete_topics
from cli.processes import BackboneProcess, free_port
from simulators.housing import HousingManagementSystem, Tenancy, population

FIRST_NIGHT = date(2026, 11, 1)
NEXT_NIGHT = date(2026, 11, 2)


def message_count(bootstrap: str, topic: str) -> int:
    """Records on `topic` (sum of the partitions' high watermarks)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.partitions
        )
    finally:
        consumer.close()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size so far (Linux VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc: peak memory needs Linux")


def next_night(tenancies: Iterator[Tenancy]) -> Iterator[Tenancy]:
    """Every tenth tenancy changed, the kinds of change spread evenly."""
    for number, tenancy in enumerate(tenancies):
        if number % 10 != 0:
            yield tenancy
            continue
        kind = (number // 10) % 4
        if kind == 0:
            yield tenancy.changed(arrears_amount="650.00", arrears_weeks=5.0)
        elif kind == 1:
            yield tenancy.changed(notice="notice_seeking_possession")
        elif kind == 2:
            yield tenancy.changed(family_name=tenancy.family_name + "-Lee")
        else:
            yield tenancy.changed(homelessness_application="open")


def wait_processed(process: BackboneProcess, drop_dir: Path, name: str, timeout_s: float) -> None:
    target = drop_dir / "processed" / name
    deadline = time.monotonic() + timeout_s
    while not target.exists():
        if process.process.poll() is not None:
            raise RuntimeError(f"the connector exited; see {process.log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not processed within {timeout_s:.0f} s; see {process.log}")
        time.sleep(0.05)


def run_night(
    system: HousingManagementSystem,
    process: BackboneProcess,
    bootstrap: str,
    topic: str,
    night: date,
    tenancies: Iterator[Tenancy],
    rows: int,
) -> dict[str, Any]:
    """Export one night, wait until it is processed; its figures."""
    before = message_count(bootstrap, topic)
    path = system.export(night, tenancies)
    started = time.monotonic()
    wait_processed(process, system.drop_dir, path.name, timeout_s=max(600.0, rows / 500))
    seconds = time.monotonic() - started
    events = message_count(bootstrap, topic) - before
    return {
        "rows": rows,
        "events_acknowledged": events,
        "seconds": round(seconds, 3),
        "records_per_s": round(events / seconds, 1),
        "rows_per_s": round(rows / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="tenancies per snapshot")
    parser.add_argument("--json", type=Path, default=Path("bench-results/housing_csv.json"))
    parser.add_argument(
        "--bootstrap", default=os.environ.get("BACKBONE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    )
    parser.add_argument("--log-level", default="INFO", help="the connector's log level")
    args = parser.parse_args()

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.housing.events"
    metrics_port = free_port()
    with tempfile.TemporaryDirectory(prefix="housing-bench-") as scratch:
        work = Path(scratch)
        system = HousingManagementSystem(work / "drop")
        env = {
            **os.environ,
            "BACKBONE_KAFKA_BOOTSTRAP": args.bootstrap,
            "BACKBONE_TOPIC_PREFIX": prefix,
            "BACKBONE_PSEUDONYM_KEY": secrets.token_hex(32),
            "BACKBONE_DATA_DIR": str(work / "state"),
            "BACKBONE_METRICS_PORT": str(metrics_port),
            "BACKBONE_LOG_LEVEL": args.log_level,
            "BACKBONE_HOUSING_DROP_DIR": str(system.drop_dir),
            "BACKBONE_HOUSING_POLL_INTERVAL_S": "0.1",
        }
        process = BackboneProcess.start(
            "housing-csv",
            ["connector", "run", "housing-csv"],
            env,
            work,
            f"http://127.0.0.1:{metrics_port}/health",
        )
        try:
            process.wait_healthy()
            first = run_night(
                system,
                process,
                args.bootstrap,
                topic,
                FIRST_NIGHT,
                population(args.records),
                args.records,
            )
            print(f"first night: {json.dumps(first)}", flush=True)
            following = run_night(
                system,
                process,
                args.bootstrap,
                topic,
                NEXT_NIGHT,
                next_night(population(args.records)),
                args.records,
            )
            print(f"next night:  {json.dumps(following)}", flush=True)
            peak = round(peak_rss_mib(process.process.pid), 1)
        finally:
            process.stop()
            delete_topics(args.bootstrap, f"{prefix}.")
    result = {
        "connector": "housing-csv",
        "records": args.records,
        "log_level": args.log_level,
        "records_per_s": first["records_per_s"],
        "first_night": first,
        "next_night": following,
        "peak_rss_mib": peak,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"housing-csv: {first['records_per_s']:.0f} records/s "
        f"(first night, {args.records} rows -> {first['events_acknowledged']} events in "
        f"{first['seconds']:.1f} s); next night {following['rows_per_s']:.0f} rows/s "
        f"({following['events_acknowledged']} events); peak RSS {peak} MiB -> {args.json}"
    )


if __name__ == "__main__":
    main()
