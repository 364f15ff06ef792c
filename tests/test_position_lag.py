"""Connector position lag on real parts: WAL bytes behind, export age, MLLP connections.

Each connector runs as a real process against its real source (PostgreSQL, a drop folder,
TCP) and the real broker; the figures are read from its `/metrics` as Prometheus would.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import AsyncConnection

from cli.processes import BackboneProcess, free_port
from connectors.jobcentre_cdc.slot import ReplicationSlot, lsn_value
from simulators.housing import HousingManagementSystem, population
from simulators.jobcentre import CaseManagementSystem, Jobseeker, create_database, drop_database
from tests.conftest import Deployment, wait_until

# Well below the WAL the test writes while the connector cannot read, well above what the
# rest of the (shared) cluster writes in the few seconds between two measurements.
CAUGHT_UP_BYTES = 256 * 1024
EXPORT_AGE_S = 3600.0


def sample(port: int, name: str, labels: dict[str, str]) -> float | None:
    """The value of one series on a process's /metrics, or None if it is not there."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def run_connector(
    deployment: Deployment, name: str, env: dict[str, str], logs: Path
) -> BackboneProcess:
    """`backbone connector run <name>` as a real process, once it is healthy."""
    process = BackboneProcess.start(
        name,
        ["connector", "run", name],
        deployment.env() | env,
        logs,
        f"http://127.0.0.1:{deployment.connector_metrics_port}/health",
    )
    process.wait_healthy()
    return process


# --- jobcentre-cdc: WAL bytes the slot has not confirmed ----------------------------------


@dataclass
class Jobcentre:
    deployment: Deployment
    dsn: str
    slot: str
    system: CaseManagementSystem
    env: dict[str, str]
    logs: Path

    def lag(self) -> float | None:
        labels = {"connector": "jobcentre-cdc", "source": f"slot:{self.slot}"}
        return sample(
            self.deployment.connector_metrics_port, "backbone_connector_position_lag_bytes", labels
        )

    def wal_position(self) -> int:
        with psycopg.connect(self.dsn) as connection:
            found = connection.execute("select pg_current_wal_lsn()::text").fetchone()
        assert found is not None
        return lsn_value(str(found[0]))

    def slot_behind(self) -> int | None:
        """The connector's own measurement, taken here while the connector is not running."""

        async def measure() -> int | None:
            async with await AsyncConnection.connect(self.dsn, autocommit=True) as connection:
                return await ReplicationSlot(self.slot, []).behind_bytes(connection)

        return asyncio.run(measure())


@pytest.fixture
def jobcentre(
    deployment: Deployment, postgres: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Jobcentre]:
    database = f"jobcentre_lag_{uuid.uuid4().hex[:10]}"
    dsn = create_database(postgres, database)
    system = CaseManagementSystem(dsn)
    system.create_schema()
    slot = f"t_{uuid.uuid4().hex[:12]}"
    env = {
        "BACKBONE_CDC_DSN": dsn,
        "BACKBONE_CDC_SLOT": slot,
        "BACKBONE_CDC_IDLE_POLL_S": "0.05",
    }
    try:
        yield Jobcentre(deployment, dsn, slot, system, env, tmp_path_factory.mktemp("cdc"))
    finally:
        system.close()
        drop_database(postgres, database)


