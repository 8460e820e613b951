"""The rerank path under a careless or hostile caller and a flaky Redis (issue 13, items 5, 8 and 9).

Against the real thing: the tests' trained cross-encoder (``cross_encoder_fixture``), redis-server, a
`nirbridge worker --queues rerank` process, the proxy's `RerankSpec.parse` with real settings.

- what a request may load: models and backends off the operator's allow-lists are refused by the proxy (400)
  and again by the worker, which loads nothing for them; params share one loaded model; the cache is bounded
- abandoned work: a task whose caller's deadline passed is dropped before computing, or between batches
- a Redis outage longer than the old reconnect budget (~12 s): the worker is still there afterwards, reranks
  work, and readiness answers ready on every probe (no stale pooled connection fails one of them)
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from cross_encoder_fixture import models_dir, trained_cross_encoder  # noqa: F401 - a fixture
from redis_fixture import RedisServer, WorkerProcess, wait_until_reranking

from nirbridge.connector.proxy.errors import BadRequest
from nirbridge.connector.proxy.rerank import RerankSpec
from nirbridge.connector.rerank_client import RerankClient
from nirbridge.connector.settings import Settings
from nirbridge.workers.celery_app import WorkerSettings, make_app
from nirbridge.workers.cross_encoder import cached_cross_encoder, loaded_cross_encoders
from nirbridge.workers.observe import DEADLINE_HEADER
from nirbridge.workers.rerank_policy import RerankPolicy
from nirbridge.workers.tasks import PING, RERANK

pytestmark = pytest.mark.timeout(300)

# the shared `worker` (tests/conftest.py): a rerank worker that allows the tests' models
# (tests/redis_fixture.py) on two backends, caching 2
WORKER_QUEUES = "rerank"
WORKER_ENV = {"NIRBRIDGE_RERANK_BACKENDS": "torch-fp32,onnx-int8", "NIRBRIDGE_RERANK_CACHE": "2"}

QUERY = "statins and breast cancer"
# 256 word pieces each: a batch of 4 takes a noticeable time on a CPU, 160 of them many seconds
LONG = [
    f"passage {i}: " + "statin use lowers cholesterol in adults with heart disease " * 30 for i in range(160)
]
OUTAGE_S = (
    13.0  # longer than the old budget (3 reconnect tries, 2 + 4 + 6 s): the old worker exited, status 0
)


def _copy_of(model: Path, where: Path) -> Path:
    """The same model in another folder (links to its files): another name, outside the allowed ones."""
    where.mkdir(parents=True)
    for item in model.iterdir():
        if item.is_file():
            (where / item.name).symlink_to(item)
    return where


# --- the proxy: allow-lists and params, a 400 naming what is allowed ---------------------------------------


def test_the_proxy_refuses_models_and_backends_off_the_allow_lists() -> None:
    settings = Settings(proxy_rerank_model="my-default", rerank_backends="onnx-int8,torch-fp32")
    assert RerankSpec.parse({}, settings).model == "my-default"
    shipped = RerankSpec.parse({"model": "nirbridge/reranker-nfcorpus"}, settings)
    assert shipped.model == "nirbridge/reranker-nfcorpus" and shipped.backend == "auto"
    with pytest.raises(BadRequest) as refused:
        RerankSpec.parse({"model": "/etc"}, settings)
    assert refused.value.status == 400
    assert "'/etc' is not allowed" in str(refused.value) and "my-default" in str(refused.value)
    assert "nirbridge/reranker-nfcorpus" in str(refused.value)
    with pytest.raises(BadRequest, match="not allowed.*NIRBRIDGE_RERANK_MODELS"):
        RerankSpec.parse({"model": "cross-encoder/ms-marco-MiniLM-L-6-v2"}, settings)
    with pytest.raises(
        BadRequest, match="backend 'onnx-fp32' is not allowed here; allowed: auto, onnx-int8, torch-fp32"
    ):
        RerankSpec.parse({"backend": "onnx-fp32"}, settings)
    assert RerankSpec.parse({"backend": "torch-fp32"}, settings).backend == "torch-fp32"


def test_the_proxy_bounds_params() -> None:
    settings = Settings(proxy_rerank_model="m")
    assert RerankSpec.parse({"params": {"max_length": 128, "passage_mode": "maxp"}}, settings).params == {
        "max_length": 128,
        "passage_mode": "maxp",
    }
    for params, message in (
        ({"max_windows": 1_000_000}, "params.max_windows must be an integer in \\[1, 64\\]"),
        ({"batch_size": 0}, "params.batch_size must be an integer in \\[1, 128\\]"),
        ({"max_length": "256"}, "params.max_length must be an integer"),
        ({"passage_mode": "all"}, "params.passage_mode must be one of first, maxp"),
        ({"device": "cuda"}, "unknown param 'device'"),
    ):
        with pytest.raises(BadRequest, match=message):
            RerankSpec.parse({"params": params}, settings)


def test_a_folder_of_models_allows_its_folders_and_nothing_out_of_it(tmp_path: Path) -> None:
    allowed, outside = tmp_path / "models", tmp_path / "outside"
    for folder in (allowed / "a", outside / "b"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    (allowed / "link").symlink_to(outside / "b")
    settings = Settings(proxy_rerank_model="", rerank_models=f"{allowed}/*")
    assert RerankSpec.parse({"model": str(allowed / "a")}, settings).model == str((allowed / "a").resolve())
    for escape in (f"{allowed}/../outside/b", str(allowed / "link"), str(outside / "b"), str(allowed)):
        with pytest.raises(BadRequest, match="is not allowed here"):
            RerankSpec.parse({"model": escape}, settings)


# --- one process: params share one load, the cache is bounded -----------------------------------------------


def test_params_share_one_load_and_the_cache_keeps_at_most_its_size(
    trained_cross_encoder: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NIRBRIDGE_RERANK_CACHE", "2")
    model = str(_copy_of(trained_cross_encoder, tmp_path / "m0"))
    reference = cached_cross_encoder(model, "torch-fp32").score(QUERY, LONG[:2])
    for i in range(12):  # 12 distinct params: the request pattern that kept 12 copies
        encoder = cached_cross_encoder(model, "torch-fp32", {"batch_size": i + 1, "max_windows": i + 1})
        assert encoder.batch_size == i + 1
        assert encoder.score(QUERY, LONG[:2]).tolist() == pytest.approx(reference.tolist(), abs=1e-5)
    ours = [m for m in loaded_cross_encoders() if m["model"] == model]
    assert len(ours) == 1 and ours[0]["loads"] == 1, ours
    others = [str(_copy_of(trained_cross_encoder, tmp_path / f"m{i}")) for i in (1, 2)]
    for name in others:
        cached_cross_encoder(name, "torch-fp32")
    held = [m["model"] for m in loaded_cross_encoders()]
    assert len(held) <= 2 and model not in held, held  # the least recently used went first
    cached_cross_encoder(model, "torch-fp32")
    assert [m["loads"] for m in loaded_cross_encoders() if m["model"] == model] == [2]


def test_a_policy_reads_the_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RERANK_MODELS", "RERANK_BACKENDS", "PROXY_RERANK_MODEL", "PROXY_RERANK_BACKEND"):
        monkeypatch.delenv(f"NIRBRIDGE_{name}", raising=False)
    policy = RerankPolicy.from_env()
    assert "nirbridge/reranker-nfcorpus" in policy.models and "auto" in policy.backends
    monkeypatch.setenv("NIRBRIDGE_PROXY_RERANK_MODEL", "org/default")
    monkeypatch.setenv("NIRBRIDGE_RERANK_MODELS", "org/a, org/b")
    assert RerankPolicy.from_env().models == ("org/default", "org/a", "org/b")
    monkeypatch.setenv("NIRBRIDGE_RERANK_BACKENDS", "onnx-int8,gpu")
    with pytest.raises(ValueError, match="unknown backend\\(s\\) \\['gpu'\\]"):
        RerankPolicy.from_env()


# --- a real worker ------------------------------------------------------------------------------------------


def _app(server: RedisServer) -> Celery:
    return make_app(WorkerSettings(broker_url=server.url(0), result_backend=server.url(1)))


@pytest.fixture(scope="module")
def worker(
    trained_cross_encoder: Path,  # noqa: F811
    redis_server: RedisServer,
    worker: WorkerProcess,
) -> Iterator[WorkerProcess]:
    """The shared `worker` (tests/conftest.py), once it has reranked one passage."""
    client = RerankClient(_app(redis_server), deadline_s=5)
    try:
        wait_until_reranking(worker, client, QUERY, LONG[:1], str(trained_cross_encoder), 120)
        yield worker
    finally:
        client.close()


@pytest.fixture(scope="module")
def client(redis_server: RedisServer, worker: WorkerProcess) -> Iterator[RerankClient]:
    rerank = RerankClient(_app(redis_server), deadline_s=30)
    yield rerank
    rerank.close()


def _loaded(app: Celery) -> list[dict[str, object]]:
    answer = app.send_task(PING, queue="rerank").get(timeout=30)
    return [m for m in answer["models"] if m["kind"] == "cross-encoder"]


def test_the_worker_refuses_what_its_allow_lists_do_not_name_and_loads_nothing(
    client: RerankClient,
    redis_server: RedisServer,
    trained_cross_encoder: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = _app(redis_server)
    before = _loaded(app)
    elsewhere = _copy_of(trained_cross_encoder, tmp_path / "elsewhere")  # a real model, not on the list
    sent = {"query": QUERY, "passages": LONG[:2]}
    for request, message in (
        ({"model": str(elsewhere), "backend": "torch-fp32"}, "is not allowed here; allowed: .*/\\*"),
        ({"model": f"{models_dir()}/../{tmp_path.name}", "backend": "torch-fp32"}, "is not allowed here"),
        ({"model": str(trained_cross_encoder), "backend": "onnx-fp32"}, "backend 'onnx-fp32' is not allowed"),
        ({"model": str(trained_cross_encoder), "backend": "auto"}, "backend 'auto' is not allowed"),
        (
            {"model": str(trained_cross_encoder), "backend": "torch-fp32", "params": {"max_windows": 10**6}},
            "max_windows",
        ),
    ):
        with pytest.raises(Exception, match=message) as refused:
            app.send_task(RERANK, args=[{**request, **sent}], queue="rerank").get(timeout=30)
        assert type(refused.value).__name__ == "RerankRefused"
    assert _loaded(app) == before  # nothing was loaded for them
    outcome = client.rerank(QUERY, LONG[:2], str(elsewhere), "torch-fp32")
    assert outcome.degraded and outcome.reason and outcome.reason.startswith("failed: RerankRefused")


def test_distinct_params_keep_one_model_in_the_worker(
    client: RerankClient,
    redis_server: RedisServer,
    trained_cross_encoder: Path,  # noqa: F811
) -> None:
    for i in range(12):
        params = {"max_length": 72 + 8 * i, "batch_size": i + 1}
        outcome = client.rerank(QUERY, LONG[:2], str(trained_cross_encoder), "torch-fp32", params)
        assert not outcome.degraded, outcome.reason
    (held,) = _loaded(_app(redis_server))
    assert held["loads"] == 1 and "params" not in held, held


def test_a_task_past_its_deadline_is_dropped_before_computing(
    client: RerankClient,
    redis_server: RedisServer,
    trained_cross_encoder: Path,  # noqa: F811
) -> None:
    request = {"model": str(trained_cross_encoder), "backend": "torch-fp32", "query": QUERY}
    late = {**request, "passages": LONG[:8]}
    headers = {DEADLINE_HEADER: time.time() - 1}  # as RerankClient sends it
    with pytest.raises(Exception, match="dropped before computing") as dropped:
        _app(redis_server).send_task(RERANK, args=[late], queue="rerank", headers=headers).get(timeout=30)
    assert type(dropped.value).__name__ == "DeadlineExceeded"


def test_a_task_whose_deadline_passes_stops_between_batches(
    client: RerankClient,
    worker: WorkerProcess,
    redis_server: RedisServer,
    trained_cross_encoder: Path,  # noqa: F811
) -> None:
    """The proxy gives up at its deadline; the worker stops at the next batch instead of computing 40 more."""
    model, params = str(trained_cross_encoder), {"batch_size": 4}
    started = time.monotonic()
    outcome = client.rerank(QUERY, LONG, model, "torch-fp32", params, deadline=started + 0.5)
    assert outcome.degraded and outcome.reason and outcome.reason.startswith("timeout"), outcome.reason
    expired = _expired_lines(worker, 1)  # logged by the worker as expired, within seconds, not computed
    assert float(expired[0]) < 10, expired
    # the same through Celery directly, to read what the worker did with it
    request = {"model": model, "backend": "torch-fp32", "query": QUERY, "passages": LONG, "params": params}
    headers = {DEADLINE_HEADER: time.time() + 1.0}
    result = _app(redis_server).send_task(RERANK, args=[request], queue="rerank", headers=headers)
    with pytest.raises(Exception, match="the deadline passed after \\d+ of 40 batches") as dropped:
        result.get(timeout=60)
    assert type(dropped.value).__name__ == "DeadlineExceeded"
    done = int(re.search(r"after (\d+) of 40", str(dropped.value)).group(1))  # type: ignore[union-attr]
    assert 0 < done < 40
    _expired_lines(worker, 2)
    # the worker is free at once: a small rerank is answered (not queued behind 40 batches)
    quick = client.rerank(QUERY, LONG[:1], model, "torch-fp32", params, deadline=time.monotonic() + 10)
    assert not quick.degraded, quick.reason


def _expired_lines(worker: WorkerProcess, count: int, wait_s: float = 30.0) -> list[str]:
    """The seconds of the first `count` "nirbridge.rerank expired in N s" lines of the worker log."""
    deadline = time.monotonic() + wait_s
    while True:
        log = worker.log.read_text(errors="replace")
        found = re.findall(r"nirbridge\.rerank expired in ([0-9.]+) s", log)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, log[-3000:]
        time.sleep(0.1)


# --- Redis outages (last: they restart the module's Redis) -------------------------------------------------


def _connections(worker: WorkerProcess) -> int:
    """How many times the worker's log says it connected to its broker."""
    return len(
        re.findall(r"consumer\.connection .* Connected to \S+://", worker.log.read_text(errors="replace"))
    )


