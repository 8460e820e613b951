"""Fusing the ranked lists of several retrieval modes into one: reciprocal rank fusion and min-max sum.

    fuse("rrf", [bm25_hits, dense_hits])        # [(id, fused score), ...], best first
    fuse("minmax", [bm25_hits, dense_hits], weights=[0.3, 0.7])
    interpolate(first_hits, reranked_hits, 0.7)  # a rerank window: 0.3 first stage + 0.7 cross-encoder

Each input is one mode's hits for one query, `[(id, score), ...]` best first, as the cluster returned them
(fetch the same `depth`, e.g. 100, from every mode). The fused list holds every id of any input, so cutting
it to `size` afterwards gives the same first hits whatever `size` is.

Ties are broken by the best rank the document has in any list, then by id, so the order is deterministic.

`interpolate` is min-max over a rerank window's two lists (the same ids): weight 1 is the reranked list as it
is, weight 0 the first-stage order; ties keep the first-stage order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

__all__ = ["FUSION_METHODS", "RRF_K", "FusionMethod", "Ranking", "fuse", "interpolate", "minmax", "rrf"]

Ranking = list[tuple[str, float]]
FusionMethod = Literal["rrf", "minmax"]
FUSION_METHODS: tuple[str, ...] = get_args(FusionMethod)
RRF_K = 60


def _weights(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0] * count
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} ranked lists")
    if any(not w >= 0 for w in weights):
        raise ValueError(f"weights must be >= 0, got {list(weights)}")
    return [float(w) for w in weights]


def _sorted(scores: dict[str, float], best_rank: dict[str, int]) -> Ranking:
    return sorted(scores.items(), key=lambda item: (-item[1], best_rank[item[0]], item[0]))


def _best_ranks(rankings: Sequence[Ranking]) -> dict[str, int]:
    best: dict[str, int] = {}
    for ranking in rankings:
        for rank, (doc_id, _) in enumerate(ranking, start=1):
            best[doc_id] = min(rank, best.get(doc_id, rank))
    return best


def rrf(rankings: Sequence[Ranking], k: int = RRF_K, weights: Sequence[float] | None = None) -> Ranking:
    """Reciprocal rank fusion (Cormack, Clarke & Buettcher, SIGIR 2009): `sum_m w_m / (k + r_m(d))`.

    `r_m(d)` is d's 1-based rank in list m; a list without d adds nothing. Only ranks count, not scores.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    factors = _weights(weights, len(rankings))
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, factors, strict=True):
        for rank, (doc_id, _) in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (k + rank)
    return _sorted(scores, _best_ranks(rankings))


def minmax(rankings: Sequence[Ranking], weights: Sequence[float] | None = None) -> Ranking:
    """Min-max normalised weighted sum: `score(d) = sum_m w_m * (s_m(d) - min_m) / (max_m - min_m)`.

    min_m and max_m are over list m's own hits (OpenSearch's `normalization-processor` `min_max`); a list
    whose scores are all equal normalises them to 1.0; a list without d adds 0.
    """
    factors = _weights(weights, len(rankings))
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, factors, strict=True):
        if not ranking:
            continue
        values = [score for _, score in ranking]
        low, high = min(values), max(values)
        spread = high - low
        for doc_id, score in ranking:
            normalised = (score - low) / spread if spread > 0 else 1.0
            scores[doc_id] = scores.get(doc_id, 0.0) + weight * normalised
    return _sorted(scores, _best_ranks(rankings))


def interpolate(first: Ranking, reranked: Ranking, weight: float) -> Ranking:
    """`(1 - weight) * first_norm + weight * reranked_norm` over one window (`minmax`), best first.

    `first` and `reranked` hold the same ids. Weight 1.0 returns `reranked` itself (pure reranking, exactly as
    without interpolation); below it the scores are the fused values and ties keep the first-stage order.
    ValueError for a weight outside [0, 1] (NaN included) or lists with different ids.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the rerank weight must be in [0, 1], got {weight!r}")
    if {doc_id for doc_id, _ in first} != {doc_id for doc_id, _ in reranked}:
        raise ValueError("interpolate needs the same ids in the first-stage and the reranked list")
    if weight == 1.0:
        return list(reranked)
    fused = minmax([first, reranked], weights=[1.0 - weight, weight])
    # minmax breaks ties by best rank in either list; here the first stage decides (weight 0 = its order)
    rank = {doc_id: position for position, (doc_id, _) in enumerate(first)}
    return sorted(fused, key=lambda item: (-item[1], rank[item[0]]))


def fuse(method: str, rankings: Sequence[Ranking], weights: Sequence[float] | None = None) -> Ranking:
    """Fuse with `method` ("rrf" with k = 60, or "minmax"); ValueError names the choices for any other."""
    if method == "rrf":
        return rrf(rankings, weights=weights)
    if method == "minmax":
        return minmax(rankings, weights=weights)
    raise ValueError(f"fusion {method!r} is not one of {', '.join(FUSION_METHODS)}")
