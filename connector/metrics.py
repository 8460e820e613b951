"""Prometheus metrics of the proxy and of the enrichment job, each in a registry of its own.

    metrics = ProxyMetrics()                        # one per proxy app (connector.proxy.make_app)
    metrics.observe_request("/{index}/_nirbridge/search", "bm25", 200, 0.012)
    metrics.exposition()                            # GET /_nirbridge/metrics: (body, content type)

    job = EnrichMetrics()                           # `nirbridge enrich --metrics-port N`
    server = serve_registry(9464, job.registry)     # then job.observe(report) after every batch

The proxy's metrics (labels in braces):

    nirbridge_proxy_requests_total{route, mode, status}    requests answered
    nirbridge_proxy_request_seconds{route, mode}           whole-request latency
    nirbridge_proxy_stage_seconds{mode, stage}             encode, first_stage, fetch (hybrid), rerank
    nirbridge_proxy_rerank_pairs                           (query, passage) pairs per rerank request
    nirbridge_proxy_rerank_queue_wait_seconds              a rerank's wait beyond the model's own time: queue,
                                                           broker and result polling (in process: the lock)
    nirbridge_proxy_degraded_total{reason}                 degraded answers, by `degraded_reason_label`

`route` is the route's path template (`passthrough` for everything else), `mode` the retrieval mode (bm25,
sparse, terms, dense, hybrid; `search` for `_search` with `ext.rerank`; `passthrough`; `none` when the
request failed before it had one). The exposition adds this process's default registry (process and GC
collectors, and the workers' metrics when reranking runs in process).

The enrichment job's:

    nirbridge_enrich_docs_total{outcome}      processed, skipped, failed (the job's totals, from its
                                              checkpoint: a resumed run starts at its earlier attempts')
    nirbridge_enrich_docs_per_second          documents enriched (written or failed) per second of this run
    nirbridge_enrich_docs_to_scan             documents the scan goes through
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from nirbridge.workers.metrics_http import MetricsServer, serve_registry

__all__ = [
    "DEGRADED_REASONS",
    "EnrichMetrics",
    "MetricsServer",
    "ProxyMetrics",
    "degraded_reason_label",
    "serve_registry",
]

# seconds: a first stage on a small index answers in milliseconds, a cold reranker in seconds
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_PAIR_BUCKETS = (1, 5, 10, 20, 50, 100, 200, 500, 1000)

# How a degraded answer's reason starts (connector.rerank_client, connector.proxy.rerank) -> its label: a
# fixed, small set, so that a reason's details (URLs, numbers) never become label values.
DEGRADED_REASONS: tuple[tuple[str, str], ...] = (
    ("queue full", "queue_full"),
    ("broker", "broker"),
    ("timeout", "timeout"),
    ("no rerank scores within the deadline", "deadline"),
    ("failed", "failed"),
    ("bad input", "bad_input"),
    ("the reranker failed", "error"),
    ("no reranker", "no_reranker"),
    ("the reranker gave", "bad_scores"),
)


def degraded_reason_label(reason: str | None) -> str:
    """The label of a degraded answer's reason (`other` for a reason no rule knows)."""
    text = (reason or "").strip().lower()
    for prefix, label in DEGRADED_REASONS:
        if text.startswith(prefix):
            return label
    return "other"


class _Report(Protocol):
    """What `ProxyMetrics.observe_rerank` reads of a `connector.proxy.rerank.RerankReport`."""

    reranked: bool
    degraded: bool
    reason: str | None
    seconds: float
    model_seconds: float | None
    pairs: int


class ProxyMetrics:
    """The proxy's metrics (see the module docstring) in `registry` (a new one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "nirbridge_proxy_requests", "Requests answered.", ["route", "mode", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "nirbridge_proxy_request_seconds",
            "Whole-request latency.",
            ["route", "mode"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "nirbridge_proxy_stage_seconds",
            "Latency of one stage of a search (encode, first_stage, fetch, rerank).",
            ["mode", "stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rerank_pairs = Histogram(
            "nirbridge_proxy_rerank_pairs",
            "(query, passage) pairs sent to the reranker per request.",
            buckets=_PAIR_BUCKETS,
            registry=r,
        )
        self.rerank_queue_wait = Histogram(
            "nirbridge_proxy_rerank_queue_wait_seconds",
            "A rerank's wait beyond the model's own time (queue, broker, result polling).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.degraded = Counter(
            "nirbridge_proxy_degraded", "Degraded answers (first-stage order kept).", ["reason"], registry=r
        )

    def observe_request(self, route: str, mode: str, status: int, seconds: float) -> None:
        self.requests.labels(route, mode, str(status)).inc()
        self.request_seconds.labels(route, mode).observe(seconds)

    def observe_stages(self, mode: str, took_ms: dict[str, float]) -> None:
        """Each stage of `took_ms` (milliseconds; `total` and the worker's `rerank_model` are left out)."""
        for stage, ms in took_ms.items():
            if stage not in ("total", "rerank_model"):
                self.stage_seconds.labels(mode, stage).observe(ms / 1000.0)

    def observe_rerank(self, report: _Report) -> None:
        """One second stage: its pairs, its queue wait (when reranked), or why it degraded."""
        if report.pairs:
            self.rerank_pairs.observe(report.pairs)
        if report.reranked and report.model_seconds is not None:
            self.rerank_queue_wait.observe(max(0.0, report.seconds - report.model_seconds))
        if report.degraded:
            self.degraded.labels(degraded_reason_label(report.reason)).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition of this registry and of the process's default one, and its content type."""
        return generate_latest(self.registry) + generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class _JobReport(Protocol):
    processed: int
    skipped: int
    failed: int
    to_scan: int | None

    @property
    def docs_per_s(self) -> float: ...


class EnrichMetrics:
    """The enrichment job's metrics; `observe(report)` after every batch brings them up to the report."""

    OUTCOMES = ("processed", "skipped", "failed")

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.docs = Counter("nirbridge_enrich_docs", "Documents by outcome.", ["outcome"], registry=r)
        self.docs_per_second = Gauge(
            "nirbridge_enrich_docs_per_second", "Documents enriched per second of this run.", registry=r
        )
        self.to_scan = Gauge("nirbridge_enrich_docs_to_scan", "Documents the scan goes through.", registry=r)
        self._seen = dict.fromkeys(self.OUTCOMES, 0)
        self._lock = threading.Lock()
        for outcome in self.OUTCOMES:
            self.docs.labels(outcome)  # present at 0 before the first batch

    def observe(self, report: _JobReport, *_: Any) -> None:
        """Counters raised to the report's totals; the rate and the documents to scan set (a progress
        callback: extra arguments are ignored)."""
        with self._lock:
            for outcome in self.OUTCOMES:
                now = int(getattr(report, outcome))
                if now > self._seen[outcome]:
                    self.docs.labels(outcome).inc(now - self._seen[outcome])
                    self._seen[outcome] = now
        self.docs_per_second.set(report.docs_per_s)
        if report.to_scan is not None:
            self.to_scan.set(report.to_scan)
