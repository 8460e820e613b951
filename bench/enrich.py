"""Encoder throughput and quality per backend on NFCorpus (one JSON line).

    .venv/bin/python -m nirbridge.bench.enrich [--docs 500] [--dataset ../shared/data/nfcorpus]

For the sparse (SPLADE-tiny) and dense (all-MiniLM-L6-v2) encoders, over the first ``--docs`` documents
(title + " " + text), it times:

    baseline        torch-fp32, batches in corpus order, each padded to its longest text
    sorted-fp32     torch-fp32, length-sorted batches (the rest are all length-sorted)
    torch-bf16      CPU autocast bf16
    onnx-fp32       ONNX Runtime, fused graph
    onnx-int8       ONNX Runtime, fused graph, dynamic 8-bit MatMuls

and reports docs/s, the ratio to the baseline, and the backend ``auto`` chooses on this machine.  Quality:
nDCG@10 (ir-measures) on the NFCorpus dev queries of retrieval over the same documents (the qrels restricted
to them, queries without a relevant document among them dropped): dense by exact inner product of the unit
vectors (= cosine), sparse by the dot product of the SPLADE weights; each backend beside torch-fp32 (goal:
within 0.005).
Each configuration encodes 16 documents to warm up before it is timed.  Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nfcorpus"
BACKENDS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")


def load(dataset: Path, limit: int) -> tuple[list[str], list[str], dict[str, str], dict[str, dict[str, int]]]:
    ids, texts = [], []
    with (dataset / "corpus.jsonl").open() as fh:
        for line in fh:
            doc = json.loads(line)
            ids.append(doc["_id"])
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
            if len(ids) == limit:
                break
    kept = set(ids)
    qrels: dict[str, dict[str, int]] = {}
    with (dataset / "qrels" / "dev.tsv").open() as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            if did in kept and int(score) > 0:
                qrels.setdefault(qid, {})[did] = int(score)
    queries = {}
    with (dataset / "queries.jsonl").open() as fh:
        for line in fh:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries[q["_id"]] = q["text"]
    return ids, texts, queries, qrels


def ndcg10(scores: np.ndarray, qids: list[str], dids: list[str], qrels: dict[str, dict[str, int]]) -> float:
    import ir_measures
    from ir_measures import nDCG

    run: dict[str, dict[str, float]] = {}
    for row, qid in zip(scores, qids, strict=True):
        top = np.argsort(-row, kind="stable")[:100]
        run[qid] = {dids[j]: float(row[j]) for j in top}
    return float(ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10])


def timed(encode: Callable[[list[str]], Any], texts: list[str]) -> tuple[Any, float]:
    encode(texts[:16])
    start = time.perf_counter()
    out = encode(texts)
    return out, len(texts) / (time.perf_counter() - start)


def sparse_matrix(weights: list[dict[str, float]], vocab: dict[str, int]) -> np.ndarray:
    matrix = np.zeros((len(weights), len(vocab)), dtype=np.float32)
    for row, terms in enumerate(weights):
        for term, value in terms.items():
            matrix[row, vocab[term]] = value
    return matrix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--encoders", default="sparse,dense")
    args = parser.parse_args(argv)

    import onnxruntime
    import torch

    from nirbridge.workers.dense import DenseEncoder
    from nirbridge.workers.sparse import SparseEncoder

    dids, texts, queries, qrels = load(args.dataset, args.docs)
    qids = list(queries)
    qtexts = [queries[q] for q in qids]
    result: dict[str, Any] = {
        "bench": "enrich",
        "dataset": args.dataset.name,
        "docs": len(texts),
        "quality_subset": f"first {len(texts)} docs; {len(qids)} dev queries with a relevant doc among them",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_avg_start": os.getloadavg()[0],
        },
    }
    for kind in args.encoders.split(","):
        make: Callable[..., Any] = SparseEncoder if kind == "sparse" else DenseEncoder
        section: dict[str, Any] = {}
        rows: dict[str, Any] = {}
        encoder = make(backend="torch-fp32")
        rows["baseline"], rate = timed(lambda t, e=encoder: e.encode(t, sort=False), texts)
        section["baseline"] = {"backend": "torch-fp32", "sorted": False, "docs_per_s": round(rate, 2)}
        for backend in BACKENDS:
            encoder = make(backend=backend)
            name = "sorted-fp32" if backend == "torch-fp32" else backend
            rows[name], rate = timed(encoder.encode, texts)
            queries_out = encoder.encode(qtexts)
            if kind == "dense":
                quality = ndcg10(queries_out @ rows[name].T, qids, dids, qrels)
            else:
                vocab = {t: i for i, t in enumerate(v for v in encoder.vocabulary if v)}
                quality = ndcg10(
                    sparse_matrix(queries_out, vocab) @ sparse_matrix(rows[name], vocab).T, qids, dids, qrels
                )
            section[name] = {
                "backend": backend,
                "sorted": True,
                "docs_per_s": round(rate, 2),
                "ndcg@10": round(quality, 4),
            }
        base = section["baseline"]["docs_per_s"]
        reference = section["sorted-fp32"]["ndcg@10"]
        for entry in section.values():
            entry["ratio"] = round(entry["docs_per_s"] / base, 2)
            if "ndcg@10" in entry:
                entry["ndcg@10_delta"] = round(entry["ndcg@10"] - reference, 4)
        if kind == "dense":
            ref = rows["sorted-fp32"]
            for name in ("torch-bf16", "onnx-fp32", "onnx-int8"):
                cos = (rows[name] * ref).sum(axis=1)
                section[name]["cosine_min"] = round(float(cos.min()), 5)
                section[name]["cosine_mean"] = round(float(cos.mean()), 5)
        auto = make(backend="auto").backend
        key = "sorted-fp32" if auto == "torch-fp32" else auto
        section["auto"] = {
            "backend": auto,
            "docs_per_s": section[key]["docs_per_s"],
            "ratio": section[key]["ratio"],
        }
        result[kind] = section
    result["machine"]["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
