"""The proxy's route policy, kept honest (issue 13, item 1): only the read routes of the allow-list reach the
cluster while writes are off, and the cluster receives exactly the path the policy judged.

Over real HTTP: the proxy under uvicorn with `nirbridge serve`'s own server config, in front of a stdlib HTTP
server that records each request line as it came over the socket (tests/recording_upstream.py). Requests go
out over bare sockets, so that `..`, `%2e%2e` and `%2F` reach the proxy as written (curl --path-as-is).

The references are the test's own: which paths read one way (`_reading`: RFC 3986 decoding and dot-segment
removal, restated here), and which routes only read (`_READ_ROUTE`: OpenSearch's read APIs as regular
expressions over the decoded path), never the proxy's functions.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from recording_upstream import ProxyServer, RecordingUpstream, raw_request

from nirbridge.connector.proxy.cluster import Cluster
from nirbridge.connector.proxy.errors import BadRequest
from nirbridge.connector.proxy.paths import check_index_expression, check_path, index_path
from nirbridge.connector.proxy.policy import is_read_only
from nirbridge.connector.settings import Settings

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
# path segments an attacker or a careless client writes: API names, ids, and every spelling of a dot
# segment or a separator (raw, percent-encoded, mixed case)
PIECES = [
    "idx", "other", "idx,other", "w", "1", "_all", "_search", "scroll", "point_in_time", "template", "_doc",
    "_bulk", "_update", "_mapping", "_aliases", "_settings", "_count", "_msearch", "_mget", "_explain",
    "_delete_by_query", "_validate", "query", "_render", "_termvectors", "_create", "_source",
    "_flush", "_refresh",
    ".", "..", "%2e", "%2E", "%2e%2e", "%2E%2e", "%2e%2E", ".%2e", "%2E.", "...", "a.b", "%2F", "%2f",
    "..%2F", "%2e%2e%2f_doc", "%5C", "%5c", "%5Fdoc", "%5fbulk", "%5F%5Fx", "a%00b", "%0a", "%7F", "%25",
    "%252e%252e", "%C0%AE", "%E2%80%AE", "caf%C3%A9", "%ZZ", "%2", "",
]  # fmt: skip
# the same without the tricks, drawn as often: paths that should reach the cluster get their share
CLEAN = [piece for piece in PIECES if piece and "%" not in piece and "." not in piece]
QUERIES = ["", "?pretty", "?scroll_id=_all", "?scroll_id=abc", "?source=%7B%7D", "?q=a%2F..%2F"]
BODIES = [b"", b"{}", b'{"scroll_id": ["abc"]}', b'{"scroll_id": "_all"}', b'{"pit_id": ["_all"]}',
          b'{"scroll_id": "\\u005fall"}', b"scroll_id: _all", b'{"query": {"match_all": {}}}']  # fmt: skip

_ID = r"[^_/][^/]*"
_READ_ROUTE = re.compile(  # POST routes that read: OpenSearch's read APIs after zero or more index names
    rf"(?:/(?:_all|{_ID}))*/(?:_search(?:/scroll(?:/{_ID})?|/point_in_time|/template)?|_count|_msearch"
    rf"(?:/template)?|_mget|_field_caps|_validate/query|_explain/{_ID}|_analyze|_termvectors(?:/{_ID})?"
    rf"|_mtermvectors|_rank_eval|_render/template(?:/{_ID})?)/?"
)
_ACTING_GET = re.compile(rf"(?:/(?:_all|{_ID}))*/(?:_flush|_refresh)(?:/.*)?")  # GET routes that act
_RELEASE = re.compile(r"/_search/(?:scroll(?:/[^/]+)?|point_in_time)/?")


def _reading(raw: str) -> list[str] | None:
    """The segments every reader finds in `raw` (a percent-encoded path), or None when two readers could
    disagree: a dot segment before or after decoding, a separator or a control character once decoded, an
    empty segment, a malformed escape or bytes that are not UTF-8."""
    if not raw.startswith("/") or re.search(r"%(?![0-9A-Fa-f]{2})|[\x00-\x20\x7f\\]", raw):
        return None
    segments = raw[1:].split("/")
    if "" in segments[:-1]:
        return None
    decoded = []
    for segment in segments:
        try:
            text = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            return None
        if text in (".", "..") or "/" in text or "\\" in text:
            return None
        if any(unicodedata.category(char) == "Cc" for char in text):
            return None
        decoded.append(text)
    return decoded


def _only_reads(method: str, path: str, query: str, body: bytes) -> bool:
    """The reference policy: GET and HEAD, but for `_flush` and `_refresh`; POST to a read route; DELETE of
    named scrolls and points in time, never `_all` (in the path, the query or the body) and never a body that
    is not JSON."""
    if method in ("GET", "HEAD"):
        return not _ACTING_GET.fullmatch(path)
    if method == "POST":
        return bool(_READ_ROUTE.fullmatch(path))
    if method != "DELETE" or not _RELEASE.fullmatch(path) or "source=" in query:
        return False
    if path.rstrip("/").endswith("/_all") or "scroll_id=_all" in query:
        return False
    if body.strip() and (not body.lstrip().startswith(b"{") or b"_all" in body or b"\\u" in body):
        return False
    return True


@pytest.fixture(scope="module")
def proxy(upstream: RecordingUpstream) -> Iterator[ProxyServer]:
    server = ProxyServer(Settings(url=upstream.url, proxy_rerank_model="no-model"), reranker=None)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def writer(upstream: RecordingUpstream) -> Iterator[ProxyServer]:
    server = ProxyServer(Settings(url=upstream.url, proxy_allow_writes=True), reranker=None)
    yield server
    server.stop()


def _error_type(answer: Any) -> str:
    if not answer.body:  # an answer to HEAD: the status alone
        return "(no body)"
    body = answer.json()
    assert body["status"] == answer.status and body["error"]["root_cause"][0]["type"] == body["error"]["type"]
    return str(body["error"]["type"])


# --- the campaign: any method x any path, over the real server ---


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(METHODS),
    segments=st.lists(st.sampled_from(PIECES) | st.sampled_from(CLEAN), min_size=0, max_size=6),
    query=st.sampled_from(QUERIES),
    body=st.sampled_from(BODIES),
)
def test_only_read_routes_reach_the_cluster_and_exactly_as_checked(
    proxy: ProxyServer, upstream: RecordingUpstream, method: str, segments: list[str], query: str, body: bytes
) -> None:
    path = "/" + "/".join(segments)
    upstream.clear()
    answer = raw_request(proxy.url, method, path + query, body)
    reading = _reading(path)
    event(f"answered {answer.status}")  # --hypothesis-show-statistics: how the campaign split
    assert answer.status < 500, (method, path, answer.body)
    if reading is None:  # ambiguous: refused before any route, nothing forwarded
        assert answer.status == 400 and _error_type(answer) in ("illegal_argument_exception", "(no body)")
        assert upstream.seen == []
        return
    decoded = "/" + "/".join(reading)
    if not _only_reads(method, decoded, query, body):
        assert answer.status == 403 and _error_type(answer) in ("security_exception", "(no body)"), path
        assert upstream.seen == []
        return
    assert answer.status == 200, (method, path, answer.body)
    assert [(seen.method, seen.target) for seen in upstream.seen] == [(method, path + query)]


def test_the_campaign_covers_every_outcome(proxy: ProxyServer, upstream: RecordingUpstream) -> None:
    # the reference sorts some of each piece of the campaign's alphabet into each outcome (no empty class)
    for method, path, status in [
        ("POST", "/idx/_search/scroll/../../_doc/w", 400),
        ("POST", "/idx/_search/scroll", 200),
        ("POST", "/idx/_doc/w", 403),
        ("DELETE", "/_search/scroll/abc", 200),
        ("GET", "/idx/_refresh", 403),  # OpenSearch refreshes and flushes on GET too
        ("GET", "/_flush", 403),
        ("GET", "/idx/_mapping", 200),
    ]:
        assert raw_request(proxy.url, method, path, b"{}").status == status, path


# --- the reported bypasses, one by one (each passed on before the fix) ---


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", "/idx/_search/scroll/../../_doc/w"),  # issue 13: answered 201, a document written
        ("DELETE", "/_search/scroll/../../idx"),  # issue 13: the index deleted
        ("POST", "/idx/_search/scroll/%2e%2e/%2E%2e/_bulk"),
        ("POST", "/idx/_search/scroll/.%2E/%2e./_update/1"),
        ("PUT", "/idx/_search/./../_mapping"),
        ("POST", "/_search/scroll/..%2F..%2F_aliases"),
        ("DELETE", "/_search/scroll/%2e%2e%2f%2e%2e%2fidx"),
        ("POST", "/idx%2F_doc/w"),
        ("POST", "/idx%5C_doc/w"),
        ("POST", "/idx/_search\\..\\_doc"),
        ("POST", "/idx//_doc/w"),
        ("POST", "/idx/_search/a%00b"),
        ("GET", "/idx/_search/%ZZ"),
    ],
)
def test_ambiguous_paths_are_400_and_never_forwarded(
    proxy: ProxyServer, writer: ProxyServer, upstream: RecordingUpstream, method: str, target: str
) -> None:
    for server in (proxy, writer):  # refused even where writes are allowed: no path is read two ways
        upstream.clear()
        answer = raw_request(server.url, method, target, b"{}")
        assert answer.status == 400 and _error_type(answer) == "illegal_argument_exception", answer.body
        assert "the request path" in answer.json()["error"]["reason"]
        assert upstream.seen == [], target


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("/_search/scroll/_all", b""),
        ("/_search/point_in_time/_all", b""),
        ("/_search/scroll", b'{"scroll_id": ["_all"]}'),
        ("/_search/scroll", b'{"scroll_id": "abc,_all"}'),
        ("/_search/scroll", b'{"scroll_id": "\\u005fall"}'),
        ("/_search/scroll", b'{"scroll_id": "_all", "scroll_id": []}'),  # a duplicate key hides nothing
        ("/_search/point_in_time", b'{"pit_id": "_all"}'),
        ("/_search/scroll?scroll_id=_all", b""),
        ("/_search/scroll?source=%7B%22scroll_id%22%3A%22_all%22%7D", b""),
        ("/_search/scroll", b"scroll_id: _all"),  # YAML: unreadable here, so not read-only
        ("/idx/_search/scroll", b'{"scroll_id": ["abc"]}'),
        ("/_search/point_in_time/abc", b""),
    ],
)
def test_releasing_every_reader_needs_writes(
    proxy: ProxyServer, writer: ProxyServer, upstream: RecordingUpstream, target: str, body: bytes
) -> None:
    upstream.clear()
    refused = raw_request(proxy.url, "DELETE", target, body, {"content-type": "application/json"})
    assert refused.status == 403 and _error_type(refused) == "security_exception", refused.body
    assert "NIRBRIDGE_PROXY_ALLOW_WRITES" in refused.json()["error"]["reason"] and upstream.seen == []
    allowed = raw_request(writer.url, "DELETE", target, body, {"content-type": "application/json"})
    assert allowed.status == 200 and [(s.method, s.target, s.body) for s in upstream.seen] == [
        ("DELETE", target, body)
    ]


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("/_search/scroll", b'{"scroll_id": ["DXF1ZXJ5QW5kRmV0Y2gBAAAAAAAAAD4WYm9laVYtZndUQlNsdDcwakFM"]}'),
        ("/_search/scroll", b'{"scroll_id": "abc"}'),
        ("/_search/scroll/abc", b""),
        ("/_search/point_in_time", b'{"pit_id": ["o463QQEPbXktaW5kZXgtMDAwMDAx"]}'),
        ("/_search/scroll?scroll_id=abc", b""),
    ],
)
def test_releasing_named_readers_still_passes(
    proxy: ProxyServer, upstream: RecordingUpstream, target: str, body: bytes
) -> None:
    upstream.clear()
    answer = raw_request(proxy.url, "DELETE", target, body, {"content-type": "application/json"})
    assert answer.status == 200, answer.body
    assert [(seen.method, seen.target, seen.body) for seen in upstream.seen] == [("DELETE", target, body)]


def test_a_reranked_search_forwards_the_checked_path(proxy: ProxyServer, upstream: RecordingUpstream) -> None:
    body = b'{"query": {"match": {"title": "statins"}}, "size": 1, "ext": {"rerank": {"window": 5}}}'
    upstream.clear()
    answer = raw_request(proxy.url, "POST", "/idx,other/_search?routing=a%2Cb", body)
    assert answer.status == 200 and answer.json()["nirbridge"]["degraded"] is True  # no reranker here
    forwarded = [(seen.method, seen.target) for seen in upstream.seen]
    assert forwarded == [("POST", "/idx,other/_search?routing=a%2Cb")]
    upstream.clear()
    for target in ("/idx/_search/../_search", "/%2e%2e/_search"):
        assert raw_request(proxy.url, "POST", target, body).status == 400
    assert upstream.seen == []


@pytest.mark.parametrize(
    ("index", "kind"),
    [
        ("a%3Fb", "invalid_index_name_exception"),  # `?`: would end the path of /{index}/_mapping
        ("a%23b", "invalid_index_name_exception"),
        ("a%20b", "invalid_index_name_exception"),
        ("_bulk", "invalid_index_name_exception"),
        ("idx,_bulk", "invalid_index_name_exception"),
        ("%2e%2e", "illegal_argument_exception"),  # a dot segment: refused before the route
        ("a%2F..%2F_bulk", "illegal_argument_exception"),
    ],
)
def test_the_nirbridge_search_index_must_name_indices(
    proxy: ProxyServer, upstream: RecordingUpstream, index: str, kind: str
) -> None:
    upstream.clear()
    answer = raw_request(proxy.url, "POST", f"/{index}/_nirbridge/search", b'{"q": "statins"}')
    assert answer.status == 400 and _error_type(answer) == kind, answer.body
    assert upstream.seen == []


# --- the forwarding itself: httpx would rewrite a path, the cluster client sends it byte for byte ---


def test_httpx_drops_dot_segments_which_is_why_the_target_is_sent_as_is() -> None:
    # the mechanism of the bypass: what the old proxy handed httpx is not what httpx put on the wire
    assert httpx.URL("http://h/idx/_search/scroll/../../_doc/w").raw_path == b"/idx/_doc/w"


def test_the_cluster_client_sends_the_path_byte_for_byte(upstream: RecordingUpstream) -> None:
    async def run() -> None:
        cluster = Cluster(upstream.url + "/prefix/")
        try:
            for path in ("/i/a%2eb/c.d", "/i/_doc/%5B1%5D", "/caf%C3%A9/_search", "/i/_search/"):
                upstream.clear()
                response = await cluster.send("GET", path, query=b"q=%2e%2e&x=1")
                assert response.status_code == 200
                assert [seen.target for seen in upstream.seen] == [f"/prefix{path}?q=%2e%2e&x=1"]
            upstream.clear()
            await cluster.send("GET", "/i/[1]", params=[("a", "b c")])  # encoded here, once
            assert [seen.target for seen in upstream.seen] == ["/prefix/i/%5B1%5D?a=b+c"]
            for bad in ("/i/../x", "/i/%2e%2E/x", "/i/a%2Fb", "i/_search"):  # the last guard before the wire
                with pytest.raises(BadRequest):
                    await cluster.send("POST", bad)
        finally:
            await cluster.close()

    asyncio.run(run())


# --- the pure functions, on any input ---

# characters and escapes that make or break segments: dots, separators, escapes (whole, cut, mixed case)
_PATH_CHARS = st.sampled_from(list("/.%2eEfF5cC0aA_\\x\x00") + ["%2e", "%2F", "%5C", "%00", "%C3%A9", "%C3"])


@settings(max_examples=500, deadline=None)
@given(st.lists(_PATH_CHARS, max_size=14).map("".join))
def test_check_path_refuses_exactly_the_ambiguous_and_keeps_the_rest_as_is(text: str) -> None:
    path = "/" + text
    reading = _reading(path)
    try:
        checked = check_path(path.encode("ascii"))
    except BadRequest as error:
        assert reading is None, (path, error.reason)
        assert error.status == 400
        return
    assert reading is not None, path
    assert checked.raw == path  # a path in RFC 3986 form goes on exactly as it came
    assert checked.decoded == "/" + "/".join(reading)
    assert check_path(checked.raw) == checked  # normalised once: checking again changes nothing
    # httpx leaves the checked form alone (no dot segment to drop, nothing to encode)
    assert httpx.URL("http://h" + checked.raw).raw_path == checked.raw.encode("ascii")


def test_check_path_encodes_what_rfc_3986_does_not_allow_and_decodes_the_same() -> None:
    checked = check_path("/caf\u00e9/_doc/a[1]".encode())
    assert checked.raw == "/caf%C3%A9/_doc/a%5B1%5D" and checked.decoded == "/caf\u00e9/_doc/a[1]"


_NAMES = st.sampled_from(["_search", "scroll", "point_in_time", "_all", "abc", "_all,abc", "idx", "_doc", ""])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_NAMES, max_size=4),
    st.lists(st.tuples(st.sampled_from(["scroll_id", "pit_id", "source", "pretty"]), _NAMES), max_size=2),
    st.one_of(
        st.none(),
        st.lists(_NAMES, max_size=3),
        st.dictionaries(st.sampled_from(["scroll_id", "pit_id"]), st.lists(_NAMES, max_size=3)),
    ),
)
def test_no_delete_that_names_all_is_read_only(
    segments: list[str], params: list[tuple[str, str]], ids: Any
) -> None:
    path = "/" + "/".join(segments)
    body = None if ids is None else json.dumps(ids).encode()
    in_path = any("_all" in part.split(",") for part in segments[2:])
    in_params = any(
        name == "source" or (name in ("scroll_id", "pit_id") and "_all" in value.split(","))
        for name, value in params
    )
    if in_path or in_params or (body is not None and b"_all" in body):
        assert not is_read_only("DELETE", path, params, body)


def test_post_read_routes_have_exactly_their_shape() -> None:
    assert is_read_only("POST", "/_search/scroll/abc") and is_read_only("POST", "/a/_explain/1")
    assert not is_read_only("POST", "/_search/scroll/abc/_doc")
    assert not is_read_only("POST", "/a/_explain/1/_update") and not is_read_only("POST", "/a/_count/x")


def test_index_expressions_and_their_paths() -> None:
    expression = "logs-*,-logs-old,.hidden,_all,remote:idx"
    assert check_index_expression(expression) == expression
    assert index_path("a,b*", "_mapping") == "/a,b*/_mapping"
    assert index_path("caf\u00e9", "_mget") == "/caf%C3%A9/_mget"
    for bad in ("a?b", "a#b", "a b", "a/b", "a\\b", "", ".", "..", "_bulk", "a,,b", "+a", "a\nb"):
        with pytest.raises(BadRequest):
            check_index_expression(bad)

