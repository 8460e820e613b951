"""The cluster as the proxy sees it: one pooled `httpx.AsyncClient`, the client's credentials passed on.

    cluster = Cluster("https://user:secret@search.example:9200", timeout=30)
    await cluster.start()
    response = await cluster.send("POST", "/scifact/_search", content=b"{...}", auth="Basic ...")
    answers = await cluster.msearch("scifact", bodies, auth=None)   # ClusterRefused on a failed item
    await cluster.close()

    cluster = Cluster.from_settings(settings)   # credentials, CA bundle and client certificate from settings

Credentials: a request's own `Authorization` header is sent on as it came, so that the cluster's own index
permissions apply to each caller. A request without one (an empty or blank header counts as none) goes on
without credentials: the cluster answers 401 to anonymous callers as it would directly. The proxy's own
credentials (those in the cluster URL, else `auth`: NIRBRIDGE_USERNAME/PASSWORD or NIRBRIDGE_API_KEY) serve
only the proxy's own calls (`ping`, the readiness check) unless `lend_credentials`
(NIRBRIDGE_PROXY_LEND_CREDENTIALS=true) lends them to callers that send none: otherwise anybody who can
reach the proxy would act as the proxy's user. None of them is logged or quoted: messages show the URL,
password hidden.

Paths: `send` forwards the path it is given byte for byte (httpcore's request `target`), after checking it
(connector.proxy.paths.check_path: no dot segments, no encoded separators); httpx would otherwise rewrite
it (dropping `.` and `..` segments) after the route policy judged it.
"""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import orjson

from ..client import authorization_header, client_options
from ..queries import IndexFields, QueryBuilder, QueryEncoders
from ..settings import Settings
from .errors import ClusterFailed, ProxyError, cluster_failed, redact
from .paths import check_path, forwarded_query, index_path

__all__ = [
    "ANSWER_HEADERS",
    "Cluster",
    "ClusterRefused",
    "FieldsCache",
    "FORWARDED_HEADERS",
    "answer_headers",
]

# request headers sent on to the cluster (hop-by-hop and Host are the proxy's own)
FORWARDED_HEADERS = ("authorization", "content-type", "accept", "x-opaque-id")
# answer headers sent back to the client besides the body and its type
ANSWER_HEADERS = ("www-authenticate",)


def answer_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a cluster's answer that go back to the client with it: the challenge of a 401
    (`WWW-Authenticate`, which RFC 9110 requires on every 401) so that a client knows how to authenticate."""
    return {name: headers[name] for name in ANSWER_HEADERS if name in headers}


class ClusterRefused(ProxyError):
    """The cluster answered with an error status: its answer goes back to the client unchanged."""

    def __init__(
        self,
        status: int,
        content: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.content = content
        self.content_type = content_type
        self.headers = dict(headers or {})
        reason = content[:200].decode("utf-8", "replace")
        super().__init__(reason, "cluster_error", status)

    @classmethod
    def of_item(cls, item: Mapping[str, Any]) -> ClusterRefused:
        """A failed `_msearch` item as the error answer a single search would have given."""
        status = int(item.get("status") or 500)
        return cls(status, orjson.dumps({"error": item.get("error"), "status": status}))


def _split_credentials(url: str) -> tuple[str, str | None]:
    """`url` without its user:password, and the Basic `Authorization` value they make (None without)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url.rstrip("/"), None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    plain = urlunsplit(parts._replace(netloc=host)).rstrip("/")
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return plain, "Basic " + base64.b64encode(pair).decode("ascii")


def _path_prefix(path: str) -> str:
    """The cluster URL's path, in the form sent before every request's path ("" for none)."""
    path = path.rstrip("/")
    if not path:
        return ""
    try:
        return check_path(path).raw
    except ProxyError as error:
        raise ValueError(f"the cluster URL's path [{path}] cannot prefix requests: {error.reason}") from None


def _tls_verify(
    verify_certs: bool, ca_certs: str | None, client_cert: str | None, client_key: str | None
) -> ssl.SSLContext | bool:
    """httpx's `verify`: an SSL context trusting `ca_certs` (the system's CAs without), or False."""
    if not verify_certs and not client_cert:
        return False
    context = ssl.create_default_context(cafile=ca_certs)
    if not verify_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        context.load_cert_chain(client_cert, client_key)
    return context


