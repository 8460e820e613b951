"""k-NN benchmark of :class:`nirbridge.engine.index.VectorIndex` (``l2``): two configurations side by side.

    .venv/bin/python -m nirbridge.bench.knn [--n 100000] [--dim 384] [--k 10] [--queries 200] [--seed 0]
        [--configs exact,opensearch] [--m 16] [--ef-construction 100] [--ef-search 100]
        [--sweep 200,400,800] [--data uniform|lowrank]

The headline configuration (``exact``) is an index whose ``approximate_threshold`` is -1 (OpenSearch's
``index.knn.advanced.approximate_threshold: -1``: no HNSW graph is built and every search is exact), which
``VectorIndex`` answers with its int8 scan and proven bound (see ``engine/index/vector_scan.py``): recall 1 by
construction. Beside it (``opensearch``) the plugin's defaults: an HNSW graph (m=16, ef_construction=100,
ef_search=100, or ``--m`` / ``--ef-construction`` / ``--ef-search``), with ``--sweep`` adding other
``ef_search`` values on the same graph.

One run draws ``n`` random vectors (``uniform``: i.i.d. U[0, 1), the issue's workload, which has no
low-dimensional structure and is about the hardest case for HNSW; ``lowrank``: points near a 32-dimensional
subspace plus noise, closer to model embeddings). Each configuration adds them in batches of ``batch_size``
through ``VectorIndex.add`` with faiss's default threads, then answers ``queries`` fresh vectors one at a time
on one thread (``faiss.omp_set_num_threads(1)``) through ``VectorIndex.search``, compared with the exact top-k
(faiss ``IndexFlatL2``). Reported per configuration: build time, vectors/s, p50/p99/mean latency, recall@k,
the RSS growth while the index was built (psutil), the index's size (float32 vectors, int8 codes, neighbour
lists), the 1-minute load average before and after each measurement (other processes on the machine skew the
timings), and ``path``: whether the index's exact/HNSW rule sent the searches to the graph or to an exact
scan. The goal from the issue (p50 <= 5 ms and recall@10 >= 0.95) is checked in ``meets_goal``. The last line
on stdout is one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np

from nirbridge.engine.index import VectorIndex

GOAL_P50_MS = 5.0
GOAL_RECALL = 0.95


def log(message: str) -> None:
    print(f"[bench.knn {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss_bytes() -> int:
    """This process's resident set size."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # Linux without psutil
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_vectors(n: int, queries: int, dim: int, seed: int, data: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if data == "uniform":
        return rng.random((n, dim), dtype=np.float32), rng.random((queries, dim), dtype=np.float32)
    if data == "lowrank":
        rank = 32
        basis = rng.standard_normal((rank, dim)).astype(np.float32) / np.sqrt(rank)

        def sample(count: int) -> np.ndarray:
            points = rng.standard_normal((count, rank)).astype(np.float32) @ basis
            return (points + 0.1 * rng.standard_normal((count, dim)).astype(np.float32)).astype(np.float32)

        return sample(n), sample(queries)
    raise ValueError(f"unknown data {data!r}: expected uniform or lowrank")


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    flat = faiss.IndexFlatL2(vectors.shape[1])
    flat.add(vectors)
    _, labels = flat.search(queries, k)
    return labels


def measure_search(
    index: VectorIndex, queries: np.ndarray, truth: np.ndarray, k: int, ef_search: int
) -> dict[str, Any]:
    """Single-query, single-thread latency and recall@k of ``index.search`` at ``ef_search``."""
    load_before = round(os.getloadavg()[0], 2)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index.search(queries[0], k, ef_search=ef_search)  # warm-up
        latencies = np.empty(len(queries))
        hits = 0
        for i, query in enumerate(queries):
            start = time.perf_counter()
            ords, _ = index.search(query, k, ef_search=ef_search)
            latencies[i] = time.perf_counter() - start
            hits += len(set(ords.tolist()) & set(truth[i].tolist()))
    finally:
        faiss.omp_set_num_threads(threads)
    n = len(index)
    exact = index._prefers_exact(n, k, max(ef_search, k))  # the index's own exact/HNSW rule
    return {
        "ef_search": ef_search,
        "path": "exact" if exact else "hnsw",
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1e3, 3),
        "p99_ms": round(float(np.percentile(latencies, 99)) * 1e3, 3),
        "mean_ms": round(float(latencies.mean()) * 1e3, 3),
        "recall": round(hits / (k * len(queries)), 4),
        "load_average_1m": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
    }


