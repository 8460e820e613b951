"""Encoder throughput and quality per backend on NFCorpus (one JSON line).

    .venv/bin/python -m nirbridge.bench.enrich [--docs 500] [--quality-docs all] [--encoders dense]
        [--quality-backends torch-fp32,onnx-fp32,onnx-int8] [--dataset ../shared/data/nfcorpus]

For the sparse (SPLADE-tiny) and dense (all-MiniLM-L6-v2) encoders, over the first ``--docs`` documents
(title + " " + text, each encoder's own truncation: 256 word pieces for all-MiniLM-L6-v2, the same in every
configuration), it times:

    baseline        torch-fp32, batches in corpus order, each padded to its longest text
    sorted-fp32     torch-fp32, length-sorted batches (the rest are all length-sorted)
    torch-bf16      CPU autocast bf16
    onnx-fp32       ONNX Runtime, fused graph
    onnx-int8       ONNX Runtime, fused graph, dynamic 8-bit MatMuls

and reports docs/s (wall clock), docs per CPU-second of this process, the ratio to the baseline, and the
backend ``auto`` chooses on this machine.  The configurations are timed in interleaved rounds: the documents
are cut into chunks of ``--chunk`` (in corpus order) and every configuration encodes each chunk in turn (the
order rotating per chunk), so a neighbour's load on a shared machine falls on all of them alike instead of on
whichever ran while it lasted.  Each configuration first encodes 16 documents to warm up.

Quality: nDCG@10 (ir-measures) on the NFCorpus dev queries of retrieval over the first ``--quality-docs``
documents (``all``: the whole corpus, 3,633 documents; default: the timed documents), the qrels restricted to
them and queries without a relevant document among them dropped: dense by exact inner product of the unit
vectors (= cosine), sparse by the dot product of the SPLADE weights; each backend in ``--quality-backends``
beside torch-fp32 (goal: within 0.005).  Row cosines to sorted-fp32 (dense) are over the timed documents.
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
_SORTED = (
    ("sorted-fp32", "torch-fp32"),
    ("torch-bf16", "torch-bf16"),
    ("onnx-fp32", "onnx-fp32"),
    ("onnx-int8", "onnx-int8"),
)


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


def interleaved(
    encoders: dict[str, Callable[[list[str]], Any]], texts: list[str], chunk: int
) -> tuple[dict[str, list[Any]], dict[str, tuple[float, float]]]:
    """Each encoder's outputs for ``texts`` (in order) and its (wall, CPU) seconds, timed chunk by chunk in
    rotating order after a 16-document warm-up each."""
    for encode in encoders.values():
        encode(texts[:16])
    names = list(encoders)
    outputs: dict[str, list[Any]] = {n: [] for n in names}
    seconds = {n: [0.0, 0.0] for n in names}
    for round_, start in enumerate(range(0, len(texts), chunk)):
        part = texts[start : start + chunk]
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = time.perf_counter(), time.process_time()
            out = encoders[name](part)
            seconds[name][0] += time.perf_counter() - wall
            seconds[name][1] += time.process_time() - cpu
            outputs[name].append(out)
    return outputs, {n: (w, c) for n, (w, c) in seconds.items()}


def joined(parts: list[Any]) -> Any:
    """Chunk outputs as one: a dense array, or a sparse encoder's list of dicts."""
    if parts and isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [row for part in parts for row in part]


def sparse_matrix(weights: list[dict[str, float]], vocab: dict[str, int]) -> np.ndarray:
    matrix = np.zeros((len(weights), len(vocab)), dtype=np.float32)
    for row, terms in enumerate(weights):
        for term, value in terms.items():
            matrix[row, vocab[term]] = value
    return matrix


