"""Who a claim, sanction or appointment is about: jobseeker id -> pseudonymised subject.

Choice: a bounded in-memory map fed by the jobseeker rows the connector itself reads (the
snapshot, then every jobseeker change in commit order), falling back to one query of the
jobseekers table on a miss (after a restart, or beyond the bound). Nothing durable is kept, so
nothing can drift from the database; the price is that a miss sees the jobseeker as they are
now rather than as they were at the change, which only matters for a jobseeker who changed
their details after the change and before a restart.
"""

from __future__ import annotations

from collections import OrderedDict

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from backbone.errors import BadInput
from backbone.events import Subject
from backbone.pseudonyms import Pseudonymiser
from connectors.jobcentre_cdc.mapping import JobseekerRow, parse_row, subject_of
from connectors.jobcentre_cdc.tables import Table


class SubjectDirectory:
    """Subjects of the last `capacity` jobseekers seen, and a query for the others."""

    def __init__(self, jobseekers: Table, pseudonyms: Pseudonymiser, capacity: int) -> None:
        self._table = jobseekers
        self._pseudonyms = pseudonyms
        self._capacity = capacity
        self._subjects: OrderedDict[int, Subject] = OrderedDict()
        self._connection: AsyncConnection | None = None
        columns = sql.SQL(", ").join(
            sql.SQL("{} as {}").format(sql.Identifier(real), sql.Identifier(ref))
            for ref, real in jobseekers.columns.items()
        )
        self._query = sql.SQL("select {} from {}.{} where {} = %s").format(
            columns,
            sql.Identifier(jobseekers.schema),
            sql.Identifier(jobseekers.name),
            sql.Identifier(jobseekers.columns["id"]),
        )

    async def open(self, dsn: str) -> None:
        """Connect for look-ups of jobseekers not in memory."""
        self._connection = await AsyncConnection.connect(dsn, autocommit=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    def remember(self, row: JobseekerRow) -> Subject:
        """Record the jobseeker as of this row and return their subject."""
        subject = subject_of(row, self._pseudonyms)
        self._subjects[row.id] = subject
        self._subjects.move_to_end(row.id)
        while len(self._subjects) > self._capacity:
            self._subjects.popitem(last=False)
        return subject

    async def subject(self, jobseeker_id: int) -> Subject:
        """The subject of `jobseeker_id`; BadInput if the jobseekers table does not know them."""
        known = self._subjects.get(jobseeker_id)
        if known is not None:
            return known
        if self._connection is None:
            raise RuntimeError("the subject directory is not open")
        async with self._connection.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(self._query, (jobseeker_id,))
            found = await cursor.fetchone()
        if found is None:
            raise BadInput(f"no jobseeker {jobseeker_id}", field="jobseeker_id")
        row = parse_row("jobseekers", found)
        assert isinstance(row, JobseekerRow)  # nosec B101 # parse_row of jobseekers gives this type
        return self.remember(row)
