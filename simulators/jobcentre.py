"""Plays the jobcentre's case management system: its PostgreSQL tables and the changes to them.

It shares no code with the connector: it is the outside world, writing rows the way the case
system would (README, "Jobcentre"). Run as a program it creates a database
with the reference schema and plays a few jobseekers' stories into it.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg import sql

REFERENCE_SCHEMA = """
create table jobseekers (
  id bigint primary key, national_id text, family_name text not null, given_name text not null,
  birth_date date not null, postcode text, updated_at timestamptz not null default now());
create table benefit_claims (
  id bigint primary key, jobseeker_id bigint not null references jobseekers(id),
  benefit_type text not null, status text not null,
  started_on date, ended_on date, updated_at timestamptz not null default now());
create table sanctions (
  id bigint primary key, jobseeker_id bigint not null references jobseekers(id),
  reason text not null, starts_on date not null, ends_on date, reduction_pct int not null,
  created_at timestamptz not null default now());
create table appointments (
  id bigint primary key, jobseeker_id bigint not null references jobseekers(id),
  scheduled_at timestamptz not null, attended boolean,
  updated_at timestamptz not null default now());
"""
# Whole old rows in the change stream: updates can be told apart (status changed or not) and
# a deleted sanction still says whose it was. What Debezium asks of a captured table too.
FULL_IDENTITY = ("jobseekers", "benefit_claims", "sanctions", "appointments")


@dataclass(frozen=True)
class Jobseeker:
    """A person as the case management system records them."""

    id: int
    family_name: str
    given_name: str
    birth_date: date
    national_id: str | None = None
    postcode: str | None = None


def create_database(admin_dsn: str, name: str) -> str:
    """Create an empty database `name`; the DSN to reach it."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)


def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database `name` with the replication slots that belong to it."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots"
            " where database = %s and not active",
            (name,),
        )
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


