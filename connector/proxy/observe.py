"""The proxy's request observer: a request id, one log line and the request metrics for every HTTP request.

    Middleware(ObservedRequests, metrics=metrics, routes=routes)   # connector.proxy.make_app's stack
    note(request.scope, mode="bm25")                # a route says what the request turned out to be

The request id is the caller's `X-Request-Id`, else its `X-Opaque-Id` (OpenSearch's own), else a new one; a
value longer than 200 characters or with a character outside printable ASCII is replaced by a new one (it
goes into logs). It is set in `nirbridge.logs.REQUEST_ID` while the request runs, so that every log record
and the Celery rerank task (connector.rerank_client sends it in the task's headers) carry it, and it is
echoed in the answer's `X-Request-Id` header.

The log line (logger `nirbridge.proxy.access`, INFO) holds the method, the route, the path, the status, the
mode and the milliseconds; the query string (`?q=` is query text) and the query text a route noted only with
`NIRBRIDGE_LOG_QUERIES=true`; headers never. uvicorn's own access log is off (`nirbridge serve`): it would
print the query string.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nirbridge.logs import REQUEST_ID, log_queries

from ..metrics import ProxyMetrics

__all__ = ["REQUEST_ID_HEADER", "ObservedRequests", "note", "request_id_of"]

log = logging.getLogger("nirbridge.proxy.access")

REQUEST_ID_HEADER = "x-request-id"
_CALLER_HEADERS = (b"x-request-id", b"x-opaque-id")
_SAFE_ID = re.compile(r"[\x21-\x7e]{1,200}")
_CATCH_ALL = "/{path:path}"


def request_id_of(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The caller's request id (see the module docstring), else a new one (32 hex digits)."""
    given = dict((name.lower(), value) for name, value in headers)
    for name in _CALLER_HEADERS:
        value = given.get(name, b"").decode("latin-1").strip()
        if _SAFE_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def note(scope: Scope, **fields: Any) -> None:
    """Tell the observer about this request (`mode=...`): it reads them when the request ends."""
    noted = scope.get("nirbridge")
    if isinstance(noted, dict):
        noted.update(fields)


class ObservedRequests:
    """ASGI middleware (see the module docstring); `routes` name the `route` label."""

    def __init__(self, app: ASGIApp, metrics: ProxyMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = list(routes)

    def _route(self, scope: Scope) -> str:
        for route in self.routes:
            matched, _ = route.matches(scope)
            if matched is not Match.NONE:
                path = str(getattr(route, "path", ""))
                return "passthrough" if path == _CATCH_ALL else path
        return "passthrough"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope.get("headers") or [])
        noted: dict[str, Any] = {"mode": "none"}
        scope["nirbridge"] = noted
        status = 500  # what the client gets when the app raises before it answers
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route, mode = self._route(scope), str(noted.get("mode", "none"))
            self.metrics.observe_request(route, mode, status, seconds)
            path = scope.get("path", "")
            query = scope.get("query_string", b"")
            if query and log_queries():
                path += "?" + query.decode("latin-1")
            log.info(
                "%s %s %d %.1f ms",
                scope.get("method"),
                path,
                status,
                seconds * 1000,
                extra={
                    "method": scope.get("method"),
                    "route": route,
                    "path": path,
                    "status": status,
                    "mode": mode,
                    "ms": round(seconds * 1000, 2),
                    **{k: v for k, v in noted.items() if k != "mode"},
                },
            )
            REQUEST_ID.reset(token)
