"""Issue 13, items 2, 10 and 11: every write validated as OpenSearch validates it before it is acknowledged,
recovery that survives a bad operation, the request limits, and 400s where the engine answered 5xx.

Each test talks to a real engine process over HTTP (raw httpx, so that malformed bodies reach it as sent).
The expected errors are OpenSearch's (BulkRequestParser, the field mappers, DateUtils, MapperService's limits,
Lucene's FeatureField), as cited next to each check in the engine.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from nirbridge.connector.engine_process import EngineProcess, running_engine

NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def http(engine: EngineProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=engine.url, timeout=60) as client:
        yield client


def _error(response: httpx.Response, status: int, error_type: str, reason: str = "") -> dict:
    """Assert an OpenSearch-shaped error; return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert body["error"]["type"] == error_type, body
    assert body["error"]["root_cause"][0]["type"] == error_type
    assert reason in body["error"]["reason"], body["error"]["reason"]
    return body


def _bulk(http: httpx.Client, *lines: object, raw: bytes | None = None) -> httpx.Response:
    body = raw if raw is not None else b"".join(orjson.dumps(line) + b"\n" for line in lines)
    return http.post("/_bulk", content=body, headers=NDJSON)


def _count(http: httpx.Client, index: str) -> int:
    http.post(f"/{index}/_refresh").raise_for_status()
    return http.get(f"/{index}/_count").json()["count"]


# ----- item 2: bulk metadata is typed as OpenSearch reads it, before anything is written -----------------


@pytest.mark.parametrize("routing", [{"x": 1}, ["a", "b"]])
def test_bulk_routing_that_is_not_a_value_refuses_the_request(http: httpx.Client, routing: object) -> None:
    token = "START_OBJECT" if isinstance(routing, dict) else "START_ARRAY"
    index = f"routed-{token.lower()}"
    http.put(f"/{index}", json={}).raise_for_status()
    response = _bulk(
        http,
        {"index": {"_index": index, "_id": "ok"}}, {"t": "written before the bad line?"},
        {"index": {"_index": index, "_id": "bad", "routing": routing}}, {"t": "x"},
    )
    _error(response, 400, "illegal_argument_exception",
           f"Malformed action/metadata line [3], expected a simple value for field [routing] but found "
           f"[{token}]")
    # The whole request failed at parsing, as in OpenSearch: nothing was written, and refreshes still work.
    assert _count(http, index) == 0
    assert http.post(f"/{index}/_refresh").status_code == 200


def test_bulk_metadata_scalars_are_read_as_text(http: httpx.Client) -> None:
    response = _bulk(http, {"index": {"_index": 5, "_id": 7, "routing": 3}}, {"t": "numbers as text"})
    assert response.status_code == 200, response.text
    item = response.json()["items"][0]["index"]
    assert (item["_index"], item["_id"], item["status"]) == ("5", "7", 201)
    assert http.get("/5/_doc/7", params={"routing": "3"}).json()["_routing"] == "3"


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ({"_index": {"a": 1}}, "expected a simple value for field [_index] but found [START_OBJECT]"),
        ({"_index": "meta", "_id": {"a": 1}}, "for field [_id] but found [START_OBJECT]"),
        ({"_index": "meta", "_id": ["a"]}, "expected a simple value for field [_id] but found [START_ARRAY]"),
        ({"_index": "meta", "_type": "_doc"}, "line [1] contains an unknown parameter [_type]"),
        ({"_index": "meta", "version": "abc", "version_type": "external"}, 'For input string: "abc"'),
        ({"_index": "meta", "if_seq_no": True, "if_primary_term": 1}, "not numeric"),
        ({"_index": "meta", "version": 2**63, "version_type": "external"}, "out of range for a long"),
        ({"_index": "meta", "require_alias": "yes"}, "as only [true] or [false] are allowed"),
        ({"_index": "meta", "version_type": "force"}, "No version type match [force]"),
        ({"_index": "meta", "op_type": "upsert"}, "opType must be 'create' or 'index', found: [upsert]"),
    ],
)
def test_bulk_metadata_of_the_wrong_type_is_a_400(http: httpx.Client, meta: dict, reason: str) -> None:
    _error(_bulk(http, {"index": meta}, {"t": "x"}), 400, "illegal_argument_exception", reason)


