"""Snapshot row -> remembered tenancy state -> HousingEvent, pseudonymising every identifier."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time

from pydantic import ValidationError

from backbone.contracts import TENANT_REF, Agency, LegalBasis, Sensitivity
from backbone.events import Envelope, HousingEvent, Subject, Tenancy, validation_problem
from backbone.pseudonyms import Pseudonymiser, normalise_postcode, normalise_text
from connectors.housing_csv.diff import Change
from connectors.housing_csv.snapshot_csv import TenancyRow
from connectors.housing_csv.tenancy_state import TenancyState

# Namespace of the housing connector's event ids (uuid5), fixed forever: replays of the same
# snapshot must give the same ids.
EVENT_ID_NAMESPACE = uuid.UUID("3b9e6f52-1c4d-4f0a-8e7b-6d2a9c51f0e4")
AGENCY = Agency.HOUSING.value


def state_of(row: TenancyRow, pseudonyms: Pseudonymiser) -> TenancyState:
    """The pseudonymised state of an exported row."""
    return TenancyState(
        tenancy_id=pseudonyms.record_id(AGENCY, "tenancy_ref", row.tenancy_ref),
        as_of=row.as_of,
        tenant_id=pseudonyms.record_id(AGENCY, TENANT_REF, row.tenant_ref),
        national_id=pseudonyms.national_id(row.national_id) if row.national_id else None,
        family_name=normalise_text(row.family_name),
        given_name=normalise_text(row.given_name),
        birth_date=row.birth_date,
        postcode=normalise_postcode(row.postcode) if row.postcode else None,
        address_digest=pseudonyms.record_id(AGENCY, "address", normalise_text(row.address)),
        status=row.tenancy_status,
        arrears_pence=row.arrears_pence,
        arrears_weeks=row.arrears_weeks,
        notice=row.notice,
        homelessness_application=row.homelessness_application,
        household_size=row.household_size,
    )


def event_id_for(as_of: date, tenancy_id: str, change: Change) -> str:
    """uuid5 of `housing:<as_of>:<tenancy>:<event type>[:threshold]`: the same snapshot gives
    the same ids. The tenancy is its keyed hash, so an id cannot be tested against guessed
    tenancy references."""
    name = f"{AGENCY}:{as_of.isoformat()}:{tenancy_id}:{change.event_type}"
    if change.threshold_weeks is not None:
        name += f":{change.threshold_weeks}"
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


def subject_of(state: TenancyState) -> Subject:
    """The tenant the event is about."""
    return Subject(
        record_id=state.tenant_id,
        id_type=TENANT_REF,
        national_id=state.national_id,
        family_name=state.family_name,
        given_name=state.given_name,
        birth_date=state.birth_date,
        postcode=state.postcode,
    )


def to_event(
    state: TenancyState,
    change: Change,
    snapshot_file: str,
    source_system: str,
    *,
    initial_load: bool,
) -> HousingEvent:
    """The event for one change of one tenancy, as of the snapshot's date; `initial_load` for
    the changes of a first snapshot (compared with no previous one at all). BadInput naming
    the field if the contract refuses a value."""
    try:
        return HousingEvent(
            envelope=Envelope(
                event_id=event_id_for(state.as_of, state.tenancy_id, change),
                event_type=change.event_type,
                agency=Agency.HOUSING,
                source_system=source_system,
                # The export only tells the night the change was seen, not the moment it happened.
                occurred_at=datetime.combine(state.as_of, time(0), UTC),
                recorded_at=datetime.now(UTC),
                legal_basis=LegalBasis.PUBLIC_TASK,
                sensitivity=Sensitivity.PERSONAL,
                subject=subject_of(state),
                initial_load=initial_load,
            ),
            tenancy=Tenancy(
                tenancy_ref=state.tenancy_id,
                as_of=state.as_of,
                status=state.status,  # type: ignore[arg-type]  # validated by snapshot_csv
                arrears_pence=state.arrears_pence,
                arrears_weeks=state.arrears_weeks,
                notice=state.notice,  # type: ignore[arg-type]
                homelessness_application=state.homelessness_application,  # type: ignore[arg-type]
                household_size=state.household_size,
            ),
            arrears_threshold_weeks=change.threshold_weeks,
            snapshot_file=snapshot_file,
        )
    except ValidationError as exc:
        raise validation_problem(exc) from exc
