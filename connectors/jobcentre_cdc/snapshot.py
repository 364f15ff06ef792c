"""The initial consistent snapshot: every existing row, exactly as of the slot's start.

The slot is created first with its snapshot exported; reading the tables in a REPEATABLE READ
transaction that imports that snapshot sees precisely the data before the slot's first change,
so snapshot and stream neither overlap nor leave a gap. The events of the snapshot's rows are
the connector's initial load (README, "Initial loads"); those of the stream are not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from psycopg import AsyncConnection, sql

from connectors.jobcentre_cdc.changes import Change, snapshot_change
from connectors.jobcentre_cdc.slot import ExportedSnapshot
from connectors.jobcentre_cdc.tables import CaseSchema

FETCH_ROWS = 1000


async def read_snapshot(
    dsn: str, exported: ExportedSnapshot, schema: CaseSchema
) -> AsyncIterator[list[Change]]:
    """Yield the rows of every captured table, jobseekers first, in chunks."""
    taken_at = datetime.now(UTC)
    async with await AsyncConnection.connect(dsn) as connection:
        await connection.execute("set transaction isolation level repeatable read, read only")
        # SET TRANSACTION SNAPSHOT takes no parameters; the name comes from PostgreSQL itself.
        await connection.execute(
            sql.SQL("set transaction snapshot {}").format(sql.Literal(exported.name))
        )
        # Imported: the exporting replication connection is no longer needed.
        await exported.connection.close()
        for table in schema.tables:
            query = sql.SQL("select to_jsonb(t) from {}.{} t order by {}").format(
                sql.Identifier(table.schema),
                sql.Identifier(table.name),
                sql.Identifier(table.columns["id"]),
            )
            async with connection.cursor(name=f"snapshot_{table.reference}") as cursor:
                await cursor.execute(query)
                while rows := await cursor.fetchmany(FETCH_ROWS):
                    yield [snapshot_change(table, row[0], taken_at) for row in rows]
