"""The search proxy (`nirbridge serve`) over real HTTP: uvicorn serving `connector.proxy` in a thread, the
engine as a child process, a small SciFact slice enriched with SPLADE-tiny (nir_sparse, nir_terms) and
all-MiniLM-L6-v2 (nir_dense) for real (tests/enriched_slice.py). References: the engine's own answers to the
same requests sent straight to it, and `connector.queries.first_stage` (the synchronous path over
opensearch-py) for the proxy's async path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from enriched_slice import enrich_scifact_slice
from opensearchpy import OpenSearch
from typer.testing import CliRunner

from nirbridge.connector.cli import app as cli_app
from nirbridge.connector.engine_process import EngineProcess, free_port
from nirbridge.connector.proxy import make_app
from nirbridge.connector.proxy_policy import is_read_only
from nirbridge.connector.queries import IndexFields, QueryBuilder, QueryEncoders, first_stage
from nirbridge.connector.settings import Settings

pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")

INDEX = "scifact-proxy"
PLAIN = "plain-proxy"
CORPUS_SIZE = 120
BACKEND = "onnx-fp32"


class ServerThread:
    """uvicorn serving an ASGI app on a free port, in a thread of this process."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the proxy did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _settings(url: str, **overrides: Any) -> Settings:
    return Settings(url=url, proxy_query_backend=BACKEND, **overrides)


@pytest.fixture(scope="module")
def small(engine: EngineProcess, client: OpenSearch, scifact_dir: Path) -> dict[str, Any]:
    """INDEX: an enriched SciFact slice; PLAIN: an index with no enriched field."""
    enriched = enrich_scifact_slice(client, INDEX, scifact_dir, queries=12, corpus_size=CORPUS_SIZE)
    client.indices.create(index=PLAIN, body={"mappings": {"properties": {"title": {"type": "text"}}}})
    client.index(index=PLAIN, id="1", body={"title": "statins"}, refresh=True)
    return {"url": engine.url, "queries": [q.text for q in enriched.queries]}


@pytest.fixture(scope="module")
def proxy(small: dict[str, Any]) -> Iterator[ServerThread]:
    server = ServerThread(make_app(_settings(small["url"]), reranker=None))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as session:
        yield session


