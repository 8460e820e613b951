"""`POST /{index}/_nirbridge/search`: a query text in, OpenSearch-shaped hits out, the queries built here.

    {"q": "statins and breast cancer", "mode": "hybrid", "size": 10, "from": 0,
     "hybrid": ["bm25", "dense"], "fusion": "rrf", "weights": [1, 1], "depth": 100,
     "rerank": {"window": 100, "fields": ["title", "text"]}, "prior": 0.3, "_source": true}

The bodies come from `connector.queries` (`FirstStage`, `QueryBuilder`), sent as one `_msearch` over the
proxy's pooled async client; the query encoders run in a thread, off the event loop, sparse and dense
queries of concurrent requests batched into one model call (`connector.query_batcher`). Without rerank the
first stage fetches `from + size` hits (hybrid: `max(depth, from + size)` per mode, fused); with rerank it
fetches `window`, reranks them and pages inside the window (`from + size` past the window is cut there).

Sources: a single mode asks the `_msearch` for them; hybrid fetches them afterwards with one `_mget` of the
hits it returns (or reranks), as fused lists hold ids from several answers.

Prior: `"prior": w` (or `{"weight": w, "field": "nir_prior"}`) mixes the document prior that `nirbridge prior`
wrote into the first-stage score (`connector.prior`), with one more `_msearch` for the hits' values; a single
mode then fetches `max(depth, from + size)` hits so that the prior reorders more than the page. Without the
parameter, `NIRBRIDGE_PROXY_PRIOR_WEIGHT` (default 0: off) applies to indices that have the field; a request
that names a prior on an index without it is a 400.

`hits.total`: a single mode's as the cluster counted it; hybrid's is the number of distinct documents the
modes returned, `"gte"` when some mode matched more than it returned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..fusion import FUSION_METHODS
from ..prior import Prior, require_prior_field
from ..queries import MODES, SINGLE_MODES, FirstStage, QueryBuilder, ranking_of
from ..query_batcher import BATCHED_MODES, QueryBatcher
from ..settings import Settings
from .cluster import Cluster
from .errors import BadRequest
from .paths import index_path
from .policy import check_source_spec, filter_source
from .rerank import AsyncReranker, RerankReport, RerankSpec, rerank_hits

__all__ = ["SearchRequest", "nirbridge_block", "run_search"]

_KNOWN = {"q", "mode", "size", "from", "hybrid", "fusion", "weights", "depth", "rerank", "prior", "_source"}


def _int(raw: Mapping[str, Any], name: str, default: int, low: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BadRequest(f"[{name}] must be an integer >= {low}, got {value!r}")
    return value


@dataclass(frozen=True)
class SearchRequest:
    """A checked `_nirbridge/search` body."""

    q: str
    mode: str
    size: int = 10
    from_: int = 0
    hybrid: tuple[str, ...] = ("bm25", "dense")
    fusion: str = "rrf"
    weights: tuple[float, ...] | None = None
    depth: int = 100
    rerank: RerankSpec | None = None
    source: Any = True
    prior: Prior | None = None
    prior_named: bool = False  # the request asked for it (not the setting's default)

    @classmethod
    def parse(cls, raw: Any, settings: Settings) -> SearchRequest:
        """BadRequest naming the parameter for anything the proxy cannot run."""
        if not isinstance(raw, Mapping):
            raise BadRequest("the request body must be a JSON object", "parse_exception")
        unknown = sorted(set(raw) - _KNOWN)
        if unknown:
            raise BadRequest(f"unknown parameter [{unknown[0]}]; known: {', '.join(sorted(_KNOWN))}")
        q = raw.get("q")
        if not isinstance(q, str) or not q.strip():
            raise BadRequest("[q] must be a non-empty string (the query text)")
        mode = raw.get("mode", "bm25")
        if mode not in MODES:
            raise BadRequest(f"[mode] {mode!r} is not one of {', '.join(MODES)}")
        hybrid = raw.get("hybrid", ["bm25", "dense"])
        if isinstance(hybrid, str):
            hybrid = [part.strip() for part in hybrid.split("+") if part.strip()]
        if (
            not isinstance(hybrid, list)
            or len(hybrid) < 2
            or any(one not in SINGLE_MODES for one in hybrid)  # first: a list in it would not hash
            or len(set(hybrid)) != len(hybrid)
        ):
            raise BadRequest(
                f"[hybrid] must name two or more distinct modes of {', '.join(SINGLE_MODES)}, got {hybrid!r}"
            )
        fusion = raw.get("fusion", "rrf")
        if fusion not in FUSION_METHODS:
            raise BadRequest(f"[fusion] {fusion!r} is not one of {', '.join(FUSION_METHODS)}")
        weights = raw.get("weights")
        if weights is not None:
            if (
                not isinstance(weights, list)
                or len(weights) != len(hybrid)
                or not all(isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights)
            ):
                raise BadRequest(f"[weights] must be {len(hybrid)} numbers >= 0 (one per hybrid mode)")
            weights = tuple(float(w) for w in weights)
        depth = _int(raw, "depth", 100, 1)
        if depth > settings.proxy_max_window:
            raise BadRequest(f"[depth] {depth} is larger than the maximum {settings.proxy_max_window}")
        rerank = raw.get("rerank")
        spec = RerankSpec.parse(rerank, settings) if rerank not in (None, False) else None
        size, from_ = _int(raw, "size", 10, 0), _int(raw, "from", 0, 0)
        if spec is None and from_ + size > settings.proxy_max_window:
            raise BadRequest(f"[from] + [size] is larger than the maximum {settings.proxy_max_window}")
        prior = _prior(raw.get("prior"), settings)
        return cls(
            q,
            mode,
            size,
            from_,
            tuple(hybrid),
            fusion,
            weights,
            depth,
            spec,
            check_source_spec(raw.get("_source", True)),
            prior,
            "prior" in raw,
        )

    def stage(self) -> FirstStage:
        """What the first stage fetches (see the module docstring)."""
        wanted = self.rerank.window if self.rerank else max(self.from_ + self.size, 1)
        if self.prior is not None:
            wanted = max(wanted, self.depth)
        depth = max(self.depth, wanted)
        return FirstStage(self.mode, wanted, self.hybrid, self.fusion, depth, self.weights)


def _prior(raw: Any, settings: Settings) -> Prior | None:
    """The request's prior (a weight, or {"weight", "field"}), else the settings' default; None when off."""
    weight, name = (settings.proxy_prior_weight, settings.proxy_prior_field) if raw is None else (raw, None)
    if isinstance(raw, Mapping):
        unknown = sorted(set(raw) - {"weight", "field"})
        if unknown or "weight" not in raw:
            raise BadRequest('[prior] must be a weight in [0, 1] or {"weight": w, "field": name}')
        weight, name = raw["weight"], raw.get("field")
        if not isinstance(name, str | None) or name == "":
            raise BadRequest(f"[prior.field] must be a field name, got {name!r}")
    try:
        prior = Prior(weight, name or settings.proxy_prior_field)
    except ValueError as error:
        raise BadRequest(f"[prior] {error}") from None
    return prior if prior.weight > 0 else None


@dataclass
class SearchResult:
    """The page of hits, what was counted, and the time of each stage."""

    hits: list[dict[str, Any]]
    total: dict[str, Any]
    shards: dict[str, Any]
    report: RerankReport
    took_ms: dict[str, float] = field(default_factory=dict)


async def _encode(
    builder: QueryBuilder,
    stage: FirstStage,
    cluster: Cluster,
    text: str,
    auth: str | None,
    batcher: QueryBatcher | None,
):
    """The `_msearch` bodies of one query (terms IDF counted first, over the same client; sparse and dense
    encodings through `batcher` when there is one)."""
    encoded: dict[str, Any] | None = None
    batched = [one for one in stage.run if one in BATCHED_MODES] if batcher is not None else []
    if batcher is not None and batched:
        rows = await asyncio.gather(*(batcher.encode(builder.encoders, one, text) for one in batched))
        encoded = dict(zip(batched, rows, strict=True))
    terms = None
    if "terms" in stage.run:
        words = await asyncio.to_thread(builder.encoders.terms, text)
        new, counts = builder.idf_count_bodies([words])
        if counts:
            builder.learn_idf(new, await cluster.msearch(builder.fields.index, counts, auth=auth))
        terms = builder.weighted_terms([words])
    if batcher is not None:  # every encoding is done: building the bodies needs no thread hop
        return stage.bodies(builder, [text], terms, [encoded])
    return await asyncio.to_thread(stage.bodies, builder, [text], terms)


def _check_lengths(builder: QueryBuilder, stage: FirstStage, text: str) -> None:
    for one in stage.run:
        builder.encoders.check_length(one, text)


async def run_search(
    cluster: Cluster,
    builder: QueryBuilder,
    request: SearchRequest,
    reranker: AsyncReranker | None,
    auth: str | None,
    batcher: QueryBatcher | None = None,
) -> SearchResult:
    """The first stage, the sources, the second stage and the page (BadRequest for a missing field)."""
    index = builder.fields.index
    stage = request.stage()
    took: dict[str, float] = {}
    clock = time.perf_counter()
    try:
        stage.require(builder.fields)
        prior = _usable_prior(request, builder)
        if any(one != "bm25" for one in stage.run):
            await asyncio.to_thread(_check_lengths, builder, stage, request.q)
        bodies = await _encode(builder, stage, cluster, request.q, auth, batcher)
    except UsageError as error:
        raise BadRequest.from_usage(error) from None
    took["encode"] = (time.perf_counter() - clock) * 1000
    want_source = request.rerank is not None or request.source is not False
    single = request.mode != "hybrid"
    if single and want_source:
        bodies[0]["_source"] = True if request.rerank else request.source

    clock = time.perf_counter()
    answers = await cluster.msearch(index, bodies, auth=auth)
    took["first_stage"] = (time.perf_counter() - clock) * 1000
    ranked = [ranking_of(answer) for answer in answers]
    (ranking,) = stage.rankings(ranked)
    if prior is not None and ranking:
        clock = time.perf_counter()
        values = await cluster.msearch(index, prior.bodies([ranking]), auth=auth)
        (ranking,) = prior.apply([ranking], [ranking_of(answer) for answer in values])
        took["prior"] = (time.perf_counter() - clock) * 1000
    seen: dict[str, dict[str, Any]] = {}
    for answer in answers:
        for hit in answer["hits"]["hits"]:
            seen.setdefault(str(hit["_id"]), hit)
    keep = ranking if request.rerank else ranking[request.from_ : request.from_ + request.size]
    hits = [{**_hit_head(seen[doc_id], index), "_score": score} for doc_id, score in keep]
    if single:
        for hit in hits:
            if want_source and "_source" in seen[hit["_id"]]:
                hit["_source"] = seen[hit["_id"]]["_source"]
    elif want_source and hits:
        clock = time.perf_counter()
        ids = {"ids": [h["_id"] for h in hits]}
        docs = await cluster.json("POST", index_path(index, "_mget"), ids, auth=auth)
        sources = {str(d["_id"]): d.get("_source") for d in docs.get("docs", []) if d.get("found")}
        for hit in hits:
            if hit["_id"] in sources:
                hit["_source"] = sources[hit["_id"]]
        took["fetch"] = (time.perf_counter() - clock) * 1000

    report = RerankReport()
    if request.rerank is not None:
        clock = time.perf_counter()
        hits, report = await rerank_hits(reranker, request.q, hits, request.rerank)
        took["rerank"] = (time.perf_counter() - clock) * 1000
        hits = hits[request.from_ : request.from_ + request.size]
        for hit in hits:
            shown = filter_source(hit.get("_source"), request.source)
            hit.pop("_source", None)
            if shown is not None:
                hit["_source"] = shown
    return SearchResult(hits, _total(answers, stage, seen), dict(answers[0].get("_shards", {})), report, took)


def _usable_prior(request: SearchRequest, builder: QueryBuilder) -> Prior | None:
    """The request's prior where the index has its field; a 400 when the request named it and it has not."""
    prior = request.prior
    if prior is None:
        return None
    try:
        require_prior_field(builder.fields.types, builder.fields.index, prior.field)
    except UsageError as error:
        if request.prior_named:
            raise BadRequest(f"[prior] {error}") from None
        return None
    return prior