def test_bulk_update_with_a_version_is_refused(http: httpx.Client) -> None:
    response = _bulk(http, {"update": {"_index": "meta", "_id": "1", "version": 3}}, {"doc": {"t": "x"}})
    _error(response, 400, "illegal_argument_exception", "Update requests do not support versioning")


def test_bulk_body_must_end_with_a_newline_and_hold_a_request(http: httpx.Client) -> None:
    unterminated = b'{"index":{"_index":"nl","_id":"1"}}\n{"t":"x"}'
    _error(_bulk(http, raw=unterminated), 400, "illegal_argument_exception",
           "The bulk request must be terminated by a newline [\\n]")
    _error(_bulk(http, raw=b""), 400, "parse_exception", "request body is required")
    _error(_bulk(http, raw=b"\n\n"), 400, "action_request_validation_exception",
           "Validation Failed: 1: no requests added;")
    assert http.head("/nl").status_code == 404  # nothing was written


def test_bulk_pipeline_that_does_not_exist_fails_its_item(http: httpx.Client) -> None:
    response = _bulk(
        http,
        {"index": {"_index": "piped", "_id": "1", "pipeline": "enrich"}}, {"t": "x"},
        {"index": {"_index": "piped", "_id": "2", "pipeline": "_none"}}, {"t": "y"},
    )
    items = response.json()["items"]
    assert items[0]["index"]["status"] == 400
    assert items[0]["index"]["error"]["reason"] == "pipeline with id [enrich] does not exist"
    assert items[1]["index"]["status"] == 201


# ----- item 2: field values as the mappers validate them -------------------------------------------------

FIELDS = {
    "nanos": {"type": "date_nanos"},
    "day": {"type": "date"},
    "f": {"type": "float"},
    "h": {"type": "half_float"},
    "s": {"type": "scaled_float", "scaling_factor": 100},
    "v": {"type": "knn_vector", "dimension": 2},
    "addr": {"type": "ip"},
    "k": {"type": "keyword"},
    "feats": {"type": "rank_features"},
    "off": {"type": "object", "enabled": False},
}


@pytest.fixture(scope="module")
def typed(http: httpx.Client) -> str:
    http.put("/typed", json={"mappings": {"properties": FIELDS}}).raise_for_status()
    return "typed"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"nanos": "2300-01-01T00:00:00Z"}, "is after 2262-04-11T23:47:16.854775807 and cannot be stored"),
        ({"nanos": "1960-01-01T00:00:00Z"}, "is before the epoch in 1970 and cannot be stored"),
        ({"day": 10**30}, "failed to parse date field"),
        ({"f": 1e39}, "[float] supports only finite values, but got [Infinity]"),
        ({"h": 70000}, "[half_float] supports only finite values, but got [70000.0]"),
        ({"v": []}, "Vector dimension mismatch. Expected: 2, Given: 0"),
        ({"v": [1.0, 1e39]}, "KNN vector values cannot be NaN or Infinity"),
        ({"addr": "not an ip"}, "'not an ip' is not an IP string literal."),
        ({"feats": {"a": 1e39}}, "finite"),
        ({"feats": {"a": -1}}, "positive"),
    ],
)
def test_values_a_mapper_refuses_are_a_400_before_anything_is_logged(
    http: httpx.Client, typed: str, doc: dict, reason: str
) -> None:
    response = http.put(f"/{typed}/_doc/bad", json=doc)
    body = _error(response, 400, "mapper_parsing_exception")
    assert reason in body["error"]["caused_by"]["reason"], body


