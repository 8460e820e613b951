"""A small SciFact slice, enriched for real: what the retrieval and proxy tests search.

    slice_ = enrich_scifact_slice(client, "scifact-small", scifact_dir, queries=30, corpus_size=200)

The documents judged for the first `queries` test queries, then corpus documents up to `corpus_size`,
indexed with the BEIR corpus mapping plus nir_sparse, nir_terms, nir_dense and nir_meta, then enriched with
SPLADE-tiny (sparse, terms) and all-MiniLM-L6-v2 (dense) by `workers.pipeline.run_enrichment`, written with
`connector.writer.streaming_update`. Documents are cut to 128 word pieces for the encoders to keep it fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opensearchpy import OpenSearch

from nirbridge.connector.beir import BeirDataset, BeirDocument, BeirQuery
from nirbridge.connector.schema import index_template, load_fragment
from nirbridge.connector.writer import streaming_update, summarize

__all__ = ["EnrichedSlice", "enrich_scifact_slice"]


@dataclass
class EnrichedSlice:
    queries: list[BeirQuery]
    qrels: dict[str, dict[str, int]]
    documents: list[BeirDocument]


def enrich_scifact_slice(
    client: OpenSearch,
    index: str,
    scifact_dir: Path,
    *,
    queries: int,
    corpus_size: int,
    backend: str = "onnx-fp32",
) -> EnrichedSlice:
    from nirbridge.workers.pipeline import EncoderSpec, EnrichmentSpec, run_enrichment

    dataset = BeirDataset.open(scifact_dir)
    qrels = dataset.qrels("test")
    chosen = [q for q in dataset.queries() if q.id in qrels][:queries]
    wanted = {doc_id for q in chosen for doc_id in qrels[q.id]}
    docs = [d for d in dataset.documents() if d.id in wanted]
    for doc in dataset.documents():
        if len(docs) >= corpus_size:
            break
        if doc.id not in wanted:
            docs.append(doc)
    short = {"max_length": 128}
    spec = EnrichmentSpec(
        fields=("title", "text"),
        sparse=EncoderSpec("splade-tiny", backend, short),
        terms=EncoderSpec("splade-tiny", backend, short),
        dense=EncoderSpec("all-MiniLM-L6-v2", backend, short),
    )
    body = index_template(
        dense_dimension=384,
        dense_space_type="innerproduct",
        base_properties=load_fragment("beir_corpus.json"),
        kinds=("sparse", "terms", "dense", "meta"),
    )
    client.indices.create(index=index, body=body)
    sources = [{"_id": d.id, "_source": d.source()} for d in docs]
    written = summarize(
        streaming_update(client, index, ((d["_id"], d["_source"]) for d in sources), op_type="index")
    )
    assert written.failed == 0
    results = run_enrichment(spec, sources)
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok][:3]
    summary = summarize(streaming_update(client, index, ((r.id, r.update) for r in results), refresh=True))
    assert summary.failed == 0 and summary.written == len(docs)
    return EnrichedSlice(chosen, {q.id: qrels[q.id] for q in chosen}, docs)
