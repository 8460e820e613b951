"""The proxy's limits over real HTTP (connector.proxy.limits): requests in flight, body size, query length.

uvicorn serves the proxy in a thread; the cluster is the engine, reached through a real HTTP gate
(tests/http_gate.py) that can hold requests, so that requests stay in flight for as long as the test says.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from http_gate import HttpGate
from opensearchpy import OpenSearch
from test_proxy import ServerThread, _error

from nirbridge.connector.engine_process import EngineProcess
from nirbridge.connector.proxy import make_app
from nirbridge.connector.proxy.limits import RequestLimits
from nirbridge.connector.settings import Settings

INDEX = "limits"
MAX_IN_FLIGHT = 2
MAX_BODY = 2000
MAX_QUERY = 40


@pytest.fixture(scope="module")
def gate(engine: EngineProcess, client: OpenSearch) -> Iterator[HttpGate]:
    client.indices.create(index=INDEX, body={"mappings": {"properties": {"title": {"type": "text"}}}})
    client.index(index=INDEX, id="1", body={"title": "statins and breast cancer"}, refresh=True)
    gate = HttpGate(engine.url)
    yield gate
    gate.stop()


@pytest.fixture(scope="module")
def proxy(gate: HttpGate) -> Iterator[ServerThread]:
    settings = Settings(
        url=gate.url,
        proxy_max_in_flight=MAX_IN_FLIGHT,
        proxy_max_body_bytes=MAX_BODY,
        proxy_max_query_chars=MAX_QUERY,
    )
    server = ServerThread(make_app(settings, reranker=None))
    yield server
    server.stop()


def _search(url: str, text: str = "statins") -> httpx.Response:
    return httpx.post(f"{url}/{INDEX}/_search", json={"query": {"match": {"title": text}}}, timeout=30)


def test_past_max_in_flight_a_request_is_refused_at_once(proxy: ServerThread, gate: HttpGate) -> None:
    answers: list[httpx.Response] = []
    gate.hold()
    try:
        held = [threading.Thread(target=lambda: answers.append(_search(proxy.url))) for _ in range(2)]
        for thread in held:
            thread.start()
        gate.wait_for_waiting(MAX_IN_FLIGHT)
        started = time.monotonic()
        refused = _search(proxy.url)
        assert time.monotonic() - started < 5  # answered while the others still wait: not queued
        reason = _error(refused, 429, "rejected_execution_exception")
        assert "NIRBRIDGE_PROXY_MAX_IN_FLIGHT=2" in reason and refused.headers["retry-after"] == "1"
        assert httpx.get(f"{proxy.url}/_nirbridge/health", timeout=5).status_code == 200  # never refused
    finally:
        gate.release()
    for thread in held:
        thread.join(timeout=30)
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json()["hits"]["total"]["value"] == 1
    assert _search(proxy.url).status_code == 200  # the slots are free again


def test_a_body_past_the_cap_is_413_declared_or_chunked(proxy: ServerThread) -> None:
    padding = {"query": {"match_all": {}}, "_source": ["title"], "stored_fields": ["x" * MAX_BODY]}
    declared = httpx.post(f"{proxy.url}/{INDEX}/_search", json=padding, timeout=30)
    assert "NIRBRIDGE_PROXY_MAX_BODY_BYTES" in _error(declared, 413, "content_too_long_exception")

    def chunks() -> Iterator[bytes]:  # no content-length: the cap holds while the body is read
        yield b'{"query": {"match_all": {}}, "stored_fields": ["'
        for _ in range(10):
            yield b"x" * 500
        yield b'"]}'

    chunked = httpx.post(
        f"{proxy.url}/{INDEX}/_search",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    _error(chunked, 413, "content_too_long_exception")
    small = httpx.post(f"{proxy.url}/{INDEX}/_search", content=b'{"size": 1}', timeout=30)
    assert small.status_code == 200 and small.json()["hits"]["hits"][0]["_id"] == "1"


def test_a_query_text_past_the_cap_is_400_before_any_work(proxy: ServerThread) -> None:
    long_text = "statins " * 6  # 48 characters
    said = httpx.post(
        f"{proxy.url}/{INDEX}/_nirbridge/search", json={"q": long_text, "mode": "bm25"}, timeout=30
    )
    reason = _error(said, 400, "illegal_argument_exception")
    assert f"[q] is {len(long_text)} characters long, more than the maximum {MAX_QUERY}" in reason
    ok = httpx.post(
        f"{proxy.url}/{INDEX}/_nirbridge/search", json={"q": "statins", "mode": "bm25"}, timeout=30
    )
    assert ok.status_code == 200 and ok.json()["hits"]["hits"][0]["_id"] == "1"

    model = "nirbridge/reranker-nfcorpus"  # allowed (shipped), never loaded: the text is refused first
    rerank: dict[str, Any] = {"window": 5, "model": model}
    reranked: dict[str, Any] = {"query": {"match": {"title": long_text}}, "ext": {"rerank": rerank}}
    said = httpx.post(f"{proxy.url}/{INDEX}/_search", json=reranked, timeout=30)
    assert "[query] is 48 characters long" in _error(said, 400, "illegal_argument_exception")
    rerank = {"query": long_text, "model": model}
    reranked = {"query": {"match": {"title": "statins"}}, "ext": {"rerank": rerank}}
    said = httpx.post(f"{proxy.url}/{INDEX}/_search", json=reranked, timeout=30)
    assert "[ext.rerank.query] is 48" in _error(said, 400, "illegal_argument_exception")


def test_bad_limits_are_refused_with_their_name() -> None:
    with pytest.raises(ValueError, match="max_in_flight must be at least 1, got 0"):
        RequestLimits(make_app(Settings(), reranker=None), max_in_flight=0, max_body_bytes=1)
    with pytest.raises(ValueError, match="proxy_max_body_bytes"):
        Settings(proxy_max_body_bytes=0)


def test_the_rerank_queue_cap_comes_from_the_settings() -> None:
    # the RerankClient built from the settings (nothing connects until a request): past the cap a reranked
    # request answers degraded at once ("queue full", tests/test_rerank.py), instead of waiting in Redis
    app = make_app(Settings(proxy_rerank_max_queue=3), reranker="default")
    assert app.state.proxy.reranker.max_queue == 3
