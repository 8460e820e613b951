"""Scores returned over HTTP equal the published formulas, computed here independently (1e-5 relative).

The expected values are written from the formulas in Lucene's and OpenSearch's documentation
(BM25Similarity, SmallFloat, FeatureField, the k-NN plugin's score translation), in float64, with their own
small re-implementation of Lucene's one-byte length norm: nothing here calls the engine's scoring module.
"""

from __future__ import annotations

import math
import random
import struct

import pytest
from opensearchpy import OpenSearch, helpers

K1, B = 1.2, 0.75


# ----- independent reference implementations ------------------------------------------------------


def _long_to_int4(i: int) -> int:
    bits = i.bit_length()
    if bits < 4:
        return i
    shift = bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)


def _int4_to_long(i: int) -> int:
    bits, shift = i & 0x07, (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


NUM_FREE_VALUES = 255 - _long_to_int4(2**31 - 1)


def quantised_length(length: int) -> int:
    """Lucene stores a field length in one byte (SmallFloat.intToByte4) and scores with the decoded value."""
    if length < NUM_FREE_VALUES:
        return length
    byte = NUM_FREE_VALUES + _long_to_int4(length - NUM_FREE_VALUES)
    return NUM_FREE_VALUES + _int4_to_long(byte - NUM_FREE_VALUES)


def bm25(tf: int, df: int, n_docs: int, dl: int, avgdl: float) -> float:
    idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + K1 * (1 - B + B * quantised_length(dl) / avgdl))


def stored_feature(value: float) -> float:
    """FeatureField keeps 9 significant bits: the float's top 17 bits (sign, exponent, 8 mantissa bits)."""
    bits = struct.unpack(">I", struct.pack(">f", value))[0]
    return struct.unpack(">f", struct.pack(">I", (bits >> 15) << 15))[0]


def close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=1e-5)


# ----- BM25 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bm25_corpus(client: OpenSearch) -> list[list[str]]:
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(40)]
    docs = [
        [rng.choice(vocabulary[: rng.randint(5, 40)]) for _ in range(rng.randint(1, 300))] for _ in range(300)
    ]
    client.indices.create(
        index="bm25",
        body={
            "mappings": {
                "properties": {
                    "body": {"type": "text", "analyzer": "whitespace"},
                    "other": {"type": "text", "analyzer": "whitespace"},
                }
            }
        },
    )
    helpers.bulk(
        client,
        (
            {"_index": "bm25", "_id": str(i), "_source": {"body": " ".join(d), "other": " ".join(d[:3])}}
            for i, d in enumerate(docs)
        ),
        refresh=True,
    )
    return docs


def expected_bm25(docs: list[list[str]], query: list[str]) -> dict[str, float]:
    n_docs = len(docs)
    avgdl = sum(len(d) for d in docs) / n_docs
    out: dict[str, float] = {}
    for term in query:
        df = sum(1 for d in docs if term in d)
        for i, d in enumerate(docs):
            tf = d.count(term)
            if tf:
                out[str(i)] = out.get(str(i), 0.0) + bm25(tf, df, n_docs, len(d), avgdl)
    return out


def test_bm25_scores_match_the_formula(client: OpenSearch, bm25_corpus: list[list[str]]) -> None:
    rng = random.Random(11)
    for _ in range(20):
        query = rng.sample([f"w{i}" for i in range(40)], rng.randint(1, 4))
        expected = expected_bm25(bm25_corpus, query)
        hits = client.search(index="bm25", body={"query": {"match": {"body": " ".join(query)}}, "size": 300})
        actual = {h["_id"]: h["_score"] for h in hits["hits"]["hits"]}
        assert actual.keys() == expected.keys()
        bad = [(i, actual[i], expected[i]) for i in actual if not close(actual[i], expected[i])]
        assert not bad, bad[:5]
        assert hits["hits"]["total"]["value"] == len(expected)


def test_boosts_and_combinations(client: OpenSearch, bm25_corpus: list[list[str]]) -> None:
    docs = bm25_corpus
    heads = [d[:3] for d in docs]
    body = expected_bm25(docs, ["w1"])
    other = expected_bm25(heads, ["w1"])
    hits = client.search(
        index="bm25",
        body={
            "size": 300,
            "query": {"multi_match": {"query": "w1", "fields": ["body^2", "other"], "tie_breaker": 0.3}},
        },
    )["hits"]["hits"]
    for hit in hits:
        scores = [2 * body.get(hit["_id"], 0.0), other.get(hit["_id"], 0.0)]
        assert close(hit["_score"], max(scores) + 0.3 * (sum(scores) - max(scores)))
    hits = client.search(
        index="bm25",
        body={
            "size": 300,
            "query": {
                "bool": {
                    "should": [{"match": {"body": "w1"}}, {"match": {"other": {"query": "w1", "boost": 3}}}]
                }
            },
        },
    )["hits"]["hits"]
    for hit in hits:
        assert close(hit["_score"], body.get(hit["_id"], 0.0) + 3 * other.get(hit["_id"], 0.0))


# ----- rank features and neural_sparse ------------------------------------------------------------


@pytest.fixture(scope="module")
def feature_docs(client: OpenSearch) -> dict[str, float]:
    rng = random.Random(3)
    values = {str(i): rng.uniform(0.01, 500.0) for i in range(50)}
    client.indices.create(
        index="features",
        body={
            "mappings": {
                "properties": {
                    "pr": {"type": "rank_feature"},
                    "inv": {"type": "rank_feature", "positive_score_impact": False},
                    "sp": {"type": "rank_features"},
                }
            }
        },
    )
    helpers.bulk(
        client,
        (
            {"_index": "features", "_id": i, "_source": {"pr": v, "inv": v, "sp": {"a": v, "b": v / 2}}}
            for i, v in values.items()
        ),
        refresh=True,
    )
    return values


