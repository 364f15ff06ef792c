"""The small runtime every connector runs on: lifecycle, publishing, dead letters, metrics."""

from connectors.runtime.lifecycle import Connector, run_connector
from connectors.runtime.runtime import ConnectorRuntime

__all__ = ["Connector", "ConnectorRuntime", "run_connector"]
