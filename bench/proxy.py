"""The proxy's reranking stage: cross-encoder pairs/s per backend and nDCG@10 of reranking (one JSON line).

    .venv/bin/python -m nirbridge.bench.proxy [--model DIR] [--queries 5] [--pairs 100] [--max-length 256]
        [--dataset ../shared/data/nfcorpus]

Part 1, the cross-encoder.  For the first ``--queries`` NFCorpus dev queries that have a relevant document
in their BM25 top ``--pairs`` (bm25s, Lucene's BM25 with k1=1.2, b=0.75 over title + text, English stop words
and Snowball stemming), the ``--pairs`` (query, BM25 hit) pairs are scored at ``--max-length`` word pieces
(most NFCorpus abstracts are longer: the pairs are truncated, as a reranker sees them) by:

    baseline        torch-fp32, the pairs in BM25 order, each batch of 32 padded to its longest pair
    sorted-fp32     torch-fp32, length-sorted batches (all the rest are length-sorted too)
    torch-bf16      CPU autocast bf16 (fast only with AMX / AVX512-BF16; emulated elsewhere)
    onnx-fp32       ONNX Runtime, fused graph
    onnx-int8       ONNX Runtime, fused graph, dynamic 8-bit MatMuls (the cross-encoder's recipe: u8u8)

timed in interleaved rounds (query by query, the order of the configurations rotating, so that a
neighbour's load on a shared machine falls on all of them alike), after an 8-pair warm-up each.  Reported:
pairs/s (wall clock), pairs per CPU-second of this process, the ratio to the baseline, and the backend
``auto`` picks here.  Quality: nDCG@10 (ir-measures, NFCorpus dev qrels) of the BM25 top ``--pairs``
reordered by each configuration's scores, and its difference to torch-fp32's (goal: within 0.005), beside
BM25's own.

``--model``: a cross-encoder folder.  Without it, the test suite's model (all-MiniLM-L6-v2 with a score head
trained for a minute on SciFact by ``workers.reranker_training``, ``NIRBRIDGE_TEST_MODELS``) is trained or
reused: a weak reranker (its nDCG is below BM25's on NFCorpus), but the speed of any MiniLM-L6 cross-encoder
and the differences between backends are what this part measures.

Measured here (2 shared AVX2 cores, no AVX-512 / AMX; the tests' model; 5 queries x 100 pairs at 256):

    config        pairs/s   ratio   nDCG@10 (BM25 0.4377)   max |score - fp32|
    baseline       20.5     1.00    0.1487
    sorted-fp32    21.4     1.04    0.1487                   0
    torch-bf16      3.3     0.16    0.1779                   0.11   (bf16 emulated without AMX)
    onnx-fp32      22.4     1.09    0.1487                   < 5e-5
    onnx-int8      26.5     1.29    0.1523 (+0.0036)         0.92   (auto's choice here)

The issue's goal (>= 4x the baseline within 0.005 nDCG) is not reached on this CPU: most NFCorpus abstracts
fill the 256 word pieces, so length sorting saves little padding, and without VNNI ONNX Runtime's int8 MatMuls
gain about 1.3x.  The nDCG deltas of a model this weak (below BM25) on 5 queries are noise-sized; rerun with
a real cross-encoder (``--model``) and more ``--queries`` for quality.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nfcorpus"
SCIFACT = DEFAULT_DATASET.parent / "scifact"
CONFIGS = (
    ("baseline", "torch-fp32", False),
    ("sorted-fp32", "torch-fp32", True),
    ("torch-bf16", "torch-bf16", True),
    ("onnx-fp32", "onnx-fp32", True),
    ("onnx-int8", "onnx-int8", True),
)
# the tests' recipe (tests/cross_encoder_fixture.py TRAINING): the same folder is reused by both
TEST_MODEL = {"steps": 60, "queries": 8, "negatives": 1, "max_length": 128, "seed": 0}


def default_model() -> Path:
    """The test suite's cross-encoder, trained here when it is not there yet (same folder rule)."""
    from nirbridge.workers import reranker_training
    from nirbridge.workers.models import fingerprint, resolve_model

    recipe = json.dumps(
        {
            "kwargs": TEST_MODEL,
            "base": fingerprint(resolve_model("all-MiniLM-L6-v2")),
            "dataset": "scifact",
            "recipe": reranker_training.RECIPE,
        },
        sort_keys=True,
    )
    root = Path(
        os.environ.get("NIRBRIDGE_TEST_MODELS") or Path.home() / ".cache" / "nirbridge" / "test-models"
    )
    folder = root / f"xenc-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if not (folder / "config.json").exists():
        reranker_training.train_quick_reranker("all-MiniLM-L6-v2", SCIFACT, folder, **TEST_MODEL)
    return folder


