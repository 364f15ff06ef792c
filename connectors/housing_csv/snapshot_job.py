"""Reading one snapshot file: stream its rows, diff each against last night, publish.

Events and dead letters are published through a bounded window; the job returns only when all
of them were acknowledged by Kafka. Tonight's states are staged in the snapshot store as rows
are read; the caller commits them only after that. The events of a first snapshot (the store
holds none yet) are the connector's initial load: what the housing system held at go-live.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date, datetime

from backbone.errors import BadInput
from backbone.events import HousingEvent
from backbone.metrics import EVENTS_IN
from connectors.housing_csv.config import HousingCsvSettings
from connectors.housing_csv.diff import Change, changes, disappeared
from connectors.housing_csv.drop_folder import SnapshotFile
from connectors.housing_csv.mapping import AGENCY, state_of, to_event
from connectors.housing_csv.publish_window import PublishWindow
from connectors.housing_csv.snapshot_csv import RawRow, parse_row, read_snapshot
from connectors.housing_csv.snapshot_store import SnapshotStore
from connectors.housing_csv.tenancy_state import TenancyState
from connectors.runtime import ConnectorRuntime

# Rows between commits of the staging table, and between yields to the event loop (so
# /metrics and /health answer while an unchanged million-row file is read).
CHECKPOINT_ROWS = 10_000


@dataclass
class SnapshotOutcome:
    """What reading one file produced."""

    rows: int = 0
    events: int = 0
    dead_letters: int = 0


class SnapshotJob:
    """Processes one snapshot file against the stored previous snapshot."""

    def __init__(
        self, runtime: ConnectorRuntime, store: SnapshotStore, settings: HousingCsvSettings
    ) -> None:
        self._runtime = runtime
        self._store = store
        self._settings = settings
        self._thresholds = settings.housing_arrears_thresholds_weeks
        self._rows_in = EVENTS_IN.labels(runtime.name, AGENCY)

    async def run(self, snapshot: SnapshotFile) -> SnapshotOutcome:
        """Publish every change in `snapshot`; raises BadInput (header) or TransientError."""
        outcome = SnapshotOutcome()
        window = PublishWindow(self._settings.housing_publish_window)
        # Nothing is applied before the first commit: a first file read again after a crash
        # is still the initial load, with the same events.
        initial_load = self._store.applied() is None
        self._store.start_staging()
        try:
            for row in read_snapshot(snapshot.path, self._settings.housing_max_row_chars):
                await self._row(snapshot, row, initial_load, window, outcome)
                if outcome.rows % CHECKPOINT_ROWS == 0:
                    self._store.checkpoint_staging()
                    await asyncio.sleep(0)
            for previous in self._store.disappeared():
                ended = disappeared(previous, _night(snapshot))
                if ended is not None:
                    events = self._events(snapshot, ended[0], [ended[1]], initial_load)
                    await self._publish(events, time.perf_counter(), window, outcome)
            await window.drain()
        except BaseException:
            await window.cancel()
            self._store.abandon_staging()
            raise
        return outcome

    async def _row(
        self,
        snapshot: SnapshotFile,
        row: RawRow,
        initial_load: bool,
        window: PublishWindow,
        outcome: SnapshotOutcome,
    ) -> None:
        started = time.perf_counter()
        outcome.rows += 1
        self._rows_in.inc()
        try:
            if row.problem is not None:
                raise row.problem
            state = state_of(parse_row(row.fields), self._runtime.pseudonyms)
            previous = self._store.previous(state.tenancy_id)
            found = changes(previous, state, self._thresholds)
            events = self._events(snapshot, state, found, initial_load)
            if not self._store.stage(state):
                raise BadInput("appears more than once in the snapshot", field="tenancy_ref")
        except BadInput as exc:
            await self._dead_letter(snapshot, row, exc, window, outcome)
            return
        await self._publish(events, started, window, outcome)

    def _events(
        self, snapshot: SnapshotFile, state: TenancyState, found: list[Change], initial_load: bool
    ) -> list[HousingEvent]:
        source = self._settings.housing_source_system
        return [
            to_event(state, change, snapshot.name, source, initial_load=initial_load)
            for change in found
        ]

    async def _publish(
        self,
        events: list[HousingEvent],
        started: float,
        window: PublishWindow,
        outcome: SnapshotOutcome,
    ) -> None:
        for event in events:
            await window.submit(self._runtime.emit(event, started))
            outcome.events += 1

    async def _dead_letter(
        self,
        snapshot: SnapshotFile,
        row: RawRow,
        problem: BadInput,
        window: PublishWindow,
        outcome: SnapshotOutcome,
    ) -> None:
        raw = row.raw.rstrip("\r\n").encode("utf-8", "surrogateescape")
        reason = f"{problem.field or 'row'}: {problem.reason}"
        source = f"{snapshot.name}:{row.line}"
        await window.submit(self._runtime.dead_letter(raw, reason, source))
        outcome.dead_letters += 1


def _night(snapshot: SnapshotFile) -> date:
    return datetime.strptime(snapshot.date, "%Y%m%d").date()
