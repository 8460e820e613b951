"""The training data of `nirbridge train`: a BEIR folder's judgments plus BM25 candidates from the cluster.

    data = training_data(BeirDataset.open(path), train_split="train", dev_split="dev")
    data = with_bm25_candidates(client, url, "scifact", data, depth=100)

The candidates come from the same BM25 the bridge serves (the index must hold the dataset's corpus, loaded by
`nirbridge ingest`), so a reranker learns to separate what this first stage actually confuses, and its dev
validation re-scores exactly what it will re-score in production.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opensearchpy import OpenSearch

from nirbridge.workers.train.data import TrainingData, document_text

from .beir import BeirDataset
from .errors import DatasetError
from .queries import DEFAULT_TEXT_FIELDS, bm25_body, msearch

__all__ = ["training_data", "with_bm25_candidates"]


def training_data(
    dataset: BeirDataset,
    *,
    train_split: str = "train",
    dev_split: str | None = None,
    dev_fraction: float = 0.1,
    seed: int = 0,
) -> TrainingData:
    """Corpus, queries and judgments of `dataset`; without `dev_split`, `dev_fraction` of train is held out.

    DatasetError when a split is missing or no train query is usable.
    """
    corpus = {doc.id: document_text(doc.title, doc.text) for doc in dataset.documents()}
    queries = {query.id: query.text for query in dataset.queries()}
    train = dataset.qrels(train_split)
    dev = dataset.qrels(dev_split) if dev_split else None
    source = {"dataset": dataset.root.name, "train_split": train_split, "dev_split": dev_split}
    try:
        return TrainingData.from_beir(
            corpus, queries, train, dev, dev_fraction=dev_fraction, seed=seed, source=source
        )
    except ValueError as error:
        raise DatasetError(dataset.root, str(error)) from None


def with_bm25_candidates(
    client: OpenSearch,
    url: str,
    index: str,
    data: TrainingData,
    *,
    depth: int = 100,
    text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS,
    bm25_type: str = "best_fields",
    batch_size: int = 100,
    progress: Callable[[int], None] | None = None,
) -> TrainingData:
    """`data` with the top `depth` BM25 hits of every train and dev query on `index` (one `_msearch` per
    `batch_size` queries); ClusterError when the cluster refuses a query."""
    wanted = [qid for qid in (*data.train, *data.dev) if data.queries[qid].strip()]
    ranked: dict[str, list[str]] = {}
    for start in range(0, len(wanted), batch_size):
        batch = wanted[start : start + batch_size]
        bodies = [bm25_body(data.queries[qid], depth, text_fields, None, bm25_type) for qid in batch]
        for qid, hits in zip(batch, msearch(client, url, index, bodies), strict=True):
            ranked[qid] = [doc_id for doc_id, _ in hits]
        if progress is not None:
            progress(len(batch))
    how = f"BM25 ({bm25_type} over {', '.join(text_fields)}) top {depth} from index {index!r}"
    return data.with_candidates(ranked, how)
