"""The jobcentre connector: the case management database's change stream onto Kafka.

On first start it creates its logical replication slot, publishes a consistent snapshot of
the existing rows, then streams inserts, updates and deletes in commit order (see slot.py for
why through the SQL interface). Each batch is whole transactions: every event (or dead letter)
of the batch is acknowledged by Kafka before the slot confirms the batch's last commit LSN and
the position is saved. A crash anywhere before that repeats the batch with the same event ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection

from backbone.errors import BadInput, TransientError
from backbone.events import JobcentreEvent, Subject
from backbone.logging import get_logger
from backbone.metrics import EVENTS_IN
from connectors.jobcentre_cdc.changes import Change, decode_batch
from connectors.jobcentre_cdc.config import JobcentreCdcSettings
from connectors.jobcentre_cdc.mapping import (
    EventBuilder,
    JobseekerRow,
    jobseeker_key,
    means_nothing,
    parse_row,
)
from connectors.jobcentre_cdc.slot import ReplicationSlot, lsn_value
from connectors.jobcentre_cdc.snapshot import read_snapshot
from connectors.jobcentre_cdc.subjects import SubjectDirectory
from connectors.jobcentre_cdc.tables import CaseSchema
from connectors.jobcentre_cdc.wal_lag import WalLagProbe
from connectors.runtime import ConnectorRuntime

log = get_logger(__name__)
AGENCY = "jobcentre"
SNAPSHOT_COMPLETE = "complete"
RETRY_S = 1.0
# Reading the saved position at start: how long one try may take while Kafka is away.
POSITION_READ_S = 5.0


class JobcentreCdcConnector:
    """Reads the jobcentre database through a logical replication slot."""

    name = "jobcentre-cdc"

    def __init__(self, settings: JobcentreCdcSettings) -> None:
        self.settings = settings
        self._schema = CaseSchema.from_settings(settings)
        self._slot = ReplicationSlot(settings.cdc_slot, [t.qualified for t in self._schema.tables])
        self._partition = f"slot:{settings.cdc_slot}"
        self._dsn = settings.cdc_dsn.get_secret_value()
        self._lag = WalLagProbe(self._dsn, self._slot, self.name, self._partition)
        self._stopping = asyncio.Event()
        self._runtime: ConnectorRuntime | None = None
        self._connection: AsyncConnection | None = None
        self._directory: SubjectDirectory | None = None
        self._builder: EventBuilder | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, runtime: ConnectorRuntime) -> None:
        """Connect, find out whether a snapshot is owed, and start streaming in the background."""
        self._runtime = runtime
        self._builder = EventBuilder(runtime.pseudonyms, self.settings.cdc_source_system)
        self._directory = SubjectDirectory(
            self._schema.by_reference("jobseekers"),
            runtime.pseudonyms,
            self.settings.cdc_subject_cache,
        )
        try:
            self._connection = await self._connect()
            await self._directory.open(self._dsn)
        except psycopg.OperationalError as exc:
            raise TransientError(f"cannot reach the jobcentre database: {exc}") from exc
        self._task = asyncio.create_task(self._run(), name="jobcentre-cdc")
        self._lag.start()

    async def stop(self) -> None:
        """Finish the batch in flight (it is confirmed only once acknowledged), then close."""
        self._stopping.set()
        try:
            await self._lag.stop()
            if self._task is not None:
                await self._task
        finally:
            if self._directory is not None:
                await self._directory.close()
            if self._connection is not None:
                await self._connection.close()

    async def _connect(self) -> AsyncConnection:
        return await AsyncConnection.connect(self._dsn, autocommit=True)

    async def _resume_point(self, position: dict[str, Any]) -> bool:
        """Whether a snapshot is still owed; else move the slot up to the saved position."""
        state = await self._slot.state(self._require_connection())
        complete = position.get("snapshot") == SNAPSHOT_COMPLETE
        if state is None:
            if complete:
                log.error("cdc_slot_lost_taking_new_snapshot", slot=self._slot.name)
            return True
        if not complete:
            return True
        saved = str(position.get("lsn", "0/0"))
        resume_at = max(saved, state.confirmed_lsn, key=lsn_value)
        if resume_at != state.confirmed_lsn:
            await self._slot.confirm(self._require_connection(), resume_at)
        log.info("cdc_resuming", slot=self._slot.name, lsn=resume_at)
        return False

    async def _run(self) -> None:
        try:
            position = await self._saved_position()
            if position is None:
                return  # stopped before Kafka could be read
            if await self._resume_point(position):
                await self._take_snapshot()
            await self._stream()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The stream cannot go on: stop the whole process loudly rather than sit idle.
            log.exception("cdc_stream_failed", slot=self._slot.name)
            signal.raise_signal(signal.SIGTERM)
            raise

    async def _saved_position(self) -> dict[str, Any] | None:
        """The position saved on Kafka, read again and again while Kafka is away, so that the
        connector starts (and answers /health) meanwhile; None if it is stopped first."""
        runtime = self._require_runtime()
        while not self._stopping.is_set():
            try:
                positions = await asyncio.to_thread(runtime.positions.load, POSITION_READ_S)
            except Exception as exc:  # Kafka away: nothing to resume from yet
                log.warning("position_unavailable", error=str(exc))
                await self._pause(RETRY_S)
                continue
            position: dict[str, Any] = positions.get(self._partition) or {}
            return position
        return None

    async def _take_snapshot(self) -> None:
        connection = self._require_connection()
        if await self._slot.state(connection) is not None:
            # A first snapshot was interrupted: its exported snapshot is gone with the
            # connection, so start again from a new slot. Snapshot event ids do not depend
            # on the slot, so rows already published get the same ids again.
            log.warning("cdc_snapshot_restarted", slot=self._slot.name)
            await self._slot.drop(connection)
        exported = await self._slot.create_with_snapshot(self._dsn)
        log.info("cdc_snapshot_started", slot=self._slot.name, lsn=exported.consistent_lsn)
        rows = 0
        async for chunk in read_snapshot(self._dsn, exported, self._schema):
            if self._stopping.is_set():
                return  # no position saved: the next start takes the snapshot again
            await self._publish_until_acked(chunk, [])
            rows += len(chunk)
        await self._save(exported.consistent_lsn)
        log.info("cdc_snapshot_complete", slot=self._slot.name, rows=rows)

    async def _stream(self) -> None:
        while not self._stopping.is_set():
            try:
                confirmed = await self._stream_batch()
            except psycopg.OperationalError as exc:
                log.warning("cdc_database_unavailable", error=str(exc))
                await self._pause(RETRY_S)
                await self._reconnect()
                continue
            except TransientError as exc:
                # Kafka went away once the batch was on it (or had nothing to publish), while
                # its position copy was being saved. The slot has confirmed the batch (its LSN
                # is the position), so streaming goes on once Kafka is back; ending the process
                # here, as it did, left every change committed meanwhile unread until someone
                # restarted it.
                log.warning("cdc_position_unsaved", error=str(exc))
                await self._pause(RETRY_S)
                continue
            if not confirmed:
                await self._pause(self.settings.cdc_idle_poll_s)

    async def _stream_batch(self) -> bool:
        """Publish the next whole transactions and confirm them; False if there were none."""
        connection = self._require_connection()
        outputs = await self._slot.peek(connection, self.settings.cdc_batch_changes)
        batch = decode_batch(outputs, self._schema)
        if batch.confirm_lsn is None:
            return False
        if not await self._publish_until_acked(batch.changes, batch.rejected):
            return True  # stopping: leave the batch on the slot for the next start
        await self._slot.confirm(connection, batch.confirm_lsn)
        await self._save(batch.confirm_lsn)
        return True

    async def _publish_until_acked(
        self, changes: Sequence[Change], rejected: Sequence[tuple[bytes, BadInput, str]]
    ) -> bool:
        """Publish until Kafka acknowledged all of it; False if asked to stop meanwhile."""
        while True:
            try:
                await self._publish(changes, rejected)
                return True
            except TransientError as exc:
                log.warning("cdc_kafka_unavailable", error=str(exc))
                if self._stopping.is_set():
                    return False
                await self._pause(RETRY_S)

    async def _publish(
        self, changes: Sequence[Change], rejected: Sequence[tuple[bytes, BadInput, str]]
    ) -> None:
        """Map in commit order and publish concurrently; produce order stays commit order."""
        runtime = self._require_runtime()
        pending: list[Awaitable[None]] = [
            asyncio.create_task(runtime.dead_letter(raw, str(exc), source))
            for raw, exc, source in rejected
        ]
        builder = self._require_builder()
        for change in changes:
            EVENTS_IN.labels(self.name, AGENCY).inc()
            started = time.perf_counter()
            try:
                events = await self._events_of(change, builder)
            except BadInput as exc:
                pending.append(
                    asyncio.create_task(runtime.dead_letter(change.raw, str(exc), change.source))
                )
                continue
            pending.extend(asyncio.create_task(self._emit(change, e, started)) for e in events)
        results = await asyncio.gather(*pending, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    async def _emit(self, change: Change, event: JobcentreEvent, started: float) -> None:
        """Publish one event of `change`; one too large for Kafka dead-letters the change."""
        runtime = self._require_runtime()
        try:
            await runtime.emit(event, started)
        except BadInput as exc:
            await runtime.dead_letter(change.raw, str(exc), change.source)

    async def _events_of(self, change: Change, builder: EventBuilder) -> list[JobcentreEvent]:
        if means_nothing(change):
            return []
        subject = await self._subject_of(change)
        return builder.events(change, subject)

    async def _subject_of(self, change: Change) -> Subject:
        directory = self._require_directory()
        if change.table.reference == "jobseekers":
            row = parse_row("jobseekers", change.row)
            assert isinstance(row, JobseekerRow)  # nosec B101 # parse_row of jobseekers gives this type
            return directory.remember(row)
        key = jobseeker_key(change)
        if key is None:
            reason = "missing (a key-only delete: the table needs REPLICA IDENTITY FULL)"
            raise BadInput(reason, field=f"{change.table.reference}.jobseeker_id")
        return await directory.subject(key)

    async def _save(self, lsn: str) -> None:
        position = {"lsn": lsn, "snapshot": SNAPSHOT_COMPLETE}
        await self._require_runtime().positions.save(self._partition, position)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _reconnect(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        try:
            self._connection = await self._connect()
        except psycopg.OperationalError as exc:
            log.warning("cdc_database_unavailable", error=str(exc))

    def _require_connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("the jobcentre connector is not started")
        return self._connection

    def _require_runtime(self) -> ConnectorRuntime:
        if self._runtime is None:
            raise RuntimeError("the jobcentre connector is not started")
        return self._runtime

    def _require_directory(self) -> SubjectDirectory:
        if self._directory is None:
            raise RuntimeError("the jobcentre connector is not started")
        return self._directory

    def _require_builder(self) -> EventBuilder:
        if self._builder is None:
            raise RuntimeError("the jobcentre connector is not started")
        return self._builder
