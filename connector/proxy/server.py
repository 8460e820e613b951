"""The proxy's HTTP server: uvicorn (httptools) with a deadline for each request's line and headers.

    config = server_config(make_app(settings), settings, host="127.0.0.1", port=8080, log_level="info")
    uvicorn.Server(config).run()                      # what `nirbridge serve` runs

Why a protocol of its own: uvicorn times out idle keep-alive connections (`timeout_keep_alive`, armed after
a response), but nothing bounds a request whose line and headers arrive a byte at a time, on a new connection
or a kept-alive one: the app is not called before the headers are complete, so no ASGI middleware can see
it, and such clients hold connections (file descriptors, uvicorn's `limit_concurrency`) for ever.
`HeaderTimeoutProtocol` arms a timer when a connection opens and when a request's first byte arrives, and
stops it when the headers are complete; past `header_timeout_s` (NIRBRIDGE_PROXY_HEADER_TIMEOUT_S) it answers
408 in OpenSearch's error shape and closes the connection. The body's own deadline is the app's
(connector.proxy.limits, NIRBRIDGE_PROXY_BODY_TIMEOUT_S).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..settings import Settings
from .errors import error_body

__all__ = ["HeaderTimeoutProtocol", "server_config"]


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for request lines and headers (module docstring)."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined request is still being answered: no 408 in the middle of its answer, close after it
            self.cycle.keep_alive = False
            return
        reason = (
            f"the request line and headers did not arrive within {self.header_timeout_s:g} s, the most this "
            "proxy waits for them (NIRBRIDGE_PROXY_HEADER_TIMEOUT_S)"
        )
        body = orjson.dumps(error_body(408, "timeout_exception", reason))
        head = [
            STATUS_LINE[408],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's Config for the proxy `app` (host, port, log_level, ... in `options`), with
    `HeaderTimeoutProtocol` at `settings.proxy_header_timeout_s`."""

    class Protocol(HeaderTimeoutProtocol):
        header_timeout_s = settings.proxy_header_timeout_s

    return uvicorn.Config(app, http=Protocol, **options)
