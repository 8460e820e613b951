"""Load a BEIR corpus into an index: create it when missing, then bulk-index every document, ids kept.

    for item in ingest_documents(client, "nfcorpus", dataset.documents(errors)):   # one IngestItem a doc
        report.add(item)

Built on opensearch-py's `helpers.streaming_bulk`: chunks close on a document count or a byte size,
documents answered 429 are retried with capped exponential back-off, and every document comes back as its own
result. A document that fails (in the cluster, or already on its corpus line) is reported with its id and the
reason; the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import TransportError

from .beir import BeirDocument
from .client import cluster_error
from .errors import DatasetError

__all__ = [
    "IngestItem",
    "IngestReport",
    "corpus_actions",
    "ensure_index",
    "failure_reason",
    "ingest_documents",
    "item_for_bad_line",
]


@dataclass(frozen=True)
class IngestItem:
    """The outcome for one document: its id, and the reason when it failed."""

    id: str
    ok: bool
    reason: str | None = None


@dataclass
class IngestReport:
    """Counts what an ingest stream yielded; keeps the first `keep_failures` failures in full."""

    keep_failures: int = 1000
    indexed: int = 0
    failed: int = 0
    failures: list[IngestItem] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0

    def add(self, item: IngestItem) -> None:
        if item.ok:
            self.indexed += 1
        else:
            self.failed += 1
            if len(self.failures) < self.keep_failures:
                self.failures.append(item)
        self.seconds = time.perf_counter() - self.started

    @property
    def docs_per_s(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def as_json(self, **extra: Any) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "docs_per_s": round(self.docs_per_s, 1),
            "failures": [{"id": item.id, "reason": item.reason} for item in self.failures],
            "failures_truncated": self.failed > len(self.failures),
            **extra,
        }


def ensure_index(client: OpenSearch, url: str, index: str, body: Mapping[str, Any]) -> bool:
    """Create `index` with `body` unless it exists; True when this call created it."""
    try:
        if client.indices.exists(index=index):
            return False
        client.indices.create(index=index, body=dict(body))
    except TransportError as exc:
        if exc.status_code == 400 and "resource_already_exists" in str(exc.error):
            return False  # created in between by someone else: fine
        raise cluster_error(exc, url, index) from exc
    return True


def corpus_actions(index: str, documents: Iterable[BeirDocument]) -> Iterator[dict[str, Any]]:
    """One bulk `index` action per document; the corpus `_id` becomes the document's `_id`."""
    for doc in documents:
        yield {"_op_type": "index", "_index": index, "_id": doc.id, "_source": doc.source()}


def failure_reason(info: Mapping[str, Any]) -> str:
    """A one-line reason from a failed bulk item (`{"status": 400, "error": {"type", "reason"}}`)."""
    status = info.get("status")
    error = info.get("error")
    if isinstance(error, Mapping):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}".rstrip(": ")
        caused_by = error.get("caused_by")
        if isinstance(caused_by, Mapping) and caused_by.get("reason"):
            reason += f" (caused by {caused_by.get('type', 'error')}: {caused_by['reason']})"
    else:
        reason = str(error or "unknown error")
    return f"status {status}: {reason}" if status not in (None, "N/A") else reason


def item_for_bad_line(error: DatasetError) -> IngestItem:
    """A corpus line that could not be read, as a failed item named by file and line."""
    return IngestItem(f"{error.path.name}:{error.line}", False, error.reason)


def ingest_documents(
    client: OpenSearch,
    index: str,
    documents: Iterable[BeirDocument],
    *,
    bad_lines: list[DatasetError] | None = None,
    chunk_size: int = 500,
    max_chunk_bytes: int = 50 * 1024 * 1024,
    max_retries: int = 5,
    initial_backoff: float = 1.0,
    max_backoff: float = 60.0,
) -> Iterator[IngestItem]:
    """Bulk-index `documents` into `index`, yielding one IngestItem per document, in order of completion.

    `bad_lines` is the list the corpus reader collects unreadable lines into; they are yielded as failed items
    as soon as the reader has passed them.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size}")
    pending = bad_lines if bad_lines is not None else []
    results = helpers.streaming_bulk(
        client,
        corpus_actions(index, documents),
        chunk_size=chunk_size,
        max_chunk_bytes=max_chunk_bytes,
        raise_on_error=False,
        raise_on_exception=False,
        max_retries=max_retries,
        initial_backoff=initial_backoff,
        max_backoff=max_backoff,
        yield_ok=True,
    )
    for ok, result in results:
        while pending:
            yield item_for_bad_line(pending.pop(0))
        (info,) = result.values()
        doc_id = str(info.get("_id", "?"))
        yield IngestItem(doc_id, True) if ok else IngestItem(doc_id, False, failure_reason(info))
    while pending:
        yield item_for_bad_line(pending.pop(0))
