"""What a rerank worker's memory does when every request names other params (issue 13, item 5).

    python -m nirbridge.bench.rerank_memory [--requests 12] [--model nirbridge/reranker-nfcorpus]

A redis-server and a `nirbridge worker --queues rerank --concurrency 1` on this machine; one request loads
the model, then `--requests` requests each with other params (`batch_size` 1, 2, ...); the resident memory
(RSS) of the worker's pool process, where the model lives, after the first request and after the last.
Prints one JSON line: {"model", "backend", "requests", "rss_mb_after_first", "rss_mb_after_last",
"growth_mb", "loaded": [what the worker's ping reports], "degraded"}.

Measured here (2 shared AVX2 cores, torch-fp32, the shipped nirbridge/reranker-nfcorpus, 12 requests): 910 MB
after the first request, 928 MB after the last (+17 MB).  Before the cross-encoder cache was keyed on
(model, backend) alone, each request's params loaded another copy: 910 MB -> 1,798 MB (+888 MB, 74 MB a
request), with 13 copies loaded.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "measure"]

QUERY = "statins and breast cancer"
PASSAGES = [f"passage {i}: statin use lowers cholesterol in adults with heart disease" for i in range(8)]


def _pool_rss_mb(pid: int) -> float:
    """The RSS of the worker's pool processes (the children of its main process), in MB."""
    import psutil

    children = psutil.Process(pid).children(recursive=True)
    return round(sum(child.memory_info().rss for child in children) / 2**20, 1)


def measure(requests: int, model: str, backend: str) -> dict[str, Any]:
    from nirbridge.connector.local_services import RedisServer, WorkerProcess
    from nirbridge.connector.rerank_client import RerankClient
    from nirbridge.workers.celery_app import WorkerSettings, make_app

    with tempfile.TemporaryDirectory(prefix="nirbridge-bench-rerank-memory-") as scratch_name:
        scratch = Path(scratch_name)
        redis = RedisServer(scratch / "redis")
        app = make_app(WorkerSettings(redis.url(0), redis.url(1)))
        env = {"NIRBRIDGE_RERANK_MODELS": model}
        worker = WorkerProcess(redis.url(0), redis.url(1), scratch / "worker", "rerank", 1, env)
        client = RerankClient(app, deadline_s=120)
        try:
            deadline = time.monotonic() + 300  # the first request imports torch and loads the model
            while True:
                first = client.rerank(QUERY, PASSAGES, model, backend)
                if not first.degraded:
                    break
                if worker.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not answer: {first.reason}\n{worker.output()}")
            before = _pool_rss_mb(worker.process.pid)
            degraded = 0
            for i in range(requests):
                outcome = client.rerank(QUERY, PASSAGES, model, backend, {"batch_size": i + 1})
                degraded += outcome.degraded
            after = _pool_rss_mb(worker.process.pid)
            loaded = app.send_task("nirbridge.ping", queue="rerank").get(timeout=60)["models"]
        finally:
            client.close()
            worker.stop()
            redis.stop()
    return {
        "model": model,
        "backend": backend,
        "requests": requests,
        "rss_mb_after_first": before,
        "rss_mb_after_last": after,
        "growth_mb": round(after - before, 1),
        "loaded": [{k: m.get(k) for k in ("model", "backend", "params", "loads")} for m in loaded],
        "degraded": degraded,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--model", default="nirbridge/reranker-nfcorpus")
    parser.add_argument("--backend", default="torch-fp32")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.requests, args.model, args.backend)))


if __name__ == "__main__":
    main()
