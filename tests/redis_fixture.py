"""The tests' redis-server and worker processes (they live in the package: benchmarks use them too)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from cross_encoder_fixture import models_dir

from nirbridge.connector.local_services import RedisServer, free_port
from nirbridge.connector.local_services import WorkerProcess as _WorkerProcess
from nirbridge.workers.rerank_policy import shipped_rerankers

if TYPE_CHECKING:
    from nirbridge.connector.rerank_client import RerankClient

__all__ = ["RedisServer", "WorkerProcess", "allowed_test_models", "free_port", "wait_until_reranking"]


def allowed_test_models() -> str:
    """NIRBRIDGE_RERANK_MODELS for the tests' workers: the shipped rerankers and every model the tests train
    (their folders in `models_dir()`), as an operator would list a folder of models."""
    return ",".join([*shipped_rerankers(), f"{models_dir()}/*"])


class WorkerProcess(_WorkerProcess):
    """`nirbridge worker` that may load the tests' models (`allowed_test_models`) unless `env` says
    otherwise."""

    def __init__(
        self,
        broker: str,
        backend: str,
        directory: Path,
        queues: str = "enrich,rerank",
        concurrency: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        env = {"NIRBRIDGE_RERANK_MODELS": allowed_test_models(), **(env or {})}
        super().__init__(broker, backend, directory, queues, concurrency, env)


def wait_until_reranking(
    worker: WorkerProcess, client: RerankClient, query: str, passages: list[str], model: str, within: float
) -> None:
    """Rerank `passages` for `query` with `model` (torch-fp32) through `client` until `worker` answers: the
    first request imports torch and loads the model in the pool process, hence a long `within` (seconds)."""
    deadline = time.monotonic() + within
    while True:
        outcome = client.rerank(query, passages, model, "torch-fp32")
        if not outcome.degraded:
            return
        if worker.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the worker did not answer: {outcome.reason}\n{worker.output()}")
