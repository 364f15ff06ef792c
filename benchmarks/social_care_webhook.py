"""Throughput of the social-care-webhook connector on real parts.

Starts `backbone connector run social-care-webhook` against the real broker (fresh topics
under a unique prefix) and POSTs N signed deliveries from this process (aiohttp client, C at a
time). Reports accepted requests/s: 202 answers, each event acknowledged by Kafka, over the
wall time from the first request to the last answer.

    .venv/bin/python benchmarks/social_care_webhook.py --records 20000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp

from backbone.topics import delete_topics
from cli.processes import BackboneProcess, free_port
from simulators.social_care import CaseEvent, CasePerson


def bodies(count: int) -> list[bytes]:
    types = ("referral_received", "case_opened", "assessment_completed", "case_closed")
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    built = []
    for number in range(count):
        person = CasePerson(
            f"CP-{number:08d}",
            "Nowak",
            "Zofia",
            date(1960, 1, 1) + timedelta(days=number % 20000),
            f"QQ{number % 1000000:06d}C",
            "LS6 1AA",
        )
        event = CaseEvent(
            types[number % len(types)], start + timedelta(seconds=number), f"CASE-{number}", person
        )
        built.append(json.dumps(event.body()).encode())
    return built


async def post_all(url: str, secret: bytes, payloads: list[bytes], concurrency: int) -> int:
    """POST every payload, `concurrency` at a time; the number answered 202."""
    signed = [
        (raw, "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()) for raw in payloads
    ]
    accepted = 0
    queue = iter(signed)
    # aiohttp's client: httpx's async pool spends more CPU than the server under test.
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            nonlocal accepted
            for raw, signature in queue:
                headers = {
                    "Content-Type": "application/json",
                    "X-Signature": signature,
                    "Idempotency-Key": str(uuid.uuid4()),
                }
                async with session.post(url, data=raw, headers=headers) as answer:
                    await answer.read()
                    accepted += answer.status == 202

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--bootstrap", default=os.environ.get("BACKBONE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results/social_care_webhook.json"))
    args = parser.parse_args()

    secret = secrets.token_hex(32)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    webhook_port, metrics_port = free_port(), free_port()
    env = os.environ | {
        "BACKBONE_KAFKA_BOOTSTRAP": args.bootstrap,
        "BACKBONE_TOPIC_PREFIX": prefix,
        "BACKBONE_PSEUDONYM_KEY": secrets.token_hex(32),
        "BACKBONE_WEBHOOK_SECRET": secret,
        "BACKBONE_WEBHOOK_PORT": str(webhook_port),
        "BACKBONE_METRICS_PORT": str(metrics_port),
        "BACKBONE_LOG_LEVEL": "WARNING",
    }
    payloads = bodies(args.records)
    logs = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    connector = BackboneProcess.start(
        "social-care-webhook",
        ["connector", "run", "social-care-webhook"],
        env,
        logs,
        f"http://127.0.0.1:{metrics_port}/health",
    )
    try:
        connector.wait_healthy()
        url = f"http://127.0.0.1:{webhook_port}/webhooks/social-care"
        cpu_before, own_cpu_before = connector.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        accepted = asyncio.run(post_all(url, secret.encode(), payloads, args.concurrency))
        elapsed = time.perf_counter() - started
        connector_cpu = connector.cpu_seconds() - cpu_before
        load_cpu = time.process_time() - own_cpu_before
    finally:
        connector.stop()
        delete_topics(args.bootstrap, f"{prefix}.")
    rate = accepted / elapsed
    # CPU per request is steadier than the rate on a shared 2-core machine.
    connector_ms = 1000 * connector_cpu / max(accepted, 1)
    load_ms = 1000 * load_cpu / max(accepted, 1)
    print(
        f"{accepted} of {args.records} requests accepted (202, on Kafka) in {elapsed:.2f} s: "
        f"{rate:.1f} requests/s ({args.concurrency} concurrent); CPU per request: "
        f"connector {connector_ms:.3f} ms, load generator {load_ms:.3f} ms"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "connector": "social-care-webhook",
                "records": args.records,
                "accepted": accepted,
                "seconds": elapsed,
                "records_per_s": rate,
                "concurrency": args.concurrency,
                "connector_cpu_ms_per_request": connector_ms,
                "load_generator_cpu_ms_per_request": load_ms,
                "cpus": os.cpu_count(),
                "at": datetime.now(UTC).isoformat(),
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
