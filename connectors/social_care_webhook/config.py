"""Settings of the social care webhook connector."""

from __future__ import annotations

from pydantic import Field, SecretStr

from connectors.runtime.config import ConnectorSettings


class SocialCareWebhookSettings(ConnectorSettings):
    """Where the webhook listens and the secret the case system signs bodies with."""

    webhook_host: str = Field("127.0.0.1", description="Address the webhook endpoint binds")
    webhook_port: int = Field(8081, description="Port of POST /webhooks/social-care")
    webhook_secret: SecretStr = Field(description="Shared HMAC-SHA256 secret for X-Signature")
    webhook_max_body_bytes: int = Field(1024 * 1024, description="Larger bodies get 413")
    webhook_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A body not read whole within this gets 408; a connection that sends no "
        "complete request head within it (or idles this long between requests) is closed",
    )
    webhook_source_system: str = Field("social-care-cms", description="source_system on events")
    webhook_idempotency_keys: int = Field(
        100_000, description="How many Idempotency-Keys are remembered for repeat answers"
    )
