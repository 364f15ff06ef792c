"""The connector runtime against the real broker: positions survive a restart."""

from __future__ import annotations

import asyncio

from cli.processes import free_port
from connectors.runtime import ConnectorRuntime
from connectors.runtime.config import ConnectorSettings
from tests.conftest import Deployment


def settings(deployment: Deployment) -> ConnectorSettings:
    return ConnectorSettings(
        kafka_bootstrap=deployment.bootstrap,
        topic_prefix=deployment.prefix,
        pseudonym_key=deployment.pseudonym_key,
        metrics_port=free_port(),
    )


async def positions_seen_by(connector: str, deployment: Deployment) -> dict[str, object]:
    runtime = ConnectorRuntime(connector, settings(deployment))
    await runtime.start()
    try:
        return runtime.positions.load()
    finally:
        await runtime.stop()


def test_saved_positions_are_loaded_by_the_next_run(deployment: Deployment) -> None:
    async def first_run() -> None:
        runtime = ConnectorRuntime("housing-csv", settings(deployment))
        await runtime.start()
        assert runtime.positions.load() == {}
        await runtime.positions.save("drop-folder", {"file": "a.csv", "sha256": "1"})
        await runtime.positions.save("drop-folder", {"file": "b.csv", "sha256": "2"})
        await runtime.positions.save("other", 17)
        await runtime.stop()

    asyncio.run(first_run())
    assert asyncio.run(positions_seen_by("housing-csv", deployment)) == {
        "drop-folder": {"file": "b.csv", "sha256": "2"},
        "other": 17,
    }
    assert asyncio.run(positions_seen_by("hl7-mllp", deployment)) == {}
