"""The tests' redis-server and worker processes (they live in the package: benchmarks use them too)."""

from __future__ import annotations

from pathlib import Path

from cross_encoder_fixture import models_dir

from nirbridge.connector.local_services import RedisServer, free_port
from nirbridge.connector.local_services import WorkerProcess as _WorkerProcess
from nirbridge.workers.rerank_policy import shipped_rerankers

__all__ = ["RedisServer", "WorkerProcess", "free_port", "allowed_test_models"]


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
