"""The housing connector: watches the drop folder and turns each night's export into events.

For every complete snapshot, oldest first:
- the same file as the last one processed (same checksum): nothing is published, it moves to
  processed/;
- a file not newer than the last one processed: refused, with a log line and a metric, and
  moved to refused/;
- otherwise its rows are diffed against the stored previous snapshot and the changes published;
  once Kafka acknowledged all of them, the store commits tonight's snapshot, then the position
  (file, checksum, date) is saved, then the file moves to processed/.
A crash anywhere before the position is saved reads the whole file again on restart, with the
same event ids, so downstream dedup by event id makes it exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

from backbone.errors import BadInput
from backbone.logging import get_logger
from backbone.metrics import POSITION_LAG_SECONDS
from connectors.housing_csv.config import HousingCsvSettings
from connectors.housing_csv.drop_folder import PROCESSED, REFUSED, DropFolder, SnapshotFile
from connectors.housing_csv.metrics import SNAPSHOTS
from connectors.housing_csv.snapshot_job import SnapshotJob
from connectors.housing_csv.snapshot_store import AppliedSnapshot, SnapshotStore
from connectors.runtime import ConnectorRuntime

log = get_logger(__name__)
# The source partition of the position: the stream of tenancy exports.
POSITION_KEY = "tenancies"
Position = dict[str, str]  # {"file", "sha256", "date"}


class HousingCsvConnector:
    """The housing connector: nightly tenancy snapshots from a drop folder."""

    name = "housing-csv"

    def __init__(self, settings: HousingCsvSettings) -> None:
        self.settings = settings
        self._folder = DropFolder(settings.housing_drop_dir, settings.housing_require_done_marker)
        self._store: SnapshotStore | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def start(self, runtime: ConnectorRuntime) -> None:
        """Open the snapshot store and start watching the drop folder."""
        self._store = SnapshotStore(self.settings.data_dir / self.name / "snapshot.sqlite3")
        job = SnapshotJob(runtime, self._store, self.settings)
        self._watcher = asyncio.create_task(self._watch(runtime, self._store, job))
        # Computed at each scrape from the folder itself, so it keeps growing while the
        # watcher is stuck on a file (deferred again and again, or a long diff).
        POSITION_LAG_SECONDS.labels(self.name, POSITION_KEY).set_function(self._waiting_for_s)
        log.info("drop_folder_watched", folder=str(self.settings.housing_drop_dir))

    async def stop(self) -> None:
        """Stop at once: a file half read is abandoned (nothing committed) and read again
        from the start on the next run."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._store is not None:
            self._store.close()

    async def _watch(
        self, runtime: ConnectorRuntime, store: SnapshotStore, job: SnapshotJob
    ) -> None:
        position = await self._load_position(runtime, store)
        while True:
            try:
                for snapshot in self._folder.ready():
                    position = await self._take(snapshot, position, runtime, store, job)
            except Exception as exc:
                # Kafka away, a file vanished, a disk error: nothing was committed; try again.
                SNAPSHOTS.labels(self.name, "deferred").inc()
                log.warning("snapshot_deferred", error=str(exc), exc_info=True)
            await asyncio.sleep(self.settings.housing_poll_interval_s)

    def _waiting_for_s(self) -> float:
        """Seconds the oldest complete export has waited in the drop folder (0: none waits;
        NaN: the folder cannot be read)."""
        try:
            since = self._folder.oldest_waiting_since()
        except OSError:
            return math.nan
        return 0.0 if since is None else max(0.0, time.time() - since)

    async def _load_position(
        self, runtime: ConnectorRuntime, store: SnapshotStore
    ) -> Position | None:
        while True:
            try:
                positions: dict[str, Any] = await asyncio.to_thread(runtime.positions.load)
                break
            except Exception as exc:
                log.warning("position_unavailable", error=str(exc))
                await asyncio.sleep(self.settings.housing_poll_interval_s)
        position: Position | None = positions.get(POSITION_KEY)
        applied = store.applied()
        if position is not None and (applied is None or applied.date < position["date"]):
            # The local store was lost or restored from an older copy: the next file will be
            # compared with what the store has, and may repeat events (same ids) or report
            # tenancies as started again.
            log.warning("snapshot_store_behind_position", position=position, store=str(applied))
        log.info("position_loaded", position=position)
        return position

    async def _take(
        self,
        snapshot: SnapshotFile,
        position: Position | None,
        runtime: ConnectorRuntime,
        store: SnapshotStore,
        job: SnapshotJob,
    ) -> Position | None:
        sha256 = await asyncio.to_thread(snapshot.sha256)
        if position is not None and sha256 == position["sha256"]:
            self._set_aside(snapshot, PROCESSED, "already_processed", sha256=sha256)
            return position
        if not DropFolder.has_valid_date(snapshot):
            self._refuse(snapshot, "the date in the file name does not exist", position)
            return position
        if position is not None and snapshot.date <= position["date"]:
            self._refuse(snapshot, "not newer than the last snapshot processed", position)
            return position
        applied = AppliedSnapshot(snapshot.name, sha256, snapshot.date)
        if store.applied() != applied:  # else: committed before a crash, position not saved
            try:
                outcome = await job.run(snapshot)
            except BadInput as exc:
                await self._dead_letter_header(snapshot, exc, runtime)
                self._refuse(snapshot, str(exc), position)
                return position
            store.commit(applied)
            log.info("snapshot_diffed", file=snapshot.name, **vars(outcome))
        new_position: Position = {"file": snapshot.name, "sha256": sha256, "date": snapshot.date}
        await runtime.positions.save(POSITION_KEY, new_position)
        self._set_aside(snapshot, PROCESSED, "processed", sha256=sha256)
        return new_position

    def _refuse(self, snapshot: SnapshotFile, reason: str, position: Position | None) -> None:
        last = position["file"] if position else None
        self._set_aside(snapshot, REFUSED, "refused", reason=reason, last_processed=last)

    def _set_aside(self, snapshot: SnapshotFile, subfolder: str, outcome: str, **why: Any) -> None:
        moved_to = self._folder.move_aside(snapshot, subfolder)
        SNAPSHOTS.labels(self.name, outcome).inc()
        report = log.warning if outcome == "refused" else log.info
        report(f"snapshot_{outcome}", file=snapshot.name, moved_to=str(moved_to), **why)

    async def _dead_letter_header(
        self, snapshot: SnapshotFile, problem: BadInput, runtime: ConnectorRuntime
    ) -> None:
        with snapshot.path.open("rb") as source:
            header = source.readline(self.settings.housing_max_row_chars).rstrip(b"\r\n")
        reason = f"{problem.field or 'file'}: {problem.reason}"
        await runtime.dead_letter(header, reason, f"{snapshot.name}:1")
