"""The agencies, their event families, the Avro schema that carries each family, and the
identifiers the agencies' records of a person carry."""

from __future__ import annotations

from enum import StrEnum

from backbone.errors import BadInput


class Agency(StrEnum):
    """The four agencies the backbone joins up (Avro enum `backbone.Agency`)."""

    HEALTH = "health"
    JOBCENTRE = "jobcentre"
    HOUSING = "housing"
    SOCIAL_CARE = "social_care"


class LegalBasis(StrEnum):
    """Why an agency may share an event (Avro enum `backbone.LegalBasis`)."""

    PUBLIC_TASK = "public_task"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    CONSENT = "consent"
    HEALTH_AND_SOCIAL_CARE = "health_and_social_care"
    SAFEGUARDING = "safeguarding"


class Sensitivity(StrEnum):
    """How carefully readers must treat an event (Avro enum `backbone.Sensitivity`)."""

    PERSONAL = "personal"
    SPECIAL_CATEGORY = "special_category"
    SAFEGUARDING = "safeguarding"


EVENT_SCHEMAS: dict[Agency, str] = {
    Agency.HEALTH: "backbone.health.HealthEvent",
    Agency.JOBCENTRE: "backbone.jobcentre.JobcentreEvent",
    Agency.HOUSING: "backbone.housing.HousingEvent",
    Agency.SOCIAL_CARE: "backbone.socialcare.SocialCareEvent",
}
AUDIT_SCHEMA = "backbone.audit.AuditRecord"
ALERT_SCHEMA = "backbone.alerts.AlertEvent"
# Many events of one partition in one message, on the internal topics (backbone/frames.py).
FRAME_SCHEMA = "backbone.frames.EventFrame"

# The typed messages between stream stages (each a frame's event, but commands).
IDENTITY_DECISION_SCHEMA = "backbone.identity.IdentityDecision"  # identity-decisions
IDENTITY_CHANGE_SCHEMA = "backbone.identity.IdentityChange"  # identity-changes
ALERT_VIEW_UPDATE_SCHEMA = "backbone.alerts.AlertViewUpdate"  # alert-updates
# A command on identity-input, unframed: the resolver applies review decisions, merges, splits
# and erasures in order with the records it resolves, and tells a command from a frame by the
# writer schema (backbone/identity_commands.py). `ERASE` is the erasure's command.
IDENTITY_COMMAND_SCHEMA = "backbone.identity.IdentityCommand"
REVIEW_DECISION = "review_decision"
ERASE = "erase"

# The schemas written to topics; each has released versions it must stay compatible with.
TOPIC_SCHEMAS: tuple[str, ...] = (
    *EVENT_SCHEMAS.values(),
    AUDIT_SCHEMA,
    ALERT_SCHEMA,
    FRAME_SCHEMA,
    IDENTITY_DECISION_SCHEMA,
    IDENTITY_CHANGE_SCHEMA,
    IDENTITY_COMMAND_SCHEMA,
    ALERT_VIEW_UPDATE_SCHEMA,
)

EVENT_TYPES: dict[Agency, frozenset[str]] = {
    Agency.HEALTH: frozenset(
        {
            "admission",
            "discharge",
            "attendance",
            "patient_details_changed",
            "patient_records_merged",
        }
    ),
    Agency.JOBCENTRE: frozenset(
        {
            "jobseeker_registered",
            "jobseeker_details_changed",
            "claim_applied",
            "claim_awarded",
            "claim_suspended",
            "claim_ended",
            "sanction_imposed",
            "sanction_lifted",
            "appointment_missed",
        }
    ),
    Agency.HOUSING: frozenset(
        {
            "tenancy_started",
            "tenancy_ended",
            "arrears_threshold_crossed",
            "notice_served",
            "eviction_warrant_issued",
            "homelessness_application_opened",
            "homelessness_application_accepted",
            "homelessness_application_closed",
            "tenant_details_changed",
        }
    ),
    Agency.SOCIAL_CARE: frozenset(
        {
            "referral_received",
            "assessment_completed",
            "case_opened",
            "case_closed",
            "safeguarding_concern",
            "child_protection_plan_started",
            "child_protection_plan_ended",
            "care_package_started",
            "care_package_ended",
        }
    ),
}

# The identifier a person's record carries at each agency (`Subject.id_type`): a record id is
# the keyed hash of agency, identifier type and identifier, so the lookup and the erasure are
# asked by the same three. The connectors set these; a name nobody sets finds nobody.
HOSPITAL_NUMBER = "hospital_number"  # HL7 PID-3 of type MR
JOBSEEKER_ID = "jobseeker_id"
TENANT_REF = "tenant_ref"
CASE_PERSON_ID = "case_person_id"
ID_TYPES: dict[Agency, tuple[str, ...]] = {
    Agency.HEALTH: (HOSPITAL_NUMBER,),
    Agency.JOBCENTRE: (JOBSEEKER_ID,),
    Agency.HOUSING: (TENANT_REF,),
    Agency.SOCIAL_CARE: (CASE_PERSON_ID,),
}


def check_id_type(agency: Agency, id_type: str) -> None:
    """BadInput naming the identifier types `agency`'s records carry, if `id_type` is not one."""
    allowed = ID_TYPES[agency]
    if id_type not in allowed:
        raise BadInput(f"must be one of: {', '.join(allowed)}", field="id_type")
