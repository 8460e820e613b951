"""The Celery side of enrichment against the real thing: redis-server, a `nirbridge worker`, real encoders.

The module's worker consumes both queues with one pool process, so every task lands in the same process:
what it reports about loaded models is the whole truth. Tests that kill a worker or stop Redis
bring their own.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from redis_fixture import RedisServer, WorkerProcess, free_port

from nirbridge.connector.runner import (
    BatchDone,
    BatchFailed,
    BrokerUnavailable,
    CeleryRunner,
    LocalRunner,
    WorkerUnavailable,
)
from nirbridge.workers.celery_app import WorkerSettings, make_app, prefetch_for
from nirbridge.workers.pipeline import (
    DocResult,
    EncoderSpec,
    EnrichmentSpec,
    SpecError,
    content_hash,
    document_text,
    run_enrichment,
)

pytestmark = pytest.mark.timeout(120)

BACKEND = "torch-fp32"  # the reference backend: loads in seconds, no export, same numbers in every process

DOCS = [
    {"_id": "d1", "_source": {"title": "Statins", "text": "Statin use and breast cancer survival."}},
    {
        "_id": "d2",
        "_source": {"title": "Vitamin D", "text": "Vitamin D supplements lower the risk of falls."},
    },
    {"_id": "d3", "_source": {"title": "", "text": "Green tea polyphenols and prostate cancer."}},
    {"_id": "d4", "_source": {"title": ["Omega-3", "fish oil"], "text": "Fatty acids and heart disease."}},
    {"_id": "d5", "_source": {"text": "Low-carbohydrate diets and weight loss in adults."}},
]

BAD_DOCS = [
    {"_id": "missing", "_source": {"other": "no title, no text"}},
    {"_id": "empty", "_source": {"title": "  ", "text": ""}},
    {"_id": "mixed", "_source": {"title": ["a title", {"not": "text"}], "text": "an object is not text"}},
    {"_source": {"text": "no id"}},
    {"_id": "object", "_source": {"text": {"nested": "object"}}},
]


def _available(module: str, model: str) -> bool:
    if importlib.util.find_spec(f"nirbridge.workers.{module}") is None:
        return False
    from nirbridge.workers.models import resolve_model

    try:
        resolve_model(model)
    except Exception:  # noqa: BLE001 - a model package that is not installed
        return False
    return True


def _encoder_spec() -> EnrichmentSpec:
    """The encoders here: sparse is required; terms and dense when their modules and models exist."""
    if not _available("sparse", "splade-tiny"):
        pytest.skip("no SPLADE encoder here (nirbridge.workers.sparse or the splade-tiny package is absent)")
    kinds: dict[str, EncoderSpec] = {"sparse": EncoderSpec("splade-tiny", BACKEND, {"top_k": 64})}
    if _available("term_weights", "splade-tiny"):
        kinds["terms"] = EncoderSpec("splade-tiny", BACKEND)
    if _available("dense", "all-MiniLM-L6-v2"):
        kinds["dense"] = EncoderSpec("all-MiniLM-L6-v2", BACKEND)
    return EnrichmentSpec(fields=("title", "text"), **kinds)


def _app(server: RedisServer) -> Celery:
    return make_app(WorkerSettings(broker_url=server.url(0), result_backend=server.url(1)))


def _wait_ready(runner: CeleryRunner, worker: WorkerProcess, within: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        try:
            return runner.ping(timeout=2.0)
        except WorkerUnavailable:
            if worker.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker did not come up:\n{worker.output()}") from None


@pytest.fixture(scope="module")
def worker(redis_server: RedisServer, worker: WorkerProcess) -> WorkerProcess:
    """The shared `worker` (tests/conftest.py), once it answers a ping."""
    _wait_ready(CeleryRunner(_app(redis_server), timeout=5), worker)
    return worker


@pytest.fixture(scope="module")
def runner(redis_server: RedisServer, worker: WorkerProcess) -> CeleryRunner:
    return CeleryRunner(_app(redis_server), in_flight=2, timeout=60)


def _all(done: Iterator[BatchDone]) -> list[DocResult]:
    return [result for batch in done for result in batch.results]


# --- the pipeline on its own --------------------------------------------------------------------------------


def test_document_text_joins_fields_and_names_a_bad_one() -> None:
    assert document_text({"title": "A", "text": "b c"}, ["title", "text"]) == "A b c"
    assert document_text({"title": ["x", "y"], "text": None}, ["title", "text"]) == "x y"
    assert document_text({"meta": {"title": "deep"}}, ["meta.title"]) == "deep"
    # numbers and booleans are indexed as text by OpenSearch, and read as text here too
    assert document_text({"title": 3, "text": "t"}, ["title", "text"]) == "3 t"
    mixed = {"title": [1, True, 2.5, None], "text": False}
    assert document_text(mixed, ["title", "text"]) == "1 true 2.5 false"
    with pytest.raises(ValueError, match="field 'title' is not text \\(got dict\\)"):
        document_text({"title": {"a": 1}, "text": "t"}, ["title", "text"])
    with pytest.raises(ValueError, match="no text"):
        document_text({"title": " "}, ["title", "text"])


def test_content_hash_is_the_connectors() -> None:
    content = pytest.importorskip(
        "nirbridge.connector.content", reason="connector.content is not in this checkout"
    )
    for source in (
        {"title": "Tea", "text": "Green tea, é ü"},
        {"text": "no title"},
        {"title": ["a", "b"], "text": {"z": 1, "a": [2, 3]}},
        {"meta": {"title": "nested"}, "text": ""},
    ):
        for fields in (["title", "text"], ["text"], ["meta.title", "text"]):
            assert content_hash(source, fields) == content.content_hash(source, fields)


def test_spec_travels_as_json_and_refuses_bad_parts() -> None:
    spec = EnrichmentSpec(fields=("title", "text"), sparse=EncoderSpec("m", "torch-fp32", {"top_k": 3}))
    assert EnrichmentSpec.from_json(spec.to_json()) == spec
    with pytest.raises(SpecError, match="no encoder"):
        EnrichmentSpec(fields=("text",))
    with pytest.raises(SpecError, match="fields"):
        EnrichmentSpec(fields="text", sparse=EncoderSpec("m"))  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="unknown keys \\['colour'\\]"):
        EnrichmentSpec.from_json({**spec.to_json(), "colour": "red"})


def test_bad_documents_fail_one_by_one_without_loading_a_model() -> None:
    spec = EnrichmentSpec(fields=("title", "text"), sparse=EncoderSpec("/no/such/model", BACKEND))
    results = run_enrichment(spec, BAD_DOCS)
    assert [(r.id, r.ok) for r in results] == [
        ("missing", False),
        ("empty", False),
        ("mixed", False),
        ("<no _id at position 3>", False),
        ("object", False),
    ]
    reasons = {r.id: r.reason for r in results}
    assert "missing or empty" in reasons["missing"] and "missing or empty" in reasons["empty"]
    assert reasons["mixed"] == "field 'title' is not text (got list)"
    assert reasons["object"] == "field 'text' is not text (got dict)"


def test_an_enormous_field_is_cut_before_encoding_and_hashed_whole() -> None:
    full = _encoder_spec()
    spec = EnrichmentSpec(fields=("text",), sparse=full.sparse, max_chars=2_000)
    huge = "statins lower cholesterol " * 40_000  # about 1 MB
    changed_tail = huge[:-10] + "different!"
    started = time.monotonic()
    (a, b) = run_enrichment(
        spec, [{"_id": "a", "_source": {"text": huge}}, {"_id": "b", "_source": {"text": changed_tail}}]
    )
    assert a.ok and b.ok
    assert a.update["nir_sparse"] == b.update["nir_sparse"]  # type: ignore[index] - the model saw the same text
    assert a.update["nir_meta"]["content_hash"] != b.update["nir_meta"]["content_hash"]  # type: ignore[index]
    assert time.monotonic() - started < 30


def test_prefetch_suits_each_queue() -> None:
    assert prefetch_for(["enrich"]) == 1
    assert prefetch_for(["rerank"]) > 1
    assert prefetch_for(["enrich", "rerank"]) == 1


# --- through Celery -----------------------------------------------------------------------------------------


def test_ping_answers_on_both_queues(runner: CeleryRunner, worker: WorkerProcess) -> None:
    info = runner.ping(timeout=10)
    assert info["queue"] == "enrich"
    assert info["hostname"] == worker.hostname.replace("%h", info["hostname"].split("@", 1)[1])
    assert info["pid"] != worker.process.pid  # a pool process answered, not the main one
    assert set(info) >= {"models", "model_count", "backends"}
    rerank = CeleryRunner(runner.app, queue="rerank", timeout=10).ping()
    assert rerank["queue"] == "rerank" and rerank["hostname"] == info["hostname"]
    assert runner.consumers() == [info["hostname"]]


def test_enrich_batch_round_trip_equals_local_runner(runner: CeleryRunner) -> None:
    spec = _encoder_spec()
    batches = [DOCS[:2], DOCS[2:4], DOCS[4:]]
    remote = list(runner.enrich(spec, batches))
    assert [done.number for done in remote] == [0, 1, 2]
    assert [done.docs for done in remote] == batches
    local = _all(LocalRunner().enrich(spec, batches))
    got = [result for done in remote for result in done.results]
    assert [r.id for r in got] == [r.id for r in local] == [doc["_id"] for doc in DOCS]
    for mine, reference in zip(got, local, strict=True):
        assert mine.ok and reference.ok, (mine.reason, reference.reason)
        assert mine.update is not None and reference.update is not None
        assert mine.update["nir_sparse"].keys() == reference.update["nir_sparse"].keys()
        for term, weight in reference.update["nir_sparse"].items():
            assert mine.update["nir_sparse"][term] == pytest.approx(weight, rel=1e-4, abs=1e-5)
        if "dense" in spec.encoders():
            assert mine.update["nir_dense"] == pytest.approx(reference.update["nir_dense"], abs=1e-5)
        if "terms" in spec.encoders():
            assert mine.update["nir_terms"] == pytest.approx(
                reference.update["nir_terms"], rel=1e-4, abs=1e-5
            )
        meta, reference_meta = mine.update["nir_meta"], reference.update["nir_meta"]
        assert meta["models"] == reference_meta["models"] == runner.fingerprints(spec)
        assert meta["content_hash"] == reference_meta["content_hash"]
        assert meta["enriched_at"].endswith("Z")
    assert 0 < len(got[0].update["nir_sparse"]) <= 64  # type: ignore[index]


def test_describe_gives_fingerprints_and_the_dense_shape(runner: CeleryRunner) -> None:
    spec = _encoder_spec()
    remote, local = runner.describe(spec), LocalRunner().describe(spec)
    assert remote == local
    assert set(remote["models"]) == set(spec.encoders())
    assert remote["models"]["sparse"].startswith("splade-tiny@")
    if "dense" in spec.encoders():
        assert remote["dense"] == {"dimension": 384, "space_type": local["dense"]["space_type"]}
        assert local["dense"]["space_type"] in {"innerproduct", "cosinesimil", "l2"}


def test_per_document_failures_come_back_with_the_good_ones(runner: CeleryRunner) -> None:
    spec = _encoder_spec()
    (done,) = runner.enrich(spec, [[*BAD_DOCS, DOCS[0]]])
    assert [r.ok for r in done.results] == [False] * len(BAD_DOCS) + [True]
    assert done.results[2].reason == "field 'title' is not text (got list)"
    assert done.results[-1].id == "d1" and "nir_sparse" in done.results[-1].update  # type: ignore[operator]


def test_models_load_once_per_worker_process(runner: CeleryRunner) -> None:
    spec = _encoder_spec()
    before = runner.ping(timeout=10)
    list(runner.enrich(spec, [DOCS[:1], DOCS[1:2], DOCS[2:3]]))
    after = runner.ping(timeout=10)
    assert after["pid"] == before["pid"]
    loaded = {(m["kind"], m["model"], m["backend"]): m["loads"] for m in after["models"]}
    assert loaded == {(kind, e.model, e.backend): 1 for kind, e in spec.encoders().items()}
    assert after["model_count"] == len(spec.encoders())


def test_a_model_that_cannot_load_fails_the_batch_clearly(runner: CeleryRunner) -> None:
    _encoder_spec()  # skips where there is no encoder module to report the missing model
    spec = EnrichmentSpec(fields=("text",), sparse=EncoderSpec("/no/such/model", BACKEND))
    started = time.monotonic()
    with pytest.raises(BatchFailed, match="/no/such/model"):
        list(runner.enrich(spec, [DOCS[:1]]))
    assert time.monotonic() - started < 10


# --- a dead worker, a stopped Redis, a bad command line -----------------------------------------------------


def test_a_killed_worker_is_worker_unavailable_not_a_hang(tmp_path: Path) -> None:
    spec = _encoder_spec()
    server = RedisServer(tmp_path / "redis")
    worker = WorkerProcess(server.url(0), server.url(1), tmp_path / "worker")
    try:
        runner = CeleryRunner(_app(server), in_flight=2, timeout=20, liveness_every=1.0)
        _wait_ready(runner, worker)
        # the worker is killed (with its pool) while it loads the models for the first batch
        killer = threading.Timer(0.5, worker.kill)
        killer.start()
        started = time.monotonic()
        with pytest.raises(WorkerUnavailable, match="queue 'enrich'") as caught:
            list(runner.enrich(spec, [DOCS[:2], DOCS[2:]]))
        killer.join()
        assert time.monotonic() - started < runner.timeout
        assert "nirbridge worker --queues enrich" in str(caught.value)
        # and with no worker at all, the readiness check says so within its timeout
        started = time.monotonic()
        with pytest.raises(WorkerUnavailable, match="queue 'enrich'"):
            runner.ping(timeout=2)
        assert time.monotonic() - started < 5
    finally:
        worker.kill()
        server.stop()


def test_a_batch_whose_worker_dies_is_sent_again_to_a_live_one(tmp_path: Path) -> None:
    spec = _encoder_spec()
    server = RedisServer(tmp_path / "redis")
    first = WorkerProcess(server.url(0), server.url(1), tmp_path / "first")
    second: WorkerProcess | None = None
    try:
        runner = CeleryRunner(_app(server), in_flight=1, timeout=60, liveness_every=1.0)
        _wait_ready(runner, first)
        done: list[Any] = []
        thread = threading.Thread(target=lambda: done.append(_all(runner.enrich(spec, [DOCS[:2]]))))
        thread.start()
        deadline = time.monotonic() + 20
        while "enrich_batch" not in first.output():  # the first worker has started the batch
            assert time.monotonic() < deadline, first.output()
            time.sleep(0.05)
        second = WorkerProcess(server.url(0), server.url(1), tmp_path / "second")
        while len(runner.consumers()) < 2:
            assert time.monotonic() < deadline + 20 and second.process.poll() is None, second.output()
        first.kill()
        thread.join(timeout=60)
        assert not thread.is_alive()
        (results,) = done
        assert [(r.id, r.ok) for r in results] == [("d1", True), ("d2", True)]
        assert "enrich_batch" in second.output()
    finally:
        first.kill()
        if second is not None:
            second.kill()
        server.stop()


def test_a_stopped_redis_is_broker_unavailable(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    worker = WorkerProcess(server.url(0), server.url(1), tmp_path / "worker")
    try:
        runner = CeleryRunner(_app(server), in_flight=1, timeout=20)
        _wait_ready(runner, worker)
        spec = EnrichmentSpec(fields=("text",), sparse=EncoderSpec("/no/such/model", BACKEND))
        batches = runner.enrich(spec, [BAD_DOCS[:1], BAD_DOCS[1:2], BAD_DOCS[2:3]])
        first = next(batches)  # bad documents only: answered without loading a model
        assert first.results[0].id == "missing" and not first.results[0].ok
        server.stop()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{server.port}"):
            next(batches)
        with pytest.raises(BrokerUnavailable, match=f"redis://127.0.0.1:{server.port}/0"):
            runner.check()
        assert time.monotonic() - started < 20
    finally:
        worker.kill()
        server.stop()


def _nirbridge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "nirbridge", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_command_exits_2_when_redis_is_unreachable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = _nirbridge("worker", env={"NIRBRIDGE_BROKER_URL": url, "NIRBRIDGE_RESULT_BACKEND": url})
    assert done.returncode == 2, done.stderr
    assert f"cannot reach the broker at {url}" in done.stderr


def test_worker_command_refuses_an_unknown_queue() -> None:
    done = _nirbridge("worker", "--queues", "enrich,bogus", env={})
    assert done.returncode == 2
    assert "bogus" in done.stderr and "enrich, rerank" in done.stderr
