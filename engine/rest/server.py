"""The engine's HTTP server: a plain ASGI app over the route table, served by uvicorn.

Requests are handled one at a time on the event loop, so the engine's state needs no locks; a background task
performs the scheduled refreshes (``index.refresh_interval``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import EngineError
from ..limits import BodyReader, BodyTooLarge, max_content_length_from_env
from ..node import Node

# Importing the route modules registers their routes, in this order; keep it: of two routes with as many
# literal segments that match one path (/_settings/{name}, /{index}/_mget), the one registered first wins.
# isort: off
from . import cluster, indices, docs, search  # noqa: F401
# isort: on
from .controller import Response, dispatch
from .filter_path import apply_filter_path

log = logging.getLogger("nirbridge.engine")
REFRESH_TICK_S = 0.2


class EngineApp:
    """ASGI application serving one :class:`Node`."""

    def __init__(self, node: Node, max_content_length: int | None = None) -> None:
        self.node = node
        self.max_content_length = (
            max_content_length if max_content_length is not None else max_content_length_from_env()
        )
        self._refresher: asyncio.Task[None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        response: Response | None = None
        try:
            body = await self._read_body(receive, headers)
        except BodyTooLarge:
            # As OpenSearch (Netty's HttpObjectAggregator) answers it: 413 with an empty body.  What the
            # client still sends is discarded by the server without being buffered.
            await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        except EngineError as exc:  # a body that does not decode as its Content-Encoding says
            body, response = b"", Response(exc.status, exc.to_body())
        try:
            if response is None:
                response = dispatch(self.node, method, scope["path"], params, body, headers)
        except Exception as exc:  # a bug must answer 500, not drop the connection
            log.error("unhandled error on %s %s\n%s", method, scope["path"], traceback.format_exc())
            response = Response(500, {
                "error": {"root_cause": [{"type": "exception", "reason": str(exc)}], "type": "exception",
                          "reason": str(exc)},
                "status": 500,
            })
        if params.get("filter_path") and isinstance(response.body, dict | list):
            response.body = apply_filter_path(response.body, params["filter_path"])
        payload = response.encode()
        if (
            params.get("pretty") is not None
            and response.content_type.startswith("application/json")
            and payload
        ):
            import orjson

            payload = orjson.dumps(orjson.loads(payload), option=orjson.OPT_INDENT_2) + b"\n"
        header_list = [(b"content-type", response.content_type.encode())]
        header_list += [(k.encode(), v.encode()) for k, v in response.headers.items()]
        if method == "HEAD":
            header_list.append((b"content-length", b"0"))
            payload = b""
        else:
            header_list.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": header_list})
        await send({"type": "http.response.body", "body": payload})

    async def _read_body(self, receive: Any, headers: dict[str, str]) -> bytes:
        """The request body, inflated, refused past ``http.max_content_length`` while it arrives (the
        Content-Length header is checked first, so an announced oversized body is not read at all)."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_content_length:
            raise BodyTooLarge()
        reader = BodyReader(self.max_content_length, headers.pop("content-encoding", None))
        while True:
            message = await receive()
            reader.feed(message.get("body", b""))
            if not message.get("more_body"):
                break
        return reader.finish()

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._refresher = asyncio.create_task(self._refresh_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._refresher is not None:
                    self._refresher.cancel()
                self.node.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_TICK_S)
            try:
                self.node.scheduled_refresh()
            except Exception:
                log.error("scheduled refresh failed\n%s", traceback.format_exc())


def create_app(data_dir: str | Path | None, max_content_length: int | None = None) -> EngineApp:
    """The engine over ``data_dir``; ``max_content_length`` is OpenSearch's ``http.max_content_length`` in
    bytes (default: ``NIRBRIDGE_ENGINE_MAX_CONTENT_LENGTH``, else 100mb)."""
    return EngineApp(Node(data_dir), max_content_length)


def serve(
    data_dir: str,
    host: str = "127.0.0.1",
    port: int = 9200,
    log_level: str = "warning",
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    users_file: str | None = None,
    max_content_length: int | None = None,
) -> None:
    """Run the engine until interrupted (``nirbridge engine serve``).

    With `tls_cert` and `tls_key` (PEM) it speaks HTTPS only; with `users_file` every request needs HTTP basic
    credentials of a user in it (engine.security). Unusable files raise SecurityConfigError before it starts.
    ``max_content_length`` is ``http.max_content_length`` in bytes (else NIRBRIDGE_ENGINE_MAX_CONTENT_LENGTH,
    else 100mb).
    """
    import uvicorn

    from .security import BasicAuth, check_tls, load_users

    if tls_cert or tls_key:
        check_tls(tls_cert or "", tls_key or "")
    users = load_users(users_file) if users_file else None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = create_app(data_dir, max_content_length)
    app: Any = BasicAuth(engine, users) if users else engine
    # Indexing allocates many short-lived objects per document (tokens, term counts, bulk items) and the
    # engine keeps few reference cycles: with Python's default threshold (a young collection every 700
    # allocations) the cyclic GC took ~10% of a _bulk.  Collect less often, and leave what start-up (and
    # recovery) built out of the collections to come.
    gc.set_threshold(10_000, 10, 10)
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http="httptools",
        lifespan="on",
        access_log=False,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        # an idle keep-alive TLS connection holds up asyncio's shutdown until the client closes it (up to
        # 30 s); requests are answered synchronously, so waiting 2 s for responses still being sent is enough
        timeout_graceful_shutdown=2 if tls_cert else None,
    )
