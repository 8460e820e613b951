"""The proxy's errors, answered in OpenSearch's error shape.

    ProxyError                      status, type and reason of one refused request
    ├── BadRequest                  400: malformed JSON (parse_exception), a bad parameter
    │                               (illegal_argument_exception), a missing enriched field, a query too long
    ├── Forbidden                   403: a write or admin route while writes are not allowed
    ├── RequestTimeout              408: a request body that did not arrive in time
    └── ClusterFailed               the cluster could not be asked (502 unreachable, 504 timed out)

An error from the cluster itself (a missing index, a refused query) is not translated: its status and body
pass through as the cluster sent them. Foreign errors (httpx, the connector's own) are mapped here, in one
place.

    {"error": {"root_cause": [{"type": ..., "reason": ...}], "type": ..., "reason": ...}, "status": N}
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from ..errors import UsageError

__all__ = [
    "BadRequest",
    "ClusterFailed",
    "Forbidden",
    "ProxyError",
    "RequestTimeout",
    "cluster_failed",
    "error_body",
    "redact",
    "send_error",
]


def error_body(status: int, kind: str, reason: str) -> dict[str, Any]:
    """OpenSearch's error body: one root cause, the same type and reason, and the status."""
    cause = {"type": kind, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


class ProxyError(Exception):
    """A request the proxy answers with an error of its own."""

    status = 500
    kind = "exception"

    def __init__(self, reason: str, kind: str | None = None, status: int | None = None) -> None:
        self.reason = reason
        self.kind = kind or self.kind
        self.status = status or self.status
        super().__init__(reason)

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.kind, self.reason)


class BadRequest(ProxyError):
    status = 400
    kind = "illegal_argument_exception"

    @classmethod
    def from_usage(cls, error: UsageError) -> BadRequest:
        """A nirbridge usage error (a missing enriched field, a query too long) as a 400."""
        return cls(str(error))


class Forbidden(ProxyError):
    status = 403
    kind = "security_exception"


class RequestTimeout(ProxyError):
    status = 408
    kind = "timeout_exception"


class ClusterFailed(ProxyError):
    status = 502
    kind = "cluster_unreachable_exception"


async def send_error(
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    status: int,
    kind: str,
    reason: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """An error answer sent from ASGI middleware (which answers before any route, so without Starlette)."""
    body = orjson.dumps(error_body(status, kind, reason))
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


def redact(url: str) -> str:
    """`url` with any password replaced by `***` (what may appear in a message or a log)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _connect_reason(error: BaseException, text: str) -> str:
    """Why a connection failed, from the chain of causes httpx keeps (anyio hides it behind "All
    connection attempts failed")."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "unknown host"
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed: {seen}"
        seen = seen.__cause__ or seen.__context__
    return text


def cluster_failed(error: httpx.HTTPError, url: str) -> ClusterFailed:
    """An httpx failure to reach the cluster as 502 (no connection) or 504 (no answer in time)."""
    where = redact(url)
    if isinstance(error, httpx.TimeoutException):
        return ClusterFailed(f"the cluster at {where} did not answer in time", "timeout_exception", 504)
    text = str(error) or type(error).__name__
    if isinstance(error, httpx.ConnectError):
        return ClusterFailed(f"cannot reach the cluster at {where}: {_connect_reason(error, text)}")
    return ClusterFailed(f"the request to the cluster at {where} failed: {text}")
