"""Typer options shared by the command modules (`--url`, `--index`, `--json`, `--progress`).

They sit apart from `connector.cli` so that a command module registered there (`eval_cli`) can use them
without importing `cli` at load time (which imports it back).
"""

from __future__ import annotations

from typing import Annotated

import typer

from .settings import DEFAULT_URL

__all__ = ["IndexOption", "JsonOption", "ProgressOption", "UrlOption"]

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help=f"Cluster URL (default: $NIRBRIDGE_URL, else {DEFAULT_URL}).", show_default=False
    ),
]
IndexOption = Annotated[str, typer.Option("--index", help="Index name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line.")]
ProgressOption = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal)."),
]
