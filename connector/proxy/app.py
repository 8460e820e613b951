"""The search proxy (`nirbridge serve`): an ASGI app in front of the cluster, speaking OpenSearch.

    app = make_app(Settings(url="http://127.0.0.1:9200"))             # the reranker from the settings
    app = make_app(settings, reranker=InProcessReranker(...))          # or one given
    uvicorn.run(app, host="127.0.0.1", port=8080)

Routes (DESIGN.md, "The proxy's search API"):

    POST|GET /{index}/_search, /_search   the body passes through; with `ext.rerank` ({"window",
                                           "fields", "model", "backend", "params", "deadline_ms", "query"})
                                           the proxy asks for `window` hits from 0, reranks them and answers
                                           `from`/`size` inside the window, plus a `nirbridge` block;
                                           `ext.rerank` is removed before the body goes on (OpenSearch
                                           refuses unknown ext keys)
    POST /{index}/_nirbridge/search       query text in, queries built here (connector.proxy.search)
    GET /_nirbridge/health                 liveness: the process answers
    GET /_nirbridge/metrics                Prometheus text exposition (connector.metrics)
    GET /_nirbridge/ready                  the cluster answers GET / within 1 s and a rerank worker answers
                                           a `nirbridge.ping` task sent through queue `rerank` within 1 s,
                                           or, every worker busy, Celery's control ping as a consumer of
                                           the queue (`"busy": true`; in-process reranking: always); else 503
    anything else                          passes through when read-only (connector.proxy.policy), else 403
                                           unless NIRBRIDGE_PROXY_ALLOW_WRITES=true

Paths (connector.proxy.paths): every request path is checked once, as the caller sent it, before routing: a
path with dot segments, encoded separators or control characters is a 400; the policy judges the checked
path, and exactly that path goes to the cluster, on every route that forwards one (pass-through, `_search`
with `ext.rerank`, and `_nirbridge/search`'s index, which must name indices).

Errors are OpenSearch-shaped (connector.proxy.errors); the cluster's own errors pass through unchanged.
Limits (connector.proxy.limits): past `NIRBRIDGE_PROXY_MAX_IN_FLIGHT` requests at once a request is answered
429 at once, a body past `NIRBRIDGE_PROXY_MAX_BODY_BYTES` 413, a body that does not arrive within
`NIRBRIDGE_PROXY_BODY_TIMEOUT_S` 408, a query text past `NIRBRIDGE_PROXY_MAX_QUERY_CHARS` 400.
Every request gets a request id, a log line and its metrics (connector.proxy.observe).
The client's `Authorization` header goes on to the cluster with every request the proxy makes for it, and a
client without one stays anonymous unless NIRBRIDGE_PROXY_LEND_CREDENTIALS=true (connector.proxy.cluster);
headers are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nirbridge.logs import log_queries

from ..metrics import ProxyMetrics
from ..queries import QueryEncoders
from ..query_batcher import QueryBatcher
from ..settings import Settings
from .cluster import Cluster, ClusterRefused, FieldsCache, answer_headers
from .errors import BadRequest, ClusterFailed, Forbidden, ProxyError, error_body
from .limits import RequestLimits, check_query_length
from .observe import ObservedRequests, note
from .paths import CheckedPaths, check_index_expression, checked_path
from .policy import check_source_spec, filter_source, is_read_only
from .rerank import AsyncReranker, RerankReport, RerankSpec, rerank_hits
from .search import SearchRequest, nirbridge_block, run_search

__all__ = ["Proxy", "make_app", "query_text_of"]

log = logging.getLogger("nirbridge.proxy")

READY_TIMEOUT_S = 1.0  # how long /_nirbridge/ready waits for a rerank worker to answer its ping

_END = object()
_TEXT_QUERIES = (
    "multi_match",
    "match",
    "match_phrase",
    "match_bool_prefix",
    "query_string",
    "simple_query_string",
)


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"failed to parse the request body as JSON: {error}", "parse_exception") from None


def _text_of_clause(body: Mapping[str, Any]) -> str | None:
    for kind in _TEXT_QUERIES:
        clause = body.get(kind)
        if isinstance(clause, Mapping):
            if isinstance(clause.get("query"), str):
                return clause["query"]
            for value in clause.values():  # match: {"field": "text"} or {"field": {"query": "text"}}
                if isinstance(value, str):
                    return value
                if isinstance(value, Mapping) and isinstance(value.get("query"), str):
                    return value["query"]
    return None


def query_text_of(body: Any) -> str | None:
    """The first full-text query string in a search body (`match`, `multi_match`, `query_string`, ...), depth
    first in the body's order."""
    # a stack, not recursion: a body nested a thousand levels deep (orjson takes 1024) is no RecursionError
    stack: list[Any] = [iter((body,))]
    while stack:
        value = next(stack[-1], _END)
        if value is _END:
            stack.pop()
        elif isinstance(value, Mapping):
            found = _text_of_clause(value)
            if found:
                return found
            stack.append(iter(value.values()))
        elif isinstance(value, list):
            stack.append(iter(value))
    return None


