"""Settings of a stream worker."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field

from backbone.secret_settings import Secret
from backbone.settings import BackboneSettings
from streams.alerting.notifications.settings import NotificationSettings
from streams.alerting.rules import SHIPPED_RULES


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


class WorkerSettings(AlertSettings, NotificationSettings):
    """The Faust worker: its web server (API, /metrics), table store, the alert rules and
    lifecycle, and the notifications of alerts."""

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
    worker_table_write_buffer_mib: int = Field(
        4,
        ge=1,
        description=(
            "RocksDB write buffer (memtable) of each table partition, two at most; RocksDB's "
            "own default is 64 MiB, three at most, per partition"
        ),
    )
    worker_table_cache_mib: int = Field(
        8, ge=1, description="RocksDB block cache of each table partition (Faust's default: 2 GiB)"
    )
    worker_frame_max_events: int = Field(
        500,
        ge=1,
        description="Most events in one frame between stages (one Kafka message; README, "
        '"Frames between stages")',
    )
    alert_timer_interval_s: float = Field(
        60.0,
        gt=0,
        description="How often the alert timer moves event time with the wall clock and "
        "checks the absences that are due",
    )
    token_secret: Secret = Field(description="Secret that signs coordinator tokens")
    worker_session_timeout_s: float = Field(
        60.0,
        ge=6,
        description="Seconds without heartbeat before Kafka gives a dead worker's partitions to "
        "the others (and to a restarted worker)",
    )
    alert_escalation_urgent_s: float = Field(
        3600.0, gt=0, description="Seconds an urgent alert may stay unacknowledged"
    )
    alert_escalation_high_s: float = Field(
        4 * 3600.0, gt=0, description="Seconds a high alert may stay unacknowledged"
    )
    alert_escalation_warning_s: float = Field(
        24 * 3600.0, gt=0, description="Seconds a warning alert may stay unacknowledged"
    )
    alert_escalation_check_s: float = Field(
        30.0, gt=0, description="How often the alert owner looks for alerts to escalate"
    )
    alert_change_timeout_s: float = Field(
        10.0, gt=0, description="How long the API waits for an acknowledge/resolve to apply"
    )

    @property
    def worker_url(self) -> str:
        """Where the other workers of the group reach this worker's API."""
        return self.worker_advertised_url or f"http://{self.worker_host}:{self.worker_port}"

    @property
    def escalate_after(self) -> dict[str, timedelta]:
        """Escalation time per severity; `info` alerts are never escalated."""
        return {
            "urgent": timedelta(seconds=self.alert_escalation_urgent_s),
            "high": timedelta(seconds=self.alert_escalation_high_s),
            "warning": timedelta(seconds=self.alert_escalation_warning_s),
        }
