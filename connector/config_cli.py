"""`nirbridge config`: the settings in effect, where each came from, secrets masked (registered in
`connector.cli`).

    nirbridge config [--url URL] [--json]

Each setting is printed with its source: `flag` (here only `--url`), `env` (NIRBRIDGE_*), `file`
($NIRBRIDGE_CONFIG) or `default`. Passwords and API keys print as `****`, and so does a password written into
any URL (https://user:****@host, redis://:****@host). Exit status 2, naming the variable or the file and key,
when the settings cannot be used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr

from nirbridge.urls import redact_url

from .cli_options import JsonOption, UrlOption
from .config_file import config_path
from .errors import UsageError
from .settings_loader import ENV_PREFIX, load_settings, setting_sources

__all__ = ["MASK", "config_command", "masked", "masked_url"]

MASK = "****"


def masked_url(text: str) -> str:
    """`text` with the password of a URL in it replaced by ****; anything else unchanged."""
    return redact_url(text, mask=MASK)


def masked(value: Any) -> Any:
    """A setting's value as it may be shown: secrets as ****, URL passwords hidden, paths as text."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, str):
        return masked_url(value)
    if isinstance(value, Path):
        return str(value)
    return value


def config_command(url: UrlOption = None, json_output: JsonOption = False) -> None:
    """Print the settings in effect, the source of each (flag, env, file, default), secrets masked."""
    flags = {"url": url} if url else {}
    try:
        settings = load_settings(**flags)
        sources = setting_sources(flags)
    except UsageError as error:
        typer.echo(f"nirbridge: error: {error}", err=True)
        raise typer.Exit(2) from None
    path = config_path()
    rows = {
        name: {
            "value": masked(getattr(settings, name)),
            "source": sources[name],
            "env": ENV_PREFIX + name.upper(),
        }
        for name in type(settings).model_fields
    }
    if json_output:
        typer.echo(json.dumps({"config_file": str(path) if path else None, "settings": rows}))
        return
    typer.echo(f"settings file: {path}" if path else "settings file: none ($NIRBRIDGE_CONFIG is not set)")
    width = max(len(name) for name in rows)
    for name, row in rows.items():
        typer.echo(f"{name:<{width}} = {json.dumps(row['value'])}  ({row['source']})")
