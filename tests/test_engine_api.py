"""The engine driven by opensearch-py over HTTP, unchanged: every API the bridge and ordinary clients use."""

from __future__ import annotations

import pytest
from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import ConflictError, NotFoundError, RequestError

DOCS = [
    {
        "_id": "1",
        "title": "The quick brown fox",
        "text": "jumps over the lazy dog",
        "year": 2001,
        "tag": "animal",
        "rank": 3.0,
    },
    {
        "_id": "2",
        "title": "Brown bears",
        "text": "bears eat fish and honey in the forest",
        "year": 2010,
        "tag": "animal",
        "rank": 8.0,
    },
    {
        "_id": "3",
        "title": "Neural retrieval",
        "text": "dense vectors and learned sparse weights for search",
        "year": 2021,
        "tag": "ir",
        "rank": 20.0,
    },
    {
        "_id": "4",
        "title": "Sparse retrieval with SPLADE",
        "text": "learned term weights with expansion",
        "year": 2022,
        "tag": "ir",
        "rank": 15.0,
    },
    {
        "_id": "5",
        "title": "BM25",
        "text": "the classic probabilistic ranking function for search engines",
        "year": 1994,
        "tag": "ir",
    },
]
MAPPING = {
    "properties": {
        "title": {"type": "text", "analyzer": "english"},
        "text": {"type": "text", "analyzer": "english"},
        "year": {"type": "integer"},
        "tag": {"type": "keyword"},
        "rank": {"type": "rank_feature"},
        "sparse": {"type": "rank_features"},
        "vec": {
            "type": "knn_vector",
            "dimension": 3,
            "method": {"name": "hnsw", "space_type": "l2", "engine": "faiss"},
        },
    }
}


@pytest.fixture(scope="module")
def docs_index(client: OpenSearch) -> str:
    client.indices.create(
        index="docs",
        body={
            "settings": {"index.knn": True, "number_of_shards": 1, "number_of_replicas": 0},
            "mappings": MAPPING,
        },
    )
    actions = []
    for i, doc in enumerate(DOCS):
        source = {k: v for k, v in doc.items() if k != "_id"}
        source["sparse"] = {"neural": 1.0 + i, "search": 2.0} if i % 2 else {"sparse": 0.5 * (i + 1)}
        source["vec"] = [float(i), 0.0, 1.0]
        actions.append({"_index": "docs", "_id": doc["_id"], "_source": source})
    ok, errors = helpers.bulk(client, actions, refresh=True)
    assert ok == len(DOCS) and not errors
    return "docs"


def ids(response: dict) -> list[str]:
    return [hit["_id"] for hit in response["hits"]["hits"]]


def test_info_health_and_cat(client: OpenSearch, docs_index: str) -> None:
    info = client.info()
    assert info["version"]["distribution"] == "opensearch"
    assert info["version"]["number"].startswith("3.")
    health = client.cluster.health()
    assert health["status"] in ("green", "yellow") and health["number_of_nodes"] == 1
    rows = client.cat.indices(index="docs", format="json")
    assert rows[0]["index"] == "docs" and rows[0]["docs.count"] == "5"


def test_index_lifecycle_and_errors(client: OpenSearch) -> None:
    client.indices.create(index="life", body={"settings": {"number_of_shards": 2}})
    assert client.indices.exists(index="life")
    with pytest.raises(RequestError) as exists:
        client.indices.create(index="life")
    assert exists.value.error == "resource_already_exists_exception"
    got = client.indices.get(index="life")
    assert got["life"]["settings"]["index"]["number_of_shards"] == "2"
    client.indices.delete(index="life")
    assert not client.indices.exists(index="life")
    with pytest.raises(NotFoundError) as missing:
        client.search(index="life", body={"query": {"match_all": {}}})
    assert missing.value.status_code == 404 and missing.value.error == "index_not_found_exception"
    with pytest.raises(RequestError) as bad:
        client.indices.create(
            index="badmap", body={"mappings": {"properties": {"f": {"type": "no_such_type"}}}}
        )
    assert bad.value.error == "mapper_parsing_exception"


def test_mappings_are_additive_and_conflicts_refused(client: OpenSearch) -> None:
    client.indices.create(index="maps", body={"mappings": {"properties": {"a": {"type": "text"}}}})
    client.indices.put_mapping(index="maps", body={"properties": {"b": {"type": "rank_features"}}})
    props = client.indices.get_mapping(index="maps")["maps"]["mappings"]["properties"]
    assert props["a"] == {"type": "text"} and props["b"] == {"type": "rank_features"}
    with pytest.raises(RequestError) as conflict:
        client.indices.put_mapping(index="maps", body={"properties": {"a": {"type": "keyword"}}})
    assert conflict.value.error == "illegal_argument_exception"
    assert "cannot be changed from type [text] to [keyword]" in conflict.value.info["error"]["reason"]
    with pytest.raises(RequestError):
        client.indices.put_settings(index="maps", body={"index": {"knn": True}})  # static setting
    client.indices.put_settings(index="maps", body={"index": {"refresh_interval": "5s"}})
    settings = client.indices.get_settings(index="maps")["maps"]["settings"]["index"]
    assert settings["refresh_interval"] == "5s"


