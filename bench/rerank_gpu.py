"""Cross-encoder rerank latency on a GPU: one request = one query's first-stage top ``--pairs``, scored.

    python -m nirbridge.bench.rerank_gpu --model DIR --data nfcorpus-train.json.gz [--pairs 100]
        [--max-length 256]

The pairs are real: each query's BM25 top ``--pairs`` from prepared TrainingData (``TrainingData.save`` after
``with_bm25_candidates``; NFCorpus passages fill the 256 word pieces).  Each request runs the whole
``CrossEncoder.score_pairs`` path (tokenising, length-sorted batches, the model, scores back on the host), on
PyTorch with the module on CUDA in fp32, under bf16 autocast, and with fp16 weights.  ONNX Runtime's
CUDA provider is the product's GPU path (``onnx-cuda-fp16``); this bench measures PyTorch because the
machine it ran on had no onnxruntime-gpu.
Prints JSON: p50 / p90 ms per request and pairs/s for each, after warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from nirbridge.workers.cross_encoder import CrossEncoder
from nirbridge.workers.train.data import TrainingData


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    data = TrainingData.load(args.data)
    qids = [q for q in sorted(data.ranked) if len(data.ranked[q]) >= args.pairs][
        : args.requests + args.warmup
    ]
    requests = [[(data.queries[q], data.corpus[d]) for d in data.ranked[q][: args.pairs]] for q in qids]
    report: dict[str, object] = {"pairs per request": args.pairs, "max_length": args.max_length}
    for name, bf16, half in (
        ("torch-cuda-fp32", False, False),
        ("torch-cuda-bf16", True, False),
        ("torch-cuda-fp16", False, True),
    ):
        encoder = CrossEncoder(args.model, "torch-fp32", max_length=args.max_length)
        encoder.session.to("cuda")
        encoder.session.bf16 = bf16
        if half:  # weights in fp16 (autocast casts them on every call)
            encoder.session.module.half()
        times = []
        for i, pairs in enumerate(requests):
            started = time.perf_counter()
            encoder.score_pairs(pairs)
            if i >= args.warmup:
                times.append((time.perf_counter() - started) * 1000)
        times.sort()
        report[name] = {
            "p50 ms": round(statistics.median(times), 2),
            "p90 ms": round(times[int(0.9 * (len(times) - 1))], 2),
            "pairs/s": round(args.pairs * len(times) / (sum(times) / 1000), 1),
            "requests": len(times),
        }
    tokenising = []
    for pairs in requests[args.warmup :]:
        started = time.perf_counter()
        encoder.pair_ids(pairs)
        tokenising.append((time.perf_counter() - started) * 1000)
    report["tokenising p50 ms (host, part of each request)"] = round(statistics.median(tokenising), 2)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