@pytest.mark.parametrize(
    ("function", "params", "formula"),
    [
        ("linear", {}, lambda f: f),
        ("saturation", {"pivot": 20.0}, lambda f: f / (f + 20.0)),
        ("log", {"scaling_factor": 4.0}, lambda f: math.log(4.0 + f)),
        ("sigmoid", {"pivot": 7.0, "exponent": 0.6}, lambda f: f**0.6 / (f**0.6 + 7.0**0.6)),
    ],
)
def test_rank_feature_functions(
    client: OpenSearch, feature_docs: dict[str, float], function: str, params: dict, formula
) -> None:
    hits = client.search(
        index="features",
        body={"size": 50, "query": {"rank_feature": {"field": "pr", function: params, "boost": 2.0}}},
    )["hits"]["hits"]
    assert len(hits) == 50
    for hit in hits:
        assert close(hit["_score"], 2.0 * formula(stored_feature(feature_docs[hit["_id"]])))


def test_rank_feature_default_pivot_and_negative_impact(
    client: OpenSearch, feature_docs: dict[str, float]
) -> None:
    # Default saturation pivot: FeatureField approximates the geometric mean by the mean of the stored
    # frequencies (the float bits >> 15), decoded back into a value.
    def freq(v: float) -> int:
        return struct.unpack(">I", struct.pack(">f", v))[0] >> 15

    mean_freq = int(sum(freq(v) for v in feature_docs.values()) / len(feature_docs))
    pivot = struct.unpack(">f", struct.pack(">I", mean_freq << 15))[0]
    hits = client.search(index="features", body={"size": 50, "query": {"rank_feature": {"field": "pr"}}})
    for hit in hits["hits"]["hits"]:
        f = stored_feature(feature_docs[hit["_id"]])
        assert math.isclose(hit["_score"], f / (f + pivot), rel_tol=1e-4)
    # positive_score_impact false stores 1/value: the smallest value ranks first.
    inverse = client.search(
        index="features", body={"size": 3, "query": {"rank_feature": {"field": "inv", "linear": {}}}}
    )["hits"]["hits"]
    assert inverse[0]["_id"] == min(feature_docs, key=feature_docs.get)
    assert close(inverse[0]["_score"], stored_feature(1.0 / min(feature_docs.values())))


def test_neural_sparse_is_a_sum_of_linear_features(
    client: OpenSearch, feature_docs: dict[str, float]
) -> None:
    query = {"a": 0.7, "b": 2.5, "missing": 9.0}
    hits = client.search(
        index="features", body={"size": 50, "query": {"neural_sparse": {"sp": {"query_tokens": query}}}}
    )["hits"]["hits"]
    for hit in hits:
        v = feature_docs[hit["_id"]]
        assert close(hit["_score"], 0.7 * stored_feature(v) + 2.5 * stored_feature(v / 2))
    # The portable form: a bool.should of rank_feature linear clauses scores the same.
    portable = client.search(
        index="features",
        body={
            "size": 50,
            "query": {
                "bool": {
                    "should": [
                        {"rank_feature": {"field": f"sp.{token}", "linear": {}, "boost": weight}}
                        for token, weight in query.items()
                    ]
                }
            },
        },
    )["hits"]["hits"]
    portable_scores = {h["_id"]: h["_score"] for h in portable}
    assert portable_scores.keys() == {h["_id"] for h in hits}
    assert all(close(portable_scores[h["_id"]], h["_score"]) for h in hits)


# ----- k-NN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["l2", "cosinesimil", "innerproduct"])
def test_knn_score_translation(client: OpenSearch, space: str) -> None:
    rng = random.Random(5)
    vectors = {str(i): [rng.uniform(-1, 1) for _ in range(8)] for i in range(200)}
    index = f"knn-{space}"
    client.indices.create(
        index=index,
        body={
            "settings": {"index.knn": True},
            "mappings": {
                "properties": {
                    "v": {
                        "type": "knn_vector",
                        "dimension": 8,
                        "method": {"name": "hnsw", "engine": "faiss", "space_type": space},
                    }
                }
            },
        },
    )
    helpers.bulk(
        client, ({"_index": index, "_id": i, "_source": {"v": v}} for i, v in vectors.items()), refresh=True
    )
    query = [rng.uniform(-1, 1) for _ in range(8)]

    def expected(v: list[float]) -> float:
        if space == "l2":
            return 1 / (1 + sum((a - b) ** 2 for a, b in zip(v, query, strict=True)))
        dot = sum(a * b for a, b in zip(v, query, strict=True))
        if space == "cosinesimil":
            norms = math.sqrt(sum(a * a for a in v)) * math.sqrt(sum(b * b for b in query))
            return (1 + dot / norms) / 2
        return dot + 1 if dot >= 0 else 1 / (1 - dot)

    truth = sorted(vectors, key=lambda i: -expected(vectors[i]))[:10]
    hits = client.search(index=index, body={"size": 10, "query": {"knn": {"v": {"vector": query, "k": 10}}}})
    hits = hits["hits"]["hits"]
    assert [h["_id"] for h in hits] == truth
    for hit in hits:
        assert close(hit["_score"], expected(vectors[hit["_id"]]))