def quality(
    kind: str,
    encoder: Any,
    rows: Any,
    qtexts: list[str],
    qids: list[str],
    dids: list[str],
    qrels: dict[str, dict[str, int]],
) -> float:
    queries_out = encoder.encode(qtexts)
    if kind == "dense":
        return ndcg10(queries_out @ rows.T, qids, dids, qrels)
    vocab = {t: i for i, t in enumerate(v for v in encoder.vocabulary if v)}
    return ndcg10(sparse_matrix(queries_out, vocab) @ sparse_matrix(rows, vocab).T, qids, dids, qrels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--docs", type=int, default=500, help="documents timed")
    parser.add_argument("--quality-docs", default="", help="documents for nDCG@10: a number or 'all'")
    parser.add_argument("--quality-backends", default=",".join(BACKENDS))
    parser.add_argument("--chunk", type=int, default=100, help="documents per interleaved timing round")
    parser.add_argument("--encoders", default="sparse,dense")
    args = parser.parse_args(argv)
    quality_limit = (
        10**9 if args.quality_docs == "all" else int(args.quality_docs) if args.quality_docs else args.docs
    )
    quality_backends = [b for b in args.quality_backends.split(",") if b]
    if "torch-fp32" not in quality_backends:
        quality_backends.insert(0, "torch-fp32")  # the reference the deltas are taken against

    import onnxruntime
    import torch

    from nirbridge.workers.dense import DenseEncoder
    from nirbridge.workers.sparse import SparseEncoder

    _, texts, _, _ = load(args.dataset, args.docs)
    qdids, qdocs, queries, qrels = load(args.dataset, quality_limit)
    qids = list(queries)
    qtexts = [queries[q] for q in qids]
    result: dict[str, Any] = {
        "bench": "enrich",
        "dataset": args.dataset.name,
        "docs": len(texts),
        "quality_docs": len(qdocs),
        "quality_subset": f"first {len(qdocs)} docs; {len(qids)} dev queries with a relevant doc among them",
        "timing": f"interleaved rounds of {args.chunk} docs, 16-doc warm-up each",
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
        encoders = {name: make(backend=b) for name, b in (("baseline", "torch-fp32"), *_SORTED)}
        calls: dict[str, Callable[[list[str]], Any]] = {
            name: (lambda t, e=e: e.encode(t, sort=False)) if name == "baseline" else e.encode
            for name, e in encoders.items()
        }
        outputs, seconds = interleaved(calls, texts, args.chunk)
        rows = {name: joined(parts) for name, parts in outputs.items()}
        section: dict[str, Any] = {}
        for name, (wall, cpu) in seconds.items():
            section[name] = {
                "backend": encoders[name].backend,
                "sorted": name != "baseline",
                "docs_per_s": round(len(texts) / wall, 2),
                "docs_per_cpu_s": round(len(texts) / cpu, 2),
            }
        if kind == "dense":
            section["max_length"] = {name: e.max_length for name, e in encoders.items()}
        for name, backend in _SORTED:
            if backend not in quality_backends:
                continue
            doc_rows = rows[name] if len(qdocs) == len(texts) else encoders[name].encode(qdocs)
            section[name]["ndcg@10"] = round(
                quality(kind, encoders[name], doc_rows, qtexts, qids, qdids, qrels), 4
            )
        base = section["baseline"]
        reference = section["sorted-fp32"]["ndcg@10"]
        for entry in section.values():
            if "docs_per_s" not in entry:
                continue
            entry["ratio"] = round(entry["docs_per_s"] / base["docs_per_s"], 2)
            entry["ratio_cpu"] = round(entry["docs_per_cpu_s"] / base["docs_per_cpu_s"], 2)
            if "ndcg@10" in entry:
                entry["ndcg@10_delta"] = round(entry["ndcg@10"] - reference, 4)
        if kind == "dense":
            ref = rows["sorted-fp32"]
            for name in ("baseline", "torch-bf16", "onnx-fp32", "onnx-int8"):
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
        fastest = max(
            (n for n in section if "docs_per_s" in section[n] and n != "baseline"),
            key=lambda n: section[n]["docs_per_s"],
        )
        section["fastest"] = {"name": fastest, "ratio": section[fastest]["ratio"]}
        result[kind] = section
        del encoders, calls, outputs, rows
    result["machine"]["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
