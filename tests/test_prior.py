"""The document prior (`connector.prior`, `nirbridge prior`, `eval --prior-weight`, the proxy) on the engine.

NFCorpus is ingested whole (BM25 needs no model); the prior is learned from its train judgments and measured
on its dev queries, which the train judgments do not contain.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opensearchpy import OpenSearch
from test_proxy import ServerThread, _error
from typer.testing import CliRunner

from nirbridge.connector.beir import BeirDataset, read_qrels
from nirbridge.connector.cli import app
from nirbridge.connector.engine_process import EngineProcess
from nirbridge.connector.errors import UsageError
from nirbridge.connector.evaluate import judged_queries
from nirbridge.connector.prior import (
    Prior,
    prior_body,
    prior_values,
    require_prior_field,
    with_prior,
    write_prior,
)
from nirbridge.connector.proxy import make_app
from nirbridge.connector.queries import IndexFields, QueryBuilder, QueryEncoders, first_stage, msearch
from nirbridge.connector.settings import Settings

INDEX = "nf-prior"
PLAIN = "nf-no-prior"
runner = CliRunner()
# rank_feature keeps 9 significant bits of a value (Lucene FeatureField): relative error below 2**-8
PRECISION = 2**-8


@pytest.fixture(scope="module")
def nf(engine: EngineProcess, client: OpenSearch, nfcorpus_dir: Path) -> dict[str, Any]:
    """NFCorpus in INDEX (BM25 only) and its train prior in nir_prior, written by the CLI."""
    ingest = [
        "ingest",
        "--url",
        engine.url,
        "--index",
        INDEX,
        "--dataset",
        str(nfcorpus_dir),
        "--no-progress",
    ]
    result = runner.invoke(app, ingest)
    assert result.exit_code == 0, result.output
    train = nfcorpus_dir / "qrels" / "train.tsv"
    result = runner.invoke(
        app, ["prior", "--url", engine.url, "--index", INDEX, "--qrels", str(train), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "url": engine.url,
        "report": report,
        "values": prior_values(read_qrels(train)),
        "dir": nfcorpus_dir,
    }


def test_prior_values_count_distinct_answering_queries_on_a_log_scale() -> None:
    qrels = {"q1": {"a": 1, "b": 2, "c": 0}, "q2": {"a": 1}, "q3": {"a": 2, "b": 1}, "q4": {"d": 1}}
    values = prior_values(qrels)
    assert values == pytest.approx({"a": 1.0, "b": math.log(3) / math.log(4), "d": math.log(2) / math.log(4)})
    assert "c" not in values  # grade 0 is not an answer
    assert prior_values(qrels, min_grade=2) == {"a": 1.0, "b": 1.0}
    with pytest.raises(ValueError, match="nothing to learn"):
        prior_values({"q1": {"a": 0}})
    with pytest.raises(ValueError, match="min_grade"):
        prior_values(qrels, min_grade=0)


def test_with_prior_mixes_min_max_scores_with_the_prior() -> None:
    ranking = [("a", 10.0), ("b", 8.0), ("c", 6.0)]
    priors = {"c": 1.0, "b": 0.5}
    mixed = with_prior(ranking, priors, 0.5)
    # a: 0.5*1 + 0 = 0.5; b: 0.5*0.5 + 0.25 = 0.5; c: 0 + 0.5 = 0.5: a three-way tie keeps the first order
    assert [doc for doc, _ in mixed] == ["a", "b", "c"]
    assert [score for _, score in mixed] == pytest.approx([0.5, 0.5, 0.5])
    assert [doc for doc, _ in with_prior(ranking, priors, 0.8)] == ["c", "b", "a"]
    assert with_prior(ranking, priors, 0.0) == ranking
    assert with_prior([], priors, 0.3) == []
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        Prior(1.5)


def test_writing_maps_a_rank_feature_and_stores_every_judged_document(
    nf: dict[str, Any], client: OpenSearch
) -> None:
    report = nf["report"]
    assert report["mapping_added"] is True
    assert report["written"] == len(nf["values"]) and report["failed"] == 0
    mapping = client.indices.get_mapping(index=INDEX)[INDEX]["mappings"]["properties"]
    assert mapping["nir_prior"] == {"type": "rank_feature"}
    top = max(nf["values"], key=nf["values"].get)
    assert client.get(index=INDEX, id=top)["_source"]["nir_prior"] == 1.0
    require_prior_field(IndexFields.read(client, nf["url"], INDEX).types, INDEX)


def test_writing_again_is_idempotent_and_never_creates_documents(
    nf: dict[str, Any], client: OpenSearch
) -> None:
    some = dict(list(nf["values"].items())[:20])
    again = write_prior(client, nf["url"], INDEX, {**some, "NOT-A-DOC": 0.5})
    assert (again.mapping_added, again.written, again.missing, again.failed) == (False, 20, 1, 0)
    assert not client.exists(index=INDEX, id="NOT-A-DOC")
    doc = next(iter(some))
    assert client.get(index=INDEX, id=doc)["_source"]["nir_prior"] == pytest.approx(some[doc])


def test_a_field_of_another_type_or_a_bad_value_is_refused_before_writing(
    nf: dict[str, Any], client: OpenSearch
) -> None:
    with pytest.raises(UsageError, match="title: exists as text, wanted rank_feature"):
        write_prior(client, nf["url"], INDEX, {"MED-10": 0.5}, "title")
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        write_prior(client, nf["url"], INDEX, {"MED-10": 0.0}, "nir_prior_bad")
    assert "nir_prior_bad" not in client.indices.get_mapping(index=INDEX)[INDEX]["mappings"]["properties"]
    types = IndexFields.read(client, nf["url"], INDEX).types
    with pytest.raises(UsageError, match="nirbridge prior"):
        require_prior_field(types, INDEX, "nir_prior_unwritten")
    with pytest.raises(UsageError, match="not rank_feature"):
        require_prior_field(types, INDEX, "title")


def test_the_prior_body_scores_each_document_by_its_value(nf: dict[str, Any], client: OpenSearch) -> None:
    judged = list(nf["values"])[:30]
    corpus = (doc.id for doc in BeirDataset.open(nf["dir"]).documents())
    unjudged = [doc for doc in corpus if doc not in nf["values"]][:3]
    assert len(unjudged) == 3
    (answer,) = msearch(client, nf["url"], INDEX, [prior_body("nir_prior", judged + unjudged)])
    scores = dict(answer)
    assert set(scores) == set(judged + unjudged)  # the filter keeps documents without a value, at 0
    for doc in judged:
        assert scores[doc] == pytest.approx(nf["values"][doc], rel=PRECISION)
    assert all(scores[doc] == 0.0 for doc in unjudged)


def test_first_stage_with_a_prior_equals_the_formula_over_the_plain_ranking(
    nf: dict[str, Any], client: OpenSearch
) -> None:
    builder = QueryBuilder(QueryEncoders(), IndexFields.read(client, nf["url"], INDEX))
    texts = ["vitamin d and breast cancer", "statins", "red meat and colon cancer"]
    plain = first_stage(client, nf["url"], INDEX, builder, texts, "bm25", 50)
    mixed = first_stage(client, nf["url"], INDEX, builder, texts, "bm25", 50, prior=Prior(0.3))
    for before, after in zip(plain, mixed, strict=True):
        (values,) = msearch(client, nf["url"], INDEX, [prior_body("nir_prior", [d for d, _ in before])])
        expected = with_prior(before, dict(values), 0.3)
        assert [d for d, _ in after] == [d for d, _ in expected]
        assert [s for _, s in after] == pytest.approx([s for _, s in expected])
        assert [d for d, _ in after] != [d for d, _ in before]


def _eval(nf: dict[str, Any], *extra: str) -> Any:
    args = ["eval", "--url", nf["url"], "--index", INDEX, "--dataset", str(nf["dir"]), "--split", "dev"]
    return runner.invoke(app, [*args, "--mode", "bm25", "--json", "--no-progress", *extra])


def test_the_train_prior_lifts_bm25_on_held_out_dev_queries(nf: dict[str, Any]) -> None:
    plain = _eval(nf)
    with_it = _eval(nf, "--prior-weight", "0.3")
    assert plain.exit_code == 0 and with_it.exit_code == 0, plain.output + with_it.output
    before = json.loads(plain.stdout.strip().splitlines()[-1])
    after = json.loads(with_it.stdout.strip().splitlines()[-1])
    assert after["prior"] == {"field": "nir_prior", "weight": 0.3}
    queries, _ = judged_queries(BeirDataset.open(nf["dir"]), "dev")
    assert after["queries"] == before["queries"] == len(queries) == 324
    # measured: 0.2809 -> 0.2917 on the full dev split (the train judgments hold none of its queries)
    assert after["metrics"]["ndcg@10"] > before["metrics"]["ndcg@10"] + 0.005
    assert after["metrics"]["recall@100"] == before["metrics"]["recall@100"]  # it reorders, adds nothing


def test_eval_and_prior_usage_errors(nf: dict[str, Any], tmp_path: Path) -> None:
    missing = _eval(nf, "--prior-weight", "0.3", "--prior-field", "nir_prior_unwritten")
    assert missing.exit_code == 2 and "nirbridge prior" in missing.output
    out_of_range = _eval(nf, "--prior-weight", "1.5")
    assert out_of_range.exit_code == 2 and "--prior-weight" in out_of_range.output
    hybrid = ["--mode", "hybrid", "--hybrid", "bm25+dense", "--weights", "1,2,3"]
    assert _eval(nf, *hybrid).exit_code == 2
    zero = tmp_path / "zero.tsv"
    zero.write_text("query-id\tcorpus-id\tscore\nq1\tMED-10\t0\n")
    args = ["prior", "--url", nf["url"], "--index", INDEX, "--qrels"]
    result = runner.invoke(app, [*args, str(zero)])
    assert result.exit_code == 2 and "nothing to learn" in result.output
    result = runner.invoke(app, [*args, str(tmp_path / "absent.tsv")])
    assert result.exit_code == 2 and "absent.tsv" in result.output


# --- the search proxy: "prior" in a request, NIRBRIDGE_PROXY_PRIOR_WEIGHT as its default ---


@pytest.fixture(scope="module")
def proxies(nf: dict[str, Any], client: OpenSearch) -> Iterator[dict[str, Any]]:
    """Two proxies: one with the default settings (prior off), one whose default prior weight is 0.3; and
    an index without the prior field."""
    client.index(index=PLAIN, id="1", body={"title": "statins", "text": "statins and cancer"}, refresh=True)
    off = ServerThread(make_app(Settings(url=nf["url"]), reranker=None))
    on = ServerThread(make_app(Settings(url=nf["url"], proxy_prior_weight=0.3), reranker=None))
    with httpx.Client(timeout=60) as http:
        yield {"off": off, "on": on, "http": http}
    off.stop()
    on.stop()


def _proxy_ids(proxies: dict[str, Any], which: str, body: dict[str, Any], index: str = INDEX) -> list[str]:
    answer = proxies["http"].post(f"{proxies[which].url}/{index}/_nirbridge/search", json=body)
    assert answer.status_code == 200, answer.text
    return [hit["_id"] for hit in answer.json()["hits"]["hits"]]


def test_the_proxy_mixes_the_prior_over_the_depth_not_only_the_page(
    nf: dict[str, Any], client: OpenSearch, proxies: dict[str, Any]
) -> None:
    text = "vitamin d and breast cancer"
    builder = QueryBuilder(QueryEncoders(), IndexFields.read(client, nf["url"], INDEX))
    (plain,) = first_stage(client, nf["url"], INDEX, builder, [text], "bm25", 100)
    (mixed,) = first_stage(client, nf["url"], INDEX, builder, [text], "bm25", 100, prior=Prior(0.3))
    body = {"q": text, "mode": "bm25", "size": 10}
    assert _proxy_ids(proxies, "off", {**body, "prior": 0.3}) == [d for d, _ in mixed[:10]]
    assert _proxy_ids(proxies, "off", body) == [d for d, _ in plain[:10]]
    assert _proxy_ids(proxies, "on", body) == [d for d, _ in mixed[:10]]  # the setting's default
    assert _proxy_ids(proxies, "on", {**body, "prior": 0}) == [d for d, _ in plain[:10]]
    named = {**body, "prior": {"weight": 0.3, "field": "nir_prior"}, "from": 5, "size": 5}
    assert _proxy_ids(proxies, "off", named) == [d for d, _ in mixed[5:10]]


def test_the_proxy_refuses_a_prior_it_cannot_apply(proxies: dict[str, Any]) -> None:
    body = {"q": "statins", "mode": "bm25"}
    # the default applies only where the field exists; naming a prior on such an index is a 400
    assert _proxy_ids(proxies, "on", body, PLAIN) == ["1"]
    url = f"{proxies['off'].url}/{PLAIN}/_nirbridge/search"
    reason = _error(proxies["http"].post(url, json={**body, "prior": 0.3}), 400)
    assert reason.startswith(f"[prior] index [{PLAIN}] has no rank_feature field [nir_prior]")
    url = f"{proxies['off'].url}/{INDEX}/_nirbridge/search"
    for bad in (1.5, "0.3", True, {"weight": 2}, {"field": "nir_prior"}, {"weight": 0.3, "field": 7}):
        answer = proxies["http"].post(url, json={**body, "prior": bad})
        assert _error(answer, 400).startswith("[prior"), bad
