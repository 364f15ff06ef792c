"""The case management tables as configured, against the reference schema's names.

Everything past this module speaks the reference names (`jobseekers.family_name`); only here
are they translated to what a deployment's database calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backbone.errors import ConfigurationError
from connectors.jobcentre_cdc.config import JobcentreCdcSettings

REFERENCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "jobseekers": (
        "id",
        "national_id",
        "family_name",
        "given_name",
        "birth_date",
        "postcode",
        "updated_at",
    ),
    "benefit_claims": (
        "id",
        "jobseeker_id",
        "benefit_type",
        "status",
        "started_on",
        "ended_on",
        "updated_at",
    ),
    "sanctions": (
        "id",
        "jobseeker_id",
        "reason",
        "starts_on",
        "ends_on",
        "reduction_pct",
        "created_at",
    ),
    "appointments": ("id", "jobseeker_id", "scheduled_at", "attended", "updated_at"),
}
# Snapshot order: jobseekers first, so the other tables find their subjects in memory.
REFERENCE_TABLES = tuple(REFERENCE_COLUMNS)


@dataclass(frozen=True)
class Table:
    """One captured table: its reference name, its real name and its column names."""

    reference: str
    schema: str
    name: str
    columns: dict[str, str]  # reference column -> real column

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def to_reference(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row keyed by real column names, re-keyed by reference names (absent ones left out)."""
        return {ref: row[real] for ref, real in self.columns.items() if real in row}


@dataclass(frozen=True)
class CaseSchema:
    """The four captured tables, looked up by reference or by real (schema, name)."""

    tables: tuple[Table, ...]

    @classmethod
    def from_settings(cls, settings: JobcentreCdcSettings) -> CaseSchema:
        """Build the mapping; a renamed column that is not in the reference schema is an error."""
        names = {
            "jobseekers": settings.cdc_jobseekers_table,
            "benefit_claims": settings.cdc_claims_table,
            "sanctions": settings.cdc_sanctions_table,
            "appointments": settings.cdc_appointments_table,
        }
        known = {f"{t}.{c}" for t, columns in REFERENCE_COLUMNS.items() for c in columns}
        unknown = sorted(set(settings.cdc_columns) - known)
        if unknown:
            raise ConfigurationError(
                f"BACKBONE_CDC_COLUMNS: {', '.join(unknown)} not in the reference schema"
            )
        tables = tuple(
            Table(
                reference=ref,
                schema=settings.cdc_schema,
                name=names[ref],
                columns={c: settings.cdc_columns.get(f"{ref}.{c}", c) for c in columns},
            )
            for ref, columns in REFERENCE_COLUMNS.items()
        )
        return cls(tables)

    def by_reference(self, reference: str) -> Table:
        return next(t for t in self.tables if t.reference == reference)

    def by_name(self, schema: str, name: str) -> Table | None:
        """The captured table called `schema.name`, or None for a table we do not capture."""
        return next((t for t in self.tables if (t.schema, t.name) == (schema, name)), None)