def _error(response: httpx.Response, status: int, kind: str | None = None) -> str:
    """The reason of an OpenSearch-shaped error answer, after checking its shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    error = body["error"]
    assert error["root_cause"] and error["root_cause"][0]["type"] == error["type"]
    if kind is not None:
        assert error["type"] == kind, error
    return str(error["reason"])


# --- pass-through and the write guard ---


def test_read_only_routes_pass_through_unchanged(
    small: dict[str, Any], proxy: ServerThread, http: httpx.Client
) -> None:
    body = {"size": 5, "query": {"match": {"text": "vitamin deficiency"}}}
    direct = http.post(f"{small['url']}/{INDEX}/_search", json=body).json()
    proxied = http.post(f"{proxy.url}/{INDEX}/_search", json=body)
    assert proxied.status_code == 200
    proxied_body = proxied.json()
    direct.pop("took"), proxied_body.pop("took")
    assert proxied_body == direct and len(direct["hits"]["hits"]) == 5
    for method, path, payload in [
        ("GET", f"/{INDEX}/_count", None),
        ("POST", f"/{INDEX}/_count", {"query": {"match": {"title": "cancer"}}}),
        ("POST", f"/{INDEX}/_mget", {"ids": [direct["hits"]["hits"][0]["_id"], "nope"]}),
        ("GET", f"/{INDEX}/_mapping", None),
        ("POST", f"/{INDEX}/_field_caps?fields=title", None),
        ("GET", "/nope-index/_search", None),
    ]:
        a = http.request(method, small["url"] + path, json=payload)
        b = http.request(method, proxy.url + path, json=payload)
        assert (b.status_code, b.json()) == (a.status_code, a.json()), path
    assert http.head(f"{proxy.url}/{INDEX}").status_code == 200
    assert http.head(f"{proxy.url}/nope-index").status_code == 404
    assert http.get(f"{proxy.url}/_nirbridge/health").json() == {"status": "ok"}
    ready = http.get(f"{proxy.url}/_nirbridge/ready")
    assert ready.status_code == 200 and ready.json()["cluster"]["ok"] is True


def test_writes_are_refused_unless_enabled(
    small: dict[str, Any], client: OpenSearch, proxy: ServerThread, http: httpx.Client
) -> None:
    ndjson = '{"index": {"_index": "w", "_id": "1"}}\n{"title": "x"}\n'
    for method, path, content in [
        ("PUT", "/made-by-proxy", None),
        ("POST", f"/{INDEX}/_doc", b'{"title": "x"}'),
        ("PUT", f"/{INDEX}/_doc/zz", b'{"title": "x"}'),
        ("POST", f"/{INDEX}/_update/1", b'{"doc": {"title": "x"}}'),
        ("POST", "/_bulk", ndjson.encode()),
        ("POST", f"/{INDEX}/_delete_by_query", b'{"query": {"match_all": {}}}'),
        ("POST", "/_aliases", b'{"actions": []}'),
        ("PUT", f"/{INDEX}/_settings", b'{"index": {"number_of_replicas": 0}}'),
        ("DELETE", f"/{INDEX}", None),
    ]:
        response = http.request(method, proxy.url + path, content=content)
        reason = _error(response, 403, "security_exception")
        assert "NIRBRIDGE_PROXY_ALLOW_WRITES" in reason, path
    assert client.indices.exists(index=INDEX) and not client.indices.exists(index="made-by-proxy")
    assert client.count(index=INDEX)["count"] == CORPUS_SIZE
    assert is_read_only("DELETE", "/_search/scroll") and is_read_only("POST", "/a,b/_search/scroll")
    assert is_read_only("POST", f"/{INDEX}/_explain/1") and not is_read_only("POST", f"/{INDEX}/_doc/1")

    writer = ServerThread(make_app(_settings(small["url"], proxy_allow_writes=True), reranker=None))
    try:
        created = http.put(f"{writer.url}/made-by-proxy", json={})
        assert created.status_code == 200 and created.json()["acknowledged"] is True
        assert client.indices.exists(index="made-by-proxy")
        assert http.delete(f"{writer.url}/made-by-proxy").status_code == 200
    finally:
        writer.stop()


# --- _nirbridge/search ---


def _search(http: httpx.Client, proxy: ServerThread, body: dict[str, Any], index: str = INDEX) -> Any:
    return http.post(f"{proxy.url}/{index}/_nirbridge/search", json=body)


@pytest.mark.parametrize("mode", ["bm25", "sparse", "terms", "dense", "hybrid"])
def test_each_mode_answers_like_opensearch_and_like_first_stage(
    small: dict[str, Any], client: OpenSearch, proxy: ServerThread, http: httpx.Client, mode: str
) -> None:
    builder = QueryBuilder(QueryEncoders(backend=BACKEND), IndexFields.read(client, small["url"], INDEX))
    texts = small["queries"][:3]
    expected = first_stage(client, small["url"], INDEX, builder, texts, mode, 10)
    for text, ranking in zip(texts, expected, strict=True):
        response = _search(http, proxy, {"q": text, "mode": mode, "size": 10})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"took", "timed_out", "_shards", "hits", "nirbridge"}
        assert body["timed_out"] is False and body["_shards"]["failed"] == 0
        hits = body["hits"]["hits"]
        assert [(h["_id"], h["_score"]) for h in hits] == [(d, pytest.approx(s)) for d, s in ranking]
        assert body["hits"]["max_score"] == pytest.approx(ranking[0][1])
        total = body["hits"]["total"]
        assert total["value"] >= len(hits) and total["relation"] in ("eq", "gte")
        for hit in hits:
            assert hit["_index"] == INDEX and set(hit["_source"]) >= {"title", "text"}
        block = body["nirbridge"]
        assert block["mode"] == mode and block["reranked"] is False and block["degraded"] is False
        took = block["took_ms"]
        assert took["first_stage"] > 0 and took["total"] >= took["first_stage"]


@pytest.mark.parametrize("fusion", ["rrf", "minmax"])
def test_hybrid_pages_do_not_depend_on_size(
    small: dict[str, Any], proxy: ServerThread, http: httpx.Client, fusion: str
) -> None:
    def ids(size: int, from_: int = 0, **extra: Any) -> list[str]:
        body = {"q": small["queries"][4], "mode": "hybrid", "size": size, "from": from_, "fusion": fusion}
        response = _search(http, proxy, {**body, "hybrid": ["bm25", "dense"], **extra})
        assert response.status_code == 200, response.text
        return [h["_id"] for h in response.json()["hits"]["hits"]]

    twenty = ids(20)
    assert ids(5) == twenty[:5] and ids(5, 5) == twenty[5:10] and len(twenty) == 20
    assert ids(10, _source=False) == twenty[:10]
    assert ids(10, weights=[1.0, 0.0]) != ids(10, weights=[0.0, 1.0])


# --- bad input ---


def test_bad_requests_get_opensearch_shaped_errors(
    small: dict[str, Any], proxy: ServerThread, http: httpx.Client
) -> None:
    url = f"{proxy.url}/{INDEX}/_nirbridge/search"
    _error(http.post(url, content=b'{"q": "x", "mode": '), 400, "parse_exception")
    unknown = _search(http, proxy, {"q": "x", "mode": "semantic"})
    assert "'semantic' is not one of bm25" in _error(unknown, 400)
    assert "[q]" in _error(_search(http, proxy, {"q": "  ", "mode": "bm25"}), 400)
    big = {"q": "x", "mode": "bm25", "rerank": {"window": 5000}}
    assert "maximum window 1000" in _error(_search(http, proxy, big), 400)
    reason = _error(_search(http, proxy, {"q": "statins", "mode": "dense"}, index=PLAIN), 400)
    assert "'nir_dense'" in reason and "nirbridge enrich --dense" in reason
    reason = _error(_search(http, proxy, {"q": "statins", "mode": "sparse"}, index=PLAIN), 400)
    assert "'nir_sparse'" in reason and "nirbridge enrich --sparse" in reason
    long_query = " ".join(["cholesterol"] * 400)
    reason = _error(_search(http, proxy, {"q": long_query, "mode": "dense"}), 400)
    assert "word pieces long" in reason and "all-MiniLM-L6-v2" in reason
    missing = _search(http, proxy, {"q": "statins", "mode": "bm25"}, index="nope-index")
    assert _error(missing, 404, "index_not_found_exception")
    window = http.post(
        f"{proxy.url}/{INDEX}/_search",
        json={"query": {"match": {"text": "x"}}, "ext": {"rerank": {"window": 1001}}},
    )
    assert "maximum window 1000" in _error(window, 400)


def test_an_unreachable_cluster_is_502_and_not_ready(http: httpx.Client) -> None:
    dead = ServerThread(make_app(_settings(f"http://127.0.0.1:{free_port()}"), reranker=None))
    try:
        reason = _error(http.get(f"{dead.url}/{INDEX}/_search"), 502)
        assert "cannot reach the cluster" in reason and "connection refused" in reason
        reason = _error(http.post(f"{dead.url}/{INDEX}/_nirbridge/search", json={"q": "x"}), 502)
        ready = http.get(f"{dead.url}/_nirbridge/ready")
        assert ready.status_code == 503 and ready.json()["cluster"]["ok"] is False
        assert http.get(f"{dead.url}/_nirbridge/health").status_code == 200
    finally:
        dead.stop()


# --- credentials ---


class _Echo(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        _Echo.seen.append({"path": self.path, "authorization": self.headers.get("authorization", "")})
        payload = json.dumps({"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


def test_credentials_pass_through_and_are_not_logged(
    http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    echo = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    cluster = f"http://alice:s3cret@127.0.0.1:{echo.server_address[1]}"
    proxy = ServerThread(make_app(_settings(cluster), reranker=None))
    caplog.set_level(logging.DEBUG)
    try:
        _Echo.seen.clear()
        http.post(f"{proxy.url}/x/_search", json={}, headers={"Authorization": "Bearer token-123"})
        http.get(f"{proxy.url}/x/_count")
        assert _Echo.seen[0] == {"path": "/x/_search", "authorization": "Bearer token-123"}
        assert _Echo.seen[1]["authorization"] == "Basic YWxpY2U6czNjcmV0"  # alice:s3cret from the URL
    finally:
        proxy.stop()
        echo.shutdown()
    assert "s3cret" not in caplog.text and "token-123" not in caplog.text
    assert "s3cret" not in make_app(_settings(cluster), reranker=None).state.proxy.cluster.url


# --- reranking ---


class _NoScores:
    """A reranker that never answers (a worker that hangs): the proxy's own deadline must save the request."""

    async def arerank(self, query: str, passages: list[str], *args: Any) -> Any:
        await asyncio.sleep(3600)