def test_an_immense_keyword_is_refused_as_lucene_refuses_it(http: httpx.Client, typed: str) -> None:
    response = http.put(f"/{typed}/_doc/big", json={"k": "x" * 40_000})
    _error(response, 400, "illegal_argument_exception", "Document contains at least one immense term")


def test_valid_edge_values_are_accepted_and_searchable(http: httpx.Client, typed: str) -> None:
    doc = {"nanos": "2262-04-11T23:47:16.854775807Z", "day": 2**62, "f": 3.4e38, "h": 65504, "s": 1e308,
           "v": [1.5, -2.0], "addr": "::1", "feats": {"a": 1e-30, "b": None}, "k": "x" * 300}
    response = http.put(f"/{typed}/_doc/edge", json=doc, params={"refresh": "true"})
    assert response.status_code == 201, response.text
    hits = http.post(f"/{typed}/_search", json={"query": {"ids": {"values": ["edge"]}},
                                                  "sort": [{"day": "asc"}], "docvalue_fields": ["day"]})
    assert hits.status_code == 200, hits.text
    assert hits.json()["hits"]["hits"][0]["fields"]["day"] == ["+146140482-04-24T15:36:27.904Z"]


def test_scaled_float_needs_a_positive_scaling_factor(http: httpx.Client) -> None:
    for factor in (0, -1, "abc"):
        response = http.put("/scaled-bad", json={
            "mappings": {"properties": {"s": {"type": "scaled_float", "scaling_factor": factor}}}})
        _error(response, 400, "mapper_parsing_exception", "[scaling_factor] must be a positive number")


# ----- item 11: nesting, encodings, queries, names --------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_deep_documents_are_refused_not_a_recursion_error(http: httpx.Client, typed: str) -> None:
    # ~400 levels made the mapping walk raise RecursionError (500); orjson parses up to 1024 levels.
    for depth in (400, 1000):
        response = http.post("/deep/_doc/1", content=_nested(depth), headers=JSON)
        _error(response, 400, "parse_exception", "nesting depth")
    # Under an object that is not mapped, 300 levels could not be written to the translog (500 after the
    # document was applied in memory).
    response = http.put(f"/{typed}/_doc/deep", content=b'{"off":' + _nested(300) + b"}",
                        headers={"content-type": "application/json"})
    _error(response, 400, "parse_exception", "nesting depth")
    assert http.get(f"/{typed}/_doc/deep").status_code == 404


def test_dynamic_objects_deeper_than_the_depth_limit_are_refused(http: httpx.Client) -> None:
    response = http.post("/dyn-deep/_doc/1", content=_nested(21), headers=JSON)
    # The object at depth 21 (the root counts as 1) is the first one refused.
    _error(response, 400, "illegal_argument_exception",
           f"Limit of mapping depth [20] has been exceeded due to object field [{'.'.join('a' * 20)}]")
    assert http.post("/dyn-deep/_doc/2", content=_nested(20), headers=JSON).status_code == 201


def test_gzip_header_on_a_body_that_is_not_gzip_is_a_400(http: httpx.Client) -> None:
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    response = http.put("/zipped/_doc/1", content=b'{"t": "plain"}', headers=headers)
    _error(response, 400, "illegal_argument_exception", "not valid [gzip] content")
    truncated = gzip.compress(b'{"t": "cut"}')[:-6]
    _error(http.put("/zipped/_doc/1", content=truncated, headers=headers), 400, "illegal_argument_exception")
    ok = http.put("/zipped/_doc/1", content=gzip.compress(b'{"t": "zipped"}'), headers=headers)
    assert ok.status_code == 201, ok.text
    deflated = http.put("/zipped/_doc/2", content=zlib.compress(b'{"t": "deflated"}'),
                        headers={**headers, "content-encoding": "deflate"})
    assert deflated.status_code == 201, deflated.text