def test_document_crud_versions_and_conflicts(client: OpenSearch) -> None:
    created = client.index(index="crud", id="a", body={"x": 1})
    assert created["result"] == "created" and created["_version"] == 1
    updated = client.index(index="crud", id="a", body={"x": 2})
    assert updated["result"] == "updated" and updated["_version"] == 2
    got = client.get(index="crud", id="a")
    assert got["_source"] == {"x": 2} and got["_seq_no"] == updated["_seq_no"]
    with pytest.raises(ConflictError):
        client.create(index="crud", id="a", body={"x": 3})
    with pytest.raises(ConflictError):
        client.index(index="crud", id="a", body={"x": 3}, if_seq_no=0, if_primary_term=1)
    partial = client.update(index="crud", id="a", body={"doc": {"y": "z"}})
    assert partial["result"] == "updated"
    assert client.get(index="crud", id="a")["_source"] == {"x": 2, "y": "z"}
    noop = client.update(index="crud", id="a", body={"doc": {"y": "z"}})
    assert noop["result"] == "noop"
    upsert = client.update(index="crud", id="b", body={"doc": {"n": 1}, "doc_as_upsert": True})
    assert upsert["result"] == "created"
    with pytest.raises(NotFoundError) as missing:
        client.update(index="crud", id="nope", body={"doc": {"n": 1}})
    assert missing.value.error == "document_missing_exception"
    assert client.delete(index="crud", id="b")["result"] == "deleted"
    with pytest.raises(NotFoundError):
        client.get(index="crud", id="b")
    assert client.exists(index="crud", id="a") and not client.exists(index="crud", id="b")
    docs = client.mget(body={"docs": [{"_index": "crud", "_id": "a"}, {"_index": "crud", "_id": "b"}]})[
        "docs"
    ]
    assert docs[0]["found"] and not docs[1]["found"]


def test_near_real_time_visibility(client: OpenSearch) -> None:
    client.indices.create(index="nrt", body={"settings": {"refresh_interval": "-1"}})
    client.index(index="nrt", id="1", body={"t": "hello"})
    assert client.count(index="nrt")["count"] == 0  # written, not yet refreshed
    assert client.get(index="nrt", id="1")["found"]  # real-time get sees it
    client.indices.refresh(index="nrt")
    assert client.count(index="nrt")["count"] == 1


def test_bulk_per_item_results(client: OpenSearch) -> None:
    client.indices.create(index="bulky", body={"mappings": {"properties": {"n": {"type": "integer"}}}})
    body = [
        {"index": {"_index": "bulky", "_id": "1"}},
        {"n": 1},
        {"create": {"_index": "bulky", "_id": "1"}},
        {"n": 2},  # conflict
        {"index": {"_index": "bulky", "_id": "2"}},
        {"n": "not a number"},  # mapping error
        {"update": {"_index": "bulky", "_id": "3"}},
        {"doc": {"n": 3}, "doc_as_upsert": True},
        {"delete": {"_index": "bulky", "_id": "404"}},
        {"index": {"_index": "bulky", "_id": "4"}},
        {"n": 4},
    ]
    result = client.bulk(body=body, refresh=True)
    assert result["errors"] is True
    statuses = [next(iter(item.values()))["status"] for item in result["items"]]
    assert statuses == [201, 409, 400, 201, 404, 201]
    assert result["items"][2]["index"]["error"]["type"] == "mapper_parsing_exception"
    assert client.count(index="bulky")["count"] == 3


def test_malformed_json_and_unknown_query(client: OpenSearch, docs_index: str) -> None:
    with pytest.raises(RequestError) as unknown:
        client.search(index=docs_index, body={"query": {"no_such_query": {}}})
    assert unknown.value.error == "parsing_exception"
    with pytest.raises(RequestError):
        client.transport.perform_request("POST", f"/{docs_index}/_search", body="{not json")


