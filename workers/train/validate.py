"""Dev-set quality while training: nDCG@10 of re-scored candidates, through ir-measures.

    ndcg = ndcg_at_10(data.dev, {qid: dict(zip(candidates, scores)) for ...})

Trainers call it after each epoch (or every N steps) and keep the best checkpoint: early stopping on the
same measure `nirbridge eval` reports.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ndcg_at_10"]


def ndcg_at_10(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]) -> float:
    """Mean nDCG@10 over every query of ``qrels`` with a relevant document (a query missing from ``run``
    scores 0, as BEIR counts it)."""
    import ir_measures

    judged = [qid for qid, grades in qrels.items() if any(grade > 0 for grade in grades.values())]
    if not judged:
        return 0.0
    measure = ir_measures.parse_measure("nDCG@10")
    scores = {
        metric.query_id: float(metric.value)
        for metric in ir_measures.iter_calc(
            [measure],
            {qid: dict(qrels[qid]) for qid in judged},
            {qid: {doc: float(s) for doc, s in run[qid].items()} for qid in judged if run.get(qid)},
        )
    }
    return sum(scores.get(qid, 0.0) for qid in judged) / len(judged)
