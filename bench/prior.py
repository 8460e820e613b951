"""What the document prior costs a search through the proxy: p50 of `_nirbridge/search`, one JSON line.

    .venv/bin/nirbridge serve --url http://127.0.0.1:9200 --port 8080 &
    .venv/bin/python -m nirbridge.bench.prior --proxy http://127.0.0.1:8080 --index nfcorpus \\
        --queries ../shared/data/nfcorpus/queries.jsonl

The index must hold the prior (`nirbridge prior`). Each case sends the same queries one after another (BM25,
top 10): without the prior; with it at the default depth 100 (the proxy fetches 100 hits for the prior to
reorder); with it at depth 20; and plain BM25 asked for 100 hits, the fetch the prior adds. `prior_p50_ms`
is the proxy's own `took_ms.prior` (the `_msearch` reading the hits' values).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

CASES: dict[str, dict[str, Any]] = {
    "bm25": {},
    "bm25 + prior (depth 100)": {"prior": 0.3},
    "bm25 + prior (depth 20)": {"prior": 0.3, "depth": 20},
    "bm25, 100 hits": {"size": 100},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", default="http://127.0.0.1:8080")
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", type=Path, required=True, help="A BEIR queries.jsonl")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(argv)
    with args.queries.open(encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle if line.strip()][: args.count]
    report: dict[str, Any] = {"index": args.index, "queries": len(texts)}
    with httpx.Client(timeout=60) as client:
        for name, extra in CASES.items():
            wall, prior = [], []
            for text in texts:
                started = time.perf_counter()
                answer = client.post(
                    f"{args.proxy}/{args.index}/_nirbridge/search",
                    json={"q": text, "mode": "bm25", "size": 10, **extra},
                )
                wall.append((time.perf_counter() - started) * 1000)
                answer.raise_for_status()
                prior.append(answer.json()["nirbridge"]["took_ms"].get("prior", 0.0))
            report[name] = {
                "p50_ms": round(statistics.median(wall), 2),
                "prior_p50_ms": round(statistics.median(prior), 2),
            }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
