"""What the metrics and logging tests share: a small plain SciFact index, a warm rerank worker, scraping.

    queries = plain_scifact_index(client, "obs", scifact_dir, size=40)
    warm_worker(proxy_url, "obs", queries[0], worker)    # the worker has loaded the cross-encoder
    before = scrape(f"{proxy_url}/_nirbridge/metrics")  # {(name, labels): value}, by prometheus_client

BM25 needs no enriched field, and the rerank worker is the real `nirbridge worker --queues rerank` with the
tests' trained cross-encoder (tests/cross_encoder_fixture.py) on torch-fp32 with short pairs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from opensearchpy import OpenSearch
from opensearchpy.helpers import bulk
from prometheus_client.parser import text_string_to_metric_families
from redis_fixture import WorkerProcess

__all__ = ["RERANK", "Samples", "delta", "plain_scifact_index", "scrape", "warm_worker"]

RERANK: dict[str, Any] = {"window": 5, "params": {"max_length": 128}}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def plain_scifact_index(client: OpenSearch, index: str, scifact_dir: Path, size: int) -> list[str]:
    """The first `size` SciFact abstracts as `index` (title, text); the first 10 test queries' texts."""
    docs = []
    with (scifact_dir / "corpus.jsonl").open() as handle:
        for line in handle:
            doc = json.loads(line)
            docs.append({"_index": index, "_id": doc["_id"], "title": doc["title"], "text": doc["text"]})
            if len(docs) >= size:
                break
    client.indices.create(
        index=index, body={"mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}}
    )
    bulk(client, docs, refresh=True)
    queries = [json.loads(line)["text"] for line in (scifact_dir / "queries.jsonl").open()]
    return queries[:10]


def warm_worker(proxy_url: str, index: str, query: str, worker: WorkerProcess) -> None:
    """Rerank through the proxy until the worker answers (its first task imports torch, loads the model)."""
    give_up = time.monotonic() + 150
    body = {"q": query, "mode": "bm25", "size": 1, "rerank": RERANK}
    while True:
        block = httpx.post(f"{proxy_url}/{index}/_nirbridge/search", json=body, timeout=90).json()
        block = block["nirbridge"]
        if block["reranked"]:
            return
        failed = str(block["degraded_reason"]).startswith("failed")
        if failed or worker.process.poll() is not None or time.monotonic() > give_up:
            raise AssertionError(f"the worker did not rerank: {block}\n{worker.output()}")


def scrape(url: str) -> Samples:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client's own parser."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much the sample `name{labels}` grew between two scrapes (absent: 0)."""
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)