def _hit_head(hit: Mapping[str, Any], index: str) -> dict[str, Any]:
    return {"_index": hit.get("_index", index), "_id": str(hit["_id"])}


def _total(answers: list[dict[str, Any]], stage: FirstStage, seen: Mapping[str, Any]) -> dict[str, Any]:
    totals = []
    for answer in answers:
        total = answer["hits"]["total"]
        totals.append(total if isinstance(total, Mapping) else {"value": int(total), "relation": "eq"})
    if stage.mode != "hybrid":
        return dict(totals[0])
    more = any(t["value"] > stage.fetch or t.get("relation") == "gte" for t in totals)
    return {"value": len(seen), "relation": "gte" if more else "eq"}


def nirbridge_block(mode: str, report: RerankReport, took_ms: Mapping[str, float]) -> dict[str, Any]:
    """The `nirbridge` part of an answer: mode, reranked, degraded (and why), per-stage milliseconds.

    `took_ms.rerank` is the proxy's whole wait for the scores; `took_ms.rerank_model` (when reranked) the
    cross-encoder's own time as the worker measured it (model load included on a cold worker): their
    difference is the Celery round trip (broker, result backend, polling, serialisation).
    """
    if report.model_seconds is not None:
        took_ms = {**took_ms, "rerank_model": report.model_seconds * 1000}
    block: dict[str, Any] = {
        "mode": mode,
        "reranked": report.reranked,
        "degraded": report.degraded,
        "degraded_reason": report.reason,
        "took_ms": {stage: round(ms, 2) for stage, ms in took_ms.items()},
    }
    if report.worker:
        block["rerank_worker"] = report.worker
    if report.backend:
        block["rerank_backend"] = report.backend
    return block