def test_a_hanging_reranker_degrades_within_the_deadline(
    small: dict[str, Any], http: httpx.Client
) -> None:
    settings = _settings(small["url"], proxy_rerank_deadline_ms=400)
    proxy = ServerThread(make_app(settings, reranker=_NoScores()))
    try:
        body = {"q": small["queries"][0], "mode": "bm25", "size": 5, "from": 5, "rerank": {"window": 30}}
        started = time.perf_counter()
        response = _search(http, proxy, body)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200 and elapsed < 2.0
        answer = response.json()
        plain = _search(http, proxy, {**body, "rerank": None}).json()
        assert [h["_id"] for h in answer["hits"]["hits"]] == [h["_id"] for h in plain["hits"]["hits"]]
        block = answer["nirbridge"]
        assert block["degraded"] is True and block["reranked"] is False
        assert "deadline" in block["degraded_reason"] and block["took_ms"]["rerank"] < 1000
    finally:
        proxy.stop()


def test_serve_refuses_a_bad_url_and_a_taken_port() -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", "--url", "ftp://x"])
    assert result.exit_code == 2 and "bad cluster URL" in result.stderr
    with ThreadingHTTPServer(("127.0.0.1", 0), _Echo) as taken:
        port = str(taken.server_address[1])
        result = runner.invoke(cli_app, ["serve", "--url", "http://127.0.0.1:9", "--port", port])
    assert result.exit_code == 2 and "already in use" in result.stderr


