"""Event models: what a connector builds is validated here before it is Avro-encoded.

The models mirror the Avro contracts in avro_schemas/ field for field; `to_avro()` gives the
dict the codec writes. A validation error names the field (see `validate_event`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from backbone.contracts import EVENT_SCHEMAS, EVENT_TYPES, Agency, LegalBasis, Sensitivity
from backbone.errors import BadInput, excerpt
from backbone.household import Relationship

KeyedHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="HMAC-SHA256, hex")]
# The largest Avro int and long: fastavro writes a larger int as it is, which no reader expects.
AVRO_INT_MAX = 2**31 - 1
AVRO_LONG_MAX = 2**63 - 1


def _within_utc_years(moment: datetime) -> datetime:
    # Avro timestamps are UTC: 0001-01-01T00:00+01:00 is an aware datetime Python cannot
    # move to UTC (it would fall in year 0), so it could never be encoded.
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the years 1 to 9999 in UTC") from None
    return moment


Timestamp = Annotated[AwareDatetime, AfterValidator(_within_utc_years)]


class Model(BaseModel):
    """Strict, immutable base: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Subject(Model):
    """The person an event is about (Avro `backbone.Subject`)."""

    record_id: KeyedHash
    id_type: str = Field(min_length=1)
    national_id: KeyedHash | None = None
    family_name: str | None = None
    given_name: str | None = None
    birth_date: date | None = None
    sex: Literal["F", "M", "O", "U", "A", "N"] | None = None
    postcode: str | None = None


class Envelope(Model):
    """What every event carries (Avro `backbone.Envelope`)."""

    event_id: str = Field(min_length=1)
    event_type: str
    agency: Agency
    source_system: str = Field(min_length=1)
    occurred_at: Timestamp
    recorded_at: Timestamp
    legal_basis: LegalBasis
    sensitivity: Sensitivity
    correlation_id: str | None = None
    subject: Subject
    # The state a connector found when it first read its agency system (README, "Initial
    # loads"): old news for the alert rules, not a change as it happened.
    initial_load: bool = False


class AgencyEvent(Model):
    """An event of one agency's family; subclasses name their agency and Avro schema."""

    agency: ClassVar[Agency]
    envelope: Envelope

    @field_validator("envelope")
    @classmethod
    def _fits_family(cls, envelope: Envelope) -> Envelope:
        # A field validator, not a model one: the error then names `envelope`.
        if envelope.agency is not cls.agency:
            raise ValueError(f"agency must be {cls.agency.value} for this family")
        if envelope.event_type not in EVENT_TYPES[cls.agency]:
            allowed = ", ".join(sorted(EVENT_TYPES[cls.agency]))
            raise ValueError(f"event_type {excerpt(envelope.event_type)} not one of {allowed}")
        return envelope

    @classmethod
    def schema_name(cls) -> str:
        return EVENT_SCHEMAS[cls.agency]

    def to_avro(self) -> dict[str, Any]:
        """The record as the Avro writer takes it."""
        return self.model_dump()


# Health ---------------------------------------------------------------------------------------
class Encounter(Model):
    """The visit an ADT message is about (HL7 PV1)."""

    patient_class: str = Field(min_length=1)
    admission_type: str | None = None
    discharge_disposition: str | None = None
    admitted_at: Timestamp | None = None
    discharged_at: Timestamp | None = None


class HealthEvent(AgencyEvent):
    """Hospital ADT: admission, discharge, attendance, details changed, records merged."""

    agency: ClassVar[Agency] = Agency.HEALTH
    facility: str = Field(min_length=1)
    message_control_id: str = Field(min_length=1)
    encounter: Encounter | None = None
    merged_record_id: KeyedHash | None = None


# Jobcentre ------------------------------------------------------------------------------------
class Claim(Model):
    claim_id: KeyedHash
    benefit_type: str
    status: Literal["applied", "awarded", "suspended", "ended"]
    started_on: date | None = None
    ended_on: date | None = None


class Sanction(Model):
    sanction_id: KeyedHash
    reason: str
    starts_on: date
    ends_on: date | None = None
    reduction_pct: int = Field(ge=0, le=100)


class Appointment(Model):
    appointment_id: KeyedHash
    scheduled_at: Timestamp
    attended: bool | None = None


class JobcentreEvent(AgencyEvent):
    """A change in the jobcentre's case management database."""

    agency: ClassVar[Agency] = Agency.JOBCENTRE
    claim: Claim | None = None
    sanction: Sanction | None = None
    appointment: Appointment | None = None
    source_lsn: str | None = None


# Housing --------------------------------------------------------------------------------------
class Tenancy(Model):
    tenancy_ref: KeyedHash
    as_of: date
    status: Literal["active", "ended"]
    arrears_pence: int = Field(ge=-AVRO_LONG_MAX - 1, le=AVRO_LONG_MAX)
    arrears_weeks: float
    notice: Literal["none", "notice_seeking_possession", "notice_to_quit", "eviction_warrant"]
    homelessness_application: Literal["none", "open", "accepted", "closed"]
    household_size: int = Field(ge=0, le=AVRO_INT_MAX)


class HousingEvent(AgencyEvent):
    """A change between two nightly tenancy snapshots."""

    agency: ClassVar[Agency] = Agency.HOUSING
    tenancy: Tenancy
    arrears_threshold_weeks: int | None = Field(None, ge=0, le=AVRO_INT_MAX)
    snapshot_file: str


# Social care ----------------------------------------------------------------------------------
class HouseholdMember(Model):
    subject: Subject
    relationship: Relationship  # what the member is to the event's subject


class SocialCareEvent(AgencyEvent):
    """A change in a social care case."""

    agency: ClassVar[Agency] = Agency.SOCIAL_CARE
    case_id: KeyedHash
    household: list[HouseholdMember] = Field(default_factory=list)
    details: dict[str, str] = Field(default_factory=dict)


EventT = TypeVar("EventT", bound=BaseModel)


def validation_problem(exc: ValidationError) -> BadInput:
    """The first validation error as BadInput naming its field (dotted path)."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    return BadInput(first["msg"], field=field)


def validate_event(model: type[EventT], data: Any) -> EventT:
    """Validate `data` as `model`; a problem raises BadInput that names the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from exc
