"""Dev-set quality while training: nDCG@10 of re-scored candidates, through ir-measures.

    ndcg = ndcg_at_10(data.dev, {qid: dict(zip(candidates, scores)) for ...})

Trainers call it after each epoch (or every N steps) and keep the best checkpoint: early stopping on the
same measure `nirbridge eval` reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ndcg_at_10", "training_device"]


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


def training_device(device: str = "auto") -> Any:
    """The torch device a trainer runs on: ``auto`` is CUDA where torch sees a GPU, else the CPU.

    ValueError for ``cuda`` without a GPU or an unknown name (the CLI reports it as a usage error)."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' asked for, but torch sees no GPU here (a CUDA build of torch and a driver)"
        )
    return torch.device(device)
