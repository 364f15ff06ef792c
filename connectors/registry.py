"""Every connector by the name `backbone connector run NAME` knows it by.

Entries name their settings class and connector class as `module:attribute`, imported only
when that connector runs, so one connector's dependencies never load in another's process.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backbone.errors import ConfigurationError
from backbone.event_loop import use_uvloop
from backbone.logging import configure_logging
from backbone.settings import load_settings
from connectors.runtime import ConnectorRuntime, run_connector
from connectors.runtime.config import ConnectorSettings


@dataclass(frozen=True)
class ConnectorKind:
    """Where a connector's settings class and connector class live."""

    settings: str
    connector: str


CONNECTORS: dict[str, ConnectorKind] = {
    "social-care-webhook": ConnectorKind(
        "connectors.social_care_webhook.config:SocialCareWebhookSettings",
        "connectors.social_care_webhook.source:SocialCareWebhook",
    ),
    "hl7-mllp": ConnectorKind(
        "connectors.hl7_mllp.config:Hl7MllpSettings",
        "connectors.hl7_mllp.source:Hl7MllpConnector",
    ),
    "jobcentre-cdc": ConnectorKind(
        "connectors.jobcentre_cdc.config:JobcentreCdcSettings",
        "connectors.jobcentre_cdc.source:JobcentreCdcConnector",
    ),
    "housing-csv": ConnectorKind(
        "connectors.housing_csv.config:HousingCsvSettings",
        "connectors.housing_csv.source:HousingCsvConnector",
    ),
}


def _load(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def run(name: str, config_file: Path | None) -> None:
    """Run the connector called `name` until SIGTERM/SIGINT."""
    kind = CONNECTORS.get(name)
    if kind is None:
        known = ", ".join(sorted(CONNECTORS))
        raise ConfigurationError(f"no connector named {name!r}; known: {known}")
    settings_class: type[ConnectorSettings] = _load(kind.settings)
    settings = load_settings(settings_class, config_file)
    configure_logging(settings.log_level)
    connector = _load(kind.connector)(settings)
    use_uvloop()
    asyncio.run(run_connector(connector, ConnectorRuntime(name, settings)))
