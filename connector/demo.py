"""The demo's second half: enrich the ingested sample, then search it in every retrieval mode and rerank.

    enriched = enrich_sample(client, url, index, backend="auto", progress=update)
    encoder = demo_reranker(RERANK_MODEL, backend="auto")
    for query in queries:
        compared = compare_modes(client, url, index, query.text, 5, "auto", encoder)  # {mode: hits}

`nirbridge demo` (connector.cli) prints, for each sample query, the reranked hybrid hits with the
judged-relevant ones marked, and a line counting the relevant hits of each mode.  The reranker is the
cross-encoder nirbridge ships (``workers.shipped``), run in this process as a one-machine setup would: the
hybrid top ``RERANK_WINDOW`` re-scored, its scores interpolated with the hybrid's (``RERANK_WEIGHT``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from .client import cluster_error
from .enrich import EnrichJob, EnrichOptions, EnrichReport
from .queries import IndexFields, QueryBuilder, QueryEncoders, first_stage

__all__ = [
    "DEMO_MODES",
    "DENSE_MODEL",
    "RERANKED",
    "RERANK_MODEL",
    "SPARSE_MODEL",
    "compare_modes",
    "demo_reranker",
    "enrich_sample",
]

SPARSE_MODEL = "splade-tiny"
DENSE_MODEL = "all-MiniLM-L6-v2"
DEMO_MODES = ("bm25", "sparse", "dense", "hybrid")
RERANKED = "hybrid+rerank"
RERANK_MODEL = "nirbridge/reranker-nfcorpus"
RERANK_WINDOW = 20
RERANK_WEIGHT = 0.5
RERANK_MAX_LENGTH = 128  # the word pieces the shipped reranker was trained with


def enrich_sample(
    client: OpenSearch,
    url: str,
    index: str,
    backend: str,
    progress: Callable[[EnrichReport, int], None] | None = None,
) -> EnrichReport:
    """SPLADE and dense fields for every document of `index`, in this process (`--runner local`)."""
    from nirbridge.workers.contract import EncoderSpec, EnrichmentSpec

    from .runner import LocalRunner

    spec = EnrichmentSpec(
        fields=("title", "text"),
        sparse=EncoderSpec(SPARSE_MODEL, backend),
        dense=EncoderSpec(DENSE_MODEL, backend),
    )
    with tempfile.TemporaryDirectory(prefix="nirbridge-demo-") as scratch:
        options = EnrichOptions(index=index, spec=spec, checkpoint=Path(scratch) / "checkpoint.json")
        with LocalRunner() as runner:
            return EnrichJob(client, url, runner, options).run(progress)


def demo_reranker(model: str, backend: str) -> Any:
    """The cross-encoder the demo reranks with (the shipped one is widened from its delta on first use)."""
    from nirbridge.workers.cross_encoder import CrossEncoder

    return CrossEncoder(model, backend, max_length=RERANK_MAX_LENGTH)


def compare_modes(
    client: OpenSearch, url: str, index: str, text: str, size: int, backend: str, reranker: Any = None
) -> dict[str, list[tuple[str, float, str]]]:
    """The top `size` of each demo mode for one query: [(id, score, title)], hybrid = BM25 + dense, RRF;
    with a `reranker` (a CrossEncoder) also `RERANKED`: the hybrid top `RERANK_WINDOW` re-scored."""
    from .eval_rerank import EvalReranker
    from .evaluate import rerank_top

    builder = QueryBuilder(
        QueryEncoders(sparse_model=SPARSE_MODEL, dense_model=DENSE_MODEL, backend=backend),
        IndexFields.read(client, url, index),
    )
    ranked = {mode: first_stage(client, url, index, builder, [text], mode, size)[0] for mode in DEMO_MODES}
    if reranker is not None:
        window = first_stage(client, url, index, builder, [text], "hybrid", max(size, RERANK_WINDOW))[0]
        stage = EvalReranker(client, url, index, reranker, ("title", "text"))  # passages as the proxy reads
        ranked[RERANKED] = rerank_top(stage, text, window, RERANK_WINDOW, RERANK_WEIGHT)[:size]
    ids = sorted({doc_id for hits in ranked.values() for doc_id, _ in hits})
    try:
        found = client.mget(index=index, body={"ids": ids}, params={"_source_includes": "title,text"})
    except TransportError as exc:
        raise cluster_error(exc, url, index) from exc
    titles: dict[str, str] = {}
    for doc in found["docs"]:
        source: dict[str, Any] = doc.get("_source") or {}
        titles[doc["_id"]] = str(source.get("title") or source.get("text") or "")
    return {
        mode: [(doc_id, score, titles.get(doc_id, "")) for doc_id, score in hits]
        for mode, hits in ranked.items()
    }
