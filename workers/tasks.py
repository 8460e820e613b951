"""The Celery tasks. Clients send them by name (`ENRICH_BATCH`, `PING`), so they never import this module.

    nirbridge.enrich_batch(spec, docs)  queue enrich: `pipeline.run_enrichment`, one JSON result per document
    nirbridge.describe(spec)            queue enrich: fingerprints and dense dimension/space type of `spec`
    nirbridge.ping()                    either queue (the sender picks it): who answered, what it has loaded

`enrich_batch` is idempotent (it computes, it writes nothing; the connector writes) and `acks_late`, so a
batch whose worker died is delivered again. It retries, with back-off, only what can pass by itself: a GPU out
of memory (another process holds it). A bad spec or a model that cannot load fails at once; a bad document is
a per-document failure inside the result, never a task failure. Every exception raised here is a plain
`Exception(message)` subclass, so it survives the JSON result backend.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import socket
import sys
import time
from typing import Any

from .celery_app import ENRICH_QUEUE, ENRICH_SOFT_TIME_LIMIT, ENRICH_TIME_LIMIT, app
from .pipeline import EnrichmentSpec, loaded_models, run_enrichment
from .pipeline import describe as describe_spec

__all__ = ["DESCRIBE", "ENRICH_BATCH", "PING", "TransientError", "describe", "enrich_batch", "ping"]

ENRICH_BATCH = "nirbridge.enrich_batch"
DESCRIBE = "nirbridge.describe"
PING = "nirbridge.ping"


class TransientError(RuntimeError):
    """A failure that may pass by itself (a GPU out of memory): the task is retried with back-off."""


def _is_out_of_memory(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return "outofmemory" in text.replace(" ", "") or "out of memory" in text or "failed to allocate" in text


@app.task(
    name=ENRICH_BATCH,
    bind=True,
    queue=ENRICH_QUEUE,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientError,),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=3,
    soft_time_limit=ENRICH_SOFT_TIME_LIMIT,
    time_limit=ENRICH_TIME_LIMIT,
)
def enrich_batch(self: Any, spec: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Enrich one batch; returns {"results": [DocResult JSON, ...], "worker", "pid", "seconds"}."""
    started = time.perf_counter()
    parsed = EnrichmentSpec.from_json(spec)
    try:
        results = run_enrichment(parsed, docs)
    except (MemoryError, RuntimeError) as error:
        if _is_out_of_memory(error):
            raise TransientError(f"out of memory on a batch of {len(docs)} documents: {error}") from None
        raise
    return {
        "results": [result.to_json() for result in results],
        "worker": self.request.hostname or socket.gethostname(),
        "pid": os.getpid(),
        "seconds": round(time.perf_counter() - started, 4),
    }


@app.task(name=DESCRIBE, queue=ENRICH_QUEUE, acks_late=True, soft_time_limit=240, time_limit=300)
def describe(spec: dict[str, Any]) -> dict[str, Any]:
    """`pipeline.describe` where the models are: {"models": {kind: fingerprint}, "dense": {...}}."""
    return describe_spec(EnrichmentSpec.from_json(spec))


def _backends() -> dict[str, Any]:
    """What this process could run models on, found without importing a heavy library not loaded yet."""
    found: dict[str, Any] = {}
    for name in ("torch", "onnxruntime", "transformers"):
        found[name] = importlib.util.find_spec(name) is not None
    if found["onnxruntime"]:
        try:
            import onnxruntime

            found["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
        except Exception as error:  # noqa: BLE001 - reported, a health check must answer
            found["onnxruntime_providers"] = f"error: {error}"
    torch = sys.modules.get("torch")
    if torch is not None:
        found["cuda"] = bool(torch.cuda.is_available())
        found["torch_threads"] = int(torch.get_num_threads())
    return found


@app.task(name=PING, bind=True, acks_late=False, soft_time_limit=10, time_limit=20)
def ping(self: Any) -> dict[str, Any]:
    """Health and readiness: which worker process answered, on which queue, with which models loaded."""
    delivery = self.request.delivery_info or {}
    models = loaded_models()
    return {
        "hostname": self.request.hostname or socket.gethostname(),
        "pid": os.getpid(),
        "queue": delivery.get("routing_key"),
        "models": models,
        "model_count": len(models),
        "backends": _backends(),
        "python": platform.python_version(),
    }