class CaseManagementSystem:
    """Writes jobseekers, claims, sanctions and appointments, one commit per call unless
    grouped with `transaction()`."""

    def __init__(self, dsn: str) -> None:
        self._connection = psycopg.connect(dsn, autocommit=True)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._connection.close()

    def create_schema(self) -> None:
        """The reference schema, with REPLICA IDENTITY FULL on the captured tables."""
        with self.transaction():
            self._connection.execute(REFERENCE_SCHEMA)
            for table in FULL_IDENTITY:
                self._connection.execute(
                    sql.SQL("alter table {} replica identity full").format(sql.Identifier(table))
                )

    def new_id(self) -> int:
        """The next row id the system hands out (ids are the system's, not the database's)."""
        return next(self._ids)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the calls inside into one commit."""
        with self._connection.transaction():
            yield

    def register(self, person: Jobseeker) -> None:
        self._connection.execute(
            "insert into jobseekers (id, national_id, family_name, given_name, birth_date,"
            " postcode) values (%s, %s, %s, %s, %s, %s)",
            (
                person.id,
                person.national_id,
                person.family_name,
                person.given_name,
                person.birth_date,
                person.postcode,
            ),
        )

    def change_details(self, person: Jobseeker) -> None:
        self._connection.execute(
            "update jobseekers set national_id = %s, family_name = %s, given_name = %s,"
            " birth_date = %s, postcode = %s, updated_at = now() where id = %s",
            (
                person.national_id,
                person.family_name,
                person.given_name,
                person.birth_date,
                person.postcode,
                person.id,
            ),
        )

    def touch_jobseeker(self, jobseeker_id: int) -> None:
        """An update that changes nothing the backbone cares about."""
        self._connection.execute(
            "update jobseekers set updated_at = now() where id = %s", (jobseeker_id,)
        )

    def delete_jobseeker(self, jobseeker_id: int) -> None:
        self._connection.execute("delete from jobseekers where id = %s", (jobseeker_id,))

    def apply_claim(
        self, claim_id: int, jobseeker_id: int, benefit_type: str, status: str = "applied"
    ) -> None:
        self._connection.execute(
            "insert into benefit_claims (id, jobseeker_id, benefit_type, status, started_on)"
            " values (%s, %s, %s, %s, current_date)",
            (claim_id, jobseeker_id, benefit_type, status),
        )

    def set_claim_status(self, claim_id: int, status: str, ended_on: date | None = None) -> None:
        self._connection.execute(
            "update benefit_claims set status = %s, ended_on = %s, updated_at = now()"
            " where id = %s",
            (status, ended_on, claim_id),
        )

    def impose_sanction(
        self,
        sanction_id: int,
        jobseeker_id: int,
        reason: str,
        starts_on: date,
        pct: int,
        *,
        imposed_at: datetime | None = None,
    ) -> None:
        """A sanction imposed now, or at `imposed_at` (a row the system has held for a while)."""
        self._connection.execute(
            "insert into sanctions (id, jobseeker_id, reason, starts_on, reduction_pct,"
            " created_at) values (%s, %s, %s, %s, %s, coalesce(%s, now()))",
            (sanction_id, jobseeker_id, reason, starts_on, pct, imposed_at),
        )

    def lift_sanction(self, sanction_id: int, ends_on: date) -> None:
        self._connection.execute(
            "update sanctions set ends_on = %s where id = %s", (ends_on, sanction_id)
        )

    def delete_sanction(self, sanction_id: int) -> None:
        self._connection.execute("delete from sanctions where id = %s", (sanction_id,))

    def schedule_appointment(
        self, appointment_id: int, jobseeker_id: int, scheduled_at: datetime
    ) -> None:
        self._connection.execute(
            "insert into appointments (id, jobseeker_id, scheduled_at) values (%s, %s, %s)",
            (appointment_id, jobseeker_id, scheduled_at),
        )

    def record_attendance(self, appointment_id: int, attended: bool) -> None:
        self._connection.execute(
            "update appointments set attended = %s, updated_at = now() where id = %s",
            (attended, appointment_id),
        )

    def register_many(self, people: list[Jobseeker]) -> None:
        """Register many jobseekers in one commit (fast, for benchmarks)."""
        with self.transaction(), self._connection.cursor() as cursor:
            cursor.executemany(
                "insert into jobseekers (id, national_id, family_name, given_name, birth_date,"
                " postcode) values (%s, %s, %s, %s, %s, %s)",
                [
                    (p.id, p.national_id, p.family_name, p.given_name, p.birth_date, p.postcode)
                    for p in people
                ],
            )

    def apply_claims(self, claims: list[tuple[int, int, str]]) -> None:
        """Many (claim id, jobseeker id, benefit type) claims applied in one commit."""
        with self.transaction(), self._connection.cursor() as cursor:
            cursor.executemany(
                "insert into benefit_claims (id, jobseeker_id, benefit_type, status, started_on)"
                " values (%s, %s, %s, 'applied', current_date)",
                claims,
            )


def play_story(system: CaseManagementSystem) -> None:
    """A few jobseekers' months at the jobcentre, as the demo shows them."""
    people = [
        Jobseeker(system.new_id(), "Nowak", "Zofia", date(1990, 5, 17), "QQ123456C", "LS6 1AA"),
        Jobseeker(system.new_id(), "Okafor", "Daniel", date(1984, 11, 2), None, "M1 2AB"),
    ]
    for person in people:
        system.register(person)
    claim, sanction, appointment = system.new_id(), system.new_id(), system.new_id()
    system.apply_claim(claim, people[0].id, "jobseekers_allowance")
    system.set_claim_status(claim, "awarded")
    system.schedule_appointment(
        appointment, people[0].id, datetime.fromisoformat("2026-11-02T10:00+00:00")
    )
    system.record_attendance(appointment, False)
    system.impose_sanction(sanction, people[0].id, "missed appointment", date(2026, 11, 3), 20)
    system.lift_sanction(sanction, date(2026, 12, 3))


def main() -> None:
    """`python -m simulators.jobcentre --dsn DSN [--database NAME]`: schema and a story."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", default="host=127.0.0.1 port=15432 user=postgres dbname=postgres")
    parser.add_argument("--database", help="create this database first and play into it")
    args = parser.parse_args()
    dsn = create_database(args.dsn, args.database) if args.database else args.dsn
    system = CaseManagementSystem(dsn)
    try:
        system.create_schema()
        play_story(system)
    finally:
        system.close()


if __name__ == "__main__":
    main()
