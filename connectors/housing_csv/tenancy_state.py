"""What the connector remembers of a tenancy between two nights: only pseudonymised values.

The previous snapshot is kept as these states (keyed hashes and normalised names, never the
clear identifiers), which is enough both to tell what changed and to build an event about a
tenancy that disappeared from the export.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from operator import attrgetter

Columns = tuple[str | int | float | None, ...]


@dataclass(frozen=True)
class TenancyState:
    """One tenancy's state in one snapshot."""

    tenancy_id: str  # keyed hash of tenancy_ref
    as_of: date
    tenant_id: str  # keyed hash of tenant_ref: the subject's record_id
    national_id: str | None  # keyed hash
    family_name: str  # normalised
    given_name: str  # normalised
    birth_date: date
    postcode: str | None  # normalised
    address_digest: str  # keyed hash of the normalised address: compared, never published
    status: str
    arrears_pence: int
    arrears_weeks: float
    notice: str
    homelessness_application: str
    household_size: int

    def details(self) -> tuple[object, ...]:
        """The tenant's details: a change in any of them is `tenant_details_changed`."""
        return (
            self.tenant_id,
            self.national_id,
            self.family_name,
            self.given_name,
            self.birth_date,
            self.postcode,
            self.address_digest,
            self.household_size,
        )

    def to_columns(self) -> Columns:
        """The state as a row of the snapshot store (dates as ISO text)."""
        values: Columns = _ALL_VALUES(self)
        return (
            *values[:_AS_OF],
            self.as_of.isoformat(),
            *values[_AS_OF + 1 : _BIRTH_DATE],
            self.birth_date.isoformat(),
            *values[_BIRTH_DATE + 1 :],
        )

    @classmethod
    def from_columns(cls, row: Columns) -> TenancyState:
        """The state back from a snapshot store row."""
        values: list[object] = list(row)
        values[_AS_OF] = date.fromisoformat(str(row[_AS_OF]))
        values[_BIRTH_DATE] = date.fromisoformat(str(row[_BIRTH_DATE]))
        return cls(*values)  # type: ignore[arg-type]


COLUMN_NAMES: tuple[str, ...] = tuple(field.name for field in fields(TenancyState))
_AS_OF = COLUMN_NAMES.index("as_of")
_BIRTH_DATE = COLUMN_NAMES.index("birth_date")
# attrgetter reads every field in one C call: dataclasses.astuple deep-copies, 10x slower.
_ALL_VALUES = attrgetter(*COLUMN_NAMES)