@pytest.fixture(scope="module")
def ranked(http: httpx.Client) -> str:
    http.put("/ranked", json={"mappings": {"properties": {"pagerank": {"type": "rank_feature"},
                                                         "sparse": {"type": "rank_features"}}}}
             ).raise_for_status()
    http.put("/ranked/_doc/1", json={"pagerank": 2.0, "sparse": {"a": 1.0}}, params={"refresh": "true"}
             ).raise_for_status()
    return "ranked"


@pytest.mark.parametrize(
    ("function", "reason"),
    [
        ({"saturation": {"pivot": -1}}, "pivot must be > 0, got: -1.0"),
        ({"log": {"scaling_factor": 0}}, "scalingFactor must be >= 1, got: 0.0"),
        ({"sigmoid": {"pivot": 1, "exponent": -1}}, "exp must be > 0, got: -1.0"),
        ({"sigmoid": {"pivot": 0, "exponent": 1}}, "pivot must be > 0, got: 0.0"),
    ],
)
def test_rank_feature_parameters_out_of_range_are_a_400(
    http: httpx.Client, ranked: str, function: dict, reason: str
) -> None:
    response = http.post(f"/{ranked}/_search",
                         json={"query": {"rank_feature": {"field": "pagerank", **function}}})
    _error(response, 400, "query_shard_exception", reason)


def test_neural_sparse_weight_that_overflows_a_float_is_a_400(http: httpx.Client, ranked: str) -> None:
    query = {"query": {"neural_sparse": {"sparse": {"query_tokens": {"a": 1e39}}}}}
    _error(http.post(f"/{ranked}/_search", json=query), 400, "query_shard_exception",
           "weight must be in (0, 64.0]")
    ok = http.post(f"/{ranked}/_search",
                   json={"query": {"neural_sparse": {"sparse": {"query_tokens": {"a": 2}}}}})
    assert ok.json()["hits"]["hits"][0]["_score"] is not None


@pytest.mark.parametrize("name", ["a%00b", "a%0Ab", "a%0Db"])
def test_index_names_with_control_characters_are_refused(http: httpx.Client, name: str) -> None:
    _error(http.put(f"/{name}", json={}), 400, "invalid_index_name_exception", "control characters")


# ----- item 10: mapping limits ---------------------------------------------------------------------------


def _fields(n: int) -> dict:
    return {"properties": {f"f{i}": {"type": "keyword"} for i in range(n)}}


def test_total_fields_limit_on_create_put_mapping_and_dynamic_updates(http: httpx.Client) -> None:
    reason = "Limit of total fields [1000] has been exceeded"
    _error(http.put("/wide", json={"mappings": _fields(1001)}), 400, "illegal_argument_exception", reason)
    http.put("/wide", json={"mappings": _fields(999)}).raise_for_status()
    _error(http.put("/wide/_mapping", json={"properties": {"x": {"type": "text", "fields": {"k": {
        "type": "keyword"}}}}}), 400, "illegal_argument_exception", reason)
    assert http.put("/wide/_doc/1", json={"new": 1}).status_code == 201  # the 1000th field
    _error(http.put("/wide/_doc/2", json={"newer": 1}), 400, "illegal_argument_exception", reason)
    assert "newer" not in http.get("/wide/_mapping").json()["wide"]["mappings"]["properties"]
    # The limit is a dynamic index setting, validated as a long >= 0.
    _error(http.put("/wide/_settings", json={"index.mapping.total_fields.limit": "many"}), 400,
           "illegal_argument_exception", "Failed to parse value [many]")
    http.put("/wide/_settings", json={"index.mapping.total_fields.limit": 1001}).raise_for_status()
    assert http.put("/wide/_doc/2", json={"newer": 1}).status_code == 201


