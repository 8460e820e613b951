"""The plain BM25 search of the demo: a `multi_match` over title and text, hits as small typed records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from .client import cluster_error

__all__ = ["Hit", "SearchResult", "bm25_body", "search_bm25"]

DEFAULT_FIELDS = ("title", "text")


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    title: str
    text: str


@dataclass(frozen=True)
class SearchResult:
    took_ms: int
    total: int
    hits: list[Hit]

    def as_json(self) -> dict[str, Any]:
        return {
            "took_ms": self.took_ms,
            "total": self.total,
            "hits": [{"id": hit.id, "score": hit.score, "title": hit.title} for hit in self.hits],
        }


def bm25_body(q: str, size: int = 10, fields: Sequence[str] = DEFAULT_FIELDS) -> dict[str, Any]:
    """A `multi_match` (best_fields) over `fields`: BM25 as the cluster computes it."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if not q.strip():
        raise ValueError("the query text is empty")
    return {
        "query": {"multi_match": {"query": q, "fields": list(fields)}},
        "size": size,
        "_source": list(fields),
    }


def _hit(raw: Mapping[str, Any]) -> Hit:
    source = raw.get("_source") or {}
    return Hit(
        id=str(raw["_id"]),
        score=float(raw.get("_score") or 0.0),
        title=str(source.get("title") or ""),
        text=str(source.get("text") or ""),
    )


def search_bm25(client: OpenSearch, url: str, index: str, q: str, size: int = 10) -> SearchResult:
    """Run `bm25_body(q, size)` on `index`; IndexNotFound / ClusterError / ClusterUnreachable on failure."""
    try:
        response = client.search(index=index, body=bm25_body(q, size))
    except TransportError as exc:
        raise cluster_error(exc, url, index) from exc
    total = response["hits"].get("total", 0)
    return SearchResult(
        took_ms=int(response.get("took", 0)),
        total=int(total["value"] if isinstance(total, Mapping) else total),
        hits=[_hit(raw) for raw in response["hits"]["hits"]],
    )
