"""The previous night's snapshot, kept durably in SQLite with one row per tenancy.

Tonight's rows are staged in a second table as the file is read; once every event of the file
is acknowledged, `commit` swaps the staged table in and records which file it holds, in one
transaction. A crash before that leaves last night's snapshot untouched, so the whole file is
simply read again. Memory stays bounded whatever the file size: SQLite keeps the rows on disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from connectors.housing_csv.tenancy_state import COLUMN_NAMES, TenancyState

_COLUMNS_DDL = ", ".join(
    f"{name} TEXT PRIMARY KEY" if name == "tenancy_id" else name for name in COLUMN_NAMES
)
_PLACEHOLDERS = ", ".join("?" for _ in COLUMN_NAMES)
_SELECT = ", ".join(COLUMN_NAMES)


@dataclass(frozen=True)
class AppliedSnapshot:
    """The export the stored snapshot came from."""

    file: str
    sha256: str
    date: str  # YYYYMMDD, from the file name


class SnapshotStore:
    """Last night's tenancies (`tenancies`) and tonight's as they are read (`incoming`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly where they matter.
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for table in ("tenancies", "incoming"):
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({_COLUMNS_DDL}) WITHOUT ROWID")
        self._db.execute("CREATE TABLE IF NOT EXISTS applied (file TEXT, sha256 TEXT, date TEXT)")

    def close(self) -> None:
        self._db.close()

    def applied(self) -> AppliedSnapshot | None:
        """Which export the stored snapshot is, or None before the first one."""
        row = self._db.execute("SELECT file, sha256, date FROM applied").fetchone()
        return AppliedSnapshot(*row) if row else None

    def previous(self, tenancy_id: str) -> TenancyState | None:
        """The tenancy as last night's snapshot had it."""
        row = self._db.execute(
            f"SELECT {_SELECT} FROM tenancies WHERE tenancy_id = ?",  # nosec B608 # _SELECT is a constant column list
            (tenancy_id,),
        ).fetchone()
        return TenancyState.from_columns(row) if row else None

    def start_staging(self) -> None:
        """Forget anything staged by an interrupted run and open a staging transaction."""
        self._db.execute("DELETE FROM incoming")
        self._db.execute("BEGIN")

    def stage(self, state: TenancyState) -> bool:
        """Stage tonight's state; False if this tenancy is already in tonight's file."""
        cursor = self._db.execute(
            f"INSERT OR IGNORE INTO incoming VALUES ({_PLACEHOLDERS})", state.to_columns()
        )
        return cursor.rowcount == 1

    def checkpoint_staging(self) -> None:
        """Commit what is staged so far: staging is scratch space, only `commit` counts, and
        smaller transactions keep the write-ahead log small."""
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")

    def disappeared(self) -> Iterator[TenancyState]:
        """Last night's tenancies that tonight's file does not have."""
        cursor = self._db.execute(
            f"SELECT {_SELECT} FROM tenancies t WHERE NOT EXISTS "  # nosec B608 # _SELECT is a constant column list
            "(SELECT 1 FROM incoming i WHERE i.tenancy_id = t.tenancy_id)"
        )
        for row in cursor:
            yield TenancyState.from_columns(row)

    def commit(self, snapshot: AppliedSnapshot) -> None:
        """Make tonight's staged snapshot the previous one, atomically, and durably."""
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DROP TABLE tenancies")
            self._db.execute("ALTER TABLE incoming RENAME TO tenancies")
            self._db.execute(f"CREATE TABLE incoming ({_COLUMNS_DDL}) WITHOUT ROWID")
            self._db.execute("DELETE FROM applied")
            self._db.execute(
                "INSERT INTO applied VALUES (?, ?, ?)",
                (snapshot.file, snapshot.sha256, snapshot.date),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def abandon_staging(self) -> None:
        """Drop an unfinished staging transaction (the file will be read again)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
