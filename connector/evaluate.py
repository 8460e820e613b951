"""Retrieval quality of an index on a BEIR split: nDCG@10, MRR@10 and Recall@100 (ir-measures), queries/s.

    report = evaluate(client, url, "scifact", BeirDataset.open(path), "test", builder, mode="hybrid",
                      modes=("bm25", "dense"), fusion="rrf", depth=100)
    report.metrics        # {"ndcg@10": 0.71, "mrr@10": 0.68, "recall@100": 0.95}

The queries are those the split judges (and queries.jsonl has), run in batches of `batch_size` through one
`_msearch` each (`queries.first_stage`), `depth` hits per query (fused from `depth` per mode for hybrid).
The metrics come from ir-measures over the judgments as given (NFCorpus's grades 1-2 are gains for nDCG;
MRR and Recall count any grade >= 1 as relevant); a judged query that retrieves nothing scores 0.

`weights` weigh the hybrid's modes; `prior` mixes a document prior into the first stage (`connector.prior`).
queries/s counts the whole first stage per query (query encoding, the `_msearch`, fusion) after the models are
loaded; loading is left out.

Rerank hook: `reranker` (anything with `rerank(query, hits) -> hits`; `eval_rerank.EvalReranker` for the CLI)
re-scores the top `window` hits of each query; the rest keep their order below them. `rerank_weight` below 1
ranks the window by `(1 - w) * first stage + w * cross-encoder`, both min-max normalised per query
(`fusion.interpolate`); 1 is pure reranking, 0 the first-stage order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from opensearchpy import OpenSearch

from .beir import BeirDataset, BeirQuery
from .errors import DatasetError
from .fusion import FusionMethod, Ranking, interpolate
from .prior import Prior
from .queries import QueryBuilder, first_stage

__all__ = ["METRICS", "EvalReport", "Reranker", "evaluate", "judged_queries", "rerank_top", "score_run"]

# our names -> ir-measures' measure names
METRICS = {"ndcg@10": "nDCG@10", "mrr@10": "RR@10", "recall@100": "R@100"}


class Reranker(Protocol):
    """The second stage: new scores for a query's first-stage hits (best first in, best first out)."""

    def rerank(self, query: str, hits: Ranking) -> Ranking: ...


@dataclass
class EvalReport:
    """What one evaluation measured, and on what."""

    index: str
    dataset: str
    split: str
    mode: str
    queries: int
    metrics: dict[str, float]
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def queries_per_s(self) -> float:
        return self.queries / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "dataset": self.dataset,
            "split": self.split,
            "mode": self.mode,
            **self.settings,
            "queries": self.queries,
            "metrics": {name: round(value, 4) for name, value in self.metrics.items()},
            "seconds": round(self.seconds, 2),
            "queries_per_s": round(self.queries_per_s, 1),
        }


def judged_queries(dataset: BeirDataset, split: str) -> tuple[list[BeirQuery], dict[str, dict[str, int]]]:
    """The queries `split` has judgments for (in queries.jsonl order) and those judgments.

    DatasetError when the split has no qrels file or none of its judged queries is in queries.jsonl.
    """
    qrels = dataset.qrels(split)
    queries = [query for query in dataset.queries() if query.id in qrels]
    if not queries:
        raise DatasetError(
            dataset.root, f"none of the {len(qrels)} queries judged in {split!r} is in queries.jsonl"
        )
    return queries, qrels


def score_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """nDCG@10, MRR@10 and Recall@100 (ir-measures), averaged over every judged query of `qrels`.

    A judged query missing from `run` (or with no hits) counts 0, as BEIR's evaluation does.
    """
    import ir_measures

    measures = {name: ir_measures.parse_measure(spec) for name, spec in METRICS.items()}
    per_query: dict[str, dict[str, float]] = {name: {} for name in measures}
    by_measure = {measure: name for name, measure in measures.items()}
    for metric in ir_measures.iter_calc(list(measures.values()), qrels, run):
        per_query[by_measure[metric.measure]][metric.query_id] = float(metric.value)
    judged = [qid for qid, grades in qrels.items() if any(grade > 0 for grade in grades.values())]
    if not judged:
        return {name: 0.0 for name in measures}
    return {
        name: sum(values.get(qid, 0.0) for qid in judged) / len(judged) for name, values in per_query.items()
    }


def rerank_top(
    reranker: Reranker, query: str, hits: Ranking, window: int, rerank_weight: float = 1.0
) -> Ranking:
    """`hits` with the top `window` re-scored by `reranker` (interpolated with the first stage's scores when
    `rerank_weight` < 1, see the module doc), the rest below them in first-stage order."""
    head = interpolate(hits[:window], reranker.rerank(query, hits[:window]), rerank_weight)
    tail = hits[window:]
    if not tail:
        return head
    floor = min((score for _, score in head), default=0.0)
    return head + [(doc_id, floor - rank) for rank, (doc_id, _) in enumerate(tail, start=1)]


def evaluate(
    client: OpenSearch,
    url: str,
    index: str,
    dataset: BeirDataset,
    split: str,
    builder: QueryBuilder,
    mode: str,
    *,
    modes: Sequence[str] = ("bm25", "dense"),
    fusion: FusionMethod = "rrf",
    depth: int = 100,
    batch_size: int = 50,
    limit: int | None = None,
    reranker: Reranker | None = None,
    window: int = 100,
    rerank_weight: float = 1.0,
    weights: Sequence[float] | None = None,
    prior: Prior | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Run every judged query of `split` against `index` in `mode` and score the run (see the module doc)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if not 0.0 <= rerank_weight <= 1.0:  # before any query runs, not at the first batch's rerank
        raise ValueError(f"rerank_weight must be in [0, 1], got {rerank_weight!r}")
    queries, qrels = judged_queries(dataset, split)
    if limit is not None:
        queries = queries[:limit]
        qrels = {query.id: qrels[query.id] for query in queries}
    used = list(modes) if mode == "hybrid" else [mode]
    for one in used:
        builder.fields.require(one)
    builder.encoders.warm_up(used)
    run: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for start in range(0, len(queries), batch_size):
        batch = queries[start : start + batch_size]
        rankings = first_stage(
            client,
            url,
            index,
            builder,
            [query.text for query in batch],
            mode,
            depth,
            modes=modes,
            fusion=fusion,
            depth=depth,
            weights=weights,
            prior=prior,
        )
        for query, hits in zip(batch, rankings, strict=True):
            if reranker is not None:
                hits = rerank_top(reranker, query.text, hits, window, rerank_weight)
            run[query.id] = dict(hits)
        if progress is not None:
            progress(len(batch))
    seconds = time.perf_counter() - started
    settings: dict[str, Any] = {"depth": depth}
    if "bm25" in used:
        settings["bm25_type"] = builder.bm25_type
    if mode == "hybrid":
        settings.update(hybrid="+".join(modes), fusion=fusion)
        if weights is not None:
            settings["weights"] = list(weights)
    if prior is not None:
        settings["prior"] = {"field": prior.field, "weight": prior.weight}
    if "sparse" in used:
        settings.update(sparse_form=builder.sparse_form, dropped_tokens=builder.dropped_tokens)
    if "terms" in used:
        settings["terms_weighting"] = builder.terms_weighting
    return EvalReport(
        index=index,
        dataset=str(dataset.root),
        split=split,
        mode=mode,
        queries=len(queries),
        metrics=score_run(qrels, run),
        seconds=seconds,
        settings=settings,
    )
