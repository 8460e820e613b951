"""What a client puts in a reranked `_search` or a `_nirbridge/search` body is answered 200 or an
OpenSearch-shaped 400, never a 5xx (issue 13, item 11).

A reranked `_search` runs over real HTTP: the proxy under uvicorn (`nirbridge serve`'s server config) in
front of a recording HTTP server that answers a small search answer (tests/recording_upstream.py); no
reranker is configured, so every well-formed request answers 200 `degraded` and parsing is what is tested.
`SearchRequest.parse` (the `_nirbridge/search` body) is a pure function, fuzzed directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from recording_upstream import SEARCH_ANSWER, ProxyServer, RecordingUpstream

from nirbridge.connector.proxy.app import query_text_of
from nirbridge.connector.proxy.errors import BadRequest
from nirbridge.connector.proxy.policy import check_source_spec
from nirbridge.connector.proxy.search import SearchRequest
from nirbridge.connector.settings import Settings

SETTINGS = Settings(proxy_rerank_model="no-model")

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(
    SCALARS | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
FIELD_NAMES = st.sampled_from(["title", "text", "n", "m", "m.x", "*", "t*"])
FILTER = FIELD_NAMES | st.lists(FIELD_NAMES)
SOURCE = st.one_of(
    st.booleans(),
    FIELD_NAMES,
    st.lists(FIELD_NAMES, max_size=3),
    st.fixed_dictionaries({}, optional={"includes": FILTER, "excludes": FILTER}),
)
RERANK = st.fixed_dictionaries(
    {},
    optional={
        "window": st.integers(1, 40),
        "weight": st.floats(0, 1),
        "fields": st.lists(FIELD_NAMES, min_size=1, max_size=3),
        "deadline_ms": st.integers(1, 5000),
        "query": st.sampled_from(["statins", "vitamin d"]),
    },
)
VALID_BODY = st.fixed_dictionaries(
    {
        "query": st.sampled_from(["statins", "b"]).map(lambda text: {"match": {"title": text}}),
        "ext": RERANK.map(lambda rerank: {"rerank": rerank}),
    },
    optional={"_source": SOURCE, "from": st.integers(0, 30), "size": st.integers(0, 30)},
)
# where one value of a valid body is replaced by anything JSON can hold (one at a time: each place's own
# type checks are reached, not stopped by another's)
PLACES = [
    ("query",), ("query", "match"), ("query", "match", "title"), ("_source",), ("_source", "includes"),
    ("_source", "excludes"), ("from",), ("size",), ("search_after",), ("ext",), ("ext", "rerank"),
    ("ext", "other"), *(("ext", "rerank", name) for name in (
        "window", "weight", "fields", "model", "backend", "params", "deadline_ms", "query", "bogus")),
]  # fmt: skip


def _replaced(body: dict[str, Any], place: tuple[str, ...], value: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    at = body
    for key in place[:-1]:
        if not isinstance(at.get(key), dict):
            at[key] = {}
        at = at[key]
    at[place[-1]] = value
    return body


BODY = VALID_BODY | st.builds(_replaced, VALID_BODY, st.sampled_from(PLACES), JSON)
PARAMS = st.lists(
    st.tuples(st.sampled_from(["from", "size", "_source_includes"]), st.sampled_from(["0", "3", "title"]))
    | st.tuples(
        st.sampled_from(["from", "size", "_source_includes", "scroll", "routing"]),
        st.sampled_from(["-1", "x", "1e3", "title", "", "t*,n"]),
    ),
    max_size=2,
)


@pytest.fixture(scope="module")
def proxy(upstream: RecordingUpstream) -> Iterator[ProxyServer]:
    server = ProxyServer(Settings(url=upstream.url, proxy_rerank_model="no-model"), reranker=None)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as session:
        yield session


def _search(http: httpx.Client, proxy: ProxyServer, body: Any, params: Any = None) -> httpx.Response:
    return http.post(f"{proxy.url}/idx/_search", content=json.dumps(body), params=params)


def _reason(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind and error["root_cause"][0]["type"] == kind, error
    return str(error["reason"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODY, params=PARAMS)
def test_a_reranked_search_never_answers_5xx(
    http: httpx.Client, proxy: ProxyServer, body: dict[str, Any], params: list[tuple[str, str]]
) -> None:
    response = _search(http, proxy, body, params)
    event(f"answered {response.status_code}")  # --hypothesis-show-statistics: how the campaign split
    assert response.status_code in (200, 400), (body, params, response.text)
    if response.status_code == 400:
        error = response.json()["error"]
        assert error["reason"] and error["root_cause"][0]["type"] == error["type"]
    elif "rerank" in str(body.get("ext")):
        assert response.json()["nirbridge"]["degraded"] is True  # no reranker: first-stage order
    else:  # `ext` replaced by something without rerank: passed through as it came back
        assert response.json() == SEARCH_ANSWER


@pytest.mark.parametrize(
    "source",
    [{"includes": 5}, {"excludes": [1]}, {"includes": {"a": 1}}, {"bogus": ["title"]}, 5, [["title"]], 1.5],
)
def test_a_bad_source_filter_is_a_400_not_a_500(http: httpx.Client, proxy: ProxyServer, source: Any) -> None:
    # issue 13: `"_source": {"includes": 5}` with ext.rerank answered 500 (the filter applied after reranking)
    body = {"query": {"match": {"title": "statins"}}, "_source": source, "ext": {"rerank": {"window": 5}}}
    assert "[_source" in _reason(_search(http, proxy, body), 400, "parsing_exception")
    with pytest.raises(BadRequest):
        SearchRequest.parse({"q": "statins", "_source": source}, SETTINGS)


def test_good_source_filters_still_filter(http: httpx.Client, proxy: ProxyServer) -> None:
    rerank = {"window": 5}
    for source, kept in [
        ({"includes": ["title"]}, [{"title": "statins"}, {"title": ["a", "b"]}]),
        ({"excludes": "title"}, [{"n": 5}, {"m": {"x": 1}}]),
        ("n", [{"n": 5}, {}]),
        (False, [None, None]),
    ]:
        body = {"query": {"match": {"title": "statins"}}, "_source": source, "ext": {"rerank": rerank}}
        hits = _search(http, proxy, body).json()["hits"]["hits"]
        assert [hit.get("_source") for hit in hits] == kept, source
    assert [h["_id"] for h in SEARCH_ANSWER["hits"]["hits"]] == ["1", "2"]
    good = (True, False, None, "a", ["a", "b*"], {"includes": "a", "excludes": ["b"]}, {"include": None})
    for spec in good:
        assert check_source_spec(spec) == spec


def test_bodies_nested_past_what_the_proxy_writes_back_are_a_400(
    http: httpx.Client, proxy: ProxyServer
) -> None:
    # orjson reads 1024 levels and writes 254: a deep body with a text query once answered 500
    deep: Any = "x"
    for _ in range(600):
        deep = [deep]
    body = {"query": {"bool": {"must": [{"match": {"title": "statins"}}], "filter": deep}},
            "ext": {"rerank": {"window": 5}}}  # fmt: skip
    assert "254 levels" in _reason(_search(http, proxy, body), 400, "parse_exception")
    body = {"query": {"bool": {"filter": deep}}, "ext": {"rerank": {"window": 5}}}  # no text query in it
    reason = _reason(_search(http, proxy, body), 400, "illegal_argument_exception")
    assert "[ext.rerank.query] is needed" in reason


def test_query_text_of_walks_deep_bodies_without_recursing() -> None:
    deep: Any = {"match": {"title": "found"}}
    for _ in range(5000):  # past Python's recursion limit
        deep = {"bool": {"must": [deep]}}
    assert query_text_of(deep) == "found"
    body = {"a": [{"b": 1}, {"match": {"t": {"query": "first"}}}], "c": {"match": {"t": "x"}}}
    assert query_text_of(body) == "first"  # depth first, in the body's order


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"q": st.sampled_from(["statins", " "]) | JSON},
        optional={
            "mode": st.sampled_from(["bm25", "sparse", "dense", "hybrid", "nope"]) | JSON,
            "size": JSON,
            "from": JSON,
            "hybrid": st.lists(st.sampled_from(["bm25", "dense", "sparse", "x"]), max_size=3) | JSON,
            "fusion": JSON,
            "weights": JSON,
            "depth": JSON,
            "rerank": RERANK | JSON,
            "prior": st.floats(-1, 2, allow_nan=False) | st.fixed_dictionaries({"weight": JSON}) | JSON,
            "_source": SOURCE | JSON,
        },
    )
    | JSON
)
def test_a_nirbridge_search_body_is_parsed_or_refused_with_a_400(raw: Any) -> None:
    try:
        SearchRequest.parse(raw, SETTINGS)
    except BadRequest as error:
        assert error.status == 400 and error.reason
