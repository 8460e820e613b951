"""End-to-end `nirbridge enrich` throughput with Celery against the encoders' own (one JSON line).

    .venv/bin/python -m nirbridge.bench.enrich_job [--docs 1000] [--dataset ../shared/data/nfcorpus]
        [--backend auto] [--batch-size 32] [--in-flight 4]

It starts the embedded engine, a redis-server and one `nirbridge worker` (concurrency 1) on this machine,
loads the first ``--docs`` documents, and for each configuration (sparse alone, dense alone, sparse + dense):

    own         the encoders in this process on the same texts, with nothing else running: docs/s of
                `run_enrichment` over batches of ``--batch-size`` (the compute a job cannot beat)
    job         `nirbridge enrich --runner celery` into a fresh copy of the index: docs/s from its --json
                (reading, sending, waiting, writing `_bulk` and checkpoints included)

The goal (issue 3): job >= 90% of the slowest encoder's own throughput, reading and writing hidden behind
compute. The worker is warmed on a small index first, so that model loading is not timed. All processes share
this machine's cores: the engine's indexing and the job's own work compete with the encoders.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nfcorpus"
MODELS = {"sparse": "splade-tiny", "dense": "all-MiniLM-L6-v2"}
CONFIGS = (("sparse",), ("dense",), ("sparse", "dense"))


def load(dataset: Path, limit: int) -> list[dict[str, Any]]:
    docs = []
    with (dataset / "corpus.jsonl").open() as handle:
        for line in handle:
            doc = json.loads(line)
            docs.append({"_id": doc["_id"], "title": doc.get("title", ""), "text": doc.get("text", "")})
            if len(docs) == limit:
                break
    return docs


def fill(client: Any, index: str, docs: list[dict[str, Any]]) -> None:
    from opensearchpy.helpers import bulk

    if client.indices.exists(index=index):
        client.indices.delete(index=index)
    mappings = {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
    client.indices.create(index=index, body={"settings": {"index.knn": True}, "mappings": mappings})
    actions = ({"_index": index, "_id": d["_id"], "title": d["title"], "text": d["text"]} for d in docs)
    bulk(client, actions, chunk_size=500)
    client.indices.refresh(index=index)


def own_throughput(
    kinds: tuple[str, ...], docs: list[dict[str, Any]], backend: str, batch_size: int
) -> float:
    from nirbridge.workers.pipeline import EncoderSpec, EnrichmentSpec, run_enrichment

    spec = EnrichmentSpec(fields=("title", "text"), **{k: EncoderSpec(MODELS[k], backend) for k in kinds})
    batches = [
        [
            {"_id": d["_id"], "_source": {"title": d["title"], "text": d["text"]}}
            for d in docs[i : i + batch_size]
        ]
        for i in range(0, len(docs), batch_size)
    ]
    run_enrichment(spec, batches[0])  # load and warm
    started = time.perf_counter()
    for batch in batches:
        run_enrichment(spec, batch)
    return len(docs) / (time.perf_counter() - started)


def job_throughput(
    url: str, index: str, kinds: tuple[str, ...], env: dict[str, str], args: argparse.Namespace, scratch: Path
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "nirbridge", "enrich", "--url", url, "--index", index, "--fields", "title,text",
        "--backend", args.backend, "--runner", "celery", "--batch-size", str(args.batch_size),
        "--in-flight", str(args.in_flight), "--checkpoint", str(scratch / f"{index}.json"), "--restart",
        "--json", "--no-progress",
    ]  # fmt: skip
    for kind in kinds:
        command += [f"--{kind}", MODELS[kind]]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"enrich failed ({done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--in-flight", type=int, default=4)
    args = parser.parse_args()

    from opensearchpy import OpenSearch

    from nirbridge.connector.engine_process import running_engine
    from nirbridge.connector.local_services import RedisServer, WorkerProcess

    docs = load(args.dataset, args.docs)
    out: dict[str, Any] = {
        "bench": "enrich_job",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "docs": len(docs),
        "dataset": args.dataset.name,
        "backend": args.backend,
        "batch_size": args.batch_size,
        "in_flight": args.in_flight,
        "configs": {},
    }
    with tempfile.TemporaryDirectory(prefix="nirbridge-bench-") as tmp, running_engine() as engine:
        scratch = Path(tmp)
        client = OpenSearch(engine.url, timeout=120)
        redis = RedisServer(scratch / "redis")
        cache = (
            {"NIRBRIDGE_CACHE_DIR": os.environ["NIRBRIDGE_CACHE_DIR"]}
            if "NIRBRIDGE_CACHE_DIR" in os.environ
            else {}
        )
        worker = WorkerProcess(redis.url(0), redis.url(1), scratch / "worker", queues="enrich", env=cache)
        env = {**os.environ, "NIRBRIDGE_BROKER_URL": redis.url(0), "NIRBRIDGE_RESULT_BACKEND": redis.url(1)}
        try:
            fill(client, "warm", docs[:64])
            job_throughput(engine.url, "warm", ("sparse", "dense"), env, args, scratch)  # worker loads models
            for kinds in CONFIGS:
                name = "+".join(kinds)
                fill(client, "bench", docs)
                job = job_throughput(engine.url, "bench", kinds, env, args, scratch)
                assert job["processed"] == len(docs), job
                own = own_throughput(kinds, docs, args.backend, args.batch_size)
                out["configs"][name] = {
                    "own_docs_per_s": round(own, 1),
                    "job_docs_per_s": job["docs_per_s"],
                    "job_over_own": round(job["docs_per_s"] / own, 3),
                    "job_seconds": job["seconds"],
                }
        finally:
            worker.stop()
            redis.stop()
    configs = out["configs"]
    slowest = min(("sparse", "dense"), key=lambda k: configs[k]["own_docs_per_s"])
    out["slowest_encoder"] = slowest
    out["goal"] = {
        "all_encoders_job_over_slowest_own": round(
            configs["sparse+dense"]["job_docs_per_s"] / configs[slowest]["own_docs_per_s"], 3
        ),
        "slowest_alone_job_over_own": configs[slowest]["job_over_own"],
        "all_encoders_job_over_own": configs["sparse+dense"]["job_over_own"],
        "target": 0.9,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