def test_depth_limit_on_create_and_as_a_setting(http: httpx.Client) -> None:
    mapping = {"properties": {"a": {"properties": {"b": {"properties": {"c": {"type": "keyword"}}}}}}}
    response = http.put("/shallow", json={"settings": {"index.mapping.depth.limit": 2}, "mappings": mapping})
    _error(response, 400, "illegal_argument_exception",
           "Limit of mapping depth [2] has been exceeded due to object field [a.b]")
    http.put("/shallow", json={"settings": {"index.mapping.depth.limit": 3}, "mappings": mapping}
             ).raise_for_status()
    _error(http.put("/shallow/_settings", json={"index.mapping.depth.limit": 0}), 400,
           "illegal_argument_exception", "must be >= 1")


# ----- item 10: request size, after inflation too ----------------------------------------------------------


@pytest.fixture(scope="module")
def small_engine(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[EngineProcess]:
    monkeypatch_module.setenv("NIRBRIDGE_ENGINE_MAX_CONTENT_LENGTH", "1mb")
    with running_engine() as process:
        yield process


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_bodies_over_max_content_length_are_a_413_also_once_inflated(small_engine: EngineProcess) -> None:
    with httpx.Client(base_url=small_engine.url, timeout=60) as client:
        headers = {"content-type": "application/json"}
        over = b'{"t": "' + b"x" * (1024 * 1024) + b'"}'
        response = client.put("/big/_doc/1", content=over, headers=headers)
        assert (response.status_code, response.content) == (413, b"")
        # Chunked, so that no Content-Length announces it: refused while it is read.
        response = client.put("/big/_doc/1", content=iter([over[:1000], over[1000:]]), headers=headers)
        assert response.status_code == 413
        # 64 KB of gzip that inflates to 64 MB: refused once 1 MB has been inflated.
        bomb = gzip.compress(b'{"t": "' + b" " * (64 * 1024 * 1024) + b'"}', compresslevel=9)
        assert len(bomb) < 1024 * 1024
        response = client.put("/big/_doc/1", content=bomb, headers={**headers, "content-encoding": "gzip"})
        assert response.status_code == 413
        # Under the limit, compressed or not, the engine answers as usual (and the connection still works).
        fine = client.put("/big/_doc/1", content=gzip.compress(b'{"t": "small"}'),
                          headers={**headers, "content-encoding": "gzip"})
        assert fine.status_code == 201, fine.text


# ----- item 2: recovery quarantines a bad operation instead of failing the node ----------------------------


def test_a_bad_logged_operation_is_quarantined_and_the_rest_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_engine(data_dir=data) as process, httpx.Client(base_url=process.url, timeout=60) as client:
        mapping = {"mappings": {"properties": {"n": {"type": "date_nanos"}}}}
        client.put("/good", json=mapping).raise_for_status()
        client.put("/other", json={}).raise_for_status()
        for i in range(3):
            client.put(f"/good/_doc/{i}", json={"n": "2020-01-01T00:00:00Z"}).raise_for_status()
        client.put("/other/_doc/1", json={"t": "untouched"}).raise_for_status()
    translog = next(p for p in data.glob("indices/*/translog.ndjson") if b'"2020' in p.read_bytes())
    # What an older, lenient engine acknowledged: a routing object (that brought every index down with
    # "unhashable type: 'dict'"), a date_nanos past 2262 (OverflowError), a line that is no operation.
    with open(translog, "ab") as handle:
        handle.write(b'{"o":"i","id":"r","s":{"t":"x"},"q":3,"v":1,"r":{"x":1}}\n')
        handle.write(b'{"o":"i","id":"late","s":{"n":"2300-01-01T00:00:00Z","t":"kept"},"q":4,"v":1,"r":null}\n')
        handle.write(b"[1, 2, 3]\n")
        handle.write(b'{"o":"i","id":"3","s":{"n":"2021-01-01T00:00:00Z"},"q":5,"v":1,"r":null}\n')
    for _ in range(2):  # twice: a restart after the quarantine neither fails nor duplicates it
        with running_engine(data_dir=data) as again, httpx.Client(base_url=again.url, timeout=60) as client:
            hits = client.post("/good/_search", json={"size": 100}).json()["hits"]["hits"]
            # The document with a value its field cannot hold is replayed without that value (reported in
            # the log); the operations that cannot be applied at all are set aside.
            assert sorted(h["_id"] for h in hits) == ["0", "1", "2", "3", "late"]
            in_range = client.post("/good/_search", json={"query": {"range": {"n": {"gte": "2200-01-01"}}}})
            assert in_range.json()["hits"]["total"]["value"] == 0
            assert client.get("/other/_doc/1").json()["_source"] == {"t": "untouched"}
            written = client.put("/good/_doc/new", json={"n": "2022-01-01T00:00:00Z"})
            assert written.json()["_seq_no"] > 5  # sequence numbers of skipped operations are not reused
            client.delete("/good/_doc/new").raise_for_status()
        quarantined = [orjson.loads(line) for line in (translog.parent / "translog.quarantine.ndjson")
                       .read_bytes().splitlines()]
        assert [q["id"] for q in quarantined] == ["r", None]
        assert quarantined[0]["op"]["r"] == {"x": 1}  # the operation itself is kept
        assert quarantined[1]["op"] == [1, 2, 3]


def test_replay_survives_a_mapping_that_grew_after_the_document(tmp_path: Path) -> None:
    """A document accepted under the mapping of its moment is replayed under today's: a value ignored then
    (dynamic false, an unmapped array) may not fit the field mapped since, or dynamic may be strict now."""
    data = tmp_path / "data"
    with running_engine(data_dir=data) as process, httpx.Client(base_url=process.url, timeout=60) as client:
        client.put("/grown", json={"mappings": {"dynamic": False, "properties": {"t": {"type": "text"}}}}
                   ).raise_for_status()
        first = {"t": "one", "n": "not a number", "o": "a string"}
        client.put("/grown/_doc/1", json=first).raise_for_status()
        client.put("/grown/_mapping", json={"dynamic": "strict", "properties": {
            "n": {"type": "long"}, "o": {"properties": {"k": {"type": "keyword"}}}}}).raise_for_status()
        client.put("/grown/_doc/2", json={"t": "two", "n": 2}).raise_for_status()
    with running_engine(data_dir=data) as again, httpx.Client(base_url=again.url, timeout=60) as client:
        found = client.post("/grown/_search", json={"query": {"match": {"t": "one two"}}})
        hits = found.json()["hits"]["hits"]
        assert sorted(h["_id"] for h in hits) == ["1", "2"]
        assert client.get("/grown/_doc/1").json()["_source"]["n"] == "not a number"
    assert not list(data.glob("indices/*/translog.quarantine.ndjson"))


def test_a_document_the_store_refuses_does_not_fail_every_refresh() -> None:
    from nirbridge.engine.index import DocVersion, Index, IndexSettings

    settings = IndexSettings.create({}, "mem", "uuid", 0)
    index = Index("mem", settings, {"properties": {"t": {"type": "keyword"}}})
    index.index_doc("1", {"t": "fine"})
    parsed, _ = index.mapping.parse({"t": "x"}, "2")
    parsed.terms["t"] = [{"not": "a term"}]  # what slipped through before: a value no posting can hold
    index._apply(DocVersion("2", {"t": "x"}, 1, 1, 1, parsed))
    index.refresh()
    index.refresh()
    assert sorted(index.visible) == ["1"]
    assert [q["id"] for q in index.quarantined_ops] == ["2"]


# ----- what the fuzz test found (tests/test_engine_fuzz.py) ------------------------------------------------


def test_create_index_with_aliases_that_are_not_an_object_is_a_400(http: httpx.Client) -> None:
    response = http.put("/aliased", json={"aliases": ["a"]})
    _error(response, 400, "parse_exception", "key [aliases] must be an object")


def test_root_mapping_parameters_of_the_wrong_shape_are_refused(http: httpx.Client) -> None:
    http.put("/shaped", json={}).raise_for_status()
    for update in ({"_source": []}, {"dynamic": 5}, {"dynamic": "sometimes"}, {"_meta": "x"}):
        _error(http.put("/shaped/_mapping", json=update), 400, "mapper_parsing_exception")
    assert http.post("/shaped/_search", json={}).status_code == 200  # a bad _source used to fail every search


def test_metadata_fields_inside_a_document_are_refused(http: httpx.Client) -> None:
    for field in ("_id", "_source", "_routing"):
        _error(http.put("/meta-in-doc/_doc/1", json={field: "x", "t": "y"}), 400, "mapper_parsing_exception",
               f"Field [{field}] is a metadata field and cannot be added inside a document")


def test_arrays_are_flattened_and_an_array_of_objects_maps_an_object(http: httpx.Client) -> None:
    http.put("/arrays", json={"mappings": {"properties": {"l": {"type": "long"}}}}).raise_for_status()
    doc = {"l": [[1, 2], [3, [4]]], "objs": [{"a": "x"}, None, {"a": "y"}], "dyn": [[5]]}
    assert http.put("/arrays/_doc/1", json=doc, params={"refresh": "true"}).status_code == 201
    mapping = http.get("/arrays/_mapping").json()["arrays"]["mappings"]["properties"]
    assert mapping["objs"] == {"properties": {"a": {"type": "text", "fields": {
        "keyword": {"type": "keyword", "ignore_above": 256}}}}}
    assert mapping["dyn"] == {"type": "long"}
    for query in ({"term": {"l": 4}}, {"term": {"objs.a": "y"}}, {"term": {"dyn": 5}}):
        assert http.post("/arrays/_count", json={"query": query}).json()["count"] == 1, query
    _error(http.put("/arrays/_doc/2", json={"objs": "a string"}), 400, "mapper_parsing_exception",
           "tried to parse field [objs] as object, but found a concrete value")


def test_rank_feature_sigmoid_that_overflows_a_double_is_not_a_500(http: httpx.Client, ranked: str) -> None:
    query = {"rank_feature": {"field": "pagerank", "sigmoid": {"pivot": 921, "exponent": 104}}}
    assert http.post(f"/{ranked}/_search", json={"query": query}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "error_type"),
    [
        ("POST", "/_msearch", {"content": b"[]\n{}\n", "headers": NDJSON}, "parsing_exception"),
        ("POST", "/_mget", {"json": {"docs": [{"_index": ["typed"], "_id": "1"}]}}, "parse_exception"),
        ("POST", "/_mget", {"json": {"docs": [{"_index": "typed", "_id": {"a": 1}}]}}, "parse_exception"),
        ("POST", "/typed/_search", {"json": {"query": {"match_all": {"boost": "x"}}}}, "parsing_exception"),
        ("POST", "/typed/_search", {"json": {"min_score": "x"}}, "parsing_exception"),
        ("POST", "/typed/_search", {"json": {"_source": {"includes": 5}}}, "parsing_exception"),
        ("PUT", "/_cluster/settings", {"json": {"persistent": 5}}, "x_content_parse_exception"),
        ("PUT", "/_cluster/settings", {"json": {"transient": ["a"]}}, "x_content_parse_exception"),
        ("PUT", "/_cluster/settings", {"json": {"persistant": {}}}, "x_content_parse_exception"),
        ("PUT", "/_cluster/settings", {"json": [1]}, "x_content_parse_exception"),
    ],
)
def test_reads_with_values_of_the_wrong_type_are_a_400(
    http: httpx.Client, typed: str, method: str, path: str, kwargs: dict, error_type: str
) -> None:
    _error(http.request(method, path, **kwargs), 400, error_type)
