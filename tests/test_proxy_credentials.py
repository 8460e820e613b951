"""Anonymous callers never borrow the proxy's identity (issue 13, item 4).

A proxy configured with credentials of its own (NIRBRIDGE_USERNAME/PASSWORD, credentials in the URL, or an
API key) sends a caller's `Authorization` on, and a caller without one (or with an empty one) on without any,
on every route: pass-through, reranked `_search`, and the requests `_nirbridge/search` makes for the caller
(mapping, sample, `_msearch`). Its own credentials serve its own question only (the readiness ping), and are
lent to callers only with NIRBRIDGE_PROXY_LEND_CREDENTIALS=true.

Over real HTTP: the proxy under uvicorn in front of a recording HTTP server that keeps each request's
Authorization header (tests/recording_upstream.py); tests/test_security.py checks the same against the
engine with basic auth.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from recording_upstream import SEARCH_ANSWER, ProxyServer, RecordingUpstream, raw_request

from nirbridge.connector.settings import Settings

CALLER = "Basic " + base64.b64encode(b"caller:own-secret").decode()
PROXY_BASIC = "Basic " + base64.b64encode(b"proxy-user:proxy-secret").decode()
URL_BASIC = "Basic " + base64.b64encode(b"url-user:url@pass").decode()
RERANKED = b'{"query": {"match": {"title": "statins"}}, "ext": {"rerank": {"window": 5}}}'


def _answer(method: str, target: str) -> Any:
    """A cluster's answers, enough for `_nirbridge/search` in bm25 mode."""
    if target == "/":
        return {"version": {"number": "3.3.0", "distribution": "opensearch"}}
    if target.endswith("/_mapping"):
        return {"idx": {"mappings": {"properties": {"title": {"type": "text"}}}}}
    if target.startswith("/_msearch"):
        return {"responses": [SEARCH_ANSWER]}
    return SEARCH_ANSWER


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream(_answer)
    yield server
    server.stop()


# the proxy's own identity, three ways, and the header the cluster then sees from the proxy itself
IDENTITIES = {
    "basic": ({"username": "proxy-user", "password": "proxy-secret"}, PROXY_BASIC),
    "url": ({"url_credentials": "url-user:url%40pass"}, URL_BASIC),
    "api_key": ({"api_key": "proxy-key"}, "ApiKey proxy-key"),
}


def _proxy(upstream: RecordingUpstream, identity: str, **more: Any) -> ProxyServer:
    options = dict(IDENTITIES[identity][0])
    url = upstream.url
    if "url_credentials" in options:
        url = url.replace("http://", f"http://{options.pop('url_credentials')}@")
    return ProxyServer(Settings(url=url, proxy_rerank_model="no-model", **options, **more), reranker=None)


def _requests(proxy: ProxyServer, headers: dict[str, str]) -> list[int]:
    """One request of each kind that reaches the cluster for the caller; their statuses."""
    return [
        raw_request(proxy.url, "GET", "/idx/_search", b"", headers).status,
        raw_request(proxy.url, "POST", "/idx/_search", RERANKED, headers).status,
        raw_request(proxy.url, "POST", "/idx/_nirbridge/search", b'{"q": "statins"}', headers).status,
        raw_request(proxy.url, "DELETE", "/_search/scroll", b'{"scroll_id": ["abc"]}', headers).status,
    ]


@pytest.mark.parametrize("identity", sorted(IDENTITIES))
def test_callers_without_credentials_stay_anonymous(upstream: RecordingUpstream, identity: str) -> None:
    own = IDENTITIES[identity][1]
    proxy = _proxy(upstream, identity)
    try:
        for headers in ({}, {"authorization": ""}, {"authorization": "   "}):
            upstream.clear()
            assert _requests(proxy, headers) == [200, 200, 200, 200], headers
            # (the _nirbridge/search asks for the mapping, a sample and the _msearch): none lent
            assert len(upstream.seen) >= 4 and {seen.authorization for seen in upstream.seen} == {None}
        upstream.clear()
        assert _requests(proxy, {"authorization": CALLER}) == [200, 200, 200, 200]
        assert {seen.authorization for seen in upstream.seen} == {CALLER}  # the caller's own, never replaced
        upstream.clear()  # the proxy's own question, on its own credentials
        ready = raw_request(proxy.url, "GET", "/_nirbridge/ready", b"")
        assert ready.json()["cluster"]["ok"] is True
        assert [(seen.target, seen.authorization) for seen in upstream.seen] == [("/", own)]
    finally:
        proxy.stop()


@pytest.mark.parametrize("identity", sorted(IDENTITIES))
def test_the_proxys_credentials_are_lent_only_when_told(upstream: RecordingUpstream, identity: str) -> None:
    own = IDENTITIES[identity][1]
    proxy = _proxy(upstream, identity, proxy_lend_credentials=True)
    try:
        for headers in ({}, {"authorization": ""}):
            upstream.clear()
            assert _requests(proxy, headers) == [200, 200, 200, 200]
            assert {seen.authorization for seen in upstream.seen} == {own}, headers
        upstream.clear()
        _requests(proxy, {"authorization": CALLER})
        assert {seen.authorization for seen in upstream.seen} == {CALLER}
    finally:
        proxy.stop()


def test_lending_is_off_by_default() -> None:
    assert Settings().proxy_lend_credentials is False
