"""Loading the settings for a command, and saying where each value came from.

    settings = load_settings(url="https://...")     # a flag given on the command line wins
    sources = setting_sources({"url": "https://..."})  # {"url": "flag", "username": "env", ...}

Every problem, whichever source it came from, is one SettingsError (exit 2) that names the variable
(NIRBRIDGE_REQUEST_TIMEOUT), the file and key (/etc/nirbridge.toml: request_timeout) or the flag at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_settings import EnvSettingsSource

from .config_file import ConfigFileSource, config_path
from .errors import UsageError
from .settings import Settings

__all__ = ["ENV_PREFIX", "Source", "SettingsError", "load_settings", "setting_sources"]

Source = Literal["flag", "env", "file", "default"]
ENV_PREFIX = "NIRBRIDGE_"


class SettingsError(UsageError):
    """The settings cannot be used as given; `problems` says where each one is."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("bad settings: " + "; ".join(problems))


def setting_sources(flags: Mapping[str, Any] | None = None) -> dict[str, Source]:
    """Where each setting's value comes from: a flag, the environment, the settings file or the default."""
    from_env = EnvSettingsSource(Settings, env_prefix=ENV_PREFIX)()
    from_file = ConfigFileSource(Settings)()
    sources: dict[str, Source] = {}
    for name in Settings.model_fields:
        if flags and name in flags:
            sources[name] = "flag"
        elif name in from_env:
            sources[name] = "env"
        elif name in from_file:
            sources[name] = "file"
        else:
            sources[name] = "default"
    return sources


def _where(name: str, source: Source) -> str:
    if source == "env":
        return ENV_PREFIX + name.upper()
    if source == "file":
        return f"{config_path()}: {name}"
    if source == "flag":
        return f"{name} (command line)"
    return name


def load_settings(**flags: Any) -> Settings:
    """The settings, flags first; SettingsError naming the variable, file key or flag for a bad value."""
    try:
        return Settings(**flags)
    except ValidationError as error:
        sources = setting_sources(flags)
        problems = []
        for item in error.errors():
            message = str(item["msg"]).removeprefix("Value error, ")
            name = str(item["loc"][0]) if item["loc"] else ""
            if name in sources:
                problems.append(f"{_where(name, sources[name])}: {message}")
            else:  # a check across several settings (credentials): the message names them
                problems.append(message)
        raise SettingsError(problems) from None
