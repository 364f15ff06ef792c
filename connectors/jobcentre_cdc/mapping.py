"""Row changes of the case management tables -> JobcentreEvent, pseudonymising identifiers.

Which event a change means (README, "Jobcentre"):

| table          | change                                   | event                         |
|----------------|------------------------------------------|-------------------------------|
| jobseekers     | insert / snapshot                        | jobseeker_registered          |
| jobseekers     | update of name, birth date, postcode, id | jobseeker_details_changed     |
| benefit_claims | insert / snapshot / status changed       | claim_<status>                |
| sanctions      | insert / snapshot                        | sanction_imposed              |
| sanctions      | ends_on set, or row deleted              | sanction_lifted               |
| appointments   | attended set to false                    | appointment_missed            |

Anything else (other column updates, deleted jobseekers, claims or appointments) means no
event. When a table's replica identity is not FULL the old row is unknown and every update is
taken as a change of what the event is about.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from backbone.contracts import JOBSEEKER_ID, Agency, LegalBasis, Sensitivity
from backbone.errors import BadInput
from backbone.events import (
    Appointment,
    Claim,
    Envelope,
    JobcentreEvent,
    Sanction,
    Subject,
    Timestamp,
    validation_problem,
)
from backbone.pseudonyms import Pseudonymiser, normalise_postcode, normalise_text
from connectors.jobcentre_cdc.changes import SNAPSHOT_LSN, Change, Kind

# Namespace of event ids derived from (LSN, table, primary key, event type).
EVENT_ID_NAMESPACE = uuid.UUID("0b6f3f7e-2c1a-4d8e-9f57-6a1de3c84b90")
AGENCY = Agency.JOBCENTRE.value


def _timestamptz(value: Any) -> Any:
    # PostgreSQL writes `2026-11-01 09:30:00.5+00`, which pydantic does not read but Python does.
    return datetime.fromisoformat(value) if isinstance(value, str) else value


PgTime = Annotated[Timestamp, BeforeValidator(_timestamptz)]


class Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    id: int


class JobseekerRow(Row):
    national_id: str | None = None
    family_name: str = Field(min_length=1)
    given_name: str = Field(min_length=1)
    birth_date: date
    postcode: str | None = None
    updated_at: PgTime | None = None


class ClaimRow(Row):
    jobseeker_id: int
    benefit_type: str = Field(min_length=1)
    status: Literal["applied", "awarded", "suspended", "ended"]
    started_on: date | None = None
    ended_on: date | None = None
    updated_at: PgTime | None = None


class SanctionRow(Row):
    jobseeker_id: int
    reason: str = Field(min_length=1)
    starts_on: date
    ends_on: date | None = None
    reduction_pct: int = Field(ge=0, le=100)
    created_at: PgTime | None = None


class AppointmentRow(Row):
    jobseeker_id: int
    scheduled_at: PgTime
    attended: bool | None = None
    updated_at: PgTime | None = None


ROW_MODELS: dict[str, type[Row]] = {
    "jobseekers": JobseekerRow,
    "benefit_claims": ClaimRow,
    "sanctions": SanctionRow,
    "appointments": AppointmentRow,
}
DETAILS = ("national_id", "family_name", "given_name", "birth_date", "postcode")


def parse_row(table: str, values: dict[str, Any]) -> Row:
    """Validate a row of reference table `table`; BadInput names `table.column`."""
    try:
        return ROW_MODELS[table].model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        column = ".".join(str(part) for part in first["loc"]) or "row"
        raise BadInput(first["msg"], field=f"{table}.{column}") from exc


def jobseeker_key(change: Change) -> int | None:
    """The jobseeker a change is about, or None when the row does not say (key-only delete)."""
    if change.table.reference == "jobseekers":
        value = change.row.get("id")
    else:
        value = change.row.get("jobseeker_id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    # A bigint as text; isdigit() alone would take "²" and numbers too long to convert.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None


def means_nothing(change: Change) -> bool:
    """Deleted jobseekers, claims and appointments: no event, and no subject needed."""
    return change.kind is Kind.DELETE and change.table.reference != "sanctions"


def subject_of(row: JobseekerRow, pseudonyms: Pseudonymiser) -> Subject:
    """The pseudonymised subject of a jobseeker row."""
    return Subject(
        record_id=pseudonyms.record_id(AGENCY, JOBSEEKER_ID, str(row.id)),
        id_type=JOBSEEKER_ID,
        national_id=pseudonyms.national_id(row.national_id) if row.national_id else None,
        family_name=normalise_text(row.family_name),
        given_name=normalise_text(row.given_name),
        birth_date=row.birth_date,
        postcode=normalise_postcode(row.postcode) if row.postcode else None,
    )


def event_id_for(change: Change, row_id: int, event_type: str) -> str:
    """Deterministic per change: the same change read again gets the same id."""
    name = f"{AGENCY}:{change.lsn}:{change.table.reference}:{row_id}:{event_type}"
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


class EventBuilder:
    """Builds the events of one change, given the subject the change is about."""

    def __init__(self, pseudonyms: Pseudonymiser, source_system: str) -> None:
        self._pseudonyms = pseudonyms
        self._source_system = source_system

    def events(self, change: Change, subject: Subject) -> list[JobcentreEvent]:
        """The events `change` means (often none); BadInput if its row cannot be read or
        makes an event the contract refuses."""
        try:
            return self._events(change, subject)
        except ValidationError as exc:
            raise validation_problem(exc) from exc

    def _events(self, change: Change, subject: Subject) -> list[JobcentreEvent]:
        row = parse_row(change.table.reference, change.row)
        old = self._old(change)
        if isinstance(row, JobseekerRow):
            return self._jobseeker(change, row, old, subject)
        if isinstance(row, ClaimRow):
            return self._claim(change, row, old, subject)
        if isinstance(row, SanctionRow):
            return self._sanction(change, row, old, subject)
        if isinstance(row, AppointmentRow):
            return self._appointment(change, row, old, subject)
        raise BadInput("not a captured table", field="table")

    def _old(self, change: Change) -> Row | None:
        if change.old is None:
            return None
        try:
            return parse_row(change.table.reference, change.old)
        except BadInput:
            return None  # an old row that broke the rules does not make the new one bad

    def _jobseeker(
        self, change: Change, row: JobseekerRow, old: Row | None, subject: Subject
    ) -> list[JobcentreEvent]:
        if change.kind in (Kind.SNAPSHOT, Kind.INSERT):
            return [self._event(change, row.id, "jobseeker_registered", row.updated_at, subject)]
        if change.kind is Kind.UPDATE and _changed(old, row, DETAILS):
            return [
                self._event(change, row.id, "jobseeker_details_changed", row.updated_at, subject)
            ]
        return []

    def _claim(
        self, change: Change, row: ClaimRow, old: Row | None, subject: Subject
    ) -> list[JobcentreEvent]:
        if change.kind is Kind.DELETE or (
            change.kind is Kind.UPDATE and not _changed(old, row, ("status",))
        ):
            return []
        claim = Claim(
            claim_id=self._pseudonyms.record_id(AGENCY, "claim_id", str(row.id)),
            benefit_type=row.benefit_type,
            status=row.status,
            started_on=row.started_on,
            ended_on=row.ended_on,
        )
        event_type = f"claim_{row.status}"
        return [self._event(change, row.id, event_type, row.updated_at, subject, detail=claim)]

    def _sanction(
        self, change: Change, row: SanctionRow, old: Row | None, subject: Subject
    ) -> list[JobcentreEvent]:
        sanction = Sanction(
            sanction_id=self._pseudonyms.record_id(AGENCY, "sanction_id", str(row.id)),
            reason=row.reason,
            starts_on=row.starts_on,
            ends_on=row.ends_on,
            reduction_pct=row.reduction_pct,
        )
        events: list[JobcentreEvent] = []
        if change.kind in (Kind.SNAPSHOT, Kind.INSERT):
            imposed = "sanction_imposed"
            events.append(
                self._event(change, row.id, imposed, row.created_at, subject, detail=sanction)
            )
        lifted_at: datetime | None = None
        if change.kind is Kind.DELETE:
            lifted_at = change.committed_at
        elif row.ends_on is not None and (
            change.kind is Kind.SNAPSHOT
            or (change.kind is Kind.UPDATE and _changed(old, row, ("ends_on",)))
        ):
            lifted_at = datetime.combine(row.ends_on, time(), UTC)
        if lifted_at is not None:
            events.append(
                self._event(change, row.id, "sanction_lifted", lifted_at, subject, detail=sanction)
            )
        return events

    def _appointment(
        self, change: Change, row: AppointmentRow, old: Row | None, subject: Subject
    ) -> list[JobcentreEvent]:
        missed_now = row.attended is False and change.kind is not Kind.DELETE
        if not missed_now or (change.kind is Kind.UPDATE and not _changed(old, row, ("attended",))):
            return []
        appointment = Appointment(
            appointment_id=self._pseudonyms.record_id(AGENCY, "appointment_id", str(row.id)),
            scheduled_at=row.scheduled_at,
            attended=row.attended,
        )
        return [
            self._event(
                change,
                row.id,
                "appointment_missed",
                row.scheduled_at,
                subject,
                detail=appointment,
            )
        ]

    def _event(
        self,
        change: Change,
        row_id: int,
        event_type: str,
        occurred_at: datetime | None,
        subject: Subject,
        detail: Claim | Sanction | Appointment | None = None,
    ) -> JobcentreEvent:
        return JobcentreEvent(
            envelope=Envelope(
                event_id=event_id_for(change, row_id, event_type),
                event_type=event_type,
                agency=Agency.JOBCENTRE,
                source_system=self._source_system,
                occurred_at=occurred_at or change.committed_at,
                recorded_at=datetime.now(UTC),
                legal_basis=LegalBasis.PUBLIC_TASK,
                sensitivity=Sensitivity.PERSONAL,
                subject=subject,
                # The rows that existed when the connector first started: its initial load.
                initial_load=change.kind is Kind.SNAPSHOT,
            ),
            claim=detail if isinstance(detail, Claim) else None,
            sanction=detail if isinstance(detail, Sanction) else None,
            appointment=detail if isinstance(detail, Appointment) else None,
            source_lsn=None if change.lsn == SNAPSHOT_LSN else change.lsn,
        )


def _changed(old: Row | None, new: Row, fields: tuple[str, ...]) -> bool:
    """Whether any of `fields` changed; unknown old row (key-only identity) counts as changed."""
    if old is None:
        return True
    return any(getattr(old, name) != getattr(new, name) for name in fields)
