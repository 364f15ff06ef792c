"""Settings of the notifications: the routing file, the SMTP relay and the retry policy.

A mixin for the worker's settings (same `BACKBONE_` namespace, every field `notify_...`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.notifications.routing import SAMPLE_ROUTING


class NotificationSettings(BaseSettings):
    """Where alerts go and how hard the channels try."""

    model_config = SettingsConfigDict(env_prefix="BACKBONE_", frozen=True, extra="ignore")

    notify_routing_file: Path = Field(
        SAMPLE_ROUTING, description="YAML routing file: team -> webhook / email channels"
    )
    notify_smtp_host: str = Field("127.0.0.1", description="SMTP relay host for email channels")
    notify_smtp_port: int = Field(25, ge=1, le=65535, description="SMTP relay port")
    notify_smtp_sender: str = Field(
        "backbone-alerts@example.org", description="From address of notification emails"
    )
    notify_tries: int = Field(5, ge=1, description="Tries per delivery before dead-lettering")
    notify_backoff_base: float = Field(
        0.5, gt=0, description="Seconds before the second try; doubles each further try"
    )
    notify_backoff_max: float = Field(30.0, gt=0, description="Longest wait between two tries")
    notify_timeout: float = Field(10.0, gt=0, description="Seconds one webhook/SMTP try may take")
