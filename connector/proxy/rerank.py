"""The proxy's second stage: a window of first-stage hits rescored by a cross-encoder, within a deadline.

    spec = RerankSpec.parse({"window": 100, "fields": ["title", "text"]}, settings)     # BadRequest if bad
    spec = RerankSpec.parse({"window": 100, "weight": 0.7}, settings)  # 0.3 first stage + 0.7 cross-encoder
    hits, report = await rerank_hits(reranker, "statins", hits, spec)
    page = hits[from_ : from_ + size]                                                   # paging in the window

The reranker is anything with the interface of `connector.rerank_client` (`RerankClient` through Celery
workers, `InProcessReranker` in this process):

    await reranker.arerank(query, passages, model, backend, params, deadline) -> RerankOutcome
        (scores: list[float] | None, degraded: bool, reason: str | None, worker: str | None, seconds: float)

`deadline` is a `time.monotonic()` instant. The reranker answers degraded rather than raise for a slow or dead
worker; the proxy adds a backstop of its own (`asyncio.wait_for`, the deadline plus `GRACE_S`) and treats an
exception the same way, so a request is never held past its deadline nor dropped: a degraded answer keeps the
first-stage order and scores.

`weight` (default `NIRBRIDGE_PROXY_RERANK_WEIGHT`, else 1: pure reranking) below 1 orders the window by
`(1 - weight) * first stage + weight * cross-encoder`, each min-max normalised over the window
(`fusion.interpolate`), and that value is the hits' `_score`; 0 gives the first-stage order back. A degraded
answer ignores it (first-stage order and scores).

What a request may name is the operator's: `model` and `backend` must be on the allow-lists
(`NIRBRIDGE_RERANK_MODELS`, `NIRBRIDGE_RERANK_BACKENDS`: workers.rerank_policy) and `params` within their
ranges, else 400 naming what is allowed; the workers check the same again before they load anything.

Passages: the values of `fields` in each hit's `_source`, in that order, joined by a space (a list value is
joined too; a missing field adds nothing), cut to `MAX_PASSAGE_CHARS` characters. The cross-encoder cuts
further to its own word-piece limit (workers.cross_encoder: `100 * max_length` characters, then word pieces).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from nirbridge.workers.errors import RerankRefused
from nirbridge.workers.rerank_policy import RerankPolicy, check_params

from ..fusion import interpolate
from ..settings import Settings
from .errors import BadRequest

__all__ = [
    "GRACE_S",
    "MAX_PASSAGE_CHARS",
    "AsyncReranker",
    "RerankReport",
    "RerankSpec",
    "passage_of",
    "rerank_hits",
]

GRACE_S = 0.25
MAX_PASSAGE_CHARS = 100 * 512  # the cross-encoder's own cut at its longest usual max_length


class AsyncReranker(Protocol):
    """What the proxy needs of a reranker (`connector.rerank_client`)."""

    async def arerank(
        self,
        query: str,
        passages: list[str],
        model: str,
        backend: str,
        params: dict[str, Any],
        deadline: float,
    ) -> Any: ...


@lru_cache(maxsize=8)
def _policy(models: str, backends: str, default_model: str, default_backend: str) -> RerankPolicy:
    """The allow-lists of the settings (built once per distinct settings: the shipped models are listed)."""
    try:
        return RerankPolicy.from_values(models, backends, default_model, default_backend)
    except ValueError as error:  # a bad NIRBRIDGE_RERANK_BACKENDS: the operator's, named in every answer
        raise BadRequest(str(error)) from None


@dataclass(frozen=True)
class RerankSpec:
    """One request's `rerank` settings, checked."""

    window: int = 100
    weight: float = 1.0  # the cross-encoder's share of the score (module doc)
    fields: tuple[str, ...] = ("title", "text")
    model: str = ""  # parse() refuses a spec without one (no request model, no configured default)
    backend: str = "auto"
    params: dict[str, Any] = field(default_factory=dict)
    deadline_s: float = 2.0
    query: str | None = None  # the text to rerank against (`_search`: else taken from the body's query)

    @classmethod
    def parse(cls, raw: Any, settings: Settings, where: str = "rerank") -> RerankSpec:
        """The spec of `raw` (a JSON object), defaults from `settings`; BadRequest naming what is wrong."""
        if raw is True or raw == {}:
            raw = {}
        if not isinstance(raw, Mapping):
            raise BadRequest(f"[{where}] must be an object, got {type(raw).__name__}")
        known = {"window", "weight", "fields", "model", "backend", "params", "deadline_ms", "query"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise BadRequest(f"[{where}] unknown parameter [{unknown[0]}]; known: {', '.join(sorted(known))}")
        window = raw.get("window", 100)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise BadRequest(f"[{where}.window] must be a positive integer, got {window!r}")
        if window > settings.proxy_max_window:
            raise BadRequest(
                f"[{where}.window] {window} is larger than the maximum window {settings.proxy_max_window} "
                "(NIRBRIDGE_PROXY_MAX_WINDOW)"
            )
        weight = raw.get("weight", settings.proxy_rerank_weight)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
            raise BadRequest(f"[{where}.weight] must be a number in [0, 1], got {weight!r}")
        fields = raw.get("fields", ["title", "text"])
        if isinstance(fields, str):
            fields = [fields]
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
            raise BadRequest(f"[{where}.fields] must be a non-empty list of field names, got {fields!r}")
        for name in ("model", "backend"):
            value = raw.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                raise BadRequest(f"[{where}.{name}] must be a non-empty string, got {value!r}")
        params = raw.get("params", {})
        if not isinstance(params, Mapping):
            raise BadRequest(f"[{where}.params] must be an object, got {params!r}")
        try:
            params = check_params(params)
        except RerankRefused as error:
            raise BadRequest(f"[{where}.params] {error}") from None
        query = raw.get("query")
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise BadRequest(f"[{where}.query] must be a non-empty string, got {query!r}")
        model = raw.get("model") or settings.proxy_rerank_model
        if not model:
            raise BadRequest(
                f"no reranker model configured: set NIRBRIDGE_PROXY_RERANK_MODEL or {where}.model"
            )
        policy = _policy(
            settings.rerank_models,
            settings.rerank_backends,
            settings.proxy_rerank_model,
            settings.proxy_rerank_backend,
        )
        backend = raw.get("backend") or settings.proxy_rerank_backend
        try:
            model, backend = policy.model(model), policy.backend(backend)
        except RerankRefused as error:
            raise BadRequest(f"[{where}] {error}") from None
        limit_ms = settings.proxy_rerank_deadline_ms
        deadline_ms = raw.get("deadline_ms", limit_ms)
        if isinstance(deadline_ms, bool) or not isinstance(deadline_ms, int | float) or deadline_ms <= 0:
            raise BadRequest(f"[{where}.deadline_ms] must be a positive number, got {deadline_ms!r}")
        return cls(
            window=window,
            weight=float(weight),
            fields=tuple(fields),
            model=model,
            backend=backend,
            params=params,
            deadline_s=min(float(deadline_ms), limit_ms) / 1000.0,  # a request may ask less, never more
            query=query,
        )


@dataclass
class RerankReport:
    """What the second stage did: for the response's `nirbridge` block."""

    reranked: bool = False
    degraded: bool = False
    reason: str | None = None
    worker: str | None = None
    seconds: float = 0.0
    model_seconds: float | None = None  # the cross-encoder's own time (worker or in-process)
    backend: str | None = None  # the backend the cross-encoder ran on (onnx-int8, torch-fp32, ...)
    pairs: int = 0  # (query, passage) pairs sent to the reranker


def passage_of(source: Mapping[str, Any] | None, fields: Sequence[str]) -> str:
    """The text the cross-encoder reads for one hit (see the module docstring)."""
    parts: list[str] = []
    for name in fields:
        value = (source or {}).get(name)
        if isinstance(value, list):
            parts.extend(str(item) for item in value if item is not None)
        elif value is not None:
            parts.append(str(value))
    return " ".join(part for part in parts if part)[:MAX_PASSAGE_CHARS]


async def _outcome(
    reranker: AsyncReranker, query: str, passages: list[str], spec: RerankSpec
) -> tuple[Any, str | None]:
    deadline = time.monotonic() + spec.deadline_s
    call = reranker.arerank(query, passages, spec.model, spec.backend, dict(spec.params), deadline)
    try:
        return await asyncio.wait_for(call, timeout=spec.deadline_s + GRACE_S), None
    except TimeoutError:
        return None, f"no rerank scores within the deadline ({spec.deadline_s * 1000:.0f} ms)"
    except Exception as error:  # noqa: BLE001 - a failing reranker degrades the answer, never fails it
        return None, f"the reranker failed: {type(error).__name__}: {error}"


async def rerank_hits(
    reranker: AsyncReranker | None, query: str, hits: list[dict[str, Any]], spec: RerankSpec
) -> tuple[list[dict[str, Any]], RerankReport]:
    """`hits` ordered by the cross-encoder's scores (their `_score`), or as they came when degraded.

    Ties keep the first-stage order. Nothing to rerank (no hits) is not degraded. With `spec.weight` < 1 the
    order and `_score` are the interpolated ones (module doc).
    """
    report = RerankReport()
    if not hits:
        return hits, report
    if reranker is None:
        report.degraded, report.reason = True, "no reranker is configured in this proxy"
        return hits, report
    started = time.perf_counter()
    passages = [passage_of(hit.get("_source"), spec.fields) for hit in hits]
    report.pairs = len(passages)
    outcome, failure = await _outcome(reranker, query, passages, spec)
    report.seconds = time.perf_counter() - started
    scores = getattr(outcome, "scores", None)
    report.worker = getattr(outcome, "worker", None)
    model_seconds = getattr(outcome, "seconds", None)
    if isinstance(model_seconds, int | float) and not getattr(outcome, "degraded", True):
        report.model_seconds = float(model_seconds)
        report.backend = getattr(outcome, "backend", None)
    if failure is not None or getattr(outcome, "degraded", True) or scores is None:
        report.degraded = True
        report.reason = failure or getattr(outcome, "reason", None) or "the reranker gave no scores"
        return hits, report
    if len(scores) != len(hits):
        report.degraded = True
        report.reason = f"the reranker gave {len(scores)} scores for {len(hits)} passages"
        return hits, report
    # keyed by position, not _id: a window over several indices may hold one _id twice
    keys = [f"{i:06d}" for i in range(len(hits))]
    first = [(key, float(hit.get("_score") or 0.0)) for key, hit in zip(keys, hits, strict=True)]
    order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), i))
    ranked = interpolate(first, [(keys[i], float(scores[i])) for i in order], spec.weight)
    report.reranked = True
    return [{**hits[int(key)], "_score": score} for key, score in ranked], report
