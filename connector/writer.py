"""Write partial updates into an index with `_bulk`, streaming one result per document.

    for result in streaming_update(client, "corpus", ((doc_id, {"nir_sparse": weights}) for ...)):
        if not result.ok:
            print(result.id, result.status, result.error_type, result.reason)
    summary = summarize(streaming_update(...))      # counts only what the stream yielded

As opensearch-py's `helpers.streaming_bulk`:
- Updates are `update` actions with a partial `doc` and no upsert: a document deleted since it was read is
  reported (404 `document_missing_exception`), never recreated half-empty.
- Actions are serialised once and cut into chunks by `chunk_actions`, which closes a chunk at `chunk_docs`
  documents or before it would pass `chunk_bytes` bytes, whichever comes first (one action bigger than
  `chunk_bytes` travels alone).
- Only what is transient is retried, with capped exponential back-off
  (`min(max_backoff, initial_backoff * 2**attempt)`, at most `max_retries` times): the items of a response
  answered 429 (or 502/503/504), and the whole request when the cluster answers it 429/5xx or does not answer.
  Other 4xx (a missing document, a value the mapping refuses) are reported at once, never retried. When the
  retries run out the documents are reported failed with the last status: nothing is dropped silently.
- A document that cannot be serialised is reported (`serialization_error`); the rest of its chunk is written.
A client from `connector.client.make_client` also backs off on whole-request 429/502/503/504 in its transport;
the writer's own retries come on top of those.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "ItemResult",
    "OpType",
    "PreparedAction",
    "WriteSummary",
    "backoff_delay",
    "chunk_actions",
    "prepare_updates",
    "streaming_update",
    "summarize",
]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 5 * 1024 * 1024
OpType = Literal["update", "index"]
RETRY_ITEM_STATUSES = frozenset({429, 502, 503, 504})
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class ItemResult:
    """What happened to one document: `ok`, the HTTP `status` of its item (None when no answer came),
    and for a failure the error `error_type` and `reason`; `attempts` counts the requests it went in."""

    id: str
    ok: bool
    status: int | None
    error_type: str | None = None
    reason: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class PreparedAction:
    """One serialised `update` action: the document id and its two NDJSON lines (newlines included)."""

    id: str
    payload: bytes

    @property
    def size(self) -> int:
        return len(self.payload)


@dataclass
class WriteSummary:
    """Counts of the results a stream yielded; `failures` keeps the first `keep` failed results."""

    written: int = 0
    failed: int = 0
    failures: list[ItemResult] = field(default_factory=list)


def backoff_delay(attempt: int, initial_backoff: float, max_backoff: float) -> float:
    """Seconds to wait before retry number `attempt` + 1: `min(max_backoff, initial_backoff * 2**attempt)`."""
    return float(min(max_backoff, initial_backoff * 2**attempt))


def _check_limits(**limits: float) -> None:
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def prepare_updates(
    index: str, updates: Iterable[tuple[str, dict[str, Any]]], op_type: OpType = "update"
) -> Iterator[PreparedAction | ItemResult]:
    """Each `(id, document)` as a serialised bulk action, or as a failed ItemResult when it cannot be.

    `op_type` "update" sends `{"doc": document}` (a partial update, no upsert); "index" sends the whole
    document (used to copy documents into a new index).
    """
    if op_type not in ("update", "index"):
        raise ValueError(f"op_type {op_type!r} is not one of update, index")
    for doc_id, partial in updates:
        doc_id = str(doc_id)
        try:
            if not isinstance(partial, dict):
                raise TypeError(f"a document must be a dict, got {type(partial).__name__}")
            header = orjson.dumps({op_type: {"_index": index, "_id": doc_id}})
            body = orjson.dumps({"doc": partial} if op_type == "update" else partial, option=_DUMPS_OPTIONS)
        except (TypeError, orjson.JSONEncodeError) as exc:
            yield ItemResult(doc_id, False, None, "serialization_error", str(exc), attempts=0)
            continue
        yield PreparedAction(doc_id, header + b"\n" + body + b"\n")


def chunk_actions(
    actions: Iterable[PreparedAction], chunk_docs: int = 500, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[list[PreparedAction]]:
    """Group actions into chunks of at most `chunk_docs` actions and at most `chunk_bytes` bytes.

    A chunk closes when it holds `chunk_docs` actions, or when the next action would take it past
    `chunk_bytes`; an action larger than `chunk_bytes` on its own makes a chunk of one.
    """
    if chunk_docs < 1:
        raise ValueError(f"chunk_docs must be at least 1, got {chunk_docs}")
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be at least 1, got {chunk_bytes}")
    chunk: list[PreparedAction] = []
    size = 0
    for action in actions:
        if chunk and size + action.size > chunk_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(action)
        size += action.size
        if len(chunk) >= chunk_docs:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _request_error(exc: TransportError) -> tuple[int | None, str, str]:
    if isinstance(exc, OpenSearchConnectionError):
        return None, "connection_error", str(exc.error or exc)
    status = exc.status_code if isinstance(exc.status_code, int) else None
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if isinstance(error, dict):
        return status, str(error.get("type", "error")), str(error.get("reason", ""))
    return status, str(exc.error or "error"), str(error or exc)


def _retryable_request(exc: TransportError) -> bool:
    if isinstance(exc, OpenSearchConnectionError):
        return True
    return isinstance(exc.status_code, int) and (exc.status_code == 429 or exc.status_code >= 500)


def _item_result(doc_id: str, item: dict[str, Any], attempts: int) -> ItemResult:
    (body,) = item.values()
    status = int(body.get("status", 0))
    error = body.get("error")
    if error is None and 200 <= status < 300:
        return ItemResult(doc_id, True, status, attempts=attempts)
    if isinstance(error, dict):
        kind, reason = str(error.get("type", "error")), str(error.get("reason", ""))
        caused = error.get("caused_by")
        if isinstance(caused, dict) and caused.get("reason"):
            reason = f"{reason}: {caused.get('reason')}"
    else:
        kind, reason = "error", str(error)
    return ItemResult(doc_id, False, status, kind, reason, attempts)


def _send_chunk(
    client: OpenSearch,
    chunk: list[PreparedAction],
    *,
    max_retries: int,
    initial_backoff: float,
    max_backoff: float,
    refresh: str | bool | None,
    sleep: Callable[[float], None],
) -> Iterator[ItemResult]:
    pending = chunk
    attempt = 0
    params = {"refresh": str(refresh).lower()} if refresh is not None else {}
    while pending:
        payload = b"".join(action.payload for action in pending)
        try:
            response = client.bulk(body=payload, params=params)
        except TransportError as exc:
            if _retryable_request(exc) and attempt < max_retries:
                delay = backoff_delay(attempt, initial_backoff, max_backoff)
                log.info("bulk request failed (%s); retrying %d documents in %.2fs", exc, len(pending), delay)
                sleep(delay)
                attempt += 1
                continue
            status, kind, reason = _request_error(exc)
            for action in pending:
                yield ItemResult(action.id, False, status, kind, reason, attempt + 1)
            return
        retry: list[PreparedAction] = []
        for action, item in zip(pending, response["items"], strict=True):
            result = _item_result(action.id, item, attempt + 1)
            if not result.ok and result.status in RETRY_ITEM_STATUSES and attempt < max_retries:
                retry.append(action)
            else:
                yield result
        pending = retry
        if pending:
            delay = backoff_delay(attempt, initial_backoff, max_backoff)
            log.info("%d documents answered 429/5xx; retrying them in %.2fs", len(pending), delay)
            sleep(delay)
            attempt += 1


def streaming_update(
    client: OpenSearch,
    index: str,
    updates: Iterable[tuple[str, dict[str, Any]]],
    chunk_docs: int = 500,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_retries: int = 5,
    initial_backoff: float = 0.5,
    max_backoff: float = 30.0,
    *,
    refresh: str | bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    op_type: OpType = "update",
) -> Iterator[ItemResult]:
    """Apply `(id, partial_doc)` updates to `index`, yielding one ItemResult per document, in chunk order.

    Within a chunk, documents that were retried come after the others. `refresh` is passed to `_bulk`
    (True, False, "wait_for"); `op_type="index"` writes whole documents instead of partial updates.
    """
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be a non-negative int, got {max_retries!r}")
    _check_limits(initial_backoff=initial_backoff, max_backoff=max_backoff)
    refused: list[ItemResult] = []

    def actions() -> Iterator[PreparedAction]:
        for prepared in prepare_updates(index, updates, op_type):
            if isinstance(prepared, ItemResult):
                refused.append(prepared)
            else:
                yield prepared

    for chunk in chunk_actions(actions(), chunk_docs, chunk_bytes):
        yield from refused
        refused.clear()
        yield from _send_chunk(
            client,
            chunk,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            refresh=refresh,
            sleep=sleep,
        )
    yield from refused


def summarize(results: Iterable[ItemResult], keep: int = 100) -> WriteSummary:
    """Count the results a stream yields (written, failed) and keep the first `keep` failures."""
    summary = WriteSummary()
    for result in results:
        if result.ok:
            summary.written += 1
        else:
            summary.failed += 1
            if len(summary.failures) < keep:
                summary.failures.append(result)
    return summary
