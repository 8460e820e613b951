"""`nirbridge enrich` against the real thing: the engine over HTTP, real encoders, redis-server and a worker.

The corpus is a slice of SciFact: the relevant abstracts of a few test claims plus other abstracts, so that
the retrieval test can check that `neural_sparse` over `nir_sparse` and `knn` over `nir_dense` find them.
Encoders run on the reference backend (torch-fp32: no export, the same numbers in every process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opensearchpy import OpenSearch
from opensearchpy.helpers import bulk
from redis_fixture import RedisServer, free_port
from typer.testing import CliRunner

from nirbridge.connector.checkpoint import load_checkpoint
from nirbridge.connector.cli import app
from nirbridge.connector.engine_process import EngineProcess
from nirbridge.connector.enrich import EnrichJob, EnrichOptions
from nirbridge.connector.errors import CheckpointMismatch, IndexNotFound
from nirbridge.connector.runner import LocalRunner
from nirbridge.workers.pipeline import EncoderSpec, EnrichmentSpec

pytestmark = pytest.mark.timeout(300)

BACKEND = "torch-fp32"
QUERIES = 8  # SciFact test claims whose relevant abstracts are in the corpus
FILLER = 80  # other abstracts


@pytest.fixture(scope="module")
def scifact_slice(scifact_dir: Path) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, set[str]]]:
    """(documents, {query id: text}, {query id: relevant doc ids}) for a small corpus."""
    qrels: dict[str, set[str]] = {}
    for line in (scifact_dir / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(qid, set()).add(did)
    chosen = dict(sorted(qrels.items())[:QUERIES])
    wanted = set().union(*chosen.values())
    docs: list[dict[str, Any]] = []
    fillers = 0
    with (scifact_dir / "corpus.jsonl").open() as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["_id"] in wanted or fillers < FILLER:
                fillers += doc["_id"] not in wanted
                docs.append({"_id": doc["_id"], "title": doc["title"], "text": doc["text"]})
    queries = {}
    for line in (scifact_dir / "queries.jsonl").read_text().splitlines():
        query = json.loads(line)
        if query["_id"] in chosen:
            queries[query["_id"]] = query["text"]
    assert wanted <= {doc["_id"] for doc in docs}
    return docs, queries, chosen


def _create(client: OpenSearch, index: str, docs: list[dict[str, Any]], knn: bool = True) -> None:
    if client.indices.exists(index=index):
        client.indices.delete(index=index)
    settings: dict[str, Any] = {"index.knn": True} if knn else {}
    mappings = {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
    client.indices.create(index=index, body={"settings": settings, "mappings": mappings})
    bulk(
        client,
        ({"_index": index, "_id": d["_id"], **{k: v for k, v in d.items() if k != "_id"}} for d in docs),
    )
    client.indices.refresh(index=index)


def _spec(**kinds: str) -> EnrichmentSpec:
    return EnrichmentSpec(fields=("title", "text"), **{k: EncoderSpec(m, BACKEND) for k, m in kinds.items()})


def _job(
    client: OpenSearch, engine: EngineProcess, index: str, spec: EnrichmentSpec, tmp: Path, **options: Any
):
    return EnrichJob(
        client,
        engine.url,
        LocalRunner(),
        EnrichOptions(index=index, spec=spec, checkpoint=tmp / "ck.json", **options),
    )


def _versions(client: OpenSearch, index: str, ids: list[str]) -> dict[str, int]:
    docs = client.mget(index=index, body={"ids": ids})["docs"]
    return {doc["_id"]: int(doc["_version"]) for doc in docs}


def _sources(client: OpenSearch, index: str) -> dict[str, dict[str, Any]]:
    response = client.search(index=index, body={"size": 1000, "query": {"match_all": {}}})
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


@pytest.fixture(scope="module")
def enriched(client: OpenSearch, engine: EngineProcess, scifact_slice, tmp_path_factory) -> dict[str, Any]:
    """The slice enriched once with sparse and dense: the job's report and the time it took."""
    docs, _, _ = scifact_slice
    _create(client, "slice", docs)
    report = _job(
        client,
        engine,
        "slice",
        _spec(sparse="splade-tiny", dense="all-MiniLM-L6-v2"),
        tmp_path_factory.mktemp("e"),
    ).run()
    return {"report": report, "docs": docs}


