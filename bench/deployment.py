"""The deployment a benchmark runs against: the project's broker, its own topics and workers.

The broker is the project's own (`deploy/kafka/kafka.sh`): used if one answers, else started
here and stopped again at the end. Every run gets its own topic prefix, secrets, ports and
state folder, so it never touches another deployment on the same broker.
"""

from __future__ import annotations

import os
import secrets
import subprocess  # nosec B404 # every call is a fixed command, checked under B603
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from backbone.codec import AvroCodec, SchemaStore
from backbone.errors import TransientError
from backbone.settings import REPO_ROOT, BackboneSettings
from backbone.topics import Topics, delete_topics, ensure_topics
from cli.processes import BackboneProcess, free_port, stop_all
from streams.operations.table_memory import TABLE_STORE_METRIC

KAFKA_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"
PROGRESS_METRIC = "backbone_events_in"
SAMPLE_HOOKS = (
    "HEALTH",
    "SOCIAL_CARE",
    "HOUSING",
)  # the counter `backbone_events_in_total`, by component


def broker_answers(bootstrap: str) -> bool:
    """Whether a broker answers a metadata request at `bootstrap`."""
    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=3)
    except Exception:  # confluent-kafka raises KafkaException or a plain Exception
        return False
    return True


@contextmanager
def project_broker(bootstrap: str) -> Iterator[bool]:
    """A broker at `bootstrap`: the running one, or the project's own started (and stopped
    again) here. Yields whether it was started here."""
    if broker_answers(bootstrap):
        yield False
        return
    result = subprocess.run([str(KAFKA_SCRIPT), "start"], capture_output=True, text=True)  # nosec B603 # the project's own script, fixed arguments, no shell
    if result.returncode != 0 or not broker_answers(bootstrap):
        raise TransientError(
            f"no Kafka answers at {bootstrap} and {KAFKA_SCRIPT} start failed: "
            f"{result.stderr[-1000:]}"
        )
    try:
        yield True
    finally:
        subprocess.run([str(KAFKA_SCRIPT), "stop"], check=False)  # nosec B603 # the project's own script, fixed arguments, no shell


@dataclass
class Worker:
    """One `backbone worker` of the benchmark's deployment."""

    process: BackboneProcess
    port: int

    def timeline_events(self) -> int:
        """Events the worker's timeline processor has taken in (its /metrics counter)."""
        return int(self._metric_sum(f"{PROGRESS_METRIC}_total", component="timeline"))

    def table_store_bytes(self) -> int:
        """Memory RocksDB holds for the worker's tables, all kinds (its /metrics gauge)."""
        return int(self._metric_sum(TABLE_STORE_METRIC))

    def _metric_sum(self, sample_name: str, **labels: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5.0).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == sample_name
            and all(sample.labels.get(key) == value for key, value in labels.items())
        )

    def rss_bytes(self) -> int:
        """Resident memory of the worker process now (Linux /proc)."""
        return rss_of(self.process.process.pid)


@dataclass
class BenchDeployment:
    """Topics, secrets and workers of one benchmark run on the shared broker."""

    bootstrap: str
    partitions: int
    prefix: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:8]}")
    pseudonym_key: str = field(default_factory=lambda: secrets.token_hex(32))
    state: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="backbone-bench-")))
    workers: list[Worker] = field(default_factory=list)

    @property
    def topics(self) -> Topics:
        """The deployment's topic names."""
        return Topics(self.prefix)

    @property
    def group(self) -> str:
        """The workers' Faust app id, which is also their consumer group."""
        return f"{self.prefix}-streams"

    @property
    def framer_group(self) -> str:
        """The framers' consumer group on the agency topics (`streams/app.py`)."""
        return f"{self.prefix}-framer"

    @property
    def lag_groups(self) -> tuple[str, str]:
        """Every consumer group of the pipeline, in the order an event meets them."""
        return (self.framer_group, self.group)

    @property
    def timeline_changelog(self) -> str:
        """Where Faust writes every change of the timelines' month buckets."""
        return f"{self.group}-timeline-months-changelog"

    def codec(self) -> AvroCodec:
        """The project's codec over the checkout's schemas."""
        return AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))

    def create_topics(self) -> None:
        """Create the deployment's topics as a worker would."""
        values: dict[str, Any] = {
            "kafka_bootstrap": self.bootstrap,
            "topic_prefix": self.prefix,
            "partitions": self.partitions,
            "pseudonym_key": self.pseudonym_key,
        }
        ensure_topics(BackboneSettings(**values))

    def delete_topics(self) -> None:
        """Delete every topic of the run (the workers' changelogs included)."""
        delete_topics(self.bootstrap, self.prefix)

    def env(self, worker_port: int, number: int) -> dict[str, str]:
        """The environment of worker `number`."""
        return {
            **os.environ,
            "BACKBONE_KAFKA_BOOTSTRAP": self.bootstrap,
            "BACKBONE_TOPIC_PREFIX": self.prefix,
            "BACKBONE_PARTITIONS": str(self.partitions),
            "BACKBONE_PSEUDONYM_KEY": self.pseudonym_key,
            "BACKBONE_TOKEN_SECRET": secrets.token_hex(32),
            "BACKBONE_DATA_DIR": str(self.state / f"worker-{number}"),
            "BACKBONE_WORKER_PORT": str(worker_port),
            # INFO logs a line per event: the benchmark measures processing, not logging.
            "BACKBONE_LOG_LEVEL": "WARNING",
            # Once notifications are wired, a worker needs the secrets of the webhook channels
            # in deploy/notifications/routing.yaml to start; its deliveries are part of the load.
            **{f"BACKBONE_NOTIFY_SECRET_{team}": secrets.token_hex(32) for team in SAMPLE_HOOKS},
            # Nothing receives the sample routing's notifications here: one try each, or the
            # alert lifecycle backs off for minutes per alert and its lag grows all run long.
            "BACKBONE_NOTIFY_TRIES": "1",
        }

    def start_workers(self, count: int) -> list[Worker]:
        """Start `count` workers and wait until each is healthy (tables recovered)."""
        for number in range(count):
            port = free_port()
            process = BackboneProcess.start(
                f"worker-{number}",
                ["worker"],
                self.env(port, number),
                self.state,
                f"http://127.0.0.1:{port}/health",
            )
            self.workers.append(Worker(process, port))
        for worker in self.workers:
            worker.process.wait_healthy(timeout_s=120.0)
        return self.workers

    def timeline_events(self) -> int:
        """Events taken in by the timeline processors of all workers."""
        return sum(self.timeline_events_per_worker())

    def timeline_events_per_worker(self) -> list[int]:
        """Events taken in by each worker's timeline processor, in worker order."""
        return [worker.timeline_events() for worker in self.workers]

    def worker_cpu_seconds(self) -> float:
        """CPU time all workers have used so far."""
        return sum(worker.process.cpu_seconds() for worker in self.workers)

    def stop_workers(self) -> None:
        """Stop every worker (SIGTERM to all, then wait)."""
        stop_all([worker.process for worker in self.workers])
        self.workers = []


def rss_of(pid: int) -> int:
    """Resident set size of a process in bytes, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
