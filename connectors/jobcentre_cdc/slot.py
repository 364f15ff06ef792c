"""The logical replication slot: where the connector is in the database's change stream.

Design: the SQL interface of logical decoding with wal2json (format-version 2), rather than a
streaming replication connection. psycopg 3 has no replication protocol; the SQL interface
gives exactly what the connector's contract needs: `pg_logical_slot_peek_changes` reads whole
transactions in commit order *without* consuming them, the connector publishes them, and only
once Kafka acknowledged every event does `pg_replication_slot_advance` confirm the commit LSN.
A crash before that leaves the slot where it was, so a restart reads the same changes again
(same event ids) and nothing acknowledged is ever skipped. The slot's confirmed LSN is the
durable position; the positions topic keeps a copy for operators and as a floor on restart.
The cost is that each peek decodes from the slot's restart point; batches of a few thousand
changes keep that small.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection, sql

PLUGIN = "wal2json"


@dataclass(frozen=True)
class SlotState:
    """A slot that exists: its plugin, database and confirmed LSN."""

    plugin: str
    database: str
    confirmed_lsn: str


@dataclass(frozen=True)
class ExportedSnapshot:
    """A new slot's starting point and the snapshot of the data exactly at it.

    The snapshot can be imported only while `connection` (the replication connection that
    created the slot) stays open and idle.
    """

    consistent_lsn: str
    name: str
    connection: AsyncConnection


class ReplicationSlot:
    """One wal2json slot, read and confirmed through SQL."""

    def __init__(self, name: str, tables: list[str]) -> None:
        self.name = name
        # Only the captured tables are decoded into changes: less output, less parsing.
        self._options = (
            "format-version",
            "2",
            "include-timestamp",
            "1",
            "include-lsn",
            "1",
            "add-tables",
            ",".join(tables),
        )

    async def state(self, connection: AsyncConnection) -> SlotState | None:
        """The slot as PostgreSQL knows it, or None if it does not exist."""
        cursor = await connection.execute(
            "select plugin, database, confirmed_flush_lsn::text from pg_replication_slots"
            " where slot_name = %s and slot_type = 'logical'",
            (self.name,),
        )
        found = await cursor.fetchone()
        if found is None:
            return None
        return SlotState(str(found[0]), str(found[1]), str(found[2]))

    async def behind_bytes(self, connection: AsyncConnection) -> int | None:
        """WAL bytes between the server's current position and the slot's confirmed one (the
        WAL the slot still holds back), or None if the slot does not exist yet."""
        cursor = await connection.execute(
            "select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint"
            " from pg_replication_slots where slot_name = %s and slot_type = 'logical'",
            (self.name,),
        )
        found = await cursor.fetchone()
        if found is None or found[0] is None:
            return None
        return max(0, int(found[0]))

    async def create_with_snapshot(self, dsn: str) -> ExportedSnapshot:
        """Create the slot over a replication connection, exporting its snapshot."""
        connection = await AsyncConnection.connect(dsn, autocommit=True, replication="database")
        # The walsender speaks only the simple query protocol: no parameters here.
        cursor = await connection.execute(
            f"CREATE_REPLICATION_SLOT {self.name} LOGICAL {PLUGIN} (SNAPSHOT 'export')"
        )
        created = await cursor.fetchone()
        if created is None:
            await connection.close()
            raise RuntimeError(f"CREATE_REPLICATION_SLOT {self.name} returned nothing")
        return ExportedSnapshot(str(created[1]), str(created[2]), connection)

    async def drop(self, connection: AsyncConnection) -> None:
        """Drop the slot (an interrupted first snapshot is started again from a new slot)."""
        await connection.execute("select pg_drop_replication_slot(%s)", (self.name,))

    async def peek(self, connection: AsyncConnection, changes: int) -> list[str]:
        """The next whole transactions (at least `changes` output rows if there are that many),
        left on the slot until `confirm`."""
        options = sql.SQL("").join(sql.SQL(", %s") for _ in self._options)
        query = sql.SQL("select data from pg_logical_slot_peek_changes(%s, NULL, %s{})")
        cursor = await connection.execute(
            query.format(options), (self.name, changes, *self._options)
        )
        return [str(row[0]) for row in await cursor.fetchall()]

    async def confirm(self, connection: AsyncConnection, lsn: str) -> None:
        """Everything up to `lsn` is on Kafka: the slot may release it."""
        await connection.execute(
            "select pg_replication_slot_advance(%s, %s::pg_lsn)", (self.name, lsn)
        )


def lsn_value(lsn: str) -> int:
    """An LSN `X/Y` (two hex halves) as a number, to compare positions."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)
