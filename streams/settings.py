"""Settings of a stream worker."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from backbone.settings import BackboneSettings
from streams.alerts.rules import SHIPPED_RULES


class AlertSettings(BackboneSettings):
    """The alert rules and event time, shared by the worker and `backbone rules replay`."""

    alert_rules_file: Path = Field(
        SHIPPED_RULES,
        description="YAML rule file, validated at start-up",
    )
    alert_lateness_s: float = Field(
        86400.0,
        ge=0,
        description=(
            "Seconds the event-time watermark stays behind the latest occurred_at seen (and "
            "behind the wall clock when the timer moves it): how late events may come before "
            "an absence is decided without them"
        ),
    )


class WorkerSettings(AlertSettings):
    """The Faust worker: its web server (API, /metrics) and table store."""

    worker_host: str = Field("127.0.0.1", description="Address the worker's HTTP API binds")
    worker_port: int = Field(6066, description="Port of the coordinator API and /metrics")
    worker_advertised_url: str | None = Field(
        None,
        description=(
            "URL the other workers forward requests to, when it differs from "
            "http://<worker_host>:<worker_port> (e.g. the worker binds 0.0.0.0)"
        ),
    )
    worker_store: Literal["rocksdb", "memory"] = Field(
        "rocksdb", description="Where tables live between changelog recoveries"
    )
    alert_timer_interval_s: float = Field(
        60.0,
        gt=0,
        description="How often the alert timer moves event time with the wall clock and "
        "checks the absences that are due",
    )
    token_secret: SecretStr = Field(description="Secret that signs coordinator tokens")

    @property
    def worker_url(self) -> str:
        """Where the other workers of the group reach this worker's API."""
        return self.worker_advertised_url or f"http://{self.worker_host}:{self.worker_port}"
