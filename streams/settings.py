"""Settings of a stream worker."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from backbone.settings import BackboneSettings


class WorkerSettings(BackboneSettings):
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
    token_secret: SecretStr = Field(description="Secret that signs coordinator tokens")

    @property
    def worker_url(self) -> str:
        """Where the other workers of the group reach this worker's API."""
        return self.worker_advertised_url or f"http://{self.worker_host}:{self.worker_port}"