class Cluster:
    """The cluster behind the proxy, over one connection pool."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        verify_certs: bool = True,
        max_connections: int = 100,
        auth: str | None = None,
        ca_certs: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        lend_credentials: bool = False,
    ) -> None:
        self.url = redact(url)  # the only form of the URL kept in a printable attribute
        self._base, url_auth = _split_credentials(url)
        parts = urlsplit(self._base)
        self._origin = urlunsplit(parts._replace(path="", query="", fragment=""))
        self._prefix = _path_prefix(parts.path)  # a cluster behind a path (`https://h/os`): before every path
        self._own_auth = url_auth or auth
        self._lend = lend_credentials
        self._timeout = timeout
        self._verify = _tls_verify(verify_certs, ca_certs, client_cert, client_key)
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._http: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Cluster:
        """The cluster at `settings.url` with the settings' timeout, credentials and TLS files."""
        options = client_options(settings)
        return cls(
            settings.url,
            timeout=settings.request_timeout,
            verify_certs=settings.verify_certs,
            auth=authorization_header(settings),
            ca_certs=options["ca_certs"],
            client_cert=options["client_cert"],
            client_key=options["client_key"],
            lend_credentials=settings.proxy_lend_credentials,
        )

    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self._origin, timeout=self._timeout, verify=self._verify, limits=self._limits
            )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _headers(
        self, headers: Mapping[str, str] | None, auth: str | None, own: bool = False
    ) -> dict[str, str]:
        sent = {k.lower(): v for k, v in (headers or {}).items() if k.lower() in FORWARDED_HEADERS}
        given = (auth or sent.pop("authorization", None) or "").strip()  # blank: as if none was sent
        credentials = given or (self._own_auth if own or self._lend else None)
        if credentials:
            sent["authorization"] = credentials
        return sent

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        query: bytes | str | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: str | None = None,
        timeout: float | None = None,
        own_credentials: bool = False,
    ) -> httpx.Response:
        """One request to the cluster; ClusterFailed (502/504) when it cannot be asked.

        `path` is percent-encoded and goes on byte for byte (BadRequest when check_path refuses it); the
        query is `params` (encoded here) or `query` (a raw query string, as the caller sent it).
        `own_credentials`: the proxy's own request, on its own credentials when the caller sends none.
        """
        if self._http is None:
            await self.start()
        assert self._http is not None
        checked = check_path(path)
        if params:
            query = str(httpx.QueryParams(params))
        target = self._prefix + checked.raw + (f"?{forwarded_query(query)}" if query else "")
        try:
            return await self._http.request(
                method,
                target,
                content=content,
                headers=self._headers(headers, auth, own_credentials),
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                # the request line carries exactly these bytes: httpx would drop dot segments itself
                extensions={"target": target.encode("ascii")},
            )
        except httpx.HTTPError as error:
            raise cluster_failed(error, self.url) from None

    async def json(
        self, method: str, path: str, body: Any = None, *, auth: str | None = None, **kwargs: Any
    ) -> Any:
        """A JSON request whose error answer is raised as ClusterRefused; the decoded answer."""
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        response = await self.send(method, path, content=content, headers=headers, auth=auth, **kwargs)
        if response.status_code >= 400:
            kind = response.headers.get("content-type", "application/json")
            raise ClusterRefused(
                response.status_code, response.content, kind, answer_headers(response.headers)
            )
        return orjson.loads(response.content)

    async def msearch(
        self, index: str, bodies: Sequence[Mapping[str, Any]], *, auth: str | None = None
    ) -> list[dict[str, Any]]:
        """The `_msearch` answers of `bodies` on `index`, in order; a failed item raises ClusterRefused."""
        if not bodies:
            return []
        header = orjson.dumps({"index": index})
        content = b"".join(header + b"\n" + orjson.dumps(body) + b"\n" for body in bodies)
        response = await self.send(
            "POST", "/_msearch", content=content, headers={"content-type": "application/x-ndjson"}, auth=auth
        )
        if response.status_code >= 400:
            kind = response.headers.get("content-type", "application/json")
            raise ClusterRefused(
                response.status_code, response.content, kind, answer_headers(response.headers)
            )
        items = orjson.loads(response.content)["responses"]
        for item in items:
            if item.get("error") is not None:
                raise ClusterRefused.of_item(item)
        return list(items)

    async def ping(self, timeout: float = 1.0) -> tuple[bool, str]:
        """GET / within `timeout`: (reachable, what it said or why not)."""
        try:
            # the proxy's own question (no caller's): on its own credentials
            response = await self.send("GET", "/", timeout=timeout, own_credentials=True)
        except ClusterFailed as error:
            return False, error.reason
        if response.status_code >= 400:
            return False, f"GET / answered {response.status_code}"
        return True, "ok"


@dataclass
class _Entry:
    builder: QueryBuilder
    expires: float


class FieldsCache:
    """Each index's enriched fields (and a QueryBuilder over them, with its IDF counts), kept for `ttl` s.

    Entries are per index and per credentials: what one user may read is never answered from another's.
    """

    def __init__(self, encoders: QueryEncoders, ttl: float = 30.0) -> None:
        self.encoders = encoders
        self.ttl = ttl
        self._entries: dict[tuple[str, str | None], _Entry] = {}

    async def builder(self, cluster: Cluster, index: str, auth: str | None) -> QueryBuilder:
        key = (index, auth)
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            return entry.builder
        # asked for a caller: on the caller's credentials (lent the proxy's only with the option)
        mapping = await cluster.json("GET", index_path(index, "_mapping"), auth=auth)
        body = IndexFields.sample_body()
        sample = await cluster.json("POST", index_path(index, "_search"), body, auth=auth)
        builder = QueryBuilder(self.encoders, IndexFields.from_answers(index, mapping, sample))
        if len(self._entries) > 1000:  # many indices or users: start over rather than grow without end
            self._entries.clear()
        self._entries[key] = _Entry(builder, now + self.ttl)
        return builder
