"""Throughput of the identity partition inside Faust, on one worker and the real broker.

Publishes N hospital events (Avro, keyed by the record's keyed hash, as the hl7-mllp connector
does) onto the health topic of a fresh deployment (unique topic prefix), for N/repeat persons
with distinct details, each seen `repeat` times; then starts one `backbone worker` and waits
until identity has sent all N events to `person-events` (its `backbone_events_out_total`). The
figure is events/s through the framer -> `record-frames` -> `identity-router` -> (new or
changed records) `identity-input` (one partition) -> `identity` (resolution, decisions,
changes) -> `person-events`: N over the time between the first and the last frame written to
`person-events` (their Kafka timestamps), so the worker's start-up is not counted. With
`--repeat 1` every event is a new record: the resolver's rate for new records.

    .venv/bin/python benchmarks/identity_throughput.py --events 20000 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import HOSPITAL_NUMBER, Agency, LegalBasis, Sensitivity
from backbone.events import Encounter, Envelope, HealthEvent, Subject
from backbone.pseudonyms import Pseudonymiser
from backbone.settings import REPO_ROOT, BackboneSettings
from backbone.topics import Topics, ensure_topics
from cli.processes import BackboneProcess, free_port

SYLLABLES = ("ka", "lo", "mi", "ne", "su", "ta", "vo", "ri", "de", "ga", "po", "zu", "be", "hi")
GIVEN = ("ADA", "BELA", "CYRIL", "DORA", "EMIL", "FERN", "GUS", "HANA", "IVO", "JUN")


def events(count: int, repeat: int, pseudonyms: Pseudonymiser, codec: AvroCodec) -> list[bytes]:
    """Encoded admissions: count/repeat persons with distinct details, `repeat` events each."""
    chance = random.Random(7)
    built: list[bytes] = []
    for number in range(count // repeat):
        family = "".join(chance.choice(SYLLABLES) for _ in range(4)).upper()
        subject = Subject(
            record_id=pseudonyms.record_id("health", HOSPITAL_NUMBER, f"H{number:08d}"),
            id_type=HOSPITAL_NUMBER,
            family_name=family,
            given_name=chance.choice(GIVEN),
            birth_date=date(1930, 1, 1) + timedelta(days=chance.randrange(30000)),
            sex="F",
            postcode=f"LS{chance.randrange(1, 30)} {chance.randrange(1, 9)}AA",
        )
        for visit in range(repeat):
            occurred = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=visit, seconds=number)
            event = HealthEvent(
                envelope=Envelope(
                    event_id=str(uuid.uuid4()),
                    event_type="admission",
                    agency=Agency.HEALTH,
                    source_system="bench-pas",
                    occurred_at=occurred,
                    recorded_at=datetime.now(UTC),
                    legal_basis=LegalBasis.HEALTH_AND_SOCIAL_CARE,
                    sensitivity=Sensitivity.SPECIAL_CATEGORY,
                    subject=subject,
                ),
                facility="LGI",
                message_control_id=uuid.uuid4().hex,
                encounter=Encounter(patient_class="I", admitted_at=occurred),
            )
            built.append(codec.encode(event.schema_name(), event.to_avro()))
    return built


def publish(bootstrap: str, topic: str, values: list[bytes], codec: AvroCodec) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for value in values:
        key = codec.decode(value).record["envelope"]["subject"]["record_id"].encode()
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError(f"Kafka did not take every event onto {topic}")


def first_and_last_timestamps(bootstrap: str, topic: str) -> tuple[float, float]:
    """The Kafka timestamps (s) of the first and the last record on the topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        stamps: list[int] = []
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            for offset in {low, high - 1} if high > low else set():
                consumer.assign([TopicPartition(topic, partition, offset)])
                message = consumer.poll(10)
                if message is not None and not message.error():
                    stamps.append(message.timestamp()[1])
        return min(stamps) / 1000, max(stamps) / 1000
    finally:
        consumer.close()


def identified(port: int) -> int:
    """Events identity has sent to `person-events` so far, by the worker's own counter (the
    topic holds frames, many events per message)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("backbone_events_out_total{") and 'component="identity"' in line
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=2, help="events per person")
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait")
    parser.add_argument("--json", type=Path, default=Path("bench-results/identity.json"))
    args = parser.parse_args()

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    key, state = secrets.token_hex(32), Path(tempfile.mkdtemp(prefix="identity-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "BACKBONE_KAFKA_BOOTSTRAP": args.bootstrap,
        "BACKBONE_TOPIC_PREFIX": prefix,
        "BACKBONE_PSEUDONYM_KEY": key,
        "BACKBONE_TOKEN_SECRET": secrets.token_hex(32),
        "BACKBONE_DATA_DIR": str(state),
        "BACKBONE_WORKER_PORT": str(port),
        "BACKBONE_LOG_LEVEL": "WARNING",
        # The sample routing file's webhooks need their secrets to start a worker.
        **{
            f"BACKBONE_NOTIFY_SECRET_{team}": secrets.token_hex(16)
            for team in ("HEALTH", "SOCIAL_CARE", "HOUSING")
        },
    }
    topics = Topics(prefix)
    codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
    ensure_topics(
        BackboneSettings(kafka_bootstrap=args.bootstrap, topic_prefix=prefix, pseudonym_key=key)
    )
    values = events(args.events, args.repeat, Pseudonymiser(key.encode()), codec)
    publish(args.bootstrap, topics.agency_events(Agency.HEALTH), values, codec)
    worker = BackboneProcess.start(
        "worker", ["worker"], env, state, f"http://127.0.0.1:{port}/health"
    )
    try:
        worker.wait_healthy()
        deadline = time.monotonic() + args.timeout
        while (done := identified(port)) < len(values):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {len(values)} events identified in time")
            time.sleep(1.0)
    finally:
        worker.stop()
    first, last = first_and_last_timestamps(args.bootstrap, topics.person_events)
    seconds = max(last - first, 1e-3)
    figures = {
        "processor": "identity",
        "events": len(values),
        "persons": args.events // args.repeat,
        "seconds": round(seconds, 3),
        "events_per_s": round(len(values) / seconds, 1),
        "workers": 1,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(
        f"identity: {len(values)} events ({figures['persons']} persons) through identity-input "
        f"to person-events in {seconds:.2f} s: {figures['events_per_s']} events/s on one worker"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
