"""The client side of the workers' contract: a client imports `workers.contract`, never the tasks or models.

`workers.tasks` connects the workers' Celery signal receivers (workers.observe) when it is imported, and the
encoders pull in torch/transformers/onnxruntime: none of that belongs in the proxy's or the enrichment job's
process. Each check runs in a fresh interpreter, so that what this test session imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nirbridge.workers import contract, observe, pipeline, tasks

# what a client process must not load just by importing its Celery client
HEAVY = ("nirbridge.workers.tasks", "nirbridge.workers.observe", "torch", "transformers", "onnxruntime")


def _modules_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "client",
    [
        "nirbridge.connector.rerank_client",
        "nirbridge.connector.runner",
        "nirbridge.connector.tasks_client",
        "nirbridge.workers.contract",
    ],
)
def test_importing_a_client_loads_neither_the_tasks_nor_a_model_library(client: str) -> None:
    loaded = _modules_after_import(client)
    assert client in loaded
    assert sorted(loaded & set(HEAVY)) == []


def test_the_contract_imports_nothing_of_celery() -> None:
    loaded = _modules_after_import("nirbridge.workers.contract")
    assert not any(name == "celery" or name.startswith("celery.") for name in loaded)


def test_the_old_names_are_the_contracts() -> None:
    # tasks, observe and pipeline re-export what moved to the contract: one definition each
    assert (tasks.ENRICH_BATCH, tasks.DESCRIBE, tasks.PING, tasks.RERANK) == (
        contract.ENRICH_BATCH,
        contract.DESCRIBE,
        contract.PING,
        contract.RERANK,
    )
    assert observe.DEADLINE_HEADER is contract.DEADLINE_HEADER
    assert pipeline.EnrichmentSpec is contract.EnrichmentSpec
    assert pipeline.DocResult is contract.DocResult
