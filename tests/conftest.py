"""Shared fixtures: the embedded engine as a real child process, and an opensearch-py client for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opensearchpy import OpenSearch
from recording_upstream import RecordingUpstream
from redis_fixture import RedisServer, WorkerProcess

from nirbridge.connector.engine_process import EngineProcess, running_engine

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    with running_engine() as process:
        yield process


@pytest.fixture(scope="module")
def client(engine: EngineProcess) -> OpenSearch:
    return OpenSearch(engine.url, timeout=60)


def require_data(name: str) -> Path:
    path = DATA / name
    if not (path / "corpus.jsonl").exists():
        pytest.skip(f"{path} is missing: the shared data sets live beside the repository in ../shared/data")
    return path


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    return require_data("scifact")


@pytest.fixture(scope="session")
def nfcorpus_dir() -> Path:
    return require_data("nfcorpus")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free port for the module's tests (broker and Celery results)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def worker_queues(request: pytest.FixtureRequest) -> str:
    """The queues of the module's `worker`: its WORKER_QUEUES, else both."""
    return str(getattr(request.module, "WORKER_QUEUES", "enrich,rerank"))


@pytest.fixture(scope="module")
def worker_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Extra environment of the module's `worker` (log format, rerank backends ...): its WORKER_ENV, else
    none; a module whose values come from other fixtures (a free port) overrides this fixture instead."""
    return dict(getattr(request.module, "WORKER_ENV", {}))


@pytest.fixture(scope="module")
def worker(
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    worker_queues: str,
    worker_env: dict[str, str],
) -> Iterator[WorkerProcess]:
    """A real `nirbridge worker` on `redis_server`'s databases 0 (broker) and 1 (results), for the module's
    tests; a module that must wait for it to answer overrides `worker` with a fixture that takes this one."""
    process = WorkerProcess(
        redis_server.url(0),
        redis_server.url(1),
        tmp_path_factory.mktemp("worker"),
        queues=worker_queues,
        env=worker_env,
    )
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    """A stdlib HTTP server that records each request line as it came over the socket and answers 200 {}:
    the cluster behind a proxy under test, where what the proxy forwards is the question."""
    server = RecordingUpstream()
    yield server
    server.stop()
