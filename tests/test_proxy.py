"""The search proxy (`nirbridge serve`) over real HTTP: uvicorn serving `connector.proxy` in a thread, the
engine as a child process, a small SciFact slice enriched with SPLADE-tiny (nir_sparse, nir_terms) and
all-MiniLM-L6-v2 (nir_dense) for real (tests/enriched_slice.py). References: the engine's own answers to the
same requests sent straight to it, and `connector.queries.first_stage` (the synchronous path over
opensearch-py) for the proxy's async path.

Reranking uses the tests' trained cross-encoder (tests/cross_encoder_fixture.py) for real: in this process
(`InProcessReranker`), and through a real redis-server and `nirbridge worker --queues rerank` (`RerankClient`,
built by the proxy from its settings); the reference scores come from a `CrossEncoder` loaded by the test
itself. The test that kills the worker runs after the others that need it."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cross_encoder_fixture import trained_cross_encoder  # noqa: F401 - a fixture
from enriched_slice import enrich_scifact_slice
from opensearchpy import OpenSearch
from recording_upstream import ServerThread
from redis_fixture import RedisServer, WorkerProcess  # a worker that may load the tests' models
from typer.testing import CliRunner

from nirbridge.connector.cli import app as cli_app
from nirbridge.connector.engine_process import EngineProcess, free_port
from nirbridge.connector.proxy import make_app
from nirbridge.connector.proxy.policy import is_read_only
from nirbridge.connector.queries import IndexFields, QueryBuilder, QueryEncoders, first_stage
from nirbridge.connector.rerank_client import InProcessReranker
from nirbridge.connector.settings import Settings
from nirbridge.workers.cross_encoder import CrossEncoder

WORKER_QUEUES = "rerank"  # the shared `worker` (tests/conftest.py) as `nirbridge worker --queues rerank`

pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")

INDEX = "scifact-proxy"
PLAIN = "plain-proxy"
CORPUS_SIZE = 120
BACKEND = "onnx-fp32"


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
        # a caller without credentials stays anonymous: the URL's are the proxy's own (issue 13)
        assert _Echo.seen[1]["authorization"] == ""
        lending = ServerThread(make_app(_settings(cluster, proxy_lend_credentials=True), reranker=None))
        try:
            http.get(f"{lending.url}/x/_count")
            assert _Echo.seen[2]["authorization"] == "Basic YWxpY2U6czNjcmV0"  # alice:s3cret from the URL
        finally:
            lending.stop()
    finally:
        proxy.stop()
        echo.shutdown()
    assert "s3cret" not in caplog.text and "token-123" not in caplog.text
    assert "s3cret" not in make_app(_settings(cluster), reranker=None).state.proxy.cluster.url


# --- reranking: the tests' trained cross-encoder, in process and through a real Celery worker ---

RERANK_BACKEND = "torch-fp32"
RERANK_PARAMS = {"max_length": 128}  # short pairs: the window's scores in well under a second
WINDOW = 20
SLACK_S = 0.3  # how far past its deadline a degraded rerank may come (thread hand-over on a loaded machine)


@pytest.fixture(scope="module")
def cross_encoder(trained_cross_encoder: Path) -> CrossEncoder:  # noqa: F811
    """The reference: the same model and settings, loaded here, apart from the proxy's reranker."""
    return CrossEncoder(trained_cross_encoder, RERANK_BACKEND, **RERANK_PARAMS)  # type: ignore[arg-type]


def _rerank_settings(url: str, model: Path, **overrides: Any) -> Settings:
    extra = {"proxy_rerank_deadline_ms": 60_000, "proxy_rerank_backend": RERANK_BACKEND, **overrides}
    return _settings(url, proxy_rerank_model=str(model), **extra)


@pytest.fixture(scope="module")
def local_proxy(
    small: dict[str, Any],
    trained_cross_encoder: Path,  # noqa: F811
) -> Iterator[ServerThread]:
    """A proxy reranking with InProcessReranker (the model loaded in this process)."""
    reranker = InProcessReranker(deadline_s=60)
    reranker.load(str(trained_cross_encoder), RERANK_BACKEND, RERANK_PARAMS)
    server = ServerThread(make_app(_rerank_settings(small["url"], trained_cross_encoder), reranker=reranker))
    yield server
    server.stop()
    reranker.close()


def _rerank(window: int = WINDOW, **extra: Any) -> dict[str, Any]:
    return {"window": window, "params": RERANK_PARAMS, **extra}