def test_full_text_queries(client: OpenSearch, docs_index: str) -> None:
    result = client.search(index=docs_index, body={"query": {"match": {"text": "learned sparse search"}}})
    assert ids(result)[0] == "3"
    both = client.search(
        index=docs_index, body={"query": {"match": {"text": {"query": "learned search", "operator": "and"}}}}
    )
    assert ids(both) == ["3"]
    msm = client.search(
        index=docs_index,
        body={
            "query": {"match": {"text": {"query": "learned weights expansion", "minimum_should_match": 3}}}
        },
    )
    assert ids(msm) == ["4"]
    best = client.search(
        index=docs_index,
        body={
            "query": {
                "multi_match": {
                    "query": "sparse retrieval",
                    "fields": ["title^2", "text"],
                    "tie_breaker": 0.3,
                }
            }
        },
    )
    assert ids(best)[0] == "4"
    most = client.search(
        index=docs_index,
        body={
            "query": {"multi_match": {"query": "bears", "fields": ["title", "text"], "type": "most_fields"}}
        },
    )
    assert ids(most) == ["2"]


def test_bool_and_term_level_queries(client: OpenSearch, docs_index: str) -> None:
    query = {
        "bool": {
            "must": [{"match": {"text": "search"}}],
            "filter": [{"term": {"tag": "ir"}}, {"range": {"year": {"gte": 2000}}}],
            "must_not": [{"ids": {"values": ["4"]}}],
        }
    }
    assert ids(client.search(index=docs_index, body={"query": query})) == ["3"]
    should = {
        "bool": {"should": [{"term": {"tag": "animal"}}, {"term": {"year": 1994}}], "minimum_should_match": 1}
    }
    assert set(ids(client.search(index=docs_index, body={"query": should}))) == {"1", "2", "5"}
    terms = client.search(index=docs_index, body={"query": {"terms": {"tag": ["ir"]}}})
    assert set(ids(terms)) == {"3", "4", "5"}
    exists = client.search(index=docs_index, body={"query": {"exists": {"field": "rank"}}})
    assert set(ids(exists)) == {"1", "2", "3", "4"}


def test_neural_field_queries(client: OpenSearch, docs_index: str) -> None:
    linear = client.search(
        index=docs_index, body={"query": {"rank_feature": {"field": "rank", "linear": {}}}}
    )
    assert ids(linear) == ["3", "4", "2", "1"]
    sparse = client.search(
        index=docs_index,
        body={"query": {"neural_sparse": {"sparse": {"query_tokens": {"neural": 1.0, "search": 0.5}}}}},
    )
    assert ids(sparse) == ["4", "2"]  # odd positions carry "neural": 1 + i
    knn = client.search(
        index=docs_index, body={"size": 2, "query": {"knn": {"vec": {"vector": [3.1, 0, 1], "k": 2}}}}
    )
    assert ids(knn) == ["4", "5"]
    filtered = client.search(
        index=docs_index,
        body={
            "query": {"knn": {"vec": {"vector": [3.1, 0, 1], "k": 2, "filter": {"term": {"tag": "animal"}}}}}
        },
    )
    assert ids(filtered) == ["2", "1"]


def test_knn_errors_and_search_parameters(client: OpenSearch) -> None:
    method = {"name": "hnsw", "space_type": "cosinesimil", "engine": "faiss"}
    mapping = {"properties": {"cos": {"type": "knn_vector", "dimension": 3, "method": method}}}
    with pytest.raises(RequestError) as low_ef:  # the k-NN plugin's intSetting minimum
        client.indices.create(
            index="knn-bad", body={"settings": {"index.knn": True, "index.knn.algo_param.ef_search": 1}}
        )
    assert low_ef.value.error == "illegal_argument_exception"
    assert "must be >= 2" in low_ef.value.info["error"]["reason"]
    client.indices.create(
        index="knn-params",
        body={
            "settings": {"index.knn": True, "number_of_replicas": 0, "index.knn.algo_param.ef_search": 50},
            "mappings": mapping,
        },
    )
    helpers.bulk(
        client,
        [{"_index": "knn-params", "_id": str(i), "_source": {"cos": [1.0, float(i), 0.5]}} for i in range(6)],
        refresh=True,
    )
    with pytest.raises(RequestError) as zero:  # VectorIndex's ValueError becomes a 400, not a 500
        client.search(index="knn-params", body={"query": {"knn": {"cos": {"vector": [0, 0, 0], "k": 2}}}})
    assert zero.value.status_code == 400 and zero.value.error == "illegal_argument_exception"
    reason = zero.value.info["error"]["reason"]
    assert reason == "zero vector is not supported when space type is [cosinesimil]"
    for bad, message in (
        ({"ef_search": 0}, "ef_search should be greater than 0"),
        ({"colour": 1}, "colour is not a valid method parameter"),
    ):
        with pytest.raises(RequestError) as invalid:
            client.search(
                index="knn-params",
                body={"query": {"knn": {"cos": {"vector": [1, 2, 0.5], "k": 2, "method_parameters": bad}}}},
            )
        assert invalid.value.error == "illegal_argument_exception"
        assert message in invalid.value.info["error"]["reason"]
    found = client.search(
        index="knn-params",
        body={
            "query": {"knn": {"cos": {"vector": [1, 2, 0.5], "k": 2, "method_parameters": {"ef_search": 10}}}}
        },
    )
    assert ids(found)[0] == "2"
    client.indices.put_settings(index="knn-params", body={"index.knn.advanced.approximate_threshold": 0})
    with pytest.raises(RequestError):
        client.indices.put_settings(index="knn-params", body={"index.knn.advanced.approximate_threshold": -2})


