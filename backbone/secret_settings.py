"""Secrets given directly or as a file, the way container platforms mount them.

Every secret can be given in its variable (`BACKBONE_WEBHOOK_SECRET`) or as a path in the same
name with `_FILE` (`BACKBONE_WEBHOOK_SECRET_FILE`), whose content, without a trailing newline,
is the secret. Giving both is an error; so is an empty or unreadable file, naming it. An empty
variable counts as not given beside a file; alone, it is an empty secret, refused. A
`--config` file may use the same two keys (`webhook_secret`, `webhook_secret_file`) and wins
over the environment.

A setting is a secret when its type is `Secret` (a `SecretStr` that may not be empty):
`SecretFilesSource` resolves every such field of a settings class, and `read_secret` resolves
secrets that are not settings (the notification webhooks' secrets, whose variables the routing
file names).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from backbone.errors import ConfigurationError

FILE_SUFFIX = "_FILE"


def _not_empty(secret: SecretStr) -> SecretStr:
    if not secret.get_secret_value():
        raise ValueError("is empty")
    return secret


# The type of every secret setting: never shown in logs or reprs, never empty.
Secret = Annotated[SecretStr, AfterValidator(_not_empty)]


def secret_fields(settings_cls: type[BaseSettings]) -> list[str]:
    """The names of the secret settings of `settings_cls`."""
    return [name for name, field in settings_cls.model_fields.items() if _is_secret(field)]


def read_secret(environ: Mapping[str, str], variable: str) -> str | None:
    """The secret in `variable` or in the file `<variable>_FILE` names; None if neither is set.

    ConfigurationError if both are set, or the file cannot be read or is empty.
    """
    file_variable = variable + FILE_SUFFIX
    value, path = environ.get(variable) or None, environ.get(file_variable) or None
    if value is not None and path is not None:
        raise ConfigurationError(f"{variable} and {file_variable} are both set; set only one")
    if path is not None:
        return read_secret_file(Path(path), file_variable)
    return value


def read_secret_file(path: Path, setting: str) -> str:
    """The secret held in `path` (one trailing newline dropped); errors name `setting` and
    the file."""
    try:
        secret = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigurationError(f"{setting}: cannot read secret file {path}: {reason}") from exc
    secret = secret.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ConfigurationError(f"{setting}: secret file {path} is empty")
    return secret


class SecretFilesSource(PydanticBaseSettingsSource):
    """Every secret setting of a settings class, from its value or its `_FILE` path, in the
    config file (`config`: the keys it gives) or else in the environment."""

    def __init__(self, settings_cls: type[BaseSettings], config: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._config = config
        self._prefix = str(settings_cls.model_config.get("env_prefix", ""))

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Part of the source interface; __call__ resolves all secrets at once instead.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        secrets: dict[str, Any] = {}
        for name in secret_fields(self.settings_cls):
            secret = self._from_config(name) if self._in_config(name) else self._from_env(name)
            if secret is not None:
                secrets[name] = secret
        return secrets

    def _in_config(self, name: str) -> bool:
        return name in self._config or f"{name}{FILE_SUFFIX.lower()}" in self._config

    def _from_config(self, name: str) -> Any:
        file_key = f"{name}{FILE_SUFFIX.lower()}"
        if file_key not in self._config:
            return self._config[name]
        if name in self._config:
            raise ConfigurationError(
                f"config file: {name} and {file_key} are both set; set only one"
            )
        return read_secret_file(Path(str(self._config[file_key])), file_key)

    def _from_env(self, name: str) -> str | None:
        return read_secret(os.environ, f"{self._prefix}{name}".upper())


def _is_secret(field: FieldInfo) -> bool:
    return field.annotation is SecretStr
