"""Prometheus metrics after a known workload, read back over HTTP and parsed by prometheus_client.

The proxy (uvicorn in a thread, the engine as a child process) reranks through a real redis-server and a
real `nirbridge worker --queues rerank --metrics-port N` (prefork pool: the multiprocess mode is what makes
the pool process's counts visible on the port). The workload: BM25 searches, one reranked by the worker,
one degraded by an impossible deadline, one refused; the expected values are counted from the workload
itself and from the answers' `nirbridge` blocks. Scrapes are compared before and after, as the warm-up
requests count too. The enrichment job's metrics are compared with its report.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cross_encoder_fixture import trained_cross_encoder  # noqa: F401 - a fixture
from observed_stack import RERANK, Samples, delta, plain_scifact_index, scrape, warm_worker
from opensearchpy import OpenSearch
from opensearchpy.helpers import bulk
from prometheus_client import REGISTRY
from redis_fixture import RedisServer, WorkerProcess, free_port
from test_proxy import ServerThread
from typer.testing import CliRunner

from nirbridge.connector.cli import app as cli_app
from nirbridge.connector.engine_process import EngineProcess
from nirbridge.connector.enrich import EnrichJob, EnrichOptions
from nirbridge.connector.metrics import EnrichMetrics, degraded_reason_label, serve_registry
from nirbridge.connector.proxy import make_app
from nirbridge.connector.runner import LocalRunner
from nirbridge.connector.settings import Settings
from nirbridge.workers.pipeline import EncoderSpec, EnrichmentSpec

pytestmark = pytest.mark.timeout(300)

WORKER_QUEUES = "rerank"  # the shared `worker` (tests/conftest.py); its env: `worker_env` below

INDEX = "observed"
SEARCHES = 3  # plain BM25 searches in the workload


@pytest.fixture(scope="module")
def queries(client: OpenSearch, scifact_dir: Path) -> list[str]:
    return plain_scifact_index(client, INDEX, scifact_dir, size=40)


@pytest.fixture(scope="module")
def worker_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def worker_env(worker_port: int) -> dict[str, str]:
    return {"NIRBRIDGE_METRICS_PORT": str(worker_port)}


@pytest.fixture(scope="module")
def proxy(
    engine: EngineProcess,
    redis_server: RedisServer,
    worker: WorkerProcess,
    queries: list[str],
    trained_cross_encoder: Path,  # noqa: F811
) -> Iterator[ServerThread]:
    settings = Settings(
        url=engine.url,
        broker_url=redis_server.url(0),
        result_backend=redis_server.url(1),
        proxy_rerank_model=str(trained_cross_encoder),
        proxy_rerank_backend="torch-fp32",
        proxy_rerank_deadline_ms=60_000,
    )
    server = ServerThread(make_app(settings))
    try:
        warm_worker(server.url, INDEX, queries[0], worker)
        yield server
    finally:
        server.stop()


def _search(proxy: ServerThread, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{proxy.url}/{INDEX}/_nirbridge/search", json=body, timeout=60)


def test_proxy_and_worker_metrics_count_a_known_workload(
    proxy: ServerThread, worker: WorkerProcess, worker_port: int, queries: list[str]
) -> None:
    proxy_metrics, worker_metrics = f"{proxy.url}/_nirbridge/metrics", f"http://127.0.0.1:{worker_port}/"
    before, worker_before = scrape(proxy_metrics), scrape(worker_metrics)

    for query in queries[1 : 1 + SEARCHES]:
        answer = _search(proxy, {"q": query, "mode": "bm25", "size": 5}).json()
        assert answer["nirbridge"]["reranked"] is False and answer["nirbridge"]["degraded"] is False
    reranked = _search(proxy, {"q": queries[5], "mode": "bm25", "size": 5, "rerank": RERANK}).json()
    assert reranked["nirbridge"]["reranked"] is True, reranked["nirbridge"]
    impossible = {**RERANK, "deadline_ms": 0.001}  # over before the task could be sent
    degraded = _search(proxy, {"q": queries[6], "mode": "bm25", "size": 5, "rerank": impossible}).json()
    assert degraded["nirbridge"]["degraded"] is True, degraded["nirbridge"]
    refused = _search(proxy, {"q": queries[7], "mode": "bm42"})
    assert refused.status_code == 400
    after, worker_after = scrape(proxy_metrics), scrape(worker_metrics)

    route = "/{index}/_nirbridge/search"
    searches = SEARCHES + 2
    assert delta(before, after, "nirbridge_proxy_requests_total", route=route, mode="bm25", status="200") == (
        searches
    )
    assert delta(before, after, "nirbridge_proxy_requests_total", route=route, mode="none", status="400") == 1
    assert delta(before, after, "nirbridge_proxy_request_seconds_count", route=route, mode="bm25") == searches
    for stage in ("encode", "first_stage"):
        count = delta(before, after, "nirbridge_proxy_stage_seconds_count", mode="bm25", stage=stage)
        assert count == searches, stage
    assert delta(before, after, "nirbridge_proxy_stage_seconds_count", mode="bm25", stage="rerank") == 2
    window = RERANK["window"]
    assert delta(before, after, "nirbridge_proxy_rerank_pairs_count") == 2
    assert delta(before, after, "nirbridge_proxy_rerank_pairs_sum") == 2 * window
    assert delta(before, after, "nirbridge_proxy_rerank_queue_wait_seconds_count") == 1
    reason = degraded_reason_label(degraded["nirbridge"]["degraded_reason"])
    assert reason == "timeout", degraded["nirbridge"]["degraded_reason"]
    assert delta(before, after, "nirbridge_proxy_degraded_total", reason="timeout") == 1
    degraded_total = sum(v for (n, _), v in after.items() if n == "nirbridge_proxy_degraded_total")
    assert (
        degraded_total - sum(v for (n, _), v in before.items() if n == "nirbridge_proxy_degraded_total") == 1
    )

    # the worker: one rerank task (the degraded request sent none), its pairs, its wait in the queue
    task = "nirbridge.rerank"
    assert (
        delta(worker_before, worker_after, "nirbridge_worker_tasks_total", task=task, outcome="success") == 1
    )
    assert delta(worker_before, worker_after, "nirbridge_worker_rerank_pairs_total") == window
    assert delta(worker_before, worker_after, "nirbridge_worker_task_seconds_count", task=task) == 1
    assert delta(worker_before, worker_after, "nirbridge_worker_queue_wait_seconds_count", task=task) == 1
    # the model was loaded once, by the warm-up, in the one pool process
    load = ("nirbridge_worker_model_load_seconds_count", "nirbridge_worker_model_load_seconds_sum")
    loads = {labels: v for (name, labels), v in worker_after.items() if name == load[0]}
    assert len(loads) == 1 and list(loads.values()) == [1.0], loads
    (labels,) = loads
    assert dict(labels)["kind"] == "cross-encoder" and worker_after[(load[1], labels)] > 0


def _enrich(client: OpenSearch, engine: EngineProcess, tmp: Path, metrics: EnrichMetrics) -> Any:
    spec = EnrichmentSpec(fields=("title", "text"), sparse=EncoderSpec("splade-tiny", "torch-fp32"))
    options = EnrichOptions(index="observed-enrich", spec=spec, checkpoint=tmp / "ck.json", batch_size=3)
    return EnrichJob(client, engine.url, LocalRunner(), options).run(metrics.observe)


def test_enrichment_metrics_match_the_report(
    client: OpenSearch, engine: EngineProcess, scifact_dir: Path, tmp_path: Path
) -> None:
    plain_scifact_index(client, "observed-enrich", scifact_dir, size=7)
    bulk(client, [{"_index": "observed-enrich", "_id": "empty", "title": " ", "text": ""}], refresh=True)
    for run in ("first", "again"):
        metrics = EnrichMetrics()
        server = serve_registry(free_port(), metrics.registry)
        try:
            report = _enrich(client, engine, tmp_path, metrics)
            samples: Samples = scrape(f"http://127.0.0.1:{server.port}/metrics")
        finally:
            server.close()
        for outcome in ("processed", "skipped", "failed"):
            key = ("nirbridge_enrich_docs_total", frozenset({("outcome", outcome)}))
            assert samples[key] == getattr(report, outcome), (run, outcome)
        assert samples[("nirbridge_enrich_docs_to_scan", frozenset())] == report.to_scan == 8
        rate = samples[("nirbridge_enrich_docs_per_second", frozenset())]
        # docs/s counts what this run wrote (issue 14): the re-run writes nothing, so 0, both in the report
        # and in the metric
        assert rate == pytest.approx(report.docs_per_s, rel=0.5)
        assert (rate > 0) if run == "first" else (rate == 0)
        # the empty document is skipped with its reason every time (issue 14), never failed
        expected = (7, 0, 0) if run == "first" else (0, 7, 0)
        assert (report.processed, report.skipped, report.failed) == expected, run
        assert report.skipped_empty == 1, run
    # the local runner loaded SPLADE-tiny in this process: the workers' model-load metric saw it
    loads = REGISTRY.get_sample_value(
        "nirbridge_worker_model_load_seconds_count", {"kind": "sparse", "model": "splade-tiny"}
    )
    assert loads is not None and loads >= 1


def test_a_taken_metrics_port_is_a_usage_error(engine: EngineProcess, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        # the worker in a child process: multiprocess mode changes prometheus_client for the whole process
        worker = subprocess.run(
            [sys.executable, "-m", "nirbridge", "worker", "--queues", "rerank", "--metrics-port", port],
            capture_output=True,
            text=True,
            timeout=60,
        )
        enrich = CliRunner().invoke(
            cli_app,
            [
                "enrich", "--url", engine.url, "--index", "any", "--fields", "title", "--sparse",
                "splade-tiny", "--checkpoint", str(tmp_path / "ck.json"), "--metrics-port", port,
            ],
        )  # fmt: skip
    assert worker.returncode == 2, worker.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in worker.stderr
    assert enrich.exit_code == 2, enrich.output
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in enrich.stderr


def test_worker_metrics_must_be_set_up_before_they_are_created() -> None:
    code = (
        "import nirbridge.workers.metrics\n"
        "from nirbridge.workers.metrics_http import serve_worker_metrics\n"
        "serve_worker_metrics(1)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert (
        "RuntimeError: the workers' metrics were created before multiprocess mode was set up" in result.stderr
    )


def test_enrich_serves_metrics_while_it_runs_and_stops_after(
    client: OpenSearch, engine: EngineProcess, scifact_dir: Path, tmp_path: Path
) -> None:
    plain_scifact_index(client, "observed-cli", scifact_dir, size=3)
    port = free_port()
    seen: list[Samples] = []
    done = threading.Event()

    def watch() -> None:  # scrapes the port while the command runs (a Prometheus server would)
        while not done.is_set():
            try:
                seen.append(scrape(f"http://127.0.0.1:{port}/metrics"))
            except httpx.HTTPError:
                pass
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = CliRunner().invoke(
            cli_app,
            [
                "enrich", "--url", engine.url, "--index", "observed-cli", "--fields", "title,text",
                "--sparse", "splade-tiny", "--backend", "torch-fp32", "--batch-size", "1", "--json",
                "--checkpoint", str(tmp_path / "ck.json"), "--metrics-port", str(port), "--no-progress",
            ],
        )  # fmt: skip
    finally:
        done.set()
        watcher.join()
    assert result.exit_code == 0, result.output
    assert '"processed": 3' in result.stdout.splitlines()[-1]
    processed = [s[("nirbridge_enrich_docs_total", frozenset({("outcome", "processed")}))] for s in seen]
    assert processed and processed == sorted(processed) and set(processed) <= {0, 1, 2, 3}
    with pytest.raises(httpx.ConnectError):  # the server went with the command
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