def test_sorting_paging_source_and_totals(client: OpenSearch, docs_index: str) -> None:
    by_year = client.search(
        index=docs_index, body={"sort": [{"year": "desc"}], "size": 2, "_source": ["title"]}
    )
    assert ids(by_year) == ["4", "3"]
    assert by_year["hits"]["hits"][0]["_source"] == {"title": "Sparse retrieval with SPLADE"}
    assert by_year["hits"]["hits"][0]["sort"] == [2022]
    after = client.search(
        index=docs_index,
        body={"sort": [{"year": "desc"}], "size": 2, "search_after": by_year["hits"]["hits"][-1]["sort"]},
    )
    assert ids(after) == ["2", "1"]
    paged = client.search(index=docs_index, body={"sort": ["_doc"], "from": 1, "size": 2})
    assert len(ids(paged)) == 2
    capped = client.search(index=docs_index, body={"track_total_hits": 2, "query": {"match_all": {}}})
    assert capped["hits"]["total"] == {"value": 2, "relation": "gte"}
    no_source = client.search(index=docs_index, body={"_source": False, "size": 1})
    assert "_source" not in no_source["hits"]["hits"][0]
    assert client.count(index=docs_index, body={"query": {"term": {"tag": "ir"}}})["count"] == 3


def test_msearch(client: OpenSearch, docs_index: str) -> None:
    body = [
        {"index": docs_index},
        {"query": {"match": {"title": "bears"}}},
        {"index": "missing-index"},
        {"query": {"match_all": {}}},
    ]
    responses = client.msearch(body=body)["responses"]
    assert ids(responses[0]) == ["2"]
    assert responses[1]["status"] == 404 and responses[1]["error"]["type"] == "index_not_found_exception"


def test_point_in_time_freezes_a_view(client: OpenSearch) -> None:
    client.indices.create(index="pit", body={"settings": {"refresh_interval": "-1"}})
    helpers.bulk(
        client, ({"_index": "pit", "_id": str(i), "_source": {"n": i}} for i in range(25)), refresh=True
    )
    pit = client.create_pit(index="pit", keep_alive="1m")["pit_id"]
    try:
        client.index(index="pit", id="new", body={"n": 99}, refresh=True)
        client.delete(index="pit", id="0", refresh=True)
        seen: list[str] = []
        search_after = None
        while True:
            body = {"size": 10, "pit": {"id": pit, "keep_alive": "1m"}, "sort": [{"n": "asc"}]}
            if search_after:
                body["search_after"] = search_after
            hits = client.search(body=body)["hits"]["hits"]
            if not hits:
                break
            seen.extend(hit["_id"] for hit in hits)
            search_after = hits[-1]["sort"]
        assert seen == [str(i) for i in range(25)]  # the view of the PIT's creation
    finally:
        client.delete_pit(body={"pit_id": [pit]})
    assert client.count(index="pit")["count"] == 25  # 25 - 1 deleted + 1 new


def test_scan_helper_uses_scroll(client: OpenSearch) -> None:
    helpers.bulk(
        client, ({"_index": "scan", "_id": str(i), "_source": {"n": i}} for i in range(1234)), refresh=True
    )
    found = {hit["_id"] for hit in helpers.scan(client, index="scan", size=100)}
    assert found == {str(i) for i in range(1234)}


def test_aliases_swap_atomically(client: OpenSearch) -> None:
    client.indices.create(index="v1")
    client.indices.create(index="v2")
    client.index(index="v2", id="x", body={"t": 1}, refresh=True)
    client.indices.put_alias(index="v1", name="live")
    client.indices.update_aliases(
        body={
            "actions": [
                {"remove": {"index": "v1", "alias": "live"}},
                {"add": {"index": "v2", "alias": "live"}},
            ]
        }
    )
    assert ids(client.search(index="live")) == ["x"]
    assert list(client.indices.get_alias(name="live")) == ["v2"]
