"""The proxy's limits: requests in flight, body size and query length, refused at once rather than queued.

    app = RequestLimits(app, max_in_flight=64, max_body_bytes=10 * 2**20, body_timeout_s=30)   # ASGI
    check_query_length(text, settings.proxy_max_query_chars, "q")           # BadRequest past the cap

- In flight: beyond `max_in_flight` requests being answered at once, a new one is answered 429
  `rejected_execution_exception` at once (as OpenSearch answers when a thread pool's queue is full), with
  `Retry-After: 1`, instead of waiting in an unbounded queue. Health, readiness and metrics are not counted
  and never refused: an overloaded proxy is alive, and says so.
- Body size: a body over `max_body_bytes` is answered 413 without being passed on, whether its
  `Content-Length` says so up front or a chunked body grows past the cap while it is read. OpenSearch itself
  answers 413 with an empty body past `http.max_content_length`; the proxy sends its usual error shape, type
  `content_too_long_exception`, so that clients see a reason.
- Body time: the whole body must arrive within `body_timeout_s` of the headers, else 408 `timeout_exception`
  and the connection is closed. A request holds its in-flight slot while its body arrives (so that the
  memory held by bodies stays within `max_in_flight * max_body_bytes`): without the timeout, `max_in_flight`
  clients sending a byte a second would hold every slot for ever. Slow headers are uvicorn's to time out
  (connector.proxy.server: the app is not called before the headers are complete).
- Query length: the query text the proxy itself encodes or reranks against (`_nirbridge/search`'s `q`, the
  text a reranked `_search` reranks against) may hold at most `max_query_chars` characters: 400
  `illegal_argument_exception`. Bodies passed on untouched are the cluster's to judge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import BadRequest, RequestTimeout, send_error

__all__ = ["HEALTH_PATHS", "RequestLimits", "check_query_length"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEALTH_PATHS = frozenset({"/_nirbridge/health", "/_nirbridge/ready", "/_nirbridge/metrics"})


def check_query_length(text: str, max_chars: int, where: str) -> None:
    """BadRequest naming `where` when `text` is longer than `max_chars` characters."""
    if len(text) > max_chars:
        raise BadRequest(
            f"[{where}] is {len(text)} characters long, more than the maximum {max_chars} "
            "(NIRBRIDGE_PROXY_MAX_QUERY_CHARS)"
        )


class RequestLimits:
    """ASGI middleware that refuses what is past the proxy's limits (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, max_in_flight: int, max_body_bytes: int, body_timeout_s: float = 30.0
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
        if not body_timeout_s > 0:
            raise ValueError(f"body_timeout_s must be more than 0, got {body_timeout_s}")
        self.app = app
        self.max_in_flight = max_in_flight
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.in_flight = 0  # one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            reason = (
                f"rejected execution of {scope['method']} {scope['path']}: {self.in_flight} requests are in "
                f"flight in the nirbridge proxy, the most it takes at once (NIRBRIDGE_PROXY_MAX_IN_FLIGHT="
                f"{self.max_in_flight}); retry after a pause"
            )
            await send_error(send, 429, "rejected_execution_exception", reason, [(b"retry-after", b"1")])
            return
        self.in_flight += 1
        try:
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    body = await self._read_body(scope, receive)
            except TimeoutError:
                reason = (
                    f"the request body did not arrive within {self.body_timeout_s:g} s, the most this proxy "
                    "waits for one (NIRBRIDGE_PROXY_BODY_TIMEOUT_S)"
                )
                late = RequestTimeout(reason)
                # close: the rest of the body may still come, and would be read as the next request
                await send_error(send, late.status, late.kind, reason, [(b"connection", b"close")])
                return
            if body is None:
                reason = (
                    f"the request body is larger than {self.max_body_bytes} bytes, the most this proxy "
                    "takes (NIRBRIDGE_PROXY_MAX_BODY_BYTES)"
                )
                await send_error(send, 413, "content_too_long_exception", reason, [(b"connection", b"close")])
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_flight -= 1

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it is known to be over the cap (declared or read)."""
        for name, value in scope.get("headers") or ():
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return None
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: the app sees an empty body and the disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body read already, then whatever the connection says next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