def test_wal_lag_grows_while_the_connector_cannot_read_and_returns_to_zero(
    jobcentre: Jobcentre,
) -> None:
    person = Jobseeker(7001, "Lagerlöf", "Selma", date(1958, 11, 20))
    jobcentre.system.register(person)
    connector = run_connector(jobcentre.deployment, "jobcentre-cdc", jobcentre.env, jobcentre.logs)
    lock: psycopg.Connection | None = None
    try:
        log = connector.log
        wait_until(lambda: "cdc_snapshot_complete" in log.read_text(), 30, "the snapshot")
        log = connector.log
        wait_until(lambda: "cdc_snapshot_complete" in log.read_text(), 30, "the snapshot")
        wait_until(lambda: jobcentre.lag() is not None, 30, "the first WAL lag figure")
        connector.stop()

        # Written while the connector is stopped: the slot holds all of it back.
        before = jobcentre.wal_position()
        claims = [(90_000 + n, person.id, "universal_credit") for n in range(8000)]
        jobcentre.system.apply_claims(claims)
        written = jobcentre.wal_position() - before
        assert written > 2 * CAUGHT_UP_BYTES, "the test wrote too little WAL to tell lag apart"
        stopped = jobcentre.slot_behind()
        assert stopped is not None and stopped >= written

        # Running but stuck: the claims need the jobseeker (not cached after a restart) and
        # the jobseekers table is locked. The probe still measures, on its own connection.
        lock = psycopg.connect(jobcentre.dsn)
        lock.execute("lock table jobseekers in access exclusive mode")
        connector = run_connector(
            jobcentre.deployment, "jobcentre-cdc", jobcentre.env, jobcentre.logs
        )
        wait_until(lambda: (jobcentre.lag() or 0.0) >= written, 30, "the stuck stream's lag")

        lock.rollback()
        lock.close()
        lock = None

        def caught_up() -> bool:
            jobcentre.system.touch_jobseeker(person.id)  # a last commit of our own to confirm
            lag = jobcentre.lag()
            return lag is not None and lag < CAUGHT_UP_BYTES

        wait_until(caught_up, 60, f"the WAL lag to fall below {CAUGHT_UP_BYTES} bytes")
    finally:
        if lock is not None:
            lock.close()
        connector.stop()


# --- housing-csv: age of the oldest export still waiting -----------------------------------


def test_export_lag_is_the_age_of_the_oldest_export_still_waiting(
    deployment: Deployment, tmp_path: Path
) -> None:
    system = HousingManagementSystem(tmp_path / "drop")
    system.drop_dir.mkdir(parents=True, exist_ok=True)
    # A file where the connector's processed/ folder should be: every export is read and
    # published but cannot be set aside, so it keeps waiting (a disk or permission problem).
    blocker = system.drop_dir / "processed"
    blocker.write_text("not a folder")
    env = {
        "BACKBONE_HOUSING_DROP_DIR": str(system.drop_dir),
        "BACKBONE_HOUSING_POLL_INTERVAL_S": "0.1",
    }
    port = deployment.connector_metrics_port
    labels = {"connector": "housing-csv", "source": "tenancies"}
    connector = run_connector(deployment, "housing-csv", env, tmp_path)
    try:
        wait_until(
            lambda: sample(port, "backbone_connector_position_lag_seconds", labels) == 0.0,
            30,
            "a lag of 0 for an empty drop folder",
        )
        export = system.export(date(2026, 11, 1), population(20))
        completed = time.time() - EXPORT_AGE_S
        os.utime(export, (completed, completed))

        def waiting_for_an_hour() -> bool:
            lag = sample(port, "backbone_connector_position_lag_seconds", labels)
            return lag is not None and lag >= EXPORT_AGE_S

        wait_until(waiting_for_an_hour, 30, "the lag of an export that cannot be set aside")
        time.sleep(0.3)  # several polls, each deferred: the export is still waiting
        assert export.exists()
        assert waiting_for_an_hour()

        blocker.unlink()
        wait_until(lambda: (system.drop_dir / "processed" / export.name).exists(), 30, "processed")
        assert sample(port, "backbone_connector_position_lag_seconds", labels) == 0.0
    finally:
        connector.stop()


# --- hl7-mllp: open connections ------------------------------------------------------------


def connect(port: int, timeout_s: float = 30.0) -> socket.socket:
    """A TCP connection to the MLLP port (which opens just after /health answers)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5.0)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on MLLP port {port}") from None
            time.sleep(0.05)


def test_mllp_connections_count_the_senders_connected(
    deployment: Deployment, tmp_path: Path
) -> None:
    mllp_port = free_port()
    env = {"BACKBONE_MLLP_PORT": str(mllp_port)}
    port = deployment.connector_metrics_port
    labels = {"connector": "hl7-mllp"}

    def connections_are(expected: float) -> Callable[[], bool]:
        return lambda: sample(port, "backbone_mllp_connections", labels) == expected

    connector = run_connector(deployment, "hl7-mllp", env, tmp_path)
    senders: list[socket.socket] = []
    try:
        wait_until(connections_are(0), 30, "no MLLP connection")
        senders = [connect(mllp_port) for _ in range(3)]
        wait_until(connections_are(3), 30, "three MLLP connections")
        senders.pop().close()
        wait_until(connections_are(2), 30, "two MLLP connections after one sender left")
    finally:
        for sender in senders:
            sender.close()
        connector.stop()
