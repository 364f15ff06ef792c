"""One lifecycle for every connector: start, run until SIGTERM/SIGINT, drain, stop."""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

from backbone.logging import get_logger
from connectors.runtime.runtime import ConnectorRuntime

log = get_logger(__name__)


class Connector(Protocol):
    """An agency connector. `start` opens its source; `stop` stops taking new input and
    waits for what is in flight, so nothing acknowledged to the source is lost."""

    name: str

    async def start(self, runtime: ConnectorRuntime) -> None: ...

    async def stop(self) -> None: ...


async def run_connector(connector: Connector, runtime: ConnectorRuntime) -> None:
    """Run `connector` until the process is asked to stop, then shut down in order."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await runtime.start()
    try:
        await connector.start(runtime)
        await stopping.wait()
        log.info("connector_stopping", connector=connector.name)
        await connector.stop()
    finally:
        await runtime.stop()
    log.info("connector_stopped", connector=connector.name)
