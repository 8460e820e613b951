"""The cross-encoder stage of `nirbridge eval --rerank`: passages from the index, scores in this process.

    encoder = CrossEncoder(path, backend="onnx-int8")
    reranker = EvalReranker(client, url, "scifact", encoder, ("title", "text"))
    evaluate(..., reranker=reranker, window=100)

The passage of a hit is what the proxy's cross-encoder reads (`proxy.rerank.passage_of`: the fields joined
by spaces), fetched with one `_mget` per query.  Scores are cached on disk per model fingerprint, backend and
passage mode (`score_cache`, SQLite), keyed by the query text and the document id: the rows of an evaluation
table rerank heavily overlapping candidate sets (BM25, dense, hybrids of one collection), and a cross-encoder
on a CPU scores only tens of pairs per second, so each pair is scored once.  A document edited since is
scored afresh only when the cache is cleared (delete the file): the cache serves evaluations of a fixed
corpus.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, TransportError

from .client import cluster_error
from .fusion import Ranking
from .proxy import passage_of

__all__ = ["DEFAULT_MAX_LENGTH", "EvalReranker", "score_cache", "trained_max_length"]

DEFAULT_MAX_LENGTH = 256  # word pieces per pair for a model whose card does not say what it was trained with


def trained_max_length(folder: Path) -> int | None:
    """The word pieces per pair a model was trained (and measured) with, from its card (`training.json`'s
    `settings.max_length`, what `nirbridge train reranker` writes); None when the folder does not say."""
    try:
        card = json.loads((Path(folder) / "training.json").read_text())
    except (OSError, ValueError):
        return None
    value = card.get("settings", {}).get("max_length") if isinstance(card, dict) else None
    return value if isinstance(value, int) and 16 <= value <= 512 else None


def score_cache(encoder: Any, cache_dir: Path) -> Path:
    """The cache file of one cross-encoder configuration (fingerprint, backend, lengths, passage mode)."""
    key = "|".join(
        str(part)
        for part in (
            encoder.fingerprint,
            encoder.backend,
            encoder.max_length,
            encoder.max_query_length,
            getattr(encoder, "passage_mode", ""),
        )
    )
    return cache_dir / f"rerank-scores-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sqlite"


class EvalReranker:
    """`rerank(query, hits)` for `evaluate()`: the hits' passages from `index`, scored by `encoder`."""

    def __init__(
        self,
        client: OpenSearch,
        url: str,
        index: str,
        encoder: Any,
        fields: Sequence[str],
        cache: Path | None = None,
    ) -> None:
        self.client, self.url, self.index = client, url, index
        self.encoder = encoder
        self.fields = tuple(fields)
        self.scored = 0  # pairs the model scored (not from the cache)
        self.cached = 0
        self._db: sqlite3.Connection | None = None
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(cache)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS score"
                " (query TEXT, doc TEXT, value REAL, PRIMARY KEY (query, doc))"
            )

    @property
    def scores_from(self) -> str:
        """Where this run's scores came from: "model", "cache" or "model+cache". Rows served from the cache
        run at the cluster's speed (thousands of queries/s), not the model's; a summary must say which."""
        if self.cached and self.scored:
            return "model+cache"
        return "cache" if self.cached else "model"

    def _passages(self, ids: list[str]) -> list[str]:
        try:
            found = self.client.mget(
                body={"ids": ids}, index=self.index, params={"_source": ",".join(self.fields)}
            )
        except TransportError as exc:
            raise cluster_error(exc, self.url, self.index) from exc
        by_id = {str(doc["_id"]): doc.get("_source") for doc in found["docs"] if doc.get("found")}
        return [passage_of(by_id.get(doc_id), self.fields) for doc_id in ids]

    def _known(self, query: str, ids: list[str]) -> dict[str, float]:
        if self._db is None:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f"SELECT doc, value FROM score WHERE query = ? AND doc IN ({marks})", [query, *ids]
        )
        return {doc: float(value) for doc, value in rows}

    def rerank(self, query: str, hits: Ranking) -> Ranking:
        """`hits` ordered by the cross-encoder's scores (ties keep the first-stage order)."""
        ids = [doc_id for doc_id, _ in hits]
        if not ids:
            return []
        scores = self._known(query, ids)
        missing = [doc_id for doc_id in ids if doc_id not in scores]
        self.cached += len(ids) - len(missing)
        if missing:
            values = self.encoder.score(query, self._passages(missing))
            fresh = {doc_id: float(value) for doc_id, value in zip(missing, values, strict=True)}
            self.scored += len(fresh)
            scores.update(fresh)
            if self._db is not None:
                with self._db:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO score VALUES (?, ?, ?)",
                        [(query, doc_id, value) for doc_id, value in fresh.items()],
                    )
        order = sorted(range(len(ids)), key=lambda i: (-scores[ids[i]], i))
        return [(ids[i], scores[ids[i]]) for i in order]
