"""`nirbridge status` against the real engine, a real redis-server with no worker, and dead addresses."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opensearchpy import OpenSearch
from redis_fixture import RedisServer, free_port
from typer.testing import CliRunner

from nirbridge.connector.beir import shipped_sample
from nirbridge.connector.cli import app
from nirbridge.connector.engine_process import EngineProcess
from nirbridge.connector.schema import index_template, load_fragment
from nirbridge.connector.status import gather_status
from nirbridge.connector.writer import streaming_update, summarize

runner = CliRunner()
INDEX = "status-docs"
ALIAS = "status-live"
TOTAL = 12
ENRICHED = 10


@pytest.fixture(scope="module")
def enriched(client: OpenSearch) -> Iterator[str]:
    """TOTAL shipped-sample documents, the first ENRICHED enriched with SPLADE-tiny (sparse and terms)."""
    from nirbridge.workers.pipeline import EncoderSpec, EnrichmentSpec, run_enrichment

    docs = list(shipped_sample().documents())[:TOTAL]
    assert len(docs) == TOTAL
    body = index_template(
        dense_dimension=384,
        dense_space_type="innerproduct",
        base_properties=load_fragment("beir_corpus.json"),
        kinds=("sparse", "terms", "dense", "meta"),
    )
    client.indices.create(index=INDEX, body=body)
    client.indices.put_alias(index=INDEX, name=ALIAS)
    client.indices.create(index=".status-hidden", body={"settings": {"index.hidden": True}})
    sources = [{"_id": d.id, "_source": d.source()} for d in docs]
    pairs = ((d["_id"], d["_source"]) for d in sources)
    assert summarize(streaming_update(client, INDEX, pairs, op_type="index")).failed == 0
    short = {"max_length": 64}
    spec = EnrichmentSpec(
        fields=("title", "text"),
        sparse=EncoderSpec("splade-tiny", "torch-fp32", short),
        terms=EncoderSpec("splade-tiny", "torch-fp32", short),
    )
    results = run_enrichment(spec, sources[:ENRICHED])
    assert all(r.ok for r in results)
    summary = summarize(streaming_update(client, INDEX, ((r.id, r.update) for r in results), refresh=True))
    assert summary.written == ENRICHED
    yield INDEX


def _dead_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def test_coverage_fields_and_workers(
    engine: EngineProcess, enriched: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIRBRIDGE_BROKER_URL", redis_server.url())
    monkeypatch.setenv("NIRBRIDGE_RESULT_BACKEND", redis_server.url(1))
    result = runner.invoke(app, ["status", "--url", engine.url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["cluster"]["reachable"] and report["cluster"]["health"] in ("green", "yellow")
    assert report["cluster"]["version"]
    names = [index["name"] for index in report["indices"]]
    assert INDEX in names and ".status-hidden" not in names
    index = next(i for i in report["indices"] if i["name"] == INDEX)
    assert index["aliases"] == [ALIAS] and index["docs"] == TOTAL
    assert set(index["fields"]) == {"nir_sparse", "nir_terms", "nir_dense", "nir_meta"}
    assert index["fields"]["nir_dense"] == {
        "kind": "dense",
        "type": "knn_vector",
        "dimension": 384,
        "space_type": "innerproduct",
    }
    assert set(index["coverage"]) == {"sparse", "terms"}
    for kind in ("sparse", "terms"):
        cover = index["coverage"][kind]
        assert cover["documents"] == ENRICHED
        assert sum(cover["fingerprints"].values()) == ENRICHED and len(cover["fingerprints"]) == 1
    assert index["fingerprints_from"] == f"sample of {ENRICHED} documents"  # the engine has no aggregations
    workers = report["workers"]
    assert workers["reachable"] and workers["queues"] == {"enrich": 0, "rerank": 0}
    assert workers["workers"] == {}
    assert any("no worker answered" in w for w in report["warnings"])
    assert f"index {INDEX} (aliases: {ALIAS}): {TOTAL} documents" in result.stderr


def test_named_alias_resolves_and_dead_broker_is_a_warning(
    engine: EngineProcess, enriched: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = _dead_redis()
    monkeypatch.setenv("NIRBRIDGE_BROKER_URL", dead)
    monkeypatch.setenv("NIRBRIDGE_RESULT_BACKEND", dead)
    result = runner.invoke(app, ["status", "--url", engine.url, "--index", ALIAS])
    assert result.exit_code == 0, result.output
    assert f"index {INDEX} (aliases: {ALIAS}): {TOTAL} documents" in result.stdout
    assert f"  enriched sparse: {ENRICHED}/{TOTAL} (83%): " in result.stdout
    assert "  field nir_dense: knn_vector, dimension 384, innerproduct" in result.stdout
    assert f"broker {dead}: unreachable (" in result.stdout
    assert "warning: broker" in result.stdout


def test_queue_depth_counts_kombu_list_keys(engine: EngineProcess, redis_server: RedisServer) -> None:
    import redis

    connection = redis.Redis.from_url(redis_server.url(2))
    connection.rpush("enrich", "a", "b")
    connection.rpush("enrich\x06\x163", "c")
    connection.rpush("rerank", "d")
    report = gather_status(engine.url, broker_url=redis_server.url(2), result_backend=redis_server.url(2))
    assert report.workers.queues == {"enrich": 3, "rerank": 1}


def test_missing_named_index_exits_2(engine: EngineProcess) -> None:
    result = runner.invoke(app, ["status", "--url", engine.url, "--index", "no-such-index"])
    assert result.exit_code == 2
    assert "no such index: no-such-index" in result.stderr


def test_unreachable_cluster_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = _dead_redis()
    monkeypatch.setenv("NIRBRIDGE_BROKER_URL", dead)
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["status", "--url", url, "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["cluster"] == {
        "url": url,
        "reachable": False,
        "version": None,
        "distribution": None,
        "health": None,
        "error": "cannot reach the cluster: connection refused",
    }
    assert result.stderr.strip().endswith(
        f"nirbridge: error: {url}: cannot reach the cluster: connection refused"
    )
