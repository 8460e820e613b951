"""The cross-encoder and its Celery path against the real thing: a trained model, redis-server, a worker.

The model is the tests' own (``cross_encoder_fixture``: all-MiniLM-L6-v2 with a score head trained briefly on
SciFact).  References are independent of ``workers.cross_encoder``: Hugging Face's own pair tokenisation and
``AutoModelForSequenceClassification`` logits.  The Celery tests start one redis-server and one worker on the
``rerank`` queue for the module; the test that kills the worker runs last.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from celery import Celery
from cross_encoder_fixture import models_dir, trained_cross_encoder  # noqa: F401 - a fixture
from redis_fixture import RedisServer, WorkerProcess, wait_until_reranking

from nirbridge.connector.beir import BeirDataset
from nirbridge.connector.rerank_client import InProcessReranker, RerankClient
from nirbridge.connector.train_data import training_data
from nirbridge.workers.celery_app import WorkerSettings, make_app
from nirbridge.workers.cross_encoder import CrossEncoder, cached_cross_encoder, word_windows
from nirbridge.workers.errors import BadInputError
from nirbridge.workers.tasks import RERANK

pytestmark = pytest.mark.timeout(240)

WORKER_QUEUES = "rerank"  # the shared `worker` (tests/conftest.py)

SLACK = 0.25  # seconds a degraded answer may come after its deadline (thread hand-over on a loaded machine)


@pytest.fixture(scope="module", autouse=True)
def export_cache() -> Iterator[Path]:
    """ONNX exports of the tests' model beside it (its folder is kept between sessions; see the fixture)."""
    path = models_dir() / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NIRBRIDGE_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def groups(scifact_dir: Path) -> list[tuple[str, list[str]]]:
    """6 SciFact training queries, each with its relevant abstract first and 7 random ones."""
    data = training_data(BeirDataset.open(scifact_dir))
    corpus, queries, relevant = data.corpus, data.queries, data.train
    rng = random.Random(1)
    ids = sorted(corpus)
    return [
        (queries[q], [corpus[relevant[q][0]]] + [corpus[d] for d in rng.sample(ids, 7)])
        for q in sorted(relevant)[100:106]
    ]