def _passage(hit: dict[str, Any]) -> str:
    return f"{hit['_source']['title']} {hit['_source']['text']}"


def _expected(
    cross_encoder: CrossEncoder, query: str, window: list[dict[str, Any]]
) -> tuple[list[str], dict[str, float]]:
    """The window's ids ordered by the cross-encoder's scores (ties: first-stage order), and the scores."""
    scores = cross_encoder.score(query, [_passage(hit) for hit in window])
    order = sorted(range(len(window)), key=lambda i: (-float(scores[i]), i))
    return [window[i]["_id"] for i in order], {
        h["_id"]: float(s) for h, s in zip(window, scores, strict=True)
    }


def _check_order(hits: list[dict[str, Any]], expected: list[str], scores: dict[str, float]) -> None:
    """`hits` are `expected` (allowing two near-equal scores to swap) with the cross-encoder's scores."""
    got = [h["_id"] for h in hits]
    assert sorted(got) == sorted(expected)
    assert [h["_score"] for h in hits] == [pytest.approx(scores[d], abs=1e-4) for d in got]
    if got != expected:  # only a near tie may differ (float noise between two runs of the same model)
        values = [scores[d] for d in got]
        assert all(a >= b - 1e-4 for a, b in zip(values, values[1:], strict=False)), (got, expected)