def default_reranker(settings: Settings) -> AsyncReranker | None:
    """The reranker the settings ask for, or None when it cannot be built (reranked requests then degrade).

    `NIRBRIDGE_PROXY_RERANK_IN_PROCESS`: `InProcessReranker` (the model in this process); else a
    `RerankClient` on queue `rerank` over a Celery app for `NIRBRIDGE_BROKER_URL` / `_RESULT_BACKEND`.
    Building either connects to nothing: a missing Redis or worker shows in readiness and in degraded answers.
    """
    deadline_s = settings.proxy_rerank_deadline_ms / 1000.0
    try:
        from .. import rerank_client

        if settings.proxy_rerank_in_process:
            return rerank_client.InProcessReranker(deadline_s=deadline_s)
        from nirbridge.workers.celery_app import WorkerSettings
        from nirbridge.workers.celery_app import make_app as make_celery_app

        celery = make_celery_app(
            WorkerSettings(broker_url=settings.broker_url, result_backend=settings.result_backend)
        )
        return rerank_client.RerankClient(
            celery, deadline_s=deadline_s, max_queue=settings.proxy_rerank_max_queue
        )
    except Exception as error:  # noqa: BLE001 - a proxy without reranking still serves first stages
        log.warning("reranking is unavailable: %s: %s", type(error).__name__, error)
        return None


