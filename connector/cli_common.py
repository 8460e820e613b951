"""What the command modules of the `nirbridge` command line share: one error line and exit status, the
settings, a client that has answered, a BEIR folder, a JSON line.

`connector.cli` registers the command groups (`eval_cli`, `train_cli`, `migrate_cli`, `prior_cli`,
`serve_cli`, `status_cli` ...); they and `cli` itself import these helpers from here, so that no command
module imports `cli` back.

Exit status (`exit_code`): 2 when nothing was done (bad usage, an unreachable cluster, a missing index, no
broker or workers, a request the cluster refused with a 4xx), 1 otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from opensearchpy import OpenSearch

from .beir import BeirDataset
from .client import check_reachable, client_options, make_client
from .errors import (
    ClusterError,
    ClusterUnreachable,
    DatasetError,
    IndexNotFound,
    NirbridgeError,
    RunnerError,
    UsageError,
)
from .settings import Settings
from .settings_loader import load_settings

__all__ = ["cli_settings", "connect", "exit_code", "fail", "guarded", "open_dataset", "print_json"]

T = TypeVar("T")


def fail(message: str, code: int) -> NoReturn:
    """`nirbridge: error: <message>` on stderr, then exit with `code`."""
    typer.echo(f"nirbridge: error: {message}", err=True)
    raise typer.Exit(code)


def exit_code(error: NirbridgeError) -> int:
    """The exit status that `error` means (module docstring)."""
    if isinstance(error, UsageError | ClusterUnreachable | IndexNotFound | RunnerError):
        return 2  # nothing was done: fix the command, the cluster, the broker or the workers first
    if isinstance(error, ClusterError) and isinstance(error.status, int) and 400 <= error.status < 500:
        return 2  # the cluster refused what we asked for (a bad index name, a bad query): usage
    return 1


def guarded(action: Callable[[], T]) -> T:
    """Run `action`, turning nirbridge's errors into a one-line message and the exit status they mean."""
    try:
        return action()
    except NirbridgeError as error:
        fail(str(error), exit_code(error))


def cli_settings() -> Settings:
    """The settings from the environment and $NIRBRIDGE_CONFIG; exit 2 naming what is wrong where."""
    try:
        return load_settings()
    except UsageError as error:
        fail(str(error), 2)


def connect(url: str | None, settings: Settings) -> tuple[OpenSearch, str]:
    """A client for `url` (or the configured one) that has answered GET /."""
    resolved = url or settings.url

    def reach() -> OpenSearch:
        client = make_client(resolved, **client_options(settings))
        check_reachable(client, resolved)
        return client

    return guarded(reach), resolved


def open_dataset(path: Path) -> BeirDataset:
    """The BEIR folder at `path`; a bad one is a usage error on `--dataset`."""
    try:
        return BeirDataset.open(path)
    except DatasetError as error:
        raise typer.BadParameter(error.reason + f": {error.path}", param_hint="'--dataset'") from None


def print_json(value: dict[str, Any]) -> None:
    """`value` as one JSON line on stdout."""
    typer.echo(json.dumps(value, ensure_ascii=False))