def _wait_reconnected(worker: WorkerProcess, connected: int, wait_s: float = 60.0) -> None:
    """Until the worker's log says it connected to its broker once more than `connected` times."""
    deadline = time.monotonic() + wait_s
    while _connections(worker) <= connected:
        assert worker.process.poll() is None, (
            f"the worker exited ({worker.process.returncode})\n{worker.output()}"
        )
        assert time.monotonic() < deadline, f"the worker did not reconnect\n{worker.output()}"
        time.sleep(0.1)


def _outage(server: RedisServer, worker: WorkerProcess, seconds: float) -> None:
    connected = _connections(worker)
    server.stop()
    time.sleep(seconds)
    server.restart()
    _wait_reconnected(worker, connected)


def test_readiness_holds_after_a_short_redis_outage(
    client: RerankClient,
    worker: WorkerProcess,
    redis_server: RedisServer,
    trained_cross_encoder: Path,  # noqa: F811
) -> None:
    """A busy worker is ready through the control channel (RerankClient.ping): the connection the client
    used for it before a 3 s outage is a closed socket after it, and must not fail the first probes."""
    import redis

    model = str(trained_cross_encoder)
    request = {
        "model": model,
        "backend": "torch-fp32",
        "query": QUERY,
        "passages": LONG,
        "params": {"batch_size": 4},
    }
    other = _app(redis_server)  # keeps the long tasks off the client's own connections

    def busy() -> None:
        other.send_task(RERANK, args=[request], queue="rerank", headers={DEADLINE_HEADER: time.time() + 6})
        broker = redis.Redis.from_url(redis_server.url(0))
        deadline = time.monotonic() + 30
        while broker.llen("rerank") and time.monotonic() < deadline:  # until the worker has taken it
            time.sleep(0.05)
        broker.close()

    busy()
    said = client.ping(1.0)
    assert said["ok"] and said.get("busy"), said  # answered through the control channel
    _outage(redis_server, worker, 3.0)
    busy()
    probes = [client.ping(1.0) for _ in range(5)]
    assert all(probe["ok"] for probe in probes), probes
    # answered once the long task stops at its deadline (6 s)
    outcome = client.rerank(QUERY, LONG[:2], model, "torch-fp32", deadline=time.monotonic() + 15)
    assert not outcome.degraded, outcome.reason


def test_the_worker_outlives_a_long_redis_outage(
    client: RerankClient,
    worker: WorkerProcess,
    redis_server: RedisServer,
    trained_cross_encoder: Path,  # noqa: F811
) -> None:
    """An outage past the old reconnect budget (the worker used to exit, status 0): it waits and serves."""
    model = str(trained_cross_encoder)
    assert not client.rerank(QUERY, LONG[:2], model, "torch-fp32").degraded
    _outage(redis_server, worker, OUTAGE_S)
    time.sleep(0.5)  # its queues declared again
    probes = [client.ping(1.0) for _ in range(5)]
    assert all(probe["ok"] for probe in probes), probes
    for _ in range(3):
        outcome = client.rerank(QUERY, LONG[:2], model, "torch-fp32", deadline=time.monotonic() + 10)
        assert not outcome.degraded, outcome.reason
    assert worker.process.poll() is None
