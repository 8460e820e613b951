"""The workers' Prometheus metrics, defined once (served by `workers.metrics_http`).

    nirbridge_worker_tasks_total{task, outcome}        tasks ended: success, failure, retry, revoked, ...
    nirbridge_worker_task_seconds{task}                a task's run time (model load included when cold)
    nirbridge_worker_queue_wait_seconds{task}          from the client's send to the task's start, for tasks
                                                       sent with the time in a header (rerank); the clocks of
                                                       two machines: as good as their NTP
    nirbridge_worker_rerank_pairs_total                (query, passage) pairs scored
    nirbridge_worker_enrich_docs_total{outcome}        documents of enrich batches: processed, failed
                                                       (documents skipped as current never reach a worker:
                                                       the job counts those, connector.metrics)
    nirbridge_worker_model_load_seconds{kind, model}   loading a model (cross-encoder, sparse, terms,
                                                       doc2query, dense) into a process

They live in prometheus_client's default registry. Under Celery's prefork pool each pool process counts
for itself; `nirbridge worker --metrics-port` switches prometheus_client to its multiprocess mode before
this module is imported (`workers.metrics_http`), so that the worker's HTTP server sums them.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "ENRICH_DOCS",
    "MODEL_LOAD_SECONDS",
    "QUEUE_WAIT_SECONDS",
    "RERANK_PAIRS",
    "TASKS",
    "TASK_SECONDS",
    "observe_model_load",
]

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

TASKS = Counter("nirbridge_worker_tasks", "Tasks ended, by outcome.", ["task", "outcome"])
TASK_SECONDS = Histogram("nirbridge_worker_task_seconds", "Task run time.", ["task"], buckets=_SECONDS)
QUEUE_WAIT_SECONDS = Histogram(
    "nirbridge_worker_queue_wait_seconds",
    "From the client's send to the task's start (tasks sent with the time: rerank).",
    ["task"],
    buckets=_SECONDS,
)
RERANK_PAIRS = Counter("nirbridge_worker_rerank_pairs", "(query, passage) pairs scored.")
ENRICH_DOCS = Counter("nirbridge_worker_enrich_docs", "Documents of enrich batches, by outcome.", ["outcome"])
MODEL_LOAD_SECONDS = Histogram(
    "nirbridge_worker_model_load_seconds",
    "Loading a model into a process.",
    ["kind", "model"],
    buckets=_SECONDS,
)


def observe_model_load(kind: str, model: str, seconds: float) -> None:
    """One model loaded (called where the process caches its models: workers.cross_encoder, .pipeline)."""
    MODEL_LOAD_SECONDS.labels(kind, model).observe(seconds)
