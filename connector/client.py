"""The one place that builds an opensearch-py client and translates its errors.

    client = make_client("http://127.0.0.1:9200")
    client = make_client(url, **client_options(settings))   # credentials, CA bundle, timeouts from settings
    check_reachable(client, url)          # ClusterUnreachable when nothing answers

Requests answered 429, 502, 503 or 504 are retried with capped exponential back-off (`max_retries`,
`initial_backoff`, `max_backoff`); other 4xx are never retried. Connection failures are left to
opensearch-py's transport, which moves on to another node at once (no point waiting on a refused port).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from opensearchpy import OpenSearch, Urllib3HttpConnection
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError, TransportError

from .errors import BadUrlError, ClusterError, ClusterUnreachable, IndexNotFound
from .settings import Settings

__all__ = [
    "RETRY_STATUSES",
    "BackoffConnection",
    "authorization_header",
    "check_reachable",
    "client_options",
    "cluster_error",
    "make_client",
    "validate_url",
]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
AUTHENTICATION_FAILED = (
    "authentication failed: the cluster did not accept the credentials "
    "(set NIRBRIDGE_USERNAME and NIRBRIDGE_PASSWORD, or NIRBRIDGE_API_KEY)"
)


class BackoffConnection(Urllib3HttpConnection):
    """A urllib3 connection that retries 429/502/503/504 answers after waiting, instead of at once.

    `rejected` counts the 429 answers it has seen: the enrichment job slows down when it grows.
    """

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
        self.rejected = 0

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
                self.rejected += exc.status_code == 429
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
    http_auth: tuple[str, str] | None = None,
    api_key: str | None = None,
    ca_certs: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
) -> OpenSearch:
    """An opensearch-py client for one cluster URL.

    Credentials: `http_auth` (user, password) or `api_key` (sent as `Authorization: ApiKey KEY`); ones in the
    URL (https://user:pass@host) win, as opensearch-py gives a host's own settings precedence. `ca_certs` is
    the CA bundle that signed the cluster's certificate, `client_cert`/`client_key` a client certificate.
    """
    validate_url(url)
    tls: dict[str, Any] = {"ca_certs": ca_certs} if ca_certs else {}
    if client_cert:
        tls.update(client_cert=client_cert, client_key=client_key)
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
        http_auth=http_auth,
        headers={"authorization": f"ApiKey {api_key}"} if api_key else None,
        **tls,
    )


def authorization_header(settings: Settings) -> str | None:
    """The `Authorization` value the settings' credentials make (Basic or ApiKey), or None without any."""
    if settings.username and settings.password is not None:
        pair = f"{settings.username}:{settings.password.get_secret_value()}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")
    if settings.api_key is not None:
        return "ApiKey " + settings.api_key.get_secret_value()
    return None


def client_options(settings: Settings) -> dict[str, Any]:
    """`make_client`'s keyword arguments from the settings: timeouts, retries, credentials and TLS."""
    password = settings.password.get_secret_value() if settings.password is not None else ""
    return {
        "timeout": settings.request_timeout,
        "max_retries": settings.max_retries,
        "verify_certs": settings.verify_certs,
        "http_auth": (settings.username, password) if settings.username else None,
        "api_key": settings.api_key.get_secret_value() if settings.api_key is not None else None,
        "ca_certs": str(settings.ca_certs) if settings.ca_certs else None,
        "client_cert": str(settings.client_cert) if settings.client_cert else None,
        "client_key": str(settings.client_key) if settings.client_key else None,
    }


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
        (
            "CERTIFICATE_VERIFY_FAILED",
            "TLS certificate not trusted (set NIRBRIDGE_CA_CERTS to the CA bundle that signed it)",
        ),
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
    if status == 401:  # the security plugin answers a bare "Unauthorized": say what to do about it
        return ClusterError(url, AUTHENTICATION_FAILED, status)
    return ClusterError(url, _reason_of(exc), status)


def check_reachable(client: OpenSearch, url: str) -> dict[str, Any]:
    """GET / on the cluster: its info, or ClusterUnreachable / ClusterError saying why not."""
    try:
        info = client.info()
    except TransportError as exc:
        raise cluster_error(exc, url) from exc
    return dict(info)
