"""Structured logs: `nirbridge serve --log-format json` as a child process, a real redis-server and a real
`nirbridge worker` with `NIRBRIDGE_LOG_FORMAT=json`; one request id from the caller to the worker's log.

Every line both processes print must parse as JSON; the proxy's line for a request and the worker's line for
the rerank task it sent must carry the same request id; the query text, the passages' text and the caller's
`Authorization` header must appear in neither (NIRBRIDGE_LOG_QUERIES is not set).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery.app.trace import LOG_SUCCESS
from cross_encoder_fixture import trained_cross_encoder  # noqa: F401 - a fixture
from observed_stack import RERANK, plain_scifact_index, warm_worker
from opensearchpy import OpenSearch
from redis_fixture import RedisServer, WorkerProcess, free_port
from test_proxy import ServerThread
from typer.testing import CliRunner

from nirbridge.connector.cli import app as cli_app
from nirbridge.connector.engine_process import EngineProcess
from nirbridge.connector.proxy import make_app
from nirbridge.connector.settings import Settings
from nirbridge.logs import HIDDEN, REQUEST_ID, configure_logging, reset_logging

pytestmark = pytest.mark.timeout(300)

WORKER_QUEUES = "rerank"  # the shared `worker` (tests/conftest.py)
WORKER_ENV = {"NIRBRIDGE_LOG_FORMAT": "json", "NIRBRIDGE_LOG_QUERIES": "false"}

INDEX = "logged"


@pytest.fixture(scope="module")
def queries(client: OpenSearch, scifact_dir: Path) -> list[str]:
    return plain_scifact_index(client, INDEX, scifact_dir, size=30)


class ServeProcess:
    """`python -m nirbridge serve --log-format json` on a free port, its output in a file."""

    def __init__(self, cluster: str, redis: RedisServer, model: Path, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "proxy.log"
        env = {
            **os.environ,
            "NIRBRIDGE_BROKER_URL": redis.url(0),
            "NIRBRIDGE_RESULT_BACKEND": redis.url(1),
            "NIRBRIDGE_PROXY_RERANK_BACKEND": "torch-fp32",
            "NIRBRIDGE_PROXY_RERANK_DEADLINE_MS": "60000",
            "NIRBRIDGE_LOG_QUERIES": "false",
        }
        command = [sys.executable, "-m", "nirbridge", "serve", "--url", cluster, "--port", str(self.port)]
        command += ["--rerank-model", str(model), "--log-format", "json"]
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/_nirbridge/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nirbridge serve did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def served(
    engine: EngineProcess,
    redis_server: RedisServer,
    worker: WorkerProcess,
    queries: list[str],
    trained_cross_encoder: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServeProcess]:
    proxy = ServeProcess(engine.url, redis_server, trained_cross_encoder, tmp_path_factory.mktemp("serve"))
    try:
        warm_worker(proxy.url, INDEX, queries[0], worker)
        yield proxy
    finally:
        proxy.stop()


def _records(path: Path) -> list[dict[str, Any]]:
    """Every line of a log file, each parsed as one JSON object (a line that does not parse fails)."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line in {path.name}: {line!r}") from None
    return records


