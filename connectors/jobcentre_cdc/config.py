"""Settings of the jobcentre change data capture connector."""

from __future__ import annotations

from pydantic import Field, SecretStr

from backbone.secret_settings import Secret
from connectors.runtime.config import ConnectorSettings


class JobcentreCdcSettings(ConnectorSettings):
    """Which database and slot to read, and how its tables and columns are named."""

    cdc_dsn: Secret = Field(
        SecretStr("host=127.0.0.1 port=15432 dbname=postgres user=postgres"),
        description="libpq connection string of the case management database; a secret, as "
        "it may hold the password (or keep that in PGPASSFILE / ~/.pgpass)",
    )
    cdc_slot: str = Field(
        "backbone_jobcentre",
        pattern=r"^[a-z0-9_]{1,63}$",
        description="Logical replication slot (wal2json) the connector owns; its confirmed LSN "
        "is the connector's position",
    )
    cdc_schema: str = Field("public", description="Database schema holding the tables")
    cdc_jobseekers_table: str = Field("jobseekers", description="Table of jobseekers")
    cdc_claims_table: str = Field("benefit_claims", description="Table of benefit claims")
    cdc_sanctions_table: str = Field("sanctions", description="Table of sanctions")
    cdc_appointments_table: str = Field("appointments", description="Table of appointments")
    cdc_columns: dict[str, str] = Field(
        default_factory=dict,
        description="Columns named differently from the reference schema, as JSON "
        '{"<reference table>.<reference column>": "<column>"}, e.g. '
        '{"jobseekers.family_name": "surname"}',
    )
    cdc_batch_changes: int = Field(
        2000, ge=1, description="Changes read from the slot per batch (whole transactions)"
    )
    cdc_idle_poll_s: float = Field(
        0.2, gt=0, description="Wait before asking the slot again when it had no changes"
    )
    cdc_source_system: str = Field("jobcentre-cms", description="source_system on events")
    cdc_subject_cache: int = Field(
        100_000,
        ge=1,
        description="Jobseeker subjects kept in memory for claim, sanction and "
        "appointment changes; misses are read from the jobseekers table",
    )
