"""Settings shared by every process, read from `BACKBONE_*` environment variables.

Each process builds one frozen settings object at start-up and passes it down; nothing reads
the environment at import time. A `--config` YAML file may set the same keys (lower case,
without the prefix); its values take precedence over the environment. Secrets may be given as
files (`backbone/secret_settings.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from backbone.errors import ConfigurationError
from backbone.secret_settings import FILE_SUFFIX, Secret, SecretFilesSource, secret_fields

REPO_ROOT = Path(__file__).resolve().parent.parent


class BackboneSettings(BaseSettings):
    """What every backbone process needs: where Kafka is and how to pseudonymise."""

    model_config = SettingsConfigDict(env_prefix="BACKBONE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:19092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    topic_prefix: str = Field(
        "backbone", description="Prefix of every topic name; lets deployments share a cluster"
    )
    partitions: int = Field(4, ge=1, description="Partitions of the topics the backbone creates")
    replication_factor: int = Field(1, ge=1, description="Replication of created topics")
    pseudonym_key: Secret = Field(
        description="Secret for the keyed hash (HMAC-SHA256) of every person identifier"
    )
    schemas_dir: Path = Field(REPO_ROOT / "avro_schemas", description="The Avro contracts")
    data_dir: Path = Field(Path(".backbone"), description="Local state (worker tables, offsets)")
    log_level: str = Field("INFO", description="Log level of the JSON log lines")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The config file's keys, then secrets given as files, then the environment."""
        given = init_settings.init_kwargs if isinstance(init_settings, InitSettingsSource) else {}
        secret_files = SecretFilesSource(settings_cls, given)
        return init_settings, secret_files, env_settings, dotenv_settings, file_secret_settings


SettingsT = TypeVar("SettingsT", bound=BackboneSettings)


def load_settings(cls: type[SettingsT], config_file: Path | None = None) -> SettingsT:
    """Build `cls` from the environment and an optional YAML file; errors name the setting."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"cannot read config file {config_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigurationError(f"config file {config_file} must hold a mapping of settings")
        values = {str(key).lower(): value for key, value in loaded.items()}
    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(cls, error) for error in exc.errors())
        raise ConfigurationError(f"invalid settings: {problems}") from exc


def _problem(cls: type[BackboneSettings], error: ErrorDetails) -> str:
    """One invalid setting, by its variable; a missing secret says how to give it."""
    name = "_".join(str(part) for part in error["loc"])
    variable = f"BACKBONE_{name.upper()}"
    if error["type"] == "missing" and name in secret_fields(cls):
        return f"{variable}: not set; set it, or {variable}{FILE_SUFFIX} to a file holding it"
    return f"{variable}: {error['msg'].removeprefix('Value error, ')}"