@dataclass
class _Outcome:
    scores: list[float] | None
    degraded: bool = False
    reason: str | None = None
    worker: str | None = "in-test"
    seconds: float = 0.0


class _WordOverlap:
    """A transparent stand-in for the cross-encoder until connector.rerank_client lands: the score of a
    passage is how many distinct query words it contains, so the expected order is computed in the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def arerank(self, query: str, passages: list[str], *args: Any) -> _Outcome:
        self.calls.append((query, passages))
        return _Outcome([float(_overlap(query, passage)) for passage in passages])


def _overlap(query: str, passage: str) -> int:
    words = set(passage.lower().split())
    return sum(word in words for word in set(query.lower().split()))


def _scored(query: str, hits: list[dict[str, Any]]) -> list[tuple[float, int, str]]:
    """(overlap score, -first-stage rank, id) per hit: sorted descending, the order the proxy must give."""
    return [
        (float(_overlap(query, f"{h['_source']['title']} {h['_source']['text']}")), -rank, h["_id"])
        for rank, h in enumerate(hits)
    ]


def test_rerank_orders_the_window_by_the_rerankers_scores_and_pages_inside_it(
    small: dict[str, Any], http: httpx.Client
) -> None:
    reranker = _WordOverlap()
    proxy = ServerThread(make_app(_settings(small["url"]), reranker=reranker))
    query = small["queries"][1]
    try:
        first = _search(http, proxy, {"q": query, "mode": "bm25", "size": 30}).json()["hits"]["hits"]
        scored = _scored(query, first)
        expected = [doc for _, _, doc in sorted(scored, reverse=True)]
        pages = []
        for start in (0, 10, 20, 25):
            body = {"q": query, "mode": "bm25", "size": 10, "from": start, "rerank": {"window": 30}}
            answer = _search(http, proxy, body).json()
            assert answer["nirbridge"]["reranked"] is True and answer["nirbridge"]["degraded"] is False
            pages.append([(h["_id"], h["_score"]) for h in answer["hits"]["hits"]])
        assert [d for page in pages[:3] for d, _ in page] == expected
        assert [d for d, _ in pages[3]] == expected[25:30]  # from + size past the window: cut at the window
        assert [s for page in pages[:3] for _, s in page] == sorted((s for s, _, _ in scored), reverse=True)
        assert reranker.calls[-1][1][0].startswith(first[0]["_source"]["title"])  # title + text, in order

        search_body = {
            "query": {"match": {"text": query}},
            "from": 10,
            "size": 10,
            "_source": ["title"],
            "ext": {"rerank": {"window": 30, "fields": ["title", "text"]}},
        }
        plain = {"query": search_body["query"], "size": 30}
        direct = http.post(f"{small['url']}/{INDEX}/_search", json=plain)
        window = direct.json()["hits"]["hits"]
        scored = _scored(query, window)
        response = http.post(f"{proxy.url}/{INDEX}/_search", json=search_body)
        assert response.status_code == 200, response.text
        answer = response.json()
        expected = [doc for _, _, doc in sorted(scored, reverse=True)]
        assert [h["_id"] for h in answer["hits"]["hits"]] == expected[10:20]
        assert all(set(h["_source"]) == {"title"} for h in answer["hits"]["hits"])
        assert answer["hits"]["total"] == direct.json()["hits"]["total"]
        assert answer["nirbridge"]["reranked"] is True and reranker.calls[-1][0] == query
    finally:
        proxy.stop()
