"""Settings of the social care webhook connector."""

from __future__ import annotations

from pydantic import Field

from backbone.secret_settings import Secret
from backbone.topics import WEBHOOK_IDEMPOTENCY_RETENTION_S
from connectors.runtime.config import ConnectorSettings


class SocialCareWebhookSettings(ConnectorSettings):
    """Where the webhook listens and the secret the case system signs bodies with."""

    webhook_host: str = Field("127.0.0.1", description="Address the webhook endpoint binds")
    webhook_port: int = Field(8081, description="Port of POST /webhooks/social-care")
    webhook_secret: Secret = Field(description="Shared HMAC-SHA256 secret for X-Signature")
    webhook_max_body_bytes: int = Field(1024 * 1024, description="Larger bodies get 413")
    webhook_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A body not read whole within this gets 408; a connection that sends no "
        "complete request head within it (or idles this long between requests) is closed",
    )
    webhook_source_system: str = Field("social-care-cms", description="source_system on events")
    webhook_idempotency_keys: int = Field(
        100_000, ge=1, description="How many Idempotency-Keys are remembered for repeat answers"
    )
    webhook_idempotency_ttl_s: float = Field(
        86400.0,
        gt=0,
        le=WEBHOOK_IDEMPOTENCY_RETENTION_S,
        description="Seconds an Idempotency-Key's answer is remembered, across restarts; at "
        "most the idempotency topic's retention (a week)",
    )
