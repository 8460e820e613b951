"""The optional settings file, `NIRBRIDGE_CONFIG=/path/nirbridge.toml`: a pydantic-settings source.

    # nirbridge.toml: the same names as the environment variables, lower case, without NIRBRIDGE_
    url = "https://search.example:9200"
    username = "nirbridge"
    ca_certs = "/etc/nirbridge/ca.pem"
    proxy_max_window = 500

TOML because Python reads it without a dependency (tomllib) and it has types (numbers, booleans) where an
environment variable has only text. The file is read strictly, unlike the environment: a missing or unparsable
file, a key that is no setting (a typo would otherwise be ignored without a word) or a table where a value
belongs is a ConfigFileError naming the file and the key. Values are checked by the settings model itself.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from .errors import UsageError

__all__ = ["CONFIG_ENV", "ConfigFileError", "ConfigFileSource", "config_path", "read_config_file"]

CONFIG_ENV = "NIRBRIDGE_CONFIG"


class ConfigFileError(UsageError):
    """The settings file cannot be used: missing, not TOML, or a key that is no setting."""

    def __init__(self, path: Path, reason: str, key: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.key = key
        where = f"{path}: {key}" if key else str(path)
        super().__init__(f"settings file {where}: {reason}")


def config_path() -> Path | None:
    """The file named by $NIRBRIDGE_CONFIG, or None when it is unset or empty."""
    value = os.environ.get(CONFIG_ENV, "").strip()
    return Path(value).expanduser() if value else None


def read_config_file(path: Path, settings_cls: type[BaseSettings]) -> dict[str, Any]:
    """The file's settings by field name; ConfigFileError for anything that is not a known setting."""
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigFileError(path, f"no such file (named by ${CONFIG_ENV})") from None
    except OSError as error:
        raise ConfigFileError(path, f"cannot be read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(path, f"not valid TOML: {error}") from None
    fields = settings_cls.model_fields
    for key, value in values.items():
        if key not in fields:
            plain = key.lower().removeprefix("nirbridge_")
            hint = f" (write it as {plain!r})" if plain in fields else ""
            raise ConfigFileError(path, f"no such setting{hint}", key)
        if isinstance(value, dict):
            raise ConfigFileError(path, "a table where a single value belongs", key)
    return values


class ConfigFileSource(PydanticBaseSettingsSource):
    """The settings in $NIRBRIDGE_CONFIG (nothing when it is unset); below the environment, above defaults."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None = None) -> None:
        super().__init__(settings_cls)
        self.path = path if path is not None else config_path()
        self.values = read_config_file(self.path, settings_cls) if self.path is not None else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)