def load_nfcorpus(dataset: Path) -> tuple[list[str], list[str], dict[str, str], dict[str, dict[str, int]]]:
    ids, texts = [], []
    with (dataset / "corpus.jsonl").open() as fh:
        for line in fh:
            doc = json.loads(line)
            ids.append(str(doc["_id"]))
            texts.append(f"{doc.get('title') or ''} {doc.get('text') or ''}".strip())
    qrels: dict[str, dict[str, int]] = {}
    with (dataset / "qrels" / "dev.tsv").open() as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, {})[did] = int(score)
    queries: dict[str, str] = {}
    with (dataset / "queries.jsonl").open() as fh:
        for line in fh:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries[str(q["_id"])] = str(q["text"])
    return ids, texts, queries, qrels


def bm25_top(texts: list[str], queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False)
    docs, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    return np.asarray(docs), np.asarray(scores)


def ndcg10(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> float:
    import ir_measures
    from ir_measures import nDCG

    judged = {q: qrels[q] for q in run}
    return float(ir_measures.calc_aggregate([nDCG @ 10], judged, run)[nDCG @ 10])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--configs", default=",".join(name for name, _, _ in CONFIGS))
    args = parser.parse_args(argv)

    import torch

    from nirbridge.workers.cross_encoder import CrossEncoder

    model = args.model or default_model()
    ids, texts, queries, qrels = load_nfcorpus(args.dataset)
    qids = sorted(queries)
    docs, bm25_scores = bm25_top(texts, [queries[q] for q in qids], args.pairs)
    chosen = [i for i, q in enumerate(qids) if any(ids[j] in qrels[q] for j in docs[i])][: args.queries]
    wanted = args.configs.split(",")
    configs = [c for c in CONFIGS if c[0] in wanted]
    encoders: dict[str, Any] = {}
    for _name, backend, _ in configs:
        if backend not in encoders:
            encoders[backend] = CrossEncoder(
                model, backend, max_length=args.max_length, batch_size=args.batch_size
            )
    warm = [texts[j] for j in docs[chosen[0]][:8]]
    for _name, backend, sort in configs:
        encoders[backend].score(queries[qids[chosen[0]]], warm, sort=sort)
    seconds = {name: [0.0, 0.0] for name, _, _ in configs}
    scores: dict[str, dict[int, np.ndarray]] = {name: {} for name, _, _ in configs}
    for round_, i in enumerate(chosen):
        query, passages = queries[qids[i]], [texts[j] for j in docs[i]]
        shift = round_ % len(configs)
        for name, backend, sort in configs[shift:] + configs[:shift]:
            wall, cpu = time.perf_counter(), time.process_time()
            scores[name][i] = encoders[backend].score(query, passages, sort=sort)
            seconds[name][0] += time.perf_counter() - wall
            seconds[name][1] += time.process_time() - cpu
    pairs = sum(len(docs[i]) for i in chosen)

    def run_of(per_query: dict[int, np.ndarray]) -> dict[str, dict[str, float]]:
        return {
            qids[i]: {ids[j]: float(s) for j, s in zip(docs[i], row, strict=True)}
            for i, row in per_query.items()
        }

    reference = "sorted-fp32" if "sorted-fp32" in scores else configs[0][0]
    ref_ndcg = ndcg10(run_of(scores[reference]), qrels)
    base = seconds.get("baseline", seconds[configs[0][0]])[0]
    results: dict[str, Any] = {}
    for name, backend, _ in configs:
        wall, cpu = seconds[name]
        quality = ndcg10(run_of(scores[name]), qrels)
        diffs = [float(np.abs(scores[name][i] - scores[reference][i]).max()) for i in chosen]
        results[name] = {
            "backend": backend,
            "pairs_per_s": round(pairs / wall, 2),
            "pairs_per_cpu_s": round(pairs / cpu, 2),
            "ratio": round(base / wall, 2),
            "ndcg@10": round(quality, 4),
            "ndcg_delta": round(quality - ref_ndcg, 4),
            "max_score_diff": round(max(diffs), 4),
        }
    bm25_run = {
        qids[i]: {ids[j]: float(s) for j, s in zip(docs[i], bm25_scores[i], strict=True)} for i in chosen
    }
    fastest = max(
        (n for n in results if n != "baseline" and abs(results[n]["ndcg_delta"]) <= 0.005),
        key=lambda n: results[n]["pairs_per_s"],
        default=None,
    )
    auto = CrossEncoder(model, "auto", max_length=args.max_length).backend
    line = {
        "bench": "proxy.cross_encoder",
        "model": str(model),
        "model_note": "given"
        if args.model
        else "tests' quick cross-encoder (all-MiniLM-L6-v2, SciFact, 60 steps)",
        "dataset": args.dataset.name,
        "queries": len(chosen),
        "pairs": pairs,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "configs": results,
        "bm25_ndcg@10": round(ndcg10(bm25_run, qrels), 4),
        "fastest_within_0.005": fastest,
        "fastest_ratio": results[fastest]["ratio"] if fastest else None,
        "auto": auto,
        "goal": "chosen CPU path >= 4x baseline pairs/s, nDCG@10 within 0.005 of fp32",
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