def build_index(
    vectors: np.ndarray, batch_size: int, **params: Any
) -> tuple[VectorIndex, dict[str, Any]]:
    """``VectorIndex(dim, "l2", **params)`` filled with ``vectors``; the index and its build figures."""
    n, dim = vectors.shape
    rss_before = rss_bytes()
    index = VectorIndex(dim, "l2", **params)
    log(f"build {params}: batches of {batch_size}, {faiss.omp_get_max_threads()} threads")
    start = time.perf_counter()
    for begin in range(0, n, batch_size):
        end = min(begin + batch_size, n)
        index.add(np.arange(begin, end, dtype=np.int64), vectors[begin:end])
    build_s = time.perf_counter() - start
    rss_delta = rss_bytes() - rss_before
    graph = index._graph  # what the index holds: float32 vectors, int8 codes, the graph's neighbour lists
    codes = index._codes.ntotal * dim if index._codes is not None else 0
    graph_bytes = graph.hnsw.neighbors.size() * 4 + graph.hnsw.offsets.size() * 8
    log(f"  {build_s:.1f} s, {n / build_s:,.0f} vectors/s, RSS +{rss_delta / 2**20:.0f} MiB")
    return index, {
        "parameters": params,
        "has_graph": index.has_graph,
        "build_s": round(build_s, 2),
        "vectors_per_s": round(n / build_s, 1),
        "rss_delta_mb": round(rss_delta / 2**20, 1),
        "index_mb": round((n * dim * 4 + codes + graph_bytes) / 2**20, 1),
        "int8_codes_mb": round(codes / 2**20, 1),
        "graph_mb": round(graph_bytes / 2**20, 1),
    }


def run_knn_benchmark(
    n: int = 100_000,
    dim: int = 384,
    k: int = 10,
    queries: int = 200,
    seed: int = 0,
    *,
    configs: Sequence[str] = ("exact", "opensearch"),
    m: int = 16,
    ef_construction: int = 100,
    ef_search: int = 100,
    sweep: Sequence[int] = (),
    data: str = "uniform",
    batch_size: int = 10_000,
) -> dict[str, Any]:
    """Build, search and score each configuration; returns the report (see the module docstring)."""
    unknown = set(configs) - {"exact", "opensearch"}
    if unknown or not configs:
        raise ValueError(f"configs must be among exact, opensearch; got {list(configs)}")
    log(f"{data} vectors: n={n} dim={dim} queries={queries} seed={seed}")
    load_before = round(os.getloadavg()[0], 2)
    vectors, query_vectors = make_vectors(n, queries, dim, seed, data)
    truth = exact_top_k(vectors, query_vectors, k)
    results: dict[str, dict[str, Any]] = {}
    if "exact" in configs:
        index, figures = build_index(vectors, batch_size, approximate_threshold=-1)
        figures.update(measure_search(index, query_vectors, truth, k, ef_search))
        log(f"exact (approximate_threshold -1): {figures}")
        results["exact"] = figures
        del index
    if "opensearch" in configs:
        index, figures = build_index(
            vectors,
            batch_size,
            m=m,
            ef_construction=ef_construction,
            ef_search=ef_search,
            approximate_threshold=15_000,
        )
        figures.update(measure_search(index, query_vectors, truth, k, ef_search))
        log(f"opensearch defaults: {figures}")
        others = []
        for ef in sweep:
            if ef != ef_search:
                others.append(measure_search(index, query_vectors, truth, k, ef))
                log(f"  ef_search={ef}: {others[-1]}")
        figures["sweep"] = others
        results["opensearch"] = figures
        del index
    for figures in results.values():
        figures["meets_goal"] = figures["p50_ms"] <= GOAL_P50_MS and figures["recall"] >= GOAL_RECALL
    headline_name = "exact" if "exact" in results else "opensearch"
    headline = results[headline_name]
    return {
        "benchmark": "knn",
        "data": data,
        "space_type": "l2",
        "n": n,
        "dim": dim,
        "k": k,
        "queries": queries,
        "seed": seed,
        "headline": headline_name,
        "path": headline["path"],
        "build_s": headline["build_s"],
        "p50_ms": headline["p50_ms"],
        "p99_ms": headline["p99_ms"],
        "mean_ms": headline["mean_ms"],
        f"recall_at_{k}": headline["recall"],
        "index_mb": headline["index_mb"],
        "rss_delta_mb": headline["rss_delta_mb"],
        "goal": {"p50_ms_max": GOAL_P50_MS, f"recall_at_{k}_min": GOAL_RECALL},
        "meets_goal": headline["meets_goal"],
        "configurations": results,
        "raw_vectors_mb": round(n * dim * 4 / 2**20, 1),
        "batch_size": batch_size,
        "build_threads": faiss.omp_get_max_threads(),
        "environment": {
            "cpus": os.cpu_count(),
            "load_average_1m": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
            "machine": platform.machine(),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "numpy": np.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nirbridge.bench.knn", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--configs", default="exact,opensearch", help="which of exact,opensearch to build and measure"
    )
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--ef-search", type=int, default=100)
    parser.add_argument(
        "--sweep", default="", help="more ef_search values on the HNSW graph, e.g. 200,400,800"
    )
    parser.add_argument("--data", choices=("uniform", "lowrank"), default="uniform")
    parser.add_argument("--batch-size", type=int, default=10_000)
    args = parser.parse_args(argv)
    sweep = [int(value) for value in args.sweep.split(",") if value.strip()]
    report = run_knn_benchmark(
        args.n,
        args.dim,
        args.k,
        args.queries,
        args.seed,
        configs=[name.strip() for name in args.configs.split(",") if name.strip()],
        m=args.m,
        ef_construction=args.ef_construction,
        ef_search=args.ef_search,
        sweep=sweep,
        data=args.data,
        batch_size=args.batch_size,
    )
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
