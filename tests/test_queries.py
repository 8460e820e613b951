"""Retrieval query builders, fusion and `nirbridge eval`, on the real engine over HTTP with real models.

A SciFact slice (the documents judged for the first test queries, then corpus documents up to CORPUS_SIZE) is
enriched once per module with SPLADE-tiny (nir_sparse, nir_terms) and all-MiniLM-L6-v2 (nir_dense) through
`workers.pipeline.run_enrichment` and written with `connector.writer.streaming_update`. The documents are cut
to 128 word pieces for the encoders to keep the module fast; the queries are short, so nothing else changes.
References are computed in the tests: sparse scores as the dot product of the query's and the stored
document's weights, dense top hits by numpy over the stored vectors, fusion formulas by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cross_encoder_fixture import models_dir, trained_cross_encoder  # noqa: F401 - a fixture
from enriched_slice import enrich_scifact_slice
from opensearchpy import OpenSearch
from typer.testing import CliRunner

from nirbridge.connector.cli import app
from nirbridge.connector.engine_process import EngineProcess
from nirbridge.connector.evaluate import rerank_top, score_run
from nirbridge.connector.fusion import fuse, interpolate, minmax, rrf
from nirbridge.connector.queries import (
    FieldMissing,
    IndexFields,
    QueryBuilder,
    QueryEncoders,
    bm25_body,
    first_stage,
    idf,
    msearch,
    neural_sparse_body,
    parse_hybrid,
    rank_feature_body,
)

pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")

INDEX = "scifact-small"
CORPUS_SIZE = 200
QUERIES = 30
BACKEND = "onnx-fp32"
runner = CliRunner()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def small(
    engine: EngineProcess, client: OpenSearch, scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory
):
    """The enriched SciFact slice in INDEX, and the same slice as a BEIR folder (test split)."""
    enriched = enrich_scifact_slice(
        client, INDEX, scifact_dir, queries=QUERIES, corpus_size=CORPUS_SIZE, backend=BACKEND
    )
    queries, docs = enriched.queries, enriched.documents
    qrels = enriched.qrels

    root = tmp_path_factory.mktemp("beir-small")
    (root / "qrels").mkdir()
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": d.id, **d.source()}) + "\n" for d in docs))
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q.id, "text": q.text}) + "\n" for q in queries)
    )
    lines = ["query-id\tcorpus-id\tscore"] + [
        f"{q.id}\t{d}\t{g}" for q in queries for d, g in qrels[q.id].items()
    ]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return {"url": engine.url, "queries": queries, "qrels": qrels, "root": root, "docs": docs}


@pytest.fixture(scope="module")
def builder(client: OpenSearch, small: dict[str, Any]) -> QueryBuilder:
    fields = IndexFields.read(client, small["url"], INDEX)
    return QueryBuilder(QueryEncoders(backend=BACKEND), fields)


def _stored(client: OpenSearch, ids: list[str], field: str) -> dict[str, Any]:
    docs = client.mget(index=INDEX, body={"ids": ids}, params={"_source_includes": field})["docs"]
    return {d["_id"]: d["_source"][field] for d in docs}


# --- pure builders and fusion ---


def test_bm25_body_searches_the_expansion_field_only_when_asked() -> None:
    plain = bm25_body("statins", 10)
    assert plain["query"] == {
        "multi_match": {"query": "statins", "fields": ["title", "text"], "type": "best_fields"}
    }
    assert plain["_source"] is False and plain["size"] == 10
    expanded = bm25_body("statins", 5, expansion_field="nir_expansion")
    assert expanded["query"]["multi_match"]["fields"] == ["title", "text", "nir_expansion"]
    with pytest.raises(ValueError, match="empty"):
        bm25_body("  ", 10)


def test_rank_feature_form_drops_dotted_tokens_and_keeps_the_heaviest() -> None:
    built = rank_feature_body(
        {"cancer": 1.5, ".": 0.9, "##.": 0.2, "stat": 2.0, "zero": 0.0}, 10, max_tokens=3
    )
    clauses = built.body["query"]["bool"]["should"]
    assert [c["rank_feature"]["field"] for c in clauses] == ["nir_sparse.stat", "nir_sparse.cancer"]
    assert [c["rank_feature"]["boost"] for c in clauses] == [2.0, 1.5]
    assert all(c["rank_feature"]["linear"] == {} for c in clauses)
    assert built.dropped == (".",)  # "##." was cut by max_tokens=3 before the dot check
    ns = neural_sparse_body({"a": 1.0, ".": 0.5}, 10)
    assert ns["query"]["neural_sparse"]["nir_sparse"]["query_tokens"] == {"a": 1.0, ".": 0.5}


def test_rrf_matches_the_formula() -> None:
    bm25 = [("a", 9.0), ("b", 7.0), ("c", 1.0)]
    dense = [("c", 0.9), ("d", 0.8)]
    fused = dict(rrf([bm25, dense]))
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)
    assert [doc for doc, _ in rrf([bm25, dense])] == ["c", "a", "b", "d"]  # b, d tie: best rank 2, then id
    weighted = dict(rrf([bm25, dense], weights=[2.0, 0.0]))
    assert weighted["a"] == pytest.approx(2 / 61) and weighted["d"] == 0.0


def test_minmax_normalises_each_list_then_sums() -> None:
    bm25 = [("a", 10.0), ("b", 6.0), ("c", 2.0)]
    dense = [("c", 1.8), ("a", 1.2), ("d", 1.0)]
    fused = dict(minmax([bm25, dense]))
    assert fused["a"] == pytest.approx(1.0 + 0.2 / 0.8)
    assert fused["b"] == pytest.approx(0.5)
    assert fused["c"] == pytest.approx(0.0 + 1.0)
    assert fused["d"] == pytest.approx(0.0)
    assert dict(minmax([[("x", 3.0), ("y", 3.0)]])) == {"x": 1.0, "y": 1.0}
    assert dict(minmax([bm25, dense], weights=[0.0, 1.0]))["c"] == pytest.approx(1.0)


def test_interpolate_mixes_the_first_stage_into_a_rerank_window() -> None:
    first = [("a", 10.0), ("b", 6.0), ("c", 2.0)]  # normalised: a 1, b 0.5, c 0
    reranked = [("c", 5.0), ("a", 3.0), ("b", 1.0)]  # normalised: c 1, a 0.5, b 0
    assert interpolate(first, reranked, 1.0) == reranked  # pure reranking, scores untouched
    assert interpolate(first, reranked, 0.0) == [("a", 1.0), ("b", 0.5), ("c", 0.0)]
    half = interpolate(first, reranked, 0.5)
    assert [doc for doc, _ in half] == ["a", "c", "b"]
    assert [score for _, score in half] == pytest.approx([0.75, 0.5, 0.25])
    # an exact tie keeps the first-stage order (not minmax's best-rank-then-id, which would put x first)
    tied = interpolate([("y", 2.0), ("x", 1.0)], [("x", 2.0), ("y", 1.0)], 0.5)
    assert [doc for doc, _ in tied] == ["y", "x"]
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            interpolate(first, reranked, bad)
    with pytest.raises(ValueError, match="same ids"):
        interpolate(first, reranked[:2], 0.5)


def test_fusion_ties_are_deterministic_and_methods_are_checked() -> None:
    # a and b tie (each ranks first once): the tie goes by best rank, then id
    assert [doc for doc, _ in rrf([[("b", 1.0)], [("a", 1.0)]])] == ["a", "b"]
    with pytest.raises(ValueError, match="rrf, minmax"):
        fuse("borda", [[("a", 1.0)]])
    with pytest.raises(ValueError, match="2 weights for 1"):
        rrf([[("a", 1.0)]], weights=[1.0, 1.0])


def test_parse_hybrid_and_idf() -> None:
    assert parse_hybrid("bm25+dense") == ("bm25", "dense")
    assert parse_hybrid(" sparse + dense + bm25 ") == ("sparse", "dense", "bm25")
    for bad in ("bm25", "bm25+bm25", "bm25+hybrid", "bm25+splade"):
        with pytest.raises(ValueError, match="hybrid"):
            parse_hybrid(bad)
    assert idf(1000, 9) == pytest.approx(math.log(1 + 991.5 / 9.5))


def test_score_run_against_hand_computed_metrics() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d5": 2, "d6": 1}, "q3": {"d9": 1}}
    run = {"q1": {"d0": 3.0, "d1": 2.0}, "q2": {"d6": 5.0, "d5": 4.0}}  # q3 retrieved nothing
    # trec_eval's nDCG (BEIR's, via pytrec_eval): gain = grade, discount log2(rank + 1)
    q2 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    scores = score_run(qrels, run)
    assert scores["ndcg@10"] == pytest.approx((1 / math.log2(3) + q2 + 0) / 3)
    assert scores["mrr@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert scores["recall@100"] == pytest.approx((1 + 1 + 0) / 3)


def test_rerank_hook_reorders_the_window_and_keeps_the_rest_below() -> None:
    class ByLength:
        def rerank(self, query: str, hits: list[tuple[str, float]]) -> list[tuple[str, float]]:
            return sorted(((doc, float(len(doc))) for doc, _ in hits), key=lambda item: -item[1])

    hits = [("a", 9.0), ("bbb", 8.0), ("cc", 7.0), ("dddd", 6.0), ("e", 5.0)]
    reranked = rerank_top(ByLength(), "q", hits, window=3)
    assert [doc for doc, _ in reranked] == ["bbb", "cc", "a", "dddd", "e"]
    scores = [score for _, score in reranked]
    assert scores == sorted(scores, reverse=True)


def test_rerank_hook_interpolates_with_the_first_stage() -> None:
    class Fixed:  # a stand-in for the cross-encoder: scores chosen by hand
        scores = {"a": 2.0, "b": 0.0, "c": 4.0}

        def rerank(self, query: str, hits: list[tuple[str, float]]) -> list[tuple[str, float]]:
            return sorted(((doc, self.scores[doc]) for doc, _ in hits), key=lambda item: -item[1])

    hits = [("a", 10.0), ("b", 8.0), ("c", 2.0), ("d", 1.0), ("e", 0.5)]
    # window a, b, c: first stage normalised 1, 0.75, 0; cross-encoder 0.5, 0, 1
    assert [doc for doc, _ in rerank_top(Fixed(), "q", hits, window=3)] == ["c", "a", "b", "d", "e"]
    mixed = rerank_top(Fixed(), "q", hits, window=3, rerank_weight=0.5)
    assert [doc for doc, _ in mixed] == ["a", "c", "b", "d", "e"]
    assert [score for _, score in mixed[:3]] == pytest.approx([0.75, 0.5, 0.375])
    assert mixed[3][1] < mixed[2][1] and mixed[4][1] < mixed[3][1]  # the rest stays below
    assert [doc for doc, _ in rerank_top(Fixed(), "q", hits, window=3, rerank_weight=0.0)] == list("abcde")


# --- on the engine ---


def _found_at_10(
    client: OpenSearch, small: dict[str, Any], builder: QueryBuilder, mode: str, **kw: Any
) -> float:
    queries, qrels = small["queries"], small["qrels"]
    rankings = first_stage(client, small["url"], INDEX, builder, [q.text for q in queries], mode, 10, **kw)
    found = [any(doc in qrels[q.id] for doc, _ in hits) for q, hits in zip(queries, rankings, strict=True)]
    return sum(found) / len(found)


@pytest.mark.parametrize("mode", ["bm25", "sparse", "terms", "dense"])
def test_each_mode_finds_the_judged_documents(
    client: OpenSearch, small: dict[str, Any], builder: QueryBuilder, mode: str
) -> None:
    # BM25 finds a judged document in the top 10 for 90% of these queries on this slice; every mode must
    # find one for most of them (a broken body, field or encoder finds next to none among 240 documents)
    assert _found_at_10(client, small, builder, mode) >= 0.6


def test_neural_sparse_scores_are_the_dot_product_and_rank_feature_agrees(
    client: OpenSearch, small: dict[str, Any], builder: QueryBuilder
) -> None:
    url = small["url"]
    for query in small["queries"][:8]:
        tokens = {t: w for t, w in builder.encoders.sparse(query.text).items() if "." not in t}
        ns_hits, rf_hits = msearch(
            client, url, INDEX, [neural_sparse_body(tokens, 20), rank_feature_body(tokens, 20).body]
        )
        assert ns_hits, query.text
        assert [d for d, _ in ns_hits] == [d for d, _ in rf_hits]
        assert [s for _, s in ns_hits] == pytest.approx([s for _, s in rf_hits], rel=1e-6)
        stored = _stored(client, [d for d, _ in ns_hits], "nir_sparse")
        for doc_id, score in ns_hits:
            expected = sum(w * stored[doc_id].get(t, 0.0) for t, w in tokens.items())
            # FeatureField keeps 9 significant bits of each stored weight: within 2^-8 relative
            assert score == pytest.approx(expected, rel=2**-8), doc_id


def test_dense_top_hits_are_the_nearest_by_inner_product(
    client: OpenSearch, small: dict[str, Any], builder: QueryBuilder
) -> None:
    hits = client.search(
        index=INDEX, body={"size": 500, "query": {"match_all": {}}, "_source": ["nir_dense"]}
    )["hits"]["hits"]
    ids = [h["_id"] for h in hits]
    matrix = np.array([h["_source"]["nir_dense"] for h in hits], dtype=np.float32)
    texts = [q.text for q in small["queries"][:10]]
    rankings = first_stage(client, small["url"], INDEX, builder, texts, "dense", 10)
    for text, ranking in zip(texts, rankings, strict=True):
        ip = matrix @ np.asarray(builder.encoders.dense(text), dtype=np.float32)
        expected = [ids[i] for i in np.argsort(-ip, kind="stable")[:10]]
        assert [d for d, _ in ranking][:5] == expected[:5]
        assert [s for _, s in ranking] == pytest.approx(sorted(ip + 1.0, reverse=True)[:10], rel=1e-4)


def test_terms_weights_are_idf_over_nir_terms(
    client: OpenSearch, small: dict[str, Any], builder: QueryBuilder
) -> None:
    text = small["queries"][0].text
    (weights,) = builder.terms_weights(client, small["url"], [text])
    assert weights and set(weights) <= set(builder.encoders.terms(text))
    word = max(weights, key=weights.get)
    having = client.search(
        index=INDEX,
        body={"size": 0, "track_total_hits": True, "query": {"rank_feature": {"field": f"nir_terms.{word}"}}},
    )["hits"]["total"]["value"]
    assert weights[word] == pytest.approx(idf(CORPUS_SIZE, having))


@pytest.mark.parametrize("fusion", ["rrf", "minmax"])
def test_hybrid_top_hits_do_not_depend_on_size(
    client: OpenSearch, small: dict[str, Any], builder: QueryBuilder, fusion: str
) -> None:
    texts = [q.text for q in small["queries"][:6]]
    kw: dict[str, Any] = {"modes": ("bm25", "dense"), "fusion": fusion, "depth": 50}
    five = first_stage(client, small["url"], INDEX, builder, texts, "hybrid", 5, **kw)
    twenty = first_stage(client, small["url"], INDEX, builder, texts, "hybrid", 20, **kw)
    for a, b in zip(five, twenty, strict=True):
        assert len(a) == 5 and len(b) == 20
        assert a == b[:5]
    assert _found_at_10(client, small, builder, "hybrid", **kw) >= 0.6


def test_eval_cli_prints_the_three_metrics(small: dict[str, Any]) -> None:
    args = ["eval", "--url", small["url"], "--index", INDEX, "--dataset", str(small["root"]), "--json"]
    result = runner.invoke(app, [*args, "--mode", "hybrid", "--hybrid", "bm25+dense", "--fusion", "minmax"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["queries"] == QUERIES and report["mode"] == "hybrid" and report["fusion"] == "minmax"
    assert report["models"] == {"dense": "all-MiniLM-L6-v2"}  # read from the index's nir_meta
    assert set(report["metrics"]) == {"ndcg@10", "mrr@10", "recall@100"}
    assert 0.5 < report["metrics"]["ndcg@10"] <= 1.0 and report["metrics"]["recall@100"] > 0.9
    assert report["queries_per_s"] > 0
    sparse = runner.invoke(app, [*args, "--mode", "sparse", "--sparse-form", "rank_feature"])
    assert sparse.exit_code == 0, sparse.stderr
    assert json.loads(sparse.stdout.strip().splitlines()[-1])["sparse_form"] == "rank_feature"


def test_eval_cli_refuses_a_missing_field_and_an_unknown_split(
    client: OpenSearch, small: dict[str, Any]
) -> None:
    client.indices.create(index="plain", body={"mappings": {"properties": {"title": {"type": "text"}}}})
    args = ["eval", "--url", small["url"], "--dataset", str(small["root"])]
    result = runner.invoke(app, [*args, "--index", "plain", "--mode", "dense"])
    assert result.exit_code == 2
    assert "no knn_vector field 'nir_dense'" in result.stderr
    assert "nirbridge enrich --dense" in result.stderr
    with pytest.raises(FieldMissing, match="nir_sparse"):
        IndexFields.read(client, small["url"], "plain").require("sparse")
    result = runner.invoke(app, [*args, "--index", INDEX, "--mode", "bm25", "--split", "dev"])
    assert result.exit_code == 2
    assert "no qrels for split 'dev'" in result.stderr and "test" in result.stderr
    result = runner.invoke(app, [*args, "--index", "nope", "--mode", "bm25"])
    assert result.exit_code == 2
    assert "no such index: nope" in result.stderr


def test_eval_cli_reranks_with_a_cross_encoder_and_caches_its_scores(
    client: OpenSearch,
    small: dict[str, Any],
    builder: QueryBuilder,
    trained_cross_encoder: Path,  # noqa: F811 - the fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nirbridge.workers.cross_encoder import CrossEncoder

    monkeypatch.setenv("NIRBRIDGE_CACHE_DIR", str(tmp_path))
    args = ["eval", "--url", small["url"], "--index", INDEX, "--dataset", str(small["root"]), "--json"]
    args += ["--mode", "bm25", "--rerank", str(trained_cross_encoder), "--window", "10"]
    args += ["--rerank-backend", "torch-fp32", "--limit", "8"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.stderr
    report = json.loads(first.stdout.strip().splitlines()[-1])
    assert report["rerank"]["window"] == 10 and report["rerank"]["backend"] == "torch-fp32"
    assert report["rerank"]["pairs_scored"] == 80 and report["rerank"]["pairs_cached"] == 0
    # the summary says the run was reranked, by what, and where the scores came from (issue 14)
    summary = " ".join(first.stderr.split())
    assert f"reranked by {trained_cross_encoder.name} (torch-fp32, top 10" in summary
    assert report["rerank"]["scores_from"] == "model" and "scores from the model" in summary

    # the same run by hand: BM25's top 100, the top 10 re-scored by the model over "title text", at the word
    # pieces the model's card says it was trained with (eval's default since issue 14; 256 before)
    trained = json.loads((trained_cross_encoder / "training.json").read_text())["settings"]["max_length"]
    encoder = CrossEncoder(trained_cross_encoder, backend="torch-fp32", max_length=trained)
    assert report["rerank"]["max_length"] == trained
    queries = small["queries"][:8]
    rankings = first_stage(client, small["url"], INDEX, builder, [q.text for q in queries], "bm25", 100)
    docs = {d.id: f"{d.title} {d.text}".strip() for d in small["docs"]}
    run = {}
    for query, hits in zip(queries, rankings, strict=True):
        head = [doc_id for doc_id, _ in hits[:10]]
        scores = encoder.score(query.text, [docs[d] for d in head])
        floor = float(min(scores))
        run[query.id] = {**{d: float(s) for d, s in zip(head, scores, strict=True)}}
        run[query.id].update({d: floor - r for r, (d, _) in enumerate(hits[10:], start=1)})
    expected = score_run({q.id: small["qrels"][q.id] for q in queries}, run)
    assert report["metrics"]["ndcg@10"] == pytest.approx(round(expected["ndcg@10"], 4), abs=2e-4)

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.stderr
    cached = json.loads(again.stdout.strip().splitlines()[-1])
    assert cached["rerank"]["pairs_scored"] == 0 and cached["rerank"]["pairs_cached"] == 80
    assert cached["rerank"]["scores_from"] == "cache"
    assert "scores from the cache: not the model's speed" in " ".join(again.stderr.split())
    assert cached["metrics"] == report["metrics"]

    missing = runner.invoke(app, [*args[:-6], "--rerank", str(tmp_path / "no-model")])
    assert missing.exit_code == 2 and "--rerank" in missing.stderr and "no-model" in missing.stderr


def test_eval_rerank_max_length_defaults_to_what_the_model_was_trained_with(tmp_path: Path) -> None:
    from nirbridge.connector.eval_cli import _eval_reranker
    from nirbridge.connector.eval_rerank import trained_max_length
    from nirbridge.workers.shipped import SHIPPED

    # the shipped reranker's card says what it was trained and measured with (issue 14: the default was 256)
    shipped = SHIPPED["nirbridge/reranker-nfcorpus"]
    card = json.loads((shipped / "training.json").read_text())
    assert trained_max_length(shipped) == card["settings"]["max_length"] == 128
    assert trained_max_length(tmp_path) is None  # no card
    (tmp_path / "training.json").write_text('{"settings": {"max_length": "long"}}')
    assert trained_max_length(tmp_path) is None

    def loaded(max_length: int | None) -> int:
        reranker = _eval_reranker(
            None, "http://127.0.0.1:9", "i", ("title", "text"), "nirbridge/reranker-nfcorpus", "torch-fp32",
            max_length, cache=False,
        )  # fmt: skip
        return int(reranker.encoder.max_length)

    assert loaded(None) == 128
    assert loaded(256) == 256  # what the user asks for wins
