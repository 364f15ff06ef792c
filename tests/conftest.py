"""Fixtures: one real Kafka broker per test session, and real backbone processes.

The broker is the project's own (deploy/kafka/kafka.sh). If none answers, the session starts
one and stops it at the end; if that fails, every test that needs Kafka fails with the reason.
Nothing is skipped.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from confluent_kafka.admin import AdminClient
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

from backbone.settings import REPO_ROOT
from backbone.tokens import issue_token
from backbone.topics import Topics, delete_topics
from cli.kafka_probe import uncommitted
from cli.processes import BackboneProcess, free_port

if TYPE_CHECKING:
    from simulators.jobcentre import CaseManagementSystem

KAFKA_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"
BOOTSTRAP = os.environ.get("BACKBONE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
POSTGRES_SCRIPT = REPO_ROOT / "deploy" / "postgres" / "postgres.sh"
POSTGRES_PORT = os.environ.get("BACKBONE_POSTGRES_PORT", "15432")
POSTGRES_DSN = f"host=127.0.0.1 port={POSTGRES_PORT} user=postgres dbname=postgres"
SAMPLE_HOOKS = ("HEALTH", "SOCIAL_CARE", "HOUSING")  # deploy/notifications/routing.yaml

# Property-based tests (tests/test_hostile_input.py): a few hundred examples per property by
# default (`ci`), many more with HYPOTHESIS_PROFILE=nightly (`make fuzz`). Failing examples are
# kept under .hypothesis/ (ignored by git) to be tried first next time; CI keeps none.
_EXAMPLES = (
    None
    if os.environ.get("CI")
    else DirectoryBasedExampleDatabase(REPO_ROOT / ".hypothesis" / "examples")
)
settings.register_profile("ci", max_examples=300, deadline=None, database=_EXAMPLES)
settings.register_profile("nightly", max_examples=20_000, deadline=None, database=_EXAMPLES)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_SYLLABLES = ("ka", "lo", "mi", "ne", "su", "ta", "vo", "ri", "de", "ga", "po", "zu", "be", "hi")
_GIVEN_NAMES = ("Ada", "Bela", "Cyril", "Dora", "Emil", "Fern", "Gus", "Hana", "Ivo", "Jun")


def distinct_identity() -> tuple[str, str, date]:
    """A family name, given name and birth date that no other test person is likely to share.

    Identity resolution rightly links records with the same name, birth date and postcode, so
    tests that mean different people must give them different details.
    """
    chance = random.Random(uuid.uuid4().int)
    family = "".join(chance.choice(_SYLLABLES) for _ in range(4)).capitalize()
    born = date(1930, 1, 1) + timedelta(days=chance.randrange(30000))
    return family, chance.choice(_GIVEN_NAMES), born


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def broker_answers() -> bool:
    try:
        AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(timeout=3)
    except Exception:
        return False
    return True


@contextmanager
def running_service(
    name: str, address: str, script: Path, answers: Callable[[], bool]
) -> Iterator[None]:
    """A project service (deploy/*/*.sh) that answers: started here, and stopped again, only
    if none answered; a failure to start fails the test with the script's reason."""
    started = False
    if not answers():
        result = subprocess.run([str(script), "start"], capture_output=True, text=True)
        if result.returncode != 0 or not answers():
            pytest.fail(
                f"{name} is needed at {address} and could not be started with "
                f"{script} start:\n{result.stderr[-2000:]}",
                pytrace=False,
            )
        started = True
    yield
    if started:
        subprocess.run([str(script), "stop"], check=False)


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """The bootstrap address of a running broker."""
    with running_service("Kafka", BOOTSTRAP, KAFKA_SCRIPT, broker_answers):
        yield BOOTSTRAP


def postgres_answers() -> bool:
    import psycopg  # only the tests that need PostgreSQL load its driver

    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The admin DSN of the project's PostgreSQL."""
    address = f"127.0.0.1:{POSTGRES_PORT}"
    with running_service("PostgreSQL", address, POSTGRES_SCRIPT, postgres_answers):
        yield POSTGRES_DSN


@contextmanager
def jobcentre_database(admin_dsn: str, purpose: str) -> Iterator[tuple[str, CaseManagementSystem]]:
    """A fresh database (named after `purpose`) holding the jobcentre's reference schema: its
    DSN and the case management system writing to it; dropped afterwards, with its slots."""
    from simulators.jobcentre import CaseManagementSystem, create_database, drop_database

    database = f"{purpose}_{uuid.uuid4().hex[:10]}"
    dsn = create_database(admin_dsn, database)
    system = CaseManagementSystem(dsn)
    try:
        system.create_schema()
        yield dsn, system
    finally:
        system.close()
        drop_database(admin_dsn, database)


@dataclass(frozen=True)
class Deployment:
    """The settings of one isolated backbone deployment on a broker (the shared one, unless a
    test runs its own)."""

    bootstrap: str
    prefix: str
    pseudonym_key: str
    webhook_secret: str
    token_secret: str
    data_dir: Path
    worker_port: int
    webhook_port: int
    connector_metrics_port: int

    def start_worker(self, logs: Path, extra: Mapping[str, str] | None = None) -> BackboneProcess:
        """`backbone worker` for this deployment, with `extra` settings (not yet waited for)."""
        return BackboneProcess.start(
            "worker",
            ["worker"],
            {**self.env(), **(extra or {})},
            logs,
            f"http://127.0.0.1:{self.worker_port}/health",
        )

    def start_webhook_connector(self, logs: Path) -> BackboneProcess:
        """The social care webhook connector for this deployment (not yet waited for)."""
        return self.start_connector("social-care-webhook", logs)

    def start_connector(
        self, name: str, logs: Path, extra: Mapping[str, str] | None = None
    ) -> BackboneProcess:
        """`backbone connector run NAME` for this deployment, with `extra` settings (its own
        `BACKBONE_METRICS_PORT` when several connectors run at once; not yet waited for)."""
        env = {**self.env(), **(extra or {})}
        health = f"http://127.0.0.1:{env['BACKBONE_METRICS_PORT']}/health"
        return BackboneProcess.start(name, ["connector", "run", name], env, logs, health)

    def coordinator_api(self, name: str = "coordinator") -> httpx.Client:
        """A client of the worker's API: a children's services social worker, direct care."""
        token = issue_token(
            self.token_secret.encode(), name, ["children-services"], "social_worker"
        )
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.worker_port}",
            timeout=10.0,
            headers={"Authorization": f"Bearer {token}", "X-Purpose": "direct_care"},
        )

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "BACKBONE_KAFKA_BOOTSTRAP": self.bootstrap,
            "BACKBONE_TOPIC_PREFIX": self.prefix,
            "BACKBONE_PARTITIONS": "2",
            "BACKBONE_PSEUDONYM_KEY": self.pseudonym_key,
            "BACKBONE_WEBHOOK_SECRET": self.webhook_secret,
            "BACKBONE_TOKEN_SECRET": self.token_secret,
            "BACKBONE_DATA_DIR": str(self.data_dir),
            "BACKBONE_WORKER_PORT": str(self.worker_port),
            "BACKBONE_WEBHOOK_PORT": str(self.webhook_port),
            "BACKBONE_METRICS_PORT": str(self.connector_metrics_port),
            "BACKBONE_LOG_LEVEL": "INFO",
            # The sample notification routing's webhook secrets (a worker needs them to start).
            **{f"BACKBONE_NOTIFY_SECRET_{team}": self.webhook_secret for team in SAMPLE_HOOKS},
        }


@pytest.fixture(scope="module")
def deployment(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Fresh topics (by prefix), secrets and ports for the tests of one module; its topics are
    deleted afterwards, so a whole test session does not fill the broker's heap."""
    with fresh_deployment(kafka, tmp_path_factory) as deployed:
        yield deployed


@contextmanager
def fresh_deployment(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A deployment of its own (topic prefix, secrets, ports); its topics deleted after."""
    deployed = Deployment(
        bootstrap=kafka,
        prefix=f"t{uuid.uuid4().hex[:10]}",
        pseudonym_key=secrets.token_hex(32),
        webhook_secret=secrets.token_hex(32),
        token_secret=secrets.token_hex(32),
        data_dir=tmp_path_factory.mktemp("state"),
        worker_port=free_port(),
        webhook_port=free_port(),
        connector_metrics_port=free_port(),
    )
    yield deployed
    delete_topics(kafka, deployed.prefix)


def behind(deployment: Deployment) -> list[str]:
    """Where the framer's group or the workers' group has not committed everything on the
    topics they read (empty when nothing is in flight anywhere in the pipeline)."""
    topics = Topics(deployment.prefix)
    internal = [
        topics.record_frames,
        topics.identity_input,
        topics.person_events,
        topics.identity_decisions,
        topics.identity_changes,
    ]
    return [
        f"{group} {where}"
        for group, read in (
            (f"{deployment.prefix}-framer", topics.all_agency_events()),
            (f"{deployment.prefix}-streams", internal),
        )
        for where in uncommitted(deployment.bootstrap, group, read)
    ]


def settled(deployment: Deployment) -> bool:
    """Nothing in flight in the pipeline, twice, a commit interval of Faust's (2.8 s) apart."""
    if behind(deployment):
        return False
    time.sleep(3.0)
    return not behind(deployment)