def test_every_document_gets_its_fields_and_meta(client: OpenSearch, enriched: dict[str, Any]) -> None:
    report = enriched["report"]
    assert (report.processed, report.skipped, report.failed) == (len(enriched["docs"]), 0, 0)
    assert report.mapping["action"] == "put_mapping"
    sources = _sources(client, "slice")
    assert len(sources) == len(enriched["docs"])
    for source in sources.values():
        assert source["nir_sparse"] and all(w > 0 for w in source["nir_sparse"].values())
        assert len(source["nir_dense"]) == 384
        assert np.isclose(np.linalg.norm(source["nir_dense"]), 1.0, atol=1e-3)
        meta = source["nir_meta"]
        assert set(meta["models"]) == {"sparse", "dense"} and meta["content_hash"].startswith("sha256:")
    mapping = client.indices.get_mapping(index="slice")["slice"]["mappings"]["properties"]
    assert mapping["nir_sparse"]["type"] == "rank_features"
    assert mapping["nir_dense"]["dimension"] == 384


def test_neural_sparse_and_knn_find_the_relevant_abstracts(
    client: OpenSearch, enriched: dict[str, Any], scifact_slice
) -> None:
    from nirbridge.workers.dense import DenseEncoder
    from nirbridge.workers.sparse import SparseEncoder

    _, queries, qrels = scifact_slice
    sparse, dense = SparseEncoder("splade-tiny", BACKEND), DenseEncoder("all-MiniLM-L6-v2", BACKEND)
    sources = _sources(client, "slice")
    ids = sorted(sources)
    matrix = np.array([sources[i]["nir_dense"] for i in ids], dtype=np.float32)
    found = {"sparse": 0, "dense": 0}
    for qid, text in queries.items():
        tokens = sparse.encode_query(text)
        hits = client.search(
            index="slice",
            body={"size": 5, "query": {"neural_sparse": {"nir_sparse": {"query_tokens": tokens}}}},
        )["hits"]["hits"]
        found["sparse"] += bool({hit["_id"] for hit in hits} & qrels[qid])
        # the engine's order is the dot product of the query with the stored weights
        exact = sorted(
            ids, key=lambda i: -sum(w * sources[i]["nir_sparse"].get(t, 0.0) for t, w in tokens.items())
        )
        assert hits[0]["_id"] == exact[0]

        vector = dense.encode_query(text)
        hits = client.search(
            index="slice",
            body={"size": 5, "query": {"knn": {"nir_dense": {"vector": vector.tolist(), "k": 5}}}},
        )["hits"]["hits"]
        found["dense"] += bool({hit["_id"] for hit in hits} & qrels[qid])
        assert [hit["_id"] for hit in hits] == [
            ids[j] for j in np.argsort(-(matrix @ vector), kind="stable")[:5]
        ]
    assert found["sparse"] >= QUERIES - 2, found
    assert found["dense"] >= QUERIES - 2, found


