"""The Celery tasks. Clients send them by name (`ENRICH_BATCH`, `PING`, from workers.contract), so they never
import this module (importing it connects the workers' Celery signal receivers, workers.observe).

    nirbridge.enrich_batch(spec, docs)  queue enrich: `pipeline.run_enrichment`, one JSON result per document
    nirbridge.describe(spec)            queue enrich: fingerprints and dense dimension/space type of `spec`
    nirbridge.ping()                    either queue (the sender picks it): who answered, what it has loaded
    nirbridge.rerank(request)           queue rerank: cross-encoder scores of one query's passages

`enrich_batch` is idempotent (it computes, it writes nothing; the connector writes) and `acks_late`, so a
batch whose worker died is delivered again. It retries, with back-off, only what can pass by itself: a GPU out
of memory (another process holds it). A bad spec or a model that cannot load fails at once; a bad document is
a per-document failure inside the result, never a task failure. Every exception raised here is a plain
`Exception(message)` subclass, so it survives the JSON result backend.

`rerank` is the opposite case: not `acks_late`, no retries. A late rerank answer is useless (the proxy has
already answered with the first-stage order, marked degraded), so a task whose worker died is not delivered
again, and the sender gives it an `expires` equal to its deadline: a worker that takes it from the queue after
that discards it instead of computing it. The deadline also travels in a header, so a task that started in
time stops between two batches of the cross-encoder once it passes. It loads only the models and backends of
the worker's allow-lists (workers.rerank_policy), at most NIRBRIDGE_RERANK_CACHE of them at once. Its time
limits (RERANK_SOFT_TIME_LIMIT_S, RERANK_TIME_LIMIT_S) are a backstop against a stuck process, not the
interactive bound (that is the client's deadline); they leave room for the first request of a process, which
loads the model (and, the first time on a machine, exports it to ONNX and measures `auto`: up to a minute on a
CPU), so that the requests after it find it warm.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import socket
import sys
import time
from typing import Any

from . import observe  # noqa: F401 - Celery signal receivers: request ids, task metrics, a log line per task
from .celery_app import ENRICH_QUEUE, ENRICH_SOFT_TIME_LIMIT, ENRICH_TIME_LIMIT, RERANK_QUEUE, app
from .contract import DEADLINE_HEADER, DESCRIBE, ENRICH_BATCH, PING, RERANK, RERANK_REQUEST_KEYS
from .errors import DeadlineExceeded, RerankRefused
from .metrics import ENRICH_DOCS, RERANK_PAIRS
from .pipeline import EnrichmentSpec, loaded_models, run_enrichment
from .pipeline import describe as describe_spec
from .rerank_policy import check_params, worker_policy

RERANK_SOFT_TIME_LIMIT_S = 120
RERANK_TIME_LIMIT_S = 150

__all__ = [
    "DESCRIBE",
    "ENRICH_BATCH",
    "PING",
    "RERANK",
    "TransientError",
    "describe",
    "enrich_batch",
    "ping",
    "rerank",
]


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
    failed = sum(not result.ok for result in results)
    ENRICH_DOCS.labels("processed").inc(len(results) - failed)
    ENRICH_DOCS.labels("failed").inc(failed)
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
    models = loaded_models() + _loaded_rerankers()
    return {
        "hostname": self.request.hostname or socket.gethostname(),
        "pid": os.getpid(),
        "queue": delivery.get("routing_key"),
        "models": models,
        "model_count": len(models),
        "backends": _backends(),
        "python": platform.python_version(),
    }


def _loaded_rerankers() -> list[dict[str, Any]]:
    """The cross-encoders this process holds (none before its first rerank: the module is imported then)."""
    module = sys.modules.get("nirbridge.workers.cross_encoder")
    return list(module.loaded_cross_encoders()) if module is not None else []


@app.task(
    name=RERANK,
    bind=True,
    queue=RERANK_QUEUE,
    acks_late=False,
    reject_on_worker_lost=False,
    max_retries=0,
    soft_time_limit=RERANK_SOFT_TIME_LIMIT_S,
    time_limit=RERANK_TIME_LIMIT_S,
    throws=(DeadlineExceeded, RerankRefused),  # expected outcomes: one log line each, no traceback
)
def rerank(self: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Cross-encoder scores of one query's passages.

    request: {"model": str, "backend": str (default "auto"), "query": str, "passages": [str], "params": {...}
    (CrossEncoder keyword arguments, workers.rerank_policy.PARAM_LIMITS)}; the header DEADLINE_HEADER
    (optional) is the caller's deadline as `time.time()`, after which it no longer waits.  Returns {"scores":
    [float, one per passage, in order], "worker", "seconds" (this task's own time, model load included),
    "backend" (the one the model runs on)}.  An empty passage list answers [] without loading the model; a
    bad request (unknown keys, a passage that is not a str, an empty query, unknown params) fails the task
    with a message naming what is wrong; a model or backend outside this worker's allow-lists
    (workers.rerank_policy) fails it with `RerankRefused` before anything loads; past its deadline, before
    or between batches, it fails with `DeadlineExceeded` (counted as outcome "expired", workers.observe)
    instead of computing for nobody.
    """
    started = time.perf_counter()
    if not isinstance(request, dict):
        raise ValueError(f"a rerank request is a JSON object, got {type(request).__name__}")
    unknown = sorted(set(request) - RERANK_REQUEST_KEYS)
    if unknown:
        known = ", ".join(sorted(RERANK_REQUEST_KEYS))
        raise ValueError(f"unknown rerank request keys {unknown}; known: {known}")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError(f"rerank request: 'model' must be a non-empty str, got {model!r:.80}")
    backend = request.get("backend") or "auto"
    if not isinstance(backend, str):
        raise ValueError(f"rerank request: 'backend' must be a str, got {type(backend).__name__}")
    deadline = _monotonic_deadline(self.request.get(DEADLINE_HEADER))
    policy = worker_policy()
    model, backend = policy.model(model), policy.backend(backend)
    params = check_params(request.get("params"))
    from .cross_encoder import cached_cross_encoder, check_request

    passages = check_request(request.get("query"), request.get("passages"))
    worker = self.request.hostname or socket.gethostname()
    if not passages:
        return {"scores": [], "worker": worker, "seconds": 0.0, "backend": None}
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded("the deadline had passed when the task started: dropped before computing")
    encoder = cached_cross_encoder(model, backend, params)
    scores = encoder.score(str(request["query"]), passages, deadline=deadline)
    RERANK_PAIRS.inc(len(passages))
    return {
        "scores": [float(x) for x in scores],
        "worker": worker,
        "seconds": round(time.perf_counter() - started, 4),
        "backend": encoder.backend,
    }


def _monotonic_deadline(value: object) -> float | None:
    """The caller's wall-clock deadline (`time.time()`, a header) as a `time.monotonic()` instant.

    Wall clocks of two machines agree as well as their NTP does: a few milliseconds, against deadlines of
    seconds.  The monotonic instant keeps a clock step during the task from moving it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"rerank: header {DEADLINE_HEADER} must be a number (time.time()), got {value!r:.40}"
        )
    return time.monotonic() + (float(value) - time.time())
