"""Settings every connector has, on top of the backbone's."""

from __future__ import annotations

from pydantic import Field

from backbone.settings import BackboneSettings


class ConnectorSettings(BackboneSettings):
    """Kafka delivery and the operations endpoint of one connector process."""

    delivery_timeout_s: float = Field(
        5.0, gt=0, description="How long a record may wait for Kafka before the input is refused"
    )
    metrics_host: str = Field("127.0.0.1", description="Where /metrics and /health listen")
    metrics_port: int = Field(9101, description="Port of /metrics and /health")
