"""How far the connector is behind the database: WAL bytes its slot has not confirmed.

Measured on a timer over a connection of its own, not by the stream: the figure must keep
moving when the stream is stuck (Kafka away, a lock, a slow batch), which is exactly when an
operator needs it. One row of pg_replication_slots every few seconds costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
from psycopg import AsyncConnection

from backbone.logging import get_logger
from backbone.metrics import POSITION_LAG_BYTES
from connectors.jobcentre_cdc.slot import ReplicationSlot

log = get_logger(__name__)
PROBE_INTERVAL_S = 2.0


class WalLagProbe:
    """Publishes `backbone_connector_position_lag_bytes` for one slot until stopped."""

    def __init__(self, dsn: str, slot: ReplicationSlot, connector: str, source: str) -> None:
        self._dsn = dsn
        self._slot = slot
        self._gauge = POSITION_LAG_BYTES.labels(connector, source)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Measure now and then every PROBE_INTERVAL_S, in the background."""
        self._task = asyncio.create_task(self._run(), name="jobcentre-cdc-wal-lag")

    async def stop(self) -> None:
        """Stop measuring and close the probe's connection."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        connection: AsyncConnection | None = None
        try:
            while not self._stopping.is_set():
                connection = await self._measure(connection)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=PROBE_INTERVAL_S)
        finally:
            if connection is not None:
                await connection.close()

    async def _measure(self, connection: AsyncConnection | None) -> AsyncConnection | None:
        """One measurement; returns the connection to reuse (None after a failure)."""
        try:
            if connection is None or connection.closed:
                connection = await AsyncConnection.connect(self._dsn, autocommit=True)
            behind = await self._slot.behind_bytes(connection)
        except psycopg.Error as exc:
            # The gauge keeps its last value; the stream logs the outage in its own words.
            log.debug("cdc_wal_lag_unmeasured", error=str(exc))
            if connection is not None:
                await connection.close()
            return None
        if behind is not None:
            self._gauge.set(behind)
        return connection
