"""Typer options for logs and metrics, shared by `serve`, `worker` and `enrich`.

    --log-format text|json   (default $NIRBRIDGE_LOG_FORMAT, else text)
    --log-level LEVEL        (default $NIRBRIDGE_LOG_LEVEL, else info)
    --metrics-port N         (default $NIRBRIDGE_METRICS_PORT: Prometheus metrics on N while the command runs)
    --metrics-host ADDRESS   (default $NIRBRIDGE_METRICS_HOST, else 127.0.0.1; 0.0.0.0 in a container)

Apart from `connector.cli`, like `cli_options`, so that command modules can use them without importing it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from nirbridge.logs import LogFormat, configure_logging, reset_logging

__all__ = ["LogFormatOption", "LogLevelOption", "MetricsHostOption", "MetricsPortOption", "setup_logging"]

LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format", help="text or json (default: $NIRBRIDGE_LOG_FORMAT, else text).", show_default=False
    ),
]
LogLevelOption = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        help="debug, info, warning, error, critical (default: $NIRBRIDGE_LOG_LEVEL, else info).",
        show_default=False,
    ),
]
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=1,
        max=65535,
        envvar="NIRBRIDGE_METRICS_PORT",
        help="Serve Prometheus metrics on this port while the command runs.",
        show_default=False,
    ),
]
MetricsHostOption = Annotated[
    str,
    typer.Option("--metrics-host", envvar="NIRBRIDGE_METRICS_HOST", help="Address of the metrics port."),
]


def setup_logging(ctx: typer.Context, log_format: str | None, log_level: str | None) -> tuple[LogFormat, str]:
    """Configure logging (nirbridge.logs) for a command, undone when the command ends (a command invoked
    inside another program leaves its logging as it was); the (format, level) chosen. A bad value is a
    usage error."""
    try:
        chosen = configure_logging(log_format, log_level)
    except ValueError as error:
        hint = "'--log-format'" if "format" in str(error) else "'--log-level'"
        raise typer.BadParameter(str(error), param_hint=hint) from None
    ctx.call_on_close(reset_logging)
    return chosen