@pytest.fixture(scope="module")
def reference(trained_cross_encoder: Path, groups: list[tuple[str, list[str]]]) -> np.ndarray:  # noqa: F811
    """Hugging Face's own scores: ``tokenizer(q, p, truncation="only_second", max_length=256)``, logits."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(trained_cross_encoder))
    model = AutoModelForSequenceClassification.from_pretrained(str(trained_cross_encoder)).eval()
    rows = []
    with torch.inference_mode():
        for query, passages in groups:
            batch = tokenizer(
                [query] * len(passages),
                passages,
                truncation="only_second",
                max_length=256,
                padding=True,
                return_tensors="pt",
            )
            rows.append(model(**batch).logits[:, 0].numpy())
    return np.stack(rows)


@pytest.fixture(scope="module")
def fp32(trained_cross_encoder: Path) -> CrossEncoder:  # noqa: F811
    return cached_cross_encoder(str(trained_cross_encoder), "torch-fp32")


def _scores(encoder: CrossEncoder, groups: list[tuple[str, list[str]]]) -> np.ndarray:
    return np.stack([encoder.score(query, passages) for query, passages in groups])


# --- the model ----------------------------------------------------------------------------------------------


def test_torch_scores_are_hugging_faces(
    fp32: CrossEncoder, groups: list[tuple[str, list[str]]], reference: np.ndarray
) -> None:
    scores = _scores(fp32, groups)
    assert scores.dtype == np.float32 and scores.shape == (6, 8)
    np.testing.assert_allclose(scores, reference, atol=1e-4)
    # the model learnt something: the relevant abstract scores above most random ones (over 40 training
    # queries at 256 word pieces: 84% of such pairs; top-1 of 8 for 19 of 40)
    above = float((reference[:, 1:] < reference[:, :1]).mean())
    assert above >= 0.7, above


def test_pairs_are_tokenised_as_only_second(fp32: CrossEncoder) -> None:
    tokenizer = fp32.tokenizer
    query, passage = "statin use and breast cancer", "word " * 400
    ids, types = fp32.pair_ids([(query, passage)])
    expected = tokenizer(query, passage, truncation="only_second", max_length=256)
    assert ids[0] == expected["input_ids"] and types[0] == expected["token_type_ids"]
    assert len(ids[0]) == 256
    long_query = "cholesterol " * 200  # only_second would fail; the query is cut at max_query_length
    ids, types = fp32.pair_ids([(long_query, passage)])
    assert len(ids[0]) == 256 and types[0].count(0) == 64 + 2


def test_onnx_backends_agree_with_torch_fp32(
    trained_cross_encoder: Path,  # noqa: F811
    groups: list[tuple[str, list[str]]],
    reference: np.ndarray,
) -> None:
    onnx32 = _scores(CrossEncoder(trained_cross_encoder, "onnx-fp32"), groups)
    np.testing.assert_allclose(onnx32, reference, atol=1e-3)
    int8 = _scores(CrossEncoder(trained_cross_encoder, "onnx-int8"), groups)
    # int8 (dynamic, per channel) moves scores by 0.16 on average here (up to 1.07: one passage), when they
    # spread with a standard deviation of 1.7; the order barely changes: the same top passage for at least
    # 5 of 6 queries, a rank correlation of at least 0.9 per query (measured: 0.95 to 1)
    assert float(np.abs(int8 - reference).mean()) <= 0.15 * float(reference.std())
    assert int((int8.argmax(axis=1) == reference.argmax(axis=1)).sum()) >= 5
    for row, ref in zip(int8, reference, strict=True):
        a, b = np.argsort(np.argsort(row)), np.argsort(np.argsort(ref))
        assert float(np.corrcoef(a, b)[0, 1]) >= 0.9


def test_rank_orders_by_the_scores(fp32: CrossEncoder, groups: list[tuple[str, list[str]]]) -> None:
    query, passages = groups[0]
    ranked = fp32.rank(query, passages)
    scores = fp32.score(query, passages)
    assert [i for i, _ in ranked] == sorted(range(len(passages)), key=lambda i: -scores[i])
    assert [s for _, s in ranked] == pytest.approx(sorted(scores.tolist(), reverse=True), abs=1e-6)
    assert len(fp32.rank(query, passages, top_k=3)) == 3


def test_maxp_keeps_the_best_window(
    trained_cross_encoder: Path,  # noqa: F811
    fp32: CrossEncoder,
    groups: list[tuple[str, list[str]]],
) -> None:
    query, passages = groups[0]
    # the relevant abstract buried between two random ones: "first" reads only the start
    filler = " ".join((passages[1] + " " + passages[2]).split()[:200])
    document = filler + " " + passages[0] + " " + filler
    maxp = cached_cross_encoder(
        str(trained_cross_encoder), "torch-fp32", {"passage_mode": "maxp", "passage_words": 120, "stride": 60}
    )
    windows = word_windows(document, 120, 60, 16)
    assert len(windows) > 3 and windows[-1].split()[-1] == document.split()[-1]
    per_window = fp32.score(query, windows)
    short = " ".join(passages[3].split()[:100])  # one window: the passage as it is
    got = maxp.score(query, [document, short])
    assert got[0] == pytest.approx(float(per_window.max()), abs=1e-4)
    assert got[1] == pytest.approx(float(fp32.score(query, [short])[0]), abs=1e-4)
    assert got[0] > float(fp32.score(query, [document])[0])


def test_bad_inputs_are_named(fp32: CrossEncoder, trained_cross_encoder: Path) -> None:  # noqa: F811
    assert fp32.score("q", []).shape == (0,)
    assert fp32.score("q", [""]).shape == (1,)  # an empty passage is scored, not refused
    with pytest.raises(BadInputError, match="text 1: expected a str, got int"):
        fp32.score("q", ["a", 3])  # type: ignore[list-item]
    with pytest.raises(BadInputError, match="query must be a non-empty str"):
        fp32.score(" ", ["a"])
    with pytest.raises(ValueError, match="unknown passage_mode 'best'; choose one of first, maxp"):
        CrossEncoder(trained_cross_encoder, "torch-fp32", passage_mode="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown cross-encoder params \\['colour'\\]"):
        cached_cross_encoder(str(trained_cross_encoder), "torch-fp32", {"colour": 1})


def test_in_process_reranker(fp32: CrossEncoder, groups: list[tuple[str, list[str]]]) -> None:
    query, passages = groups[1]
    local = InProcessReranker(deadline_s=60)
    outcome = local.rerank(query, passages, str(fp32.path), "torch-fp32")
    assert not outcome.degraded and outcome.worker == "local" and outcome.backend == "torch-fp32"
    assert outcome.scores == pytest.approx(fp32.score(query, passages).tolist(), abs=1e-5)
    again = asyncio.run(local.arerank(query, passages, str(fp32.path), "torch-fp32"))
    assert again.scores == pytest.approx(outcome.scores, abs=1e-5)
    bad = local.rerank(query, ["a", None], str(fp32.path), "torch-fp32")  # type: ignore[list-item]
    assert bad.degraded and bad.scores is None and bad.reason and bad.reason.startswith("bad input")
    started = time.monotonic()
    late = local.rerank(query, passages * 8, str(fp32.path), "torch-fp32", deadline=started + 0.2)
    assert late.degraded and late.reason and late.reason.startswith("timeout")
    assert time.monotonic() - started <= 0.2 + SLACK
    missing = local.rerank(query, passages, "/no/such/model", "torch-fp32")
    assert missing.degraded and missing.reason and "cannot load" in missing.reason
    local.close()


# --- through Celery -----------------------------------------------------------------------------------------


def _app(server: RedisServer, broker_db: int = 0, result_db: int = 1) -> Celery:
    return make_app(WorkerSettings(broker_url=server.url(broker_db), result_backend=server.url(result_db)))


@pytest.fixture(scope="module")
def worker(
    trained_cross_encoder: Path,  # noqa: F811
    groups: list[tuple[str, list[str]]],
    redis_server: RedisServer,
    worker: WorkerProcess,
) -> Iterator[WorkerProcess]:
    """The shared `worker` (tests/conftest.py) on the rerank queue, once it has reranked one passage."""
    client = RerankClient(_app(redis_server), deadline_s=5)
    try:
        wait_until_reranking(worker, client, groups[0][0], groups[0][1][:1], str(trained_cross_encoder), 90)
        yield worker
    finally:
        client.close()


@pytest.fixture(scope="module")
def client(redis_server: RedisServer, worker: WorkerProcess) -> Iterator[RerankClient]:
    rerank = RerankClient(_app(redis_server), deadline_s=30)
    yield rerank
    rerank.close()


def test_celery_round_trip(
    client: RerankClient, fp32: CrossEncoder, groups: list[tuple[str, list[str]]]
) -> None:
    query, passages = groups[2]
    outcome = client.rerank(query, passages, str(fp32.path), "torch-fp32")
    assert not outcome.degraded and outcome.reason is None, outcome.reason
    assert outcome.scores == pytest.approx(fp32.score(query, passages).tolist(), abs=1e-4)
    assert outcome.worker and outcome.worker.startswith("test-") and outcome.backend == "torch-fp32"
    assert 0 < outcome.seconds <= outcome.elapsed
    again = asyncio.run(client.arerank(query, passages, str(fp32.path), "torch-fp32"))
    assert again.scores == pytest.approx(outcome.scores, abs=1e-5)
    empty = client.rerank(query, [], str(fp32.path), "torch-fp32")
    assert empty.scores == [] and not empty.degraded


def test_a_bad_request_fails_the_task_with_its_reason(
    client: RerankClient, redis_server: RedisServer, fp32: CrossEncoder
) -> None:
    app = _app(redis_server)
    request = {"model": str(fp32.path), "backend": "torch-fp32", "query": "q", "passages": ["a", 7]}
    result = app.send_task(RERANK, args=[request], queue="rerank")
    with pytest.raises(Exception, match="text 1: expected a str, got int"):
        result.get(timeout=30)
    request = {"model": str(fp32.path), "query": "q", "passages": ["a"], "colour": "red"}
    with pytest.raises(Exception, match="unknown rerank request keys \\['colour'\\]"):
        app.send_task(RERANK, args=[request], queue="rerank").get(timeout=30)
    outcome = client.rerank("q", ["a"], "/no/such/model", "torch-fp32")
    assert outcome.degraded and outcome.reason and outcome.reason.startswith("failed")
    assert "/no/such/model" in outcome.reason
    bad = client.rerank("q", ["a", 7], str(fp32.path), "torch-fp32")  # type: ignore[list-item]
    assert bad.degraded and bad.reason and bad.reason.startswith("bad input")


def test_a_full_queue_is_degraded_at_once(redis_server: RedisServer, fp32: CrossEncoder) -> None:
    import redis

    # databases 2 and 3: a queue that no worker consumes, filled beyond max_queue
    broker = redis.Redis.from_url(redis_server.url(2))
    broker.rpush("rerank", *[b"{}"] * 5)
    try:
        client = RerankClient(_app(redis_server, 2, 3), deadline_s=2, max_queue=4)
        started = time.monotonic()
        outcome = client.rerank("q", ["a"], str(fp32.path), "torch-fp32")
        assert outcome.degraded and outcome.reason and outcome.reason.startswith("queue full")
        assert time.monotonic() - started < 0.5
        client.close()
    finally:
        broker.delete("rerank")
        broker.close()


def test_a_stopped_redis_is_degraded_within_the_deadline(tmp_path: Path, fp32: CrossEncoder) -> None:
    server = RedisServer(tmp_path / "redis")
    client = RerankClient(_app(server), deadline_s=1.0)
    server.stop()
    for call in (client.rerank, lambda *a, **k: asyncio.run(client.arerank(*a, **k))):
        started = time.monotonic()
        outcome = call("q", ["a", "b"], str(fp32.path), "torch-fp32")
        assert outcome.degraded and outcome.reason and outcome.reason.startswith("broker"), outcome.reason
        assert time.monotonic() - started <= 1.0 + SLACK
    client.close()


def test_a_slow_answer_is_degraded_within_the_deadline(
    client: RerankClient, fp32: CrossEncoder, groups: list[tuple[str, list[str]]]
) -> None:
    query, passages = groups[3]
    started = time.monotonic()
    outcome = client.rerank(query, passages * 40, str(fp32.path), "torch-fp32", deadline=started + 0.3)
    assert outcome.degraded and outcome.reason and outcome.reason.startswith("timeout"), outcome.reason
    assert time.monotonic() - started <= 0.3 + SLACK
    passed = client.rerank(query, passages, str(fp32.path), "torch-fp32", deadline=time.monotonic() - 1)
    assert passed.degraded and passed.reason and "deadline had passed" in passed.reason


def test_a_busy_worker_is_ready_through_the_control_channel(
    client: RerankClient, redis_server: RedisServer, fp32: CrossEncoder, groups: list[tuple[str, list[str]]]
) -> None:
    """The worker computes a long rerank (its one pool process is taken): the ping task would wait behind
    it, the control ping is answered by the worker's main process."""
    query, passages = groups[5]
    request = {"model": str(fp32.path), "backend": "torch-fp32", "query": query, "passages": passages * 40}
    long = _app(redis_server).send_task(RERANK, args=[request], queue="rerank")
    try:
        deadline = time.monotonic() + 30
        while client.queue_length() and time.monotonic() < deadline:  # until the worker has taken it
            time.sleep(0.05)
        started = time.monotonic()
        said = client.ping(1.0)
        assert said["ok"] is True and said.get("busy") is True, said
        assert said["worker"].startswith("test-") and time.monotonic() - started <= 1.0 + SLACK
    finally:
        long.revoke()


def test_a_killed_worker_is_degraded_within_the_deadline(
    client: RerankClient, worker: WorkerProcess, fp32: CrossEncoder, groups: list[tuple[str, list[str]]]
) -> None:
    """Runs last: it kills the module's worker."""
    query, passages = groups[4]
    worker.kill()
    for call in (client.rerank, lambda *a, **k: asyncio.run(client.arerank(*a, **k))):
        started = time.monotonic()
        outcome = call(query, passages, str(fp32.path), "torch-fp32", deadline=started + 1.0)
        assert outcome.degraded and outcome.reason and outcome.reason.startswith("timeout"), outcome.reason
        assert time.monotonic() - started <= 1.0 + SLACK
