"""Settings of a stream worker."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from backbone.settings import BackboneSettings


class WorkerSettings(BackboneSettings):
    """The Faust worker: its web server (API, /metrics) and table store."""

    worker_host: str = Field("127.0.0.1", description="Address the worker's HTTP API binds")
    worker_port: int = Field(6066, description="Port of the coordinator API and /metrics")
    worker_store: Literal["rocksdb", "memory"] = Field(
        "rocksdb", description="Where tables live between changelog recoveries"
    )
    token_secret: SecretStr = Field(description="Secret that signs coordinator tokens")