def test_a_rerun_skips_current_documents_and_re_enriches_changed_ones(
    client: OpenSearch, engine: EngineProcess, scifact_slice, tmp_path: Path
) -> None:
    docs, _, _ = scifact_slice
    docs = docs[:20]
    _create(client, "rerun", docs)
    spec = _spec(sparse="splade-tiny")
    first = _job(client, engine, "rerun", spec, tmp_path).run()
    assert (first.processed, first.skipped) == (20, 0)
    assert not (tmp_path / "ck.json").exists()  # a finished run leaves no checkpoint behind

    client.update(
        index="rerun", id=docs[3]["_id"], body={"doc": {"text": "Changed: vitamin D and bone density."}}
    )
    client.update(index="rerun", id=docs[4]["_id"], body={"doc": {"unrelated": 1}})  # not a text field
    client.indices.refresh(index="rerun")
    before = _versions(client, "rerun", [d["_id"] for d in docs])
    second = _job(client, engine, "rerun", spec, tmp_path).run()
    assert (second.processed, second.skipped, second.failed) == (1, 19, 0)
    after = _versions(client, "rerun", [d["_id"] for d in docs])
    assert {i for i in after if after[i] != before[i]} == {docs[3]["_id"]}
    assert "vitamin" in _sources(client, "rerun")[docs[3]["_id"]]["nir_sparse"]

    # a new model kind enriches everything again, and keeps the sparse fingerprint; with DeepCT's pseudo-text
    terms = EnrichmentSpec(
        fields=("title", "text"),
        sparse=EncoderSpec("splade-tiny", BACKEND),
        terms=EncoderSpec("splade-tiny", BACKEND, {"pseudo_text_scale": 4}),
    )
    third = _job(client, engine, "rerun", terms, tmp_path).run()
    assert third.processed == 20
    source = _sources(client, "rerun")[docs[0]["_id"]]
    assert set(source["nir_meta"]["models"]) == {"sparse", "terms"}
    words = source["nir_terms_text"].split()
    heaviest = max(source["nir_terms"], key=source["nir_terms"].get)
    assert words.count(heaviest) == round(source["nir_terms"][heaviest] * 4)
    mapping = client.indices.get_mapping(index="rerun")["rerun"]["mappings"]["properties"]
    assert mapping["nir_terms_text"]["type"] == "text"
    query = {"query": {"match": {"nir_terms_text": heaviest}}}
    hits = client.search(index="rerun", body=query)["hits"]["hits"]
    assert docs[0]["_id"] in {hit["_id"] for hit in hits}


def test_query_limits_an_incremental_run(
    client: OpenSearch, engine: EngineProcess, scifact_slice, tmp_path
) -> None:
    docs, _, _ = scifact_slice
    _create(client, "incremental", docs[:12])
    ids = [d["_id"] for d in docs[:3]]
    report = _job(
        client, engine, "incremental", _spec(sparse="splade-tiny"), tmp_path, query={"ids": {"values": ids}}
    ).run()
    assert report.processed == 3 and report.to_scan == 3
    sources = _sources(client, "incremental")
    assert {i for i, s in sources.items() if "nir_sparse" in s} == set(ids)


