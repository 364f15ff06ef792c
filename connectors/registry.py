"""Every connector by the name `backbone connector run NAME` knows it by."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backbone.errors import ConfigurationError
from backbone.logging import configure_logging
from backbone.settings import load_settings
from connectors.runtime import Connector, ConnectorRuntime, run_connector
from connectors.runtime.config import ConnectorSettings
from connectors.social_care_webhook.config import SocialCareWebhookSettings
from connectors.social_care_webhook.source import SocialCareWebhook


@dataclass(frozen=True)
class ConnectorKind:
    settings: type[ConnectorSettings]
    build: Callable[[ConnectorSettings], Connector]


def _social_care(settings: ConnectorSettings) -> Connector:
    assert isinstance(settings, SocialCareWebhookSettings)
    return SocialCareWebhook(settings)


CONNECTORS: dict[str, ConnectorKind] = {
    SocialCareWebhook.name: ConnectorKind(SocialCareWebhookSettings, _social_care),
}


def run(name: str, config_file: Path | None) -> None:
    """Run the connector called `name` until SIGTERM/SIGINT."""
    kind = CONNECTORS.get(name)
    if kind is None:
        known = ", ".join(sorted(CONNECTORS))
        raise ConfigurationError(f"no connector named {name!r}; known: {known}")
    settings = load_settings(kind.settings, config_file)
    configure_logging(settings.log_level)
    connector = kind.build(settings)
    asyncio.run(run_connector(connector, ConnectorRuntime(name, settings)))