def test_rerank_orders_the_window_by_the_cross_encoder_and_pages_inside_it(
    small: dict[str, Any], local_proxy: ServerThread, http: httpx.Client, cross_encoder: CrossEncoder
) -> None:
    query = small["queries"][1]
    first = _search(http, local_proxy, {"q": query, "mode": "bm25", "size": WINDOW}).json()["hits"]["hits"]
    expected, scores = _expected(cross_encoder, query, first)
    assert expected != [h["_id"] for h in first]  # the cross-encoder reorders this window

    def page(start: int, size: int) -> list[dict[str, Any]]:
        body = {"q": query, "mode": "bm25", "size": size, "from": start, "rerank": _rerank()}
        answer = _search(http, local_proxy, body).json()
        block = answer["nirbridge"]
        assert block["reranked"] is True and block["degraded"] is False, block
        assert block["rerank_worker"] == "local" and block["took_ms"]["rerank_model"] > 0
        assert block["rerank_backend"] == RERANK_BACKEND
        return list(answer["hits"]["hits"])

    whole = page(0, WINDOW)
    _check_order(whole, expected, scores)
    ids = [h["_id"] for h in whole]
    pages = [page(0, 10), page(10, 10), page(15, 10)]
    assert [h["_id"] for h in pages[0] + pages[1]] == ids
    assert [h["_id"] for h in pages[2]] == ids[15:]  # from + size past the window: cut at the window

    # _search with ext.rerank: the same window from the engine, the same order, the page inside it
    search_body = {
        "query": {"match": {"text": query}},
        "from": 10,
        "size": 10,
        "_source": ["title"],
        "ext": {"rerank": _rerank(fields=["title", "text"])},
    }
    direct = http.post(
        f"{small['url']}/{INDEX}/_search", json={"query": search_body["query"], "size": WINDOW}
    )
    window = direct.json()["hits"]["hits"]
    expected, scores = _expected(cross_encoder, query, window)
    response = http.post(f"{local_proxy.url}/{INDEX}/_search", json=search_body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["nirbridge"]["reranked"] is True and answer["nirbridge"]["degraded"] is False
    full = http.post(
        f"{local_proxy.url}/{INDEX}/_search", json={**search_body, "from": 0, "size": WINDOW, "_source": True}
    ).json()["hits"]["hits"]
    _check_order(full, expected, scores)
    assert [h["_id"] for h in answer["hits"]["hits"]] == [h["_id"] for h in full[10:20]]
    assert all(set(h["_source"]) == {"title"} for h in answer["hits"]["hits"])
    assert answer["hits"]["total"] == direct.json()["hits"]["total"]


def test_a_bad_rerank_weight_is_a_400(small: dict[str, Any], proxy: ServerThread, http: httpx.Client) -> None:
    for bad in (1.5, -0.1, "0.5", True, None):
        body = {"q": small["queries"][0], "mode": "bm25", "rerank": {"window": 10, "weight": bad}}
        reason = _error(_search(http, proxy, body), 400)
        assert reason == f"[rerank.weight] must be a number in [0, 1], got {bad!r}"
    search = {"query": {"match": {"text": "statins"}}, "ext": {"rerank": {"weight": 2}}}
    reason = _error(http.post(f"{proxy.url}/{INDEX}/_search", json=search), 400)
    assert reason == "[ext.rerank.weight] must be a number in [0, 1], got 2"


def test_the_rerank_weight_defaults_to_the_setting() -> None:
    from pydantic import ValidationError

    from nirbridge.connector.proxy.rerank import RerankSpec

    settings = _settings("http://127.0.0.1:9", proxy_rerank_model="m", proxy_rerank_weight=0.5)
    assert RerankSpec.parse({"window": 10}, settings).weight == 0.5
    assert RerankSpec.parse({"window": 10, "weight": 1}, settings).weight == 1.0
    plain = _settings("http://127.0.0.1:9", proxy_rerank_model="m")
    assert RerankSpec.parse({"window": 10}, plain).weight == 1.0
    with pytest.raises(ValidationError, match="proxy_rerank_weight"):
        _settings("http://127.0.0.1:9", proxy_rerank_weight=1.5)


def test_rerank_weight_0_gives_the_first_stage_order_back(
    small: dict[str, Any], local_proxy: ServerThread, http: httpx.Client
) -> None:
    query = small["queries"][1]
    first = _search(http, local_proxy, {"q": query, "mode": "bm25", "size": WINDOW}).json()["hits"]["hits"]
    body = {"q": query, "mode": "bm25", "size": WINDOW, "rerank": _rerank(weight=0.0)}
    answer = _search(http, local_proxy, body).json()
    block = answer["nirbridge"]
    assert block["reranked"] is True and block["degraded"] is False, block  # scored, then weighted out
    hits = answer["hits"]["hits"]
    assert [h["_id"] for h in hits] == [h["_id"] for h in first]
    low, high = first[-1]["_score"], first[0]["_score"]
    assert [h["_score"] for h in hits] == pytest.approx([(h["_score"] - low) / (high - low) for h in first])
    assert answer["hits"]["max_score"] == pytest.approx(1.0)


def test_a_reranked_request_without_a_model_is_a_400(
    small: dict[str, Any], proxy: ServerThread, http: httpx.Client
) -> None:
    """`proxy` has no NIRBRIDGE_PROXY_RERANK_MODEL (the default): the request must name its model."""
    body = {"q": small["queries"][0], "mode": "bm25", "rerank": {"window": 10}}
    reason = _error(_search(http, proxy, body), 400)
    assert reason == "no reranker model configured: set NIRBRIDGE_PROXY_RERANK_MODEL or rerank.model"
    search = {"query": {"match": {"text": "statins"}}, "ext": {"rerank": {"window": 10}}}
    reason = _error(http.post(f"{proxy.url}/{INDEX}/_search", json=search), 400)
    assert reason == "no reranker model configured: set NIRBRIDGE_PROXY_RERANK_MODEL or ext.rerank.model"


@pytest.fixture(scope="module")
def celery_proxy(
    small: dict[str, Any],
    redis_server: RedisServer,
    worker: WorkerProcess,
    trained_cross_encoder: Path,  # noqa: F811
    http: httpx.Client,
) -> Iterator[ServerThread]:
    """A proxy with the reranker its settings build (RerankClient over Celery); the worker warmed through it
    (its first request imports torch and loads the model)."""
    settings = _rerank_settings(
        small["url"],
        trained_cross_encoder,
        broker_url=redis_server.url(0),
        result_backend=redis_server.url(1),
        proxy_rerank_deadline_ms=20_000,
    )
    server = ServerThread(make_app(settings))
    try:
        give_up = time.monotonic() + 120
        while True:
            body = {"q": small["queries"][0], "mode": "bm25", "size": 1, "rerank": _rerank(window=1)}
            block = _search(http, server, body).json()["nirbridge"]
            if block["reranked"]:
                break
            failed = str(block["degraded_reason"]).startswith("failed")
            if failed or worker.process.poll() is not None or time.monotonic() > give_up:
                raise AssertionError(f"the worker did not rerank: {block}\n{worker.output()}")
        yield server
    finally:
        server.stop()


def test_rerank_through_a_celery_worker(
    small: dict[str, Any], celery_proxy: ServerThread, http: httpx.Client, cross_encoder: CrossEncoder
) -> None:
    ready = http.get(f"{celery_proxy.url}/_nirbridge/ready")
    assert ready.status_code == 200, ready.text
    rerank = ready.json()["rerank"]
    assert rerank["ok"] is True and rerank["worker"].startswith("test-") and rerank["ms"] < 1000

    query = small["queries"][2]
    first = _search(http, celery_proxy, {"q": query, "mode": "bm25", "size": WINDOW}).json()["hits"]["hits"]
    expected, scores = _expected(cross_encoder, query, first)
    body = {"q": query, "mode": "bm25", "size": WINDOW, "rerank": _rerank()}
    answer = _search(http, celery_proxy, body).json()
    block = answer["nirbridge"]
    assert block["reranked"] is True and block["degraded"] is False, block
    assert block["degraded_reason"] is None and block["rerank_worker"].startswith("test-")
    took = block["took_ms"]
    assert 0 < took["rerank_model"] < took["rerank"] < took["total"]  # the difference: the Celery round trip
    _check_order(answer["hits"]["hits"], expected, scores)


def _degraded_within(
    http: httpx.Client, proxy: ServerThread, query: str, deadline_ms: int, **rerank: Any
) -> dict[str, Any]:
    """A reranked request that must come back degraded by its deadline, in first-stage order."""
    body = {
        "q": query,
        "mode": "bm25",
        "size": 10,
        "from": 5,
        "rerank": _rerank(deadline_ms=deadline_ms, **rerank),
    }
    started = time.monotonic()
    response = _search(http, proxy, body)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    answer = response.json()
    block = answer["nirbridge"]
    assert block["degraded"] is True and block["reranked"] is False, block
    assert block["degraded_reason"], block
    assert block["took_ms"]["rerank"] <= deadline_ms + SLACK_S * 1000
    assert elapsed < deadline_ms / 1000 + SLACK_S + 1.0  # + the first stage and HTTP on a loaded machine
    plain = _search(http, proxy, {**body, "rerank": None}).json()["hits"]["hits"]
    assert [(h["_id"], h["_score"]) for h in answer["hits"]["hits"]] == [
        (h["_id"], h["_score"]) for h in plain
    ]
    return block


def test_no_worker_on_the_queue_degrades_within_the_deadline(
    small: dict[str, Any],
    redis_server: RedisServer,
    trained_cross_encoder: Path,  # noqa: F811
    http: httpx.Client,
) -> None:
    """Redis databases 2 and 3: a broker that no worker consumes."""
    settings = _rerank_settings(
        small["url"],
        trained_cross_encoder,
        broker_url=redis_server.url(2),
        result_backend=redis_server.url(3),
    )
    proxy = ServerThread(make_app(settings))
    try:
        block = _degraded_within(http, proxy, small["queries"][3], 600)
        assert block["degraded_reason"].startswith("timeout"), block
        ready = http.get(f"{proxy.url}/_nirbridge/ready")
        assert ready.status_code == 503 and ready.json()["cluster"]["ok"] is True
        assert (
            ready.json()["rerank"]["ok"] is False and "no worker answered" in ready.json()["rerank"]["detail"]
        )
    finally:
        proxy.stop()


def test_a_killed_worker_degrades_within_the_deadline(
    small: dict[str, Any], celery_proxy: ServerThread, worker: WorkerProcess, http: httpx.Client
) -> None:
    """Runs last: it kills the module's worker while it computes a request, then asks again."""
    query = small["queries"][4]
    slow: dict[str, Any] = {}

    def ask() -> None:  # 100 passages at 256 word pieces: seconds of work for the worker
        try:
            slow["block"] = _degraded_within(
                http, celery_proxy, query, 2000, window=100, params={"max_length": 256}
            )
        except BaseException as error:  # noqa: BLE001 - raised again in the test's thread
            slow["error"] = error

    thread = threading.Thread(target=ask)
    thread.start()
    time.sleep(0.7)
    worker.kill()
    thread.join(timeout=30)
    if "error" in slow:
        raise slow["error"]
    assert slow["block"]["degraded_reason"].startswith("timeout"), slow
    block = _degraded_within(http, celery_proxy, query, 800)
    assert block["degraded_reason"].startswith("timeout"), block
    ready = http.get(f"{celery_proxy.url}/_nirbridge/ready")
    assert ready.status_code == 503 and ready.json()["rerank"]["ok"] is False


def test_serve_refuses_a_bad_url_and_a_taken_port() -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", "--url", "ftp://x"])
    assert result.exit_code == 2 and "bad cluster URL" in result.stderr
    with ThreadingHTTPServer(("127.0.0.1", 0), _Echo) as taken:
        port = str(taken.server_address[1])
        result = runner.invoke(cli_app, ["serve", "--url", "http://127.0.0.1:9", "--port", port])
    assert result.exit_code == 2 and "already in use" in result.stderr