def test_bad_documents_are_reported_and_the_rest_is_written(
    client: OpenSearch, engine: EngineProcess, scifact_slice, tmp_path: Path
) -> None:
    docs, _, _ = scifact_slice
    good = docs[:6]
    bad = [
        {"_id": "empty", "title": " ", "text": ""},
        {"_id": "number", "title": 42, "text": "a number title is read as text, as OpenSearch indexes it"},
        {"_id": "missing", "other": "no title, no text"},
        {"_id": "huge", "title": "Huge", "text": "protein folding " * 200_000},  # 3 MB of text
    ]
    _create(client, "bad", good + bad)
    command = [
        "enrich", "--url", engine.url, "--index", "bad", "--fields", "title,text",
        "--sparse", "splade-tiny", "--backend", BACKEND, "--checkpoint", str(tmp_path / "ck.json"),
        "--json", "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(app, command)
    # issue 14: a document with no text has nothing to enrich; it is skipped with its reason and counted, not
    # failed (it failed every later run too, so an incremental job never exited 0)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # the huge one is cut to max_chars and enriched; the number title is text ("42"), as OpenSearch has it
    assert report["processed"] == len(good) + 2
    assert report["failed"] == 0 and report["failures"] == []
    assert report["skipped_empty"] == 2 and {e["id"] for e in report["empty"]} == {"empty", "missing"}
    reasons = {e["id"]: e["reason"] for e in report["empty"]}
    assert "empty" in reasons["empty"]
    assert "skipped: empty: no text" in result.stderr
    sources = _sources(client, "bad")
    assert all("nir_sparse" in sources[d["_id"]] for d in good)
    assert "nir_sparse" in sources["huge"] and "nir_sparse" in sources["number"]
    assert "nir_sparse" not in sources["empty"] and "nir_sparse" not in sources["missing"]
    # the re-run writes nothing: it still exits 0, counts the two again, and reports no made-up rate
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0, again.output
    rerun = json.loads(again.stdout.strip().splitlines()[-1])
    assert rerun["processed"] == 0 and rerun["skipped"] == len(good) + 2 and rerun["skipped_empty"] == 2
    assert rerun["docs_per_s"] == 0


def test_knn_on_an_index_without_index_knn_migrates_behind_an_alias(
    client: OpenSearch, engine: EngineProcess, scifact_slice, tmp_path: Path
) -> None:
    docs, _, _ = scifact_slice
    for name in ("plain-nir-1",):
        if client.indices.exists(index=name):
            client.indices.delete(index=name)
    _create(client, "plain", docs[:15], knn=False)
    spec = _spec(dense="all-MiniLM-L6-v2")
    dry = _job(client, engine, "plain", spec, tmp_path, dry_run=True).run()
    assert dry.mapping["action"] == "new_index" and "index.knn" in dry.mapping_text
    assert not client.indices.exists(index="plain-nir-1")

    report = _job(client, engine, "plain", spec, tmp_path).run()
    assert (report.target, report.swapped_from, report.processed) == ("plain-nir-1", "plain", 15)
    assert client.indices.get_alias(name="plain") == {"plain-nir-1": {"aliases": {"plain": {}}}}
    hits = client.search(
        index="plain",
        body={"size": 3, "query": {"knn": {"nir_dense": {"vector": _sources(client, "plain")[docs[0]["_id"]]
                                                         ["nir_dense"], "k": 3}}}},
    )["hits"]["hits"]  # fmt: skip
    assert hits[0]["_id"] == docs[0]["_id"]
    assert client.count(index="plain")["count"] == 15


def test_usage_errors(client: OpenSearch, engine: EngineProcess, scifact_slice, tmp_path: Path) -> None:
    spec = _spec(sparse="splade-tiny")
    with pytest.raises(IndexNotFound, match="no-such-index"):
        _job(client, engine, "no-such-index", spec, tmp_path).run()
    docs, _, _ = scifact_slice
    _create(client, "mismatch", docs[:4])
    # a checkpoint left by a run of another spec refuses to be resumed with this one
    (tmp_path / "ck.json").write_text(
        json.dumps(
            {"index": "mismatch", "query_hash": "sha256:x", "spec_fingerprint": "sha256:y", "version": 1}
        )
    )
    with pytest.raises(CheckpointMismatch, match="--restart"):
        _job(client, engine, "mismatch", spec, tmp_path).run()
    assert _job(client, engine, "mismatch", spec, tmp_path, restart=True).run().processed == 4

    cli = CliRunner()
    base = ["enrich", "--url", engine.url, "--index", "mismatch", "--fields", "title,text", "--no-progress"]
    result = cli.invoke(app, [*base[:-1], "--no-progress"])
    assert result.exit_code == 2 and "no encoder" in result.output
    result = cli.invoke(app, [*base, "--sparse", "splade-tiny", "--query", "[1]"])
    assert result.exit_code == 2 and "JSON object" in result.output
    result = cli.invoke(app, [*base, "--sparse", "splade-tiny", "--param", "dense.batch_size=4"])
    assert result.exit_code == 2 and "not asked for" in result.output
    result = cli.invoke(app, [*base, "--sparse", "/no/such/model", "--checkpoint", str(tmp_path / "x.json")])
    assert result.exit_code == 2 and "/no/such/model" in result.output


# --- with Celery: a real redis-server and worker ----------------------------------------------------------


def _celery_env(server: RedisServer) -> dict[str, str]:
    return {
        **os.environ,
        "NIRBRIDGE_BROKER_URL": server.url(0),
        "NIRBRIDGE_RESULT_BACKEND": server.url(1),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def _enrich_command(engine: EngineProcess, index: str, checkpoint: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "nirbridge", "enrich", "--url", engine.url, "--index", index,
        "--fields", "title,text", "--sparse", "splade-tiny", "--backend", BACKEND,
        "--checkpoint", str(checkpoint), "--json", "--no-progress", *extra,
    ]  # fmt: skip


def test_a_killed_job_resumes_and_enriches_every_document_once(
    client: OpenSearch, engine: EngineProcess, scifact_dir: Path, redis_server, worker, tmp_path: Path
) -> None:
    docs = []
    with (scifact_dir / "corpus.jsonl").open() as handle:
        for line in handle:
            doc = json.loads(line)
            docs.append({"_id": doc["_id"], "title": doc["title"], "text": doc["text"]})
            if len(docs) == 120:
                break
    _create(client, "killed", docs)
    checkpoint = tmp_path / "ck.json"
    command = _enrich_command(engine, "killed", checkpoint, "--runner", "celery", "--batch-size", "4")
    job = subprocess.Popen(
        command, env=_celery_env(redis_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    saved = None
    while time.monotonic() < deadline and job.poll() is None:
        try:
            saved = load_checkpoint(checkpoint)
        except ValueError:
            saved = None  # never half a file; a parse race is impossible, but stay safe
        if saved is not None and saved.processed >= 24:
            break
        time.sleep(0.02)
    assert job.poll() is None, f"the job ended before it could be killed: {job.communicate()}"
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert saved is not None and 24 <= saved.processed < len(docs) and not saved.finished

    resumed = subprocess.run(
        command, env=_celery_env(redis_server), capture_output=True, text=True, timeout=240
    )
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert report["resumed"] is True
    assert report["processed"] + report["skipped"] == len(docs) and report["failed"] == 0
    # ingested at version 1; enriched exactly once: version 2 (a second enrichment would make it 3)
    versions = _versions(client, "killed", [d["_id"] for d in docs])
    assert set(versions.values()) == {2}, {i: v for i, v in versions.items() if v != 2}
    assert all("nir_sparse" in source for source in _sources(client, "killed").values())
    assert not checkpoint.exists()


def test_celery_errors_are_clear(
    engine: EngineProcess, client: OpenSearch, scifact_slice, tmp_path: Path
) -> None:
    docs, _, _ = scifact_slice
    _create(client, "noworker", docs[:2])
    nothing = f"redis://127.0.0.1:{free_port()}/0"
    env = {**os.environ, "NIRBRIDGE_BROKER_URL": nothing, "NIRBRIDGE_RESULT_BACKEND": nothing}
    command = _enrich_command(
        engine, "noworker", tmp_path / "ck.json", "--runner", "celery", "--timeout", "2"
    )
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "broker" in result.stderr and nothing in result.stderr, result.stderr


def test_no_worker_on_the_queue_is_exit_2(
    engine: EngineProcess, client: OpenSearch, scifact_slice, tmp_path: Path, tmp_path_factory
) -> None:
    server = RedisServer(tmp_path_factory.mktemp("lonely-redis"))
    try:
        docs, _, _ = scifact_slice
        _create(client, "noworker", docs[:2])
        command = _enrich_command(
            engine, "noworker", tmp_path / "ck.json", "--runner", "celery", "--timeout", "2"
        )
        result = subprocess.run(command, env=_celery_env(server), capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "no worker is consuming queue 'enrich'" in result.stderr, (
            result.stderr
        )
    finally:
        server.stop()


def test_sliced_readers_enrich_every_document_once(
    client: OpenSearch, engine: EngineProcess, scifact_slice, tmp_path: Path
) -> None:
    docs, _, _ = scifact_slice
    _create(client, "sliced", docs[:30])
    spec = _spec(sparse="splade-tiny")
    report = _job(client, engine, "sliced", spec, tmp_path, slices=3, batch_size=4).run()
    assert (report.processed, report.skipped, report.failed) == (30, 0, 0)
    versions = _versions(client, "sliced", [d["_id"] for d in docs[:30]])
    assert set(versions.values()) == {2}


def test_a_ceiling_on_docs_per_second_holds(
    client: OpenSearch, engine: EngineProcess, scifact_slice, tmp_path: Path
) -> None:
    docs, _, _ = scifact_slice
    _create(client, "throttled", docs[:24])
    job = _job(
        client, engine, "throttled", _spec(sparse="splade-tiny"), tmp_path, batch_size=4, max_docs_per_s=8
    )
    report = job.run()
    assert report.processed == 24
    assert report.seconds >= 24 / 8 - 0.1  # the last batch ends when 24 documents at 8/s are due
