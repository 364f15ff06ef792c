"""Settings of the housing CSV connector."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from connectors.housing_csv.snapshot_csv import DEFAULT_MAX_ROW_CHARS
from connectors.runtime.config import ConnectorSettings


class HousingCsvSettings(ConnectorSettings):
    """Where the housing system drops its nightly snapshots and what counts as a change."""

    housing_drop_dir: Path = Field(
        Path("housing-drop"),
        description="Folder the housing system writes tenancies_YYYYMMDD.csv into; processed "
        "files move to its processed/ subfolder, refused ones to refused/",
    )
    housing_poll_interval_s: float = Field(
        5.0, gt=0, description="How often the drop folder is looked at for new snapshots"
    )
    housing_require_done_marker: bool = Field(
        False,
        description="Take a snapshot only once its <name>.done marker exists (for systems "
        "that cannot write under a temporary name and rename)",
    )
    housing_arrears_thresholds_weeks: list[int] = Field(
        default_factory=lambda: [4, 8],
        description="Arrears (in weeks of rent) whose upward crossing is an event; JSON list",
    )
    housing_source_system: str = Field(
        "housing-management-system", min_length=1, description="source_system on events"
    )
    housing_max_row_chars: int = Field(
        DEFAULT_MAX_ROW_CHARS,
        ge=1024,
        description="A longer row (with its line breaks; an unbalanced quote runs a row on over "
        "the next lines) is dead-lettered with its first characters",
    )
    housing_publish_window: int = Field(
        5000, ge=1, description="Events (and dead letters) waiting for Kafka's ack at once"
    )

    @field_validator("housing_arrears_thresholds_weeks")
    @classmethod
    def _positive_and_sorted(cls, value: list[int]) -> list[int]:
        if any(weeks <= 0 for weeks in value):
            raise ValueError("every arrears threshold must be a positive number of weeks")
        return sorted(set(value))
