"""`nirbridge status`: the cluster, its enriched indices, the broker and the workers (registered in
`connector.cli`).

    nirbridge status [--url URL] [--index NAME ...] [--json]

Exit status: 0 when the cluster answers (a broker down or no worker is a warning), 1 when it answers with an
error status, 2 when it does not answer, the URL or environment is bad, or a named index does not exist.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .cli_common import fail
from .cli_options import JsonOption, UrlOption
from .client import client_options
from .errors import ClusterError, NirbridgeError, UsageError
from .settings_loader import load_settings
from .status import gather_status

__all__ = ["status_command"]


def status_command(
    url: UrlOption = None,
    index: Annotated[
        list[str] | None,
        typer.Option(
            "--index", help="Index or alias to report (repeatable; default: every non-hidden index)."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Cluster health, enriched fields and their coverage per index, broker queues and live workers."""
    try:
        settings = load_settings()
    except UsageError as error:
        fail(str(error), 2)
    resolved = url or settings.url
    try:
        report = gather_status(
            resolved,
            broker_url=settings.broker_url,
            result_backend=settings.result_backend,
            indices=index or None,
            timeout=min(settings.request_timeout, 10.0),
            verify_certs=settings.verify_certs,
            connection=client_options(settings),
        )
    except ClusterError as error:  # a named index missing, or the cluster refusing the index listing
        status = error.status if isinstance(error.status, int) else 0
        fail(str(error), 2 if 400 <= status < 500 else 1)
    except NirbridgeError as error:  # a bad URL
        fail(str(error), 2)
    for line in report.lines():
        typer.echo(line, err=json_output)
    if json_output:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
    if not report.cluster.reachable:
        typer.echo(f"nirbridge: error: {resolved}: {report.cluster.error}", err=True)
        raise typer.Exit(2)
    raise typer.Exit(1 if report.cluster.error else 0)
