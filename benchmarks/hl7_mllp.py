"""Throughput of the hl7-mllp connector on real parts.

Starts `backbone connector run hl7-mllp` against the real broker (fresh topics under a unique
prefix), lets the hospital simulator push N ADT messages over real MLLP connections, and
reports records/s: messages answered AA (each one acknowledged by Kafka) over the wall time
from the first send to the last ACK.

    .venv/bin/python benchmarks/hl7_mllp.py --records 20000 --connections 4 --window 32
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from backbone.topics import delete_topics
from cli.kafka_probe import message_count
from cli.processes import BackboneProcess, free_port
from simulators.hospital import AdtMessage, HospitalPas, Patient, Visit


def wait_listening(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def messages(count: int) -> list[AdtMessage]:
    """A realistic mix: admissions, attendances, details changes, discharges."""
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    triggers = ("A01", "A04", "A08", "A03")
    built = []
    for number in range(count):
        patient = Patient(
            f"H{number:08d}",
            "Nowak",
            "Zofia",
            date(1960, 1, 1) + timedelta(days=number % 20000),
            "F",
            f"QQ{number % 1000000:06d}C",
            "1 High St",
            "Leeds",
            "LS6 1AA",
        )
        at = start + timedelta(seconds=number)
        trigger = triggers[number % len(triggers)]
        visit = None if trigger == "A08" else Visit("I", "EL", admitted_at=at)
        built.append(AdtMessage(trigger, patient, f"B{number:012d}", at, visit=visit))
    return built


def push(port: int, batches: list[list[AdtMessage]], window: int) -> tuple[int, float]:
    """Send every batch on its own connection at once; (messages answered AA, seconds)."""
    accepted = [0] * len(batches)

    def send(number: int) -> None:
        pas = HospitalPas("127.0.0.1", port, give_up_after_s=600.0)
        answers = pas.send_all(batches[number], window=window)
        accepted[number] = sum(1 for answer in answers if answer.code == "AA")
        pas.close()

    senders = [threading.Thread(target=send, args=(n,)) for n in range(len(batches))]
    started = time.perf_counter()
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    return sum(accepted), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4, help="parallel MLLP connections")
    parser.add_argument("--window", type=int, default=32, help="unanswered messages per connection")
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--json", type=Path, default=Path("bench-results/hl7_mllp.json"))
    args = parser.parse_args()

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    mllp_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "BACKBONE_KAFKA_BOOTSTRAP": args.bootstrap,
        "BACKBONE_TOPIC_PREFIX": prefix,
        "BACKBONE_PSEUDONYM_KEY": secrets.token_hex(32),
        "BACKBONE_MLLP_PORT": str(mllp_port),
        "BACKBONE_METRICS_PORT": str(metrics_port),
        "BACKBONE_MLLP_MAX_IN_FLIGHT": str(args.window),
        "BACKBONE_LOG_LEVEL": "WARNING",
    }
    batches = [messages(args.records)[n :: args.connections] for n in range(args.connections)]
    logs = Path(tempfile.mkdtemp(prefix="hl7-bench-"))
    connector = BackboneProcess.start(
        "hl7-mllp",
        ["connector", "run", "hl7-mllp"],
        env,
        logs,
        f"http://127.0.0.1:{metrics_port}/health",
    )
    try:
        connector.wait_healthy()
        wait_listening(mllp_port)
        accepted, seconds = push(mllp_port, batches, args.window)
    finally:
        connector.stop()
    on_topic = message_count(args.bootstrap, f"{prefix}.health.events")
    delete_topics(args.bootstrap, f"{prefix}.")
    figures = {
        "connector": "hl7-mllp",
        "records": args.records,
        "acknowledged": accepted,
        "on_topic": on_topic,
        "seconds": round(seconds, 3),
        "records_per_s": round(accepted / seconds, 1),
        "connections": args.connections,
        "window": args.window,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(
        f"hl7-mllp: {accepted} records acknowledged in {seconds:.2f} s: "
        f"{figures['records_per_s']} records/s "
        f"({args.connections} connections, window {args.window})"
    )
    return 0 if accepted == args.records else 1


if __name__ == "__main__":
    sys.exit(main())
