"""The one place that builds an opensearch-py client and translates its errors.

    client = make_client("http://127.0.0.1:9200")
    check_reachable(client, url)          # ClusterUnreachable when nothing answers

Requests answered 429, 502, 503 or 504 are retried with capped exponential back-off (`max_retries`,
`initial_backoff`, `max_backoff`); other 4xx are never retried. Connection failures are left to
opensearch-py's transport, which moves on to another node at once (no point waiting on a refused port).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from opensearchpy import OpenSearch, Urllib3HttpConnection
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError, TransportError

from .errors import BadUrlError, ClusterError, ClusterUnreachable, IndexNotFound

__all__ = [
    "RETRY_STATUSES",
    "BackoffConnection",
    "check_reachable",
    "cluster_error",
    "make_client",
    "validate_url",
]

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class BackoffConnection(Urllib3HttpConnection):
    """A urllib3 connection that retries 429/502/503/504 answers after waiting, instead of at once."""

    def __init__(
        self,
        *args: Any,
        backoff_retries: int = 3,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.backoff_retries = backoff_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff

    def perform_request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        timeout: int | float | None = None,
        ignore: Collection[int] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        attempt = 0
        while True:
            try:
                return super().perform_request(method, url, params, body, timeout, ignore, headers)
            except OpenSearchConnectionError:
                raise
            except TransportError as exc:
                if exc.status_code not in RETRY_STATUSES or attempt >= self.backoff_retries:
                    raise
                time.sleep(min(self.max_backoff, self.initial_backoff * 2**attempt))
                attempt += 1


def validate_url(url: str) -> str:
    """`url` itself when it is http(s)://host[:port][/prefix]; BadUrlError naming the problem otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadUrlError(url, str(exc)) from None
    if parts.scheme not in ("http", "https"):
        raise BadUrlError(url, "it must start with http:// or https://")
    if not parts.hostname:
        raise BadUrlError(url, "it names no host")
    if port == 0:
        raise BadUrlError(url, "port 0 is not a port one can connect to")
    return url


def make_client(
    url: str,
    *,
    timeout: float = 30.0,
    max_retries: int = 3,
    initial_backoff: float = 0.5,
    max_backoff: float = 30.0,
    verify_certs: bool = True,
) -> OpenSearch:
    """An opensearch-py client for one cluster URL (credentials may sit in it: https://user:pass@host)."""
    validate_url(url)
    return OpenSearch(
        hosts=[url],
        connection_class=BackoffConnection,
        timeout=timeout,
        max_retries=max_retries,
        retry_on_status=(),  # statuses are retried with back-off by BackoffConnection
        retry_on_timeout=False,
        verify_certs=verify_certs,
        ssl_show_warn=verify_certs,
        backoff_retries=max_retries,
        initial_backoff=initial_backoff,
        max_backoff=max_backoff,
    )


def _reason_of(exc: TransportError) -> str:
    info = exc.info
    if isinstance(info, Mapping):
        error = info.get("error")
        if isinstance(error, Mapping):
            kind, reason = error.get("type"), error.get("reason")
            return f"{kind}: {reason}" if kind else str(reason)
        if error:
            return str(error)
    if isinstance(exc.error, str) and exc.error:
        return exc.error
    return str(exc)


def _unreachable_reason(exc: OpenSearchConnectionError) -> str:
    cause = exc.info if isinstance(exc.info, BaseException) else None
    text = str(cause or exc.error or exc)
    for marker, short in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("timed out", "timed out"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ):
        if marker in text:
            return short
    return text


def cluster_error(exc: TransportError, url: str, index: str | None = None) -> ClusterError:
    """Translate an opensearch-py exception into nirbridge's own (the only place that does)."""
    if isinstance(exc, OpenSearchConnectionError):
        return ClusterUnreachable(url, _unreachable_reason(exc))
    if isinstance(exc, NotFoundError) and index is not None and "index_not_found" in str(exc.error):
        return IndexNotFound(url, index)
    status = exc.status_code if isinstance(exc.status_code, int) else None
    return ClusterError(url, _reason_of(exc), status)


def check_reachable(client: OpenSearch, url: str) -> dict[str, Any]:
    """GET / on the cluster: its info, or ClusterUnreachable / ClusterError saying why not."""
    try:
        info = client.info()
    except TransportError as exc:
        raise cluster_error(exc, url) from exc
    return dict(info)