@dataclass
class Proxy:
    """What the routes share: the settings, the cluster, the fields cache, the reranker, the metrics."""

    settings: Settings
    cluster: Cluster
    fields: FieldsCache
    reranker: AsyncReranker | None
    metrics: ProxyMetrics = field(default_factory=ProxyMetrics)
    batcher: QueryBatcher | None = None  # sparse/dense query encodings batched across requests

    # --- routes -------------------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def metrics_text(self, request: Request) -> Response:
        body, content_type = self.metrics.exposition()
        return Response(body, media_type=content_type)

    def _observe(
        self, request: Request, mode: str, took_ms: Mapping[str, float], report: RerankReport
    ) -> None:
        """A search's stages and second stage into the metrics; the outcome into the request's log line."""
        self.metrics.observe_stages(mode, dict(took_ms))
        self.metrics.observe_rerank(report)
        if report.reranked or report.degraded:
            note(request.scope, reranked=report.reranked, degraded=report.degraded)

    async def ready(self, request: Request) -> Response:
        (cluster_ok, cluster_said), rerank = await asyncio.gather(
            self.cluster.ping(timeout=READY_TIMEOUT_S), self._reranker_ready()
        )
        ok = cluster_ok and rerank["ok"] is not False
        body = {
            "status": "ready" if ok else "unavailable",
            "cluster": {"ok": cluster_ok, "url": self.cluster.url, "detail": cluster_said},
            "rerank": rerank,
        }
        return _json(body, 200 if ok else 503)

    async def _reranker_ready(self) -> dict[str, Any]:
        if self.reranker is None:
            return {"ok": None, "detail": "no reranker configured: reranked requests answer degraded"}
        check = getattr(self.reranker, "aready", None)
        if check is None:
            return {"ok": None, "detail": f"{type(self.reranker).__name__} has no readiness check"}
        try:
            said = await check(READY_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - a readiness probe reports, it does not fail
            return {"ok": False, "detail": f"{type(error).__name__}: {error}"}
        if isinstance(said, tuple):
            return {"ok": bool(said[0]), "detail": said[1] if len(said) > 1 else None}
        if isinstance(said, Mapping):
            return {"ok": bool(said.get("ok", True)), **{k: v for k, v in said.items() if k != "ok"}}
        return {"ok": bool(said), "detail": None}

    async def nirbridge_search(self, request: Request) -> Response:
        started = time.perf_counter()
        index = check_index_expression(request.path_params["index"])  # it goes into paths and _msearch
        search = SearchRequest.parse(_parse(await request.body()), self.settings)
        check_query_length(search.q, self.settings.proxy_max_query_chars, "q")
        note(request.scope, mode=search.mode, **_logged_query(search.q))
        auth = request.headers.get("authorization")
        builder = await self.fields.builder(self.cluster, index, auth)
        result = await run_search(self.cluster, builder, search, self.reranker, auth, self.batcher)
        took = (time.perf_counter() - started) * 1000
        self._observe(request, search.mode, result.took_ms, result.report)
        scores = [hit["_score"] for hit in result.hits]
        return _json(
            {
                "took": int(took),
                "timed_out": False,
                "_shards": result.shards,
                "hits": {
                    "total": result.total,
                    "max_score": max(scores) if scores else None,
                    "hits": result.hits,
                },
                "nirbridge": nirbridge_block(search.mode, result.report, {**result.took_ms, "total": took}),
            }
        )

    async def search(self, request: Request) -> Response:
        raw = await request.body()
        if b"rerank" not in raw:  # the common case: no need to parse what passes through
            return await self.passthrough(request, raw)
        body = _parse(raw)
        ext = body.get("ext") if isinstance(body, Mapping) else None
        if not isinstance(ext, Mapping) or "rerank" not in ext:
            return await self.passthrough(request, raw)
        return await self._reranked_search(request, body)

    async def _reranked_search(self, request: Request, body: dict[str, Any]) -> Response:
        started = time.perf_counter()
        note(request.scope, mode="search")
        spec = RerankSpec.parse(body["ext"].pop("rerank"), self.settings, "ext.rerank")
        if not body["ext"]:
            del body["ext"]
        params = [(k, v) for k, v in request.query_params.multi_items()]
        if "search_after" in body or any(k == "scroll" for k, _ in params):
            raise BadRequest("[ext.rerank] pages with from/size inside the window, not search_after/scroll")
        page_from = _param_int(params, body, "from", 0)
        page_size = _param_int(params, body, "size", 10)
        source: Any = check_source_spec(body.pop("_source", True))  # applied here, after reranking
        includes = [v for k, v in params if k == "_source_includes"]
        excludes = [v for k, v in params if k == "_source_excludes"]
        if includes or excludes:
            source = {"includes": ",".join(includes), "excludes": ",".join(excludes)}
        taken = ("from", "size", "_source_includes", "_source_excludes")
        params = [(k, v) for k, v in params if k not in taken]
        query = spec.query or query_text_of(body.get("query"))
        note(request.scope, **_logged_query(query))
        if not query:
            raise BadRequest("[ext.rerank.query] is needed: the body has no text query to rerank against")
        where = "ext.rerank.query" if spec.query else "query"
        check_query_length(query, self.settings.proxy_max_query_chars, where)
        body.update({"from": 0, "size": spec.window, "_source": True})
        try:
            content = orjson.dumps(body)
        except orjson.JSONEncodeError:  # orjson reads 1024 levels and writes 254
            raise BadRequest("the request body nests more than 254 levels deep", "parse_exception") from None
        auth = request.headers.get("authorization")
        path = self._forwarded(request, "POST")
        clock = time.perf_counter()
        response = await self.cluster.send(
            "POST",
            path,
            params=params,
            content=content,
            headers={"content-type": "application/json"},
            auth=auth,
        )
        first_ms = (time.perf_counter() - clock) * 1000
        if response.status_code >= 400:
            return _raw(response)
        answer = _search_answer(response.content, self.cluster.url)
        clock = time.perf_counter()
        hits, report = await rerank_hits(self.reranker, query, answer["hits"]["hits"], spec)
        rerank_ms = (time.perf_counter() - clock) * 1000
        page = hits[page_from : page_from + page_size]
        for hit in page:
            shown = filter_source(hit.pop("_source", None), source)
            if shown is not None:
                hit["_source"] = shown
        scores = [hit["_score"] for hit in hits if hit.get("_score") is not None]
        answer["hits"]["hits"] = page
        answer["hits"]["max_score"] = max(scores) if scores else None
        took = (time.perf_counter() - started) * 1000
        answer["took"] = int(took)
        stages = {"first_stage": first_ms, "rerank": rerank_ms, "total": took}
        self._observe(request, "search", stages, report)
        answer["nirbridge"] = nirbridge_block("search", report, stages)
        return _json(answer)

    def _forwarded(self, request: Request, method: str, body: bytes | None = None) -> str:
        """The path to send the cluster for `request`: the one checked (connector.proxy.paths) and judged
        here; Forbidden when it writes or administers while writes are not allowed."""
        checked = checked_path(request.scope)
        if not self.settings.proxy_allow_writes and not is_read_only(
            method, checked.decoded, request.query_params.multi_items(), body
        ):
            raise Forbidden(
                f"{method} {checked.decoded} writes to or administers the cluster, which this proxy does not "
                "pass on (set NIRBRIDGE_PROXY_ALLOW_WRITES=true to allow it)"
            )
        return checked.raw

    async def passthrough(self, request: Request, body: bytes | None = None) -> Response:
        note(request.scope, mode="passthrough")
        content = body if body is not None else await request.body()
        path = self._forwarded(request, request.method, content)
        response = await self.cluster.send(
            request.method,
            path,
            query=request.scope.get("query_string") or None,
            content=content or None,
            headers=request.headers,
        )
        return _raw(response)


def _logged_query(text: str | None) -> dict[str, str]:
    """The query text for the request's log line: only with NIRBRIDGE_LOG_QUERIES=true (nirbridge.logs)."""
    return {"query": text} if text and log_queries() else {}


def _search_answer(content: bytes, where: str) -> dict[str, Any]:
    """A search answer of the cluster with its `hits.hits` list, else ClusterFailed (502): a cluster (or
    something in front of it) that answers 200 with another body is not the caller's bad request."""
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        answer = None
    hits = answer.get("hits") if isinstance(answer, dict) else None
    if not isinstance(hits, dict) or not isinstance(hits.get("hits"), list):
        raise ClusterFailed(f"the cluster at {where} answered the search with no hits.hits list")
    for hit in hits["hits"]:
        if (
            not isinstance(hit, dict)
            or not isinstance(hit.get("_source"), dict | None)
            or not isinstance(hit.get("_score"), int | float | None)
        ):
            raise ClusterFailed(f"the cluster at {where} answered the search with a malformed hit")
    return answer


def _raw(response: Any) -> Response:
    """The cluster's answer as it came (status, body, content type, a 401's challenge)."""
    return Response(
        response.content,
        status_code=response.status_code,
        media_type=response.headers.get("content-type"),
        headers=answer_headers(response.headers),
    )


def _param_int(params: list[tuple[str, str]], body: Mapping[str, Any], name: str, default: int) -> int:
    value: Any = body.get(name, default)
    for key, given in params:
        if key == name:
            try:
                value = int(given)
            except ValueError:
                raise BadRequest(f"[{name}] must be an integer, got {given!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"[{name}] must be an integer >= 0, got {value!r}")
    return value


async def _proxy_error(request: Request, error: Exception) -> Response:
    if isinstance(error, ClusterRefused):
        return Response(
            error.content, status_code=error.status, media_type=error.content_type, headers=error.headers
        )
    assert isinstance(error, ProxyError)
    if error.status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, error.reason)
    return _json(error.body(), error.status)


async def _internal_error(request: Request, error: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path)
    reason = f"internal error in the proxy: {type(error).__name__}: {error}"
    return _json(error_body(500, "exception", reason), 500)


def make_app(
    settings: Settings | None = None,
    *,
    reranker: AsyncReranker | None | str = "default",
    encoders: QueryEncoders | None = None,
) -> Starlette:
    """The proxy app for `settings.url`; `reranker="default"` builds the one the settings ask for."""
    settings = settings or Settings()
    cluster = Cluster.from_settings(settings)
    encoders = encoders or QueryEncoders(
        sparse_model=settings.proxy_sparse_model,
        dense_model=settings.proxy_dense_model,
        terms_model=settings.proxy_terms_model,
        backend=settings.proxy_query_backend,
    )
    owned = reranker == "default"  # a reranker built here is closed here; one given belongs to the caller
    chosen = default_reranker(settings) if owned else reranker
    proxy = Proxy(settings, cluster, FieldsCache(encoders, settings.proxy_fields_ttl_s), chosen)  # type: ignore[arg-type]
    if settings.proxy_query_batch:
        proxy.batcher = QueryBatcher(settings.proxy_query_batch)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await cluster.start()
        load = getattr(proxy.reranker, "load", None)  # in process: the default model before the first request
        if owned and load is not None and settings.proxy_rerank_model:
            model, backend = settings.proxy_rerank_model, settings.proxy_rerank_backend
            try:
                await asyncio.to_thread(load, model, backend)
            except Exception as error:  # noqa: BLE001 - reported; requests naming it answer degraded
                log.warning(
                    "cannot load the reranker %r (%s): %s: %s", model, backend, type(error).__name__, error
                )
        try:
            yield
        finally:
            await cluster.close()
            if owned and proxy.reranker is not None:
                close = getattr(proxy.reranker, "close", None)
                if close is not None:
                    close()

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    routes = [
        Route("/_nirbridge/health", proxy.health, methods=["GET", "HEAD"]),
        Route("/_nirbridge/ready", proxy.ready, methods=["GET", "HEAD"]),
        Route("/_nirbridge/metrics", proxy.metrics_text, methods=["GET"]),
        Route("/{index}/_nirbridge/search", proxy.nirbridge_search, methods=["POST", "GET"]),
        Route("/_search", proxy.search, methods=["GET", "POST"]),
        Route("/{index}/_search", proxy.search, methods=["GET", "POST"]),
        Route("/{path:path}", proxy.passthrough, methods=methods),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(ObservedRequests, metrics=proxy.metrics, routes=routes),
            # inside the metrics: requests refused for their path or the limits are counted too; the path
            # first: a refused path takes no in-flight slot and its body is never read
            Middleware(CheckedPaths),
            Middleware(
                RequestLimits,
                max_in_flight=settings.proxy_max_in_flight,
                max_body_bytes=settings.proxy_max_body_bytes,
                body_timeout_s=settings.proxy_body_timeout_s,
            ),
        ],
        exception_handlers={ProxyError: _proxy_error, Exception: _internal_error},
    )
    app.state.proxy = proxy
    return app
