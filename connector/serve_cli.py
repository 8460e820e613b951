"""`nirbridge serve`: the search proxy (connector.proxy) under uvicorn (registered in `connector.cli`).

    nirbridge serve --url http://127.0.0.1:9200 --host 127.0.0.1 --port 8080 [--rerank-model DIR]
                    [--log-format json] [--log-level info]

Settings come from the environment (`NIRBRIDGE_PROXY_*`, see connector.settings); the flags here win. The
proxy starts even when the cluster does not answer yet (`GET /_nirbridge/ready` says so); a bad URL, bad
settings or a port already taken exit 2 at once. Logs go to stderr (nirbridge.logs), one line per request
(connector.proxy.observe) instead of uvicorn's access log; metrics are at `GET /_nirbridge/metrics`.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Annotated

import typer

from .cli_common import fail
from .cli_options import UrlOption
from .client import validate_url
from .errors import BadUrlError, UsageError
from .observe_options import LogFormatOption, LogLevelOption, setup_logging
from .proxy import redact
from .settings_loader import load_settings

__all__ = ["serve_command"]


def _port_free(host: str, port: int) -> str | None:
    """None when `host:port` can be listened on, else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use"
            return f"cannot listen on {host}:{port}: {error.strerror or error}"
    return None


def serve_command(
    ctx: typer.Context,
    url: UrlOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8080,
    allow_writes: Annotated[
        bool | None,
        typer.Option(
            "--allow-writes/--read-only",
            help="Pass write and admin requests on (default: $NIRBRIDGE_PROXY_ALLOW_WRITES, else read-only).",
            show_default=False,
        ),
    ] = None,
    rerank_in_process: Annotated[
        bool | None,
        typer.Option(
            "--rerank-in-process/--rerank-workers",
            help="Rerank in this process, not in Celery workers ($NIRBRIDGE_PROXY_RERANK_IN_PROCESS).",
            show_default=False,
        ),
    ] = None,
    rerank_model: Annotated[
        str | None,
        typer.Option(
            "--rerank-model",
            help="The cross-encoder (name or folder) for requests that name none "
            "($NIRBRIDGE_PROXY_RERANK_MODEL; without one such a request is a 400).",
            show_default=False,
        ),
    ] = None,
    log_format: LogFormatOption = None,
    log_level: LogLevelOption = None,
) -> None:
    """The search proxy: OpenSearch's API in front of the cluster, with neural retrieval and reranking."""
    _, level = setup_logging(ctx, log_format, log_level)
    overrides: dict[str, object] = {}
    if url:
        overrides["url"] = url
    if allow_writes is not None:
        overrides["proxy_allow_writes"] = allow_writes
    if rerank_in_process is not None:
        overrides["proxy_rerank_in_process"] = rerank_in_process
    if rerank_model:
        overrides["proxy_rerank_model"] = rerank_model
    try:
        settings = load_settings(**overrides)
    except UsageError as error:
        fail(str(error), 2)
    try:
        validate_url(settings.url)
    except BadUrlError as error:
        fail(str(error), 2)
    busy = _port_free(host, port)
    if busy:
        fail(busy, 2)

    import uvicorn

    from .proxy import make_app, server_config

    mode = "read-write" if settings.proxy_allow_writes else "read-only"
    where = "in process" if settings.proxy_rerank_in_process else f"workers via {redact(settings.broker_url)}"
    model = settings.proxy_rerank_model or "none by default"
    logging.getLogger("nirbridge.serve").info(  # a log record: a JSON line with --log-format json
        "nirbridge proxy on http://%s:%d -> %s (%s; rerank %s, model %s)",
        host,
        port,
        redact(settings.url),
        mode,
        where,
        model,
    )
    # log_config=None: uvicorn's loggers go to the root handler (text or JSON); its access log would print
    # query strings (`?q=`): the proxy logs each request itself. Slow request lines and headers time out
    # (connector.proxy.server), slow bodies too (connector.proxy.limits).
    config = server_config(
        make_app(settings), settings, host=host, port=port, log_level=level, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise typer.Exit(3)  # as uvicorn.run exits: the server could not start (its log said why)