def _wait_for(path: Path, found: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The log's records once one of them is `found` (the worker logs just after it stores its result)."""
    deadline = time.monotonic() + 10
    while True:
        records = _records(path)
        if any(found(record) for record in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_one_request_id_from_the_caller_to_the_worker_and_no_text_in_the_logs(
    served: ServeProcess, worker: WorkerProcess, queries: list[str]
) -> None:
    query, request_id, secret = queries[4], "obs-request-0001", "Basic c2VjcmV0LXVzZXI6aHVudGVyMg=="
    body = {"q": query, "mode": "bm25", "size": RERANK["window"], "rerank": RERANK}
    headers = {"X-Request-Id": request_id, "Authorization": secret}
    response = httpx.post(f"{served.url}/{INDEX}/_nirbridge/search", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id
    answer = response.json()
    assert answer["nirbridge"]["reranked"] is True, answer["nirbridge"]

    proxy_lines = _wait_for(served.log, lambda r: r.get("request_id") == request_id)
    (line,) = [r for r in proxy_lines if r.get("request_id") == request_id]
    assert line["logger"] == "nirbridge.proxy.access" and line["level"] == "INFO"
    assert (line["route"], line["mode"], line["status"]) == ("/{index}/_nirbridge/search", "bm25", 200)
    assert line["reranked"] is True and line["ms"] > 0
    assert any(r["logger"] == "nirbridge.serve" for r in proxy_lines)  # the start line is a record too

    def task_line(record: dict[str, Any]) -> bool:
        return record.get("request_id") == request_id and record.get("task") == "nirbridge.rerank"

    worker_lines = _wait_for(worker.log, task_line)
    (done,) = [r for r in worker_lines if task_line(r)]
    assert done["outcome"] == "success" and done["seconds"] > 0 and done["logger"] == "nirbridge.worker"
    celery_lines = [r for r in worker_lines if r.get("request_id") == request_id and r is not done]
    assert celery_lines and all(HIDDEN in json.dumps(r) for r in celery_lines)  # Celery's, scrubbed

    passages = [hit["_source"]["title"] for hit in answer["hits"]["hits"]]
    for path in (served.log, worker.log):
        text = path.read_text()
        assert query not in text and "c2VjcmV0" not in text, path.name
        assert not any(title in text for title in passages), path.name


def test_request_ids_are_taken_or_made(served: ServeProcess) -> None:
    url = f"{served.url}/_nirbridge/health"
    made = httpx.get(url).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert httpx.get(url, headers={"X-Opaque-Id": "opaque-7"}).headers["x-request-id"] == "opaque-7"
    both = {"X-Request-Id": "mine-1", "X-Opaque-Id": "opaque-8"}
    assert httpx.get(url, headers=both).headers["x-request-id"] == "mine-1"
    for bad in ("has space", "x" * 201):  # into logs: printable ASCII without spaces, 200 at most
        replaced = httpx.get(url, headers={"X-Request-Id": bad}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", replaced), bad
    records = _wait_for(served.log, lambda r: r.get("request_id") == made)
    assert any(r.get("request_id") == made and r.get("route") == "/_nirbridge/health" for r in records)


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """configure_logging("json") in this process, undone by reset_logging (pytest's own handlers stay)."""

    def configure(show_queries: bool) -> Callable[[], list[dict[str, Any]]]:
        monkeypatch.setenv("NIRBRIDGE_LOG_QUERIES", "true" if show_queries else "false")
        configure_logging("json", "info")
        return lambda: [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield configure
    reset_logging()
    assert root.handlers == handlers and root.level == level


def test_celery_task_arguments_and_results_are_hidden_unless_asked(json_logs: Any) -> None:
    # the record Celery's tracer writes when a task succeeds (celery.app.trace.info), with its real format
    context = {"id": "t1", "name": "nirbridge.rerank", "return_value": "{'scores': [0.5]}", "runtime": 0.1}
    context |= {"args": "[{'query': 'statins and breast cancer'}]", "kwargs": "{}"}
    for show, expected in ((False, HIDDEN), (True, "statins and breast cancer")):
        read = json_logs(show)
        token = REQUEST_ID.set("r-42")
        try:
            logging.getLogger("celery.app.trace").info(
                LOG_SUCCESS, dict(context), extra={"data": dict(context)}
            )
        finally:
            REQUEST_ID.reset(token)
        (record,) = read()
        assert record["request_id"] == "r-42" and record["logger"] == "celery.app.trace"
        assert expected in record["data"]["args"]
        assert (HIDDEN in record["message"]) is not show and (
            "{'scores': [0.5]}" in record["message"]
        ) is show


def test_library_chatter_is_held_back_unless_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # opensearch-py writes one INFO line per request and its bodies at DEBUG; urllib3 its connections at DEBUG
    def said(level: str, show_queries: bool = False) -> str:
        monkeypatch.setenv("NIRBRIDGE_LOG_QUERIES", "true" if show_queries else "false")
        configure_logging("text", level)
        try:
            logging.getLogger("opensearch").info("POST http://127.0.0.1:9200/_bulk [status:200]")
            logging.getLogger("opensearch").debug("> {'title': 'a document'}")
            logging.getLogger("urllib3.connectionpool").debug("Starting new HTTP connection (1)")
            logging.getLogger("opensearch").warning("a deprecation the cluster sent")
            logging.getLogger("nirbridge.connector.enrich").info("our own line")
        finally:
            reset_logging()
        return capsys.readouterr().err

    before = [logging.getLogger(name).level for name in ("opensearch", "urllib3", "httpx")]
    quiet = said("info")
    assert "our own line" in quiet and "a deprecation the cluster sent" in quiet
    assert "_bulk" not in quiet and "Starting new HTTP" not in quiet
    loud = said("debug")
    assert "_bulk" in loud and "Starting new HTTP" in loud and "a document" not in loud
    assert "a document" in said("debug", show_queries=True)
    assert [logging.getLogger(name).level for name in ("opensearch", "urllib3", "httpx")] == before


def test_bad_log_settings_are_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()

    def said(result: Any) -> str:  # the message without the box typer draws around it
        return " ".join(result.stderr.replace("│", " ").split())

    result = runner.invoke(cli_app, ["serve", "--url", "http://127.0.0.1:9", "--log-format", "xml"])
    assert result.exit_code == 2 and "unknown log format 'xml'; choose text or json" in said(result)
    monkeypatch.setenv("NIRBRIDGE_LOG_LEVEL", "loud")
    result = runner.invoke(cli_app, ["worker", "--queues", "rerank"])
    assert result.exit_code == 2 and "NIRBRIDGE_LOG_LEVEL: unknown log level 'loud'" in said(result)


def test_query_text_is_logged_only_when_asked(
    engine: EngineProcess, queries: list[str], json_logs: Any
) -> None:
    proxy = ServerThread(make_app(Settings(url=engine.url), reranker=None))
    try:
        for show in (False, True):
            read = json_logs(show)
            query = queries[5 + show]
            body = {"q": query, "mode": "bm25", "size": 3}
            response = httpx.post(f"{proxy.url}/{INDEX}/_nirbridge/search", json=body, timeout=30)
            assert response.status_code == 200, response.text
            request_id = response.headers["x-request-id"]
            lines = read()
            (line,) = [r for r in lines if r.get("request_id") == request_id and "route" in r]
            assert line.get("query") == (query if show else None)
            assert (query in json.dumps(lines, ensure_ascii=False)) is show
    finally:
        proxy.stop()
