"""Throughput of the jobcentre-cdc connector on real parts.

Starts the project's PostgreSQL if it does not answer, creates a fresh database with the
reference schema, starts `backbone connector run jobcentre-cdc` against the real broker (fresh
topics under a unique prefix, its own replication slot), then the simulator commits N row
changes (one jobseeker registered per 5 records, the rest claims applied, 500 rows a commit).
Reports records/s: events acknowledged by Kafka (counted on the topic) over the wall time from
the first commit to the last acknowledged event.

    .venv/bin/python benchmarks/jobcentre_cdc.py --records 20000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import psycopg

from backbone.settings import REPO_ROOT
from backbone.topics import delete_topics
from cli.kafka_probe import message_count
from cli.processes import BackboneProcess, free_port
from simulators.jobcentre import CaseManagementSystem, Jobseeker, create_database, drop_database

POSTGRES_SCRIPT = REPO_ROOT / "deploy" / "postgres" / "postgres.sh"
COMMIT_ROWS = 500


def ensure_postgres(admin_dsn: str) -> None:
    try:
        psycopg.connect(admin_dsn, connect_timeout=3).close()
    except psycopg.OperationalError:
        subprocess.run([str(POSTGRES_SCRIPT), "start"], check=True)


def play(system: CaseManagementSystem, records: int) -> None:
    """Commit `records` changes: a jobseeker, then four claims for them, and so on."""
    people = [
        Jobseeker(n, "Kowalski", f"Jan{n}", date(1970 + n % 40, 1 + n % 12, 1 + n % 28))
        for n in range(1, records // 5 + 1)
    ]
    for start in range(0, len(people), COMMIT_ROWS):
        system.register_many(people[start : start + COMMIT_ROWS])
    claims = [
        (n, people[n % len(people)].id, "universal_credit")
        for n in range(1, records - len(people) + 1)
    ]
    for start in range(0, len(claims), COMMIT_ROWS):
        system.apply_claims(claims[start : start + COMMIT_ROWS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch-changes", type=int, default=2000)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument(
        "--postgres-port", default=os.environ.get("BACKBONE_POSTGRES_PORT", "15432")
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results/jobcentre-cdc.json"))
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    admin_dsn = f"host=127.0.0.1 port={args.postgres_port} user=postgres dbname=postgres"
    ensure_postgres(admin_dsn)
    database = f"bench_jobcentre_{uuid.uuid4().hex[:8]}"
    dsn = create_database(admin_dsn, database)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    metrics_port = free_port()
    env = {
        **os.environ,
        "BACKBONE_KAFKA_BOOTSTRAP": args.bootstrap,
        "BACKBONE_TOPIC_PREFIX": prefix,
        "BACKBONE_PSEUDONYM_KEY": secrets.token_hex(32),
        "BACKBONE_METRICS_PORT": str(metrics_port),
        "BACKBONE_LOG_LEVEL": "WARNING",
        "BACKBONE_CDC_DSN": dsn,
        "BACKBONE_CDC_SLOT": f"bench_{uuid.uuid4().hex[:12]}",
        "BACKBONE_CDC_BATCH_CHANGES": str(args.batch_changes),
    }
    topic = f"{prefix}.jobcentre.events"
    system = CaseManagementSystem(dsn)
    system.create_schema()
    logs = Path(tempfile.mkdtemp(prefix="bench-jobcentre-cdc-"))
    connector = BackboneProcess.start(
        "jobcentre-cdc",
        ["connector", "run", "jobcentre-cdc"],
        env,
        logs,
        f"http://127.0.0.1:{metrics_port}/health",
    )
    try:
        connector.wait_healthy()
        started = time.perf_counter()
        play(system, args.records)
        committed_s = time.perf_counter() - started
        deadline = time.monotonic() + args.timeout
        acknowledged = 0
        while acknowledged < args.records:
            if time.monotonic() > deadline:
                sys.exit(f"only {acknowledged} of {args.records} events within {args.timeout} s")
            time.sleep(0.05)
            acknowledged = message_count(args.bootstrap, topic)
        wall_s = time.perf_counter() - started
    finally:
        connector.stop()
        system.close()
        drop_database(admin_dsn, database)
        delete_topics(args.bootstrap, f"{prefix}.")
    figures = {
        "connector": "jobcentre-cdc",
        "records": args.records,
        "acknowledged": acknowledged,
        "wall_s": round(wall_s, 3),
        "records_per_s": round(acknowledged / wall_s, 1),
        "commit_s": round(committed_s, 3),
        "batch_changes": args.batch_changes,
        "commit_rows": COMMIT_ROWS,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"jobcentre-cdc: {acknowledged} records in {wall_s:.2f} s = "
        f"{figures['records_per_s']} records/s (commits took {committed_s:.2f} s; {args.json})"
    )


if __name__ == "__main__":
    main()
