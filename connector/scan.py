"""Read every document of an index once: point in time + `search_after`, sliced for parallel readers.

    for hit in scan_documents(client, "corpus", fields=["title", "text"], slice_id=0, slices=4):
        ...                                    # hit["_id"], hit["_source"], hit["sort"] (the resume position)

How it reads (as opensearch-py's `helpers.scan`, with a point in time instead of a scroll):
- A point in time (PIT) is opened on the index, every page is a `search_after` over it, and the PIT is deleted
  in `finally`, also when the consumer stops early (404 on delete is fine: it expired or was deleted).
- Order `"id"` (the default) sorts on `_id`: the position (`hit["sort"]`) means the same thing in any later
  PIT,
  so a checkpointed scan resumes where it stopped after a crash. It needs `_id` field data, which OpenSearch
  allows by default (`indices.id_field_data.enabled`).
- Order `"doc"` sorts in index order, the cheapest order, with a tiebreaker that makes it a total order across
  shards: `_shard_doc` where the cluster has it (OpenSearch ≥ 3.3, Elasticsearch), else `_doc` then `_id`
  (`_doc` alone repeats across shards, so `search_after` on it alone would skip documents). Its positions are
  only valid inside the same PIT: a resumed scan must use order "id".
- `slice_id`/`slices` add OpenSearch's sliced search (`"slice": {"id", "max"}`): the slices partition the
  index.
- Clusters without PIT (OpenSearch < 2.4) are read with a scroll, cleared in `finally`; a resume position is
  then applied by skipping hits at or before it (a scroll takes no `search_after`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError, TransportError

from .client import cluster_error

__all__ = ["ScanOrder", "scan_documents"]

log = logging.getLogger(__name__)

ScanOrder = Literal["id", "doc"]
_ORDERS: tuple[str, ...] = ("id", "doc")


def _url_of(client: OpenSearch) -> str:
    hosts = getattr(client.transport, "hosts", None) or [{}]
    host = hosts[0]
    return f"{host.get('host', '')}:{host.get('port', '')}" if host else ""


def _body(
    query: dict[str, Any] | None,
    fields: Sequence[str] | None,
    slice_id: int | None,
    slices: int | None,
    page_size: int,
) -> dict[str, Any]:
    body: dict[str, Any] = {"size": page_size, "query": query or {"match_all": {}}, "track_total_hits": False}
    if fields is not None:
        body["_source"] = list(fields) if fields else False
    if slices is not None:
        body["slice"] = {"id": slice_id, "max": slices}
    return body


def _check(slice_id: int | None, slices: int | None, page_size: int, order: str) -> None:
    if order not in _ORDERS:
        raise ValueError(f"order {order!r} is not one of {', '.join(_ORDERS)}")
    if page_size <= 0:
        raise ValueError(f"page_size must be a positive int, got {page_size!r}")
    if (slice_id is None) != (slices is None):
        raise ValueError("slice_id and slices go together: give both or neither")
    if slices is not None and slice_id is not None:
        if slices == 1:
            return
        if slices < 1 or not 0 <= slice_id < slices:
            raise ValueError(f"slice_id must be in [0, slices), got slice_id={slice_id}, slices={slices}")


def _open_pit(client: OpenSearch, index: str, keep_alive: str) -> str | None:
    """A PIT id, or None when the cluster has no PIT API (answers 400/404/405 without index_not_found)."""
    try:
        response = client.create_pit(index=index, params={"keep_alive": keep_alive})
    except OpenSearchConnectionError as exc:
        raise cluster_error(exc, _url_of(client), index) from exc
    except TransportError as exc:
        text = str(exc.error) + str(exc.info)
        if (
            exc.status_code in (400, 404, 405)
            and "index_not_found" not in text
            and "no such index" not in text
        ):
            log.info(
                "the cluster has no point in time API (%s); reading %s with a scroll", exc.status_code, index
            )
            return None
        raise cluster_error(exc, _url_of(client), index) from exc
    return str(response["pit_id"])


def _close_pit(client: OpenSearch, pit_id: str) -> None:
    try:
        client.delete_pit(body={"pit_id": [pit_id]})
    except NotFoundError:
        pass  # expired or deleted already
    except TransportError as exc:  # never hide the consumer's own exception behind a cleanup failure
        log.warning("could not delete point in time %s: %s", pit_id, exc)


def _sort(order: str, tiebreaker: str) -> list[dict[str, str]]:
    if order == "id":
        return [{"_id": "asc"}]
    if tiebreaker == "_shard_doc":
        return [{"_shard_doc": "asc"}]
    return [{"_doc": "asc"}, {"_id": "asc"}]


def _lacks_shard_doc(exc: TransportError) -> bool:
    return exc.status_code == 400 and "_shard_doc" in str(exc.info)


def _scan_pit(
    client: OpenSearch,
    pit: list[str],
    body: dict[str, Any],
    keep_alive: str,
    order: str,
    search_after: list[Any] | None,
) -> Iterator[dict[str, Any]]:
    tiebreaker = "_shard_doc"
    after = list(search_after) if search_after is not None else None
    while True:
        page_body = {
            **body,
            "pit": {"id": pit[0], "keep_alive": keep_alive},
            "sort": _sort(order, tiebreaker),
        }
        if after is not None:
            page_body["search_after"] = after
        try:
            response = client.search(body=page_body)
        except TransportError as exc:
            if order == "doc" and tiebreaker == "_shard_doc" and after is None and _lacks_shard_doc(exc):
                tiebreaker = "_doc+_id"
                continue
            raise cluster_error(exc, _url_of(client)) from exc
        pit[0] = str(response.get("pit_id") or pit[0])  # a PIT id may change between pages: delete the last
        hits = response["hits"]["hits"]
        yield from hits
        if len(hits) < body["size"]:
            return
        after = hits[-1]["sort"]


def _after(position: list[Any], sort_values: list[Any]) -> bool:
    return sort_values > position


def _scan_scroll(
    client: OpenSearch,
    index: str,
    body: dict[str, Any],
    keep_alive: str,
    order: str,
    search_after: list[Any] | None,
) -> Iterator[dict[str, Any]]:
    scroll_body = {**body, "sort": [{"_id": "asc"}] if order == "id" else ["_doc"]}
    scroll_body.pop("track_total_hits", None)
    scroll_id: str | None = None
    try:
        try:
            response = client.search(index=index, body=scroll_body, params={"scroll": keep_alive})
        except TransportError as exc:
            raise cluster_error(exc, _url_of(client), index) from exc
        while True:
            scroll_id = response.get("_scroll_id") or scroll_id
            hits = response["hits"]["hits"]
            if not hits:
                return
            for hit in hits:
                if search_after is None or _after(search_after, hit.get("sort", [])):
                    yield hit
            try:
                response = client.scroll(body={"scroll_id": scroll_id, "scroll": keep_alive})
            except TransportError as exc:
                raise cluster_error(exc, _url_of(client), index) from exc
    finally:
        if scroll_id is not None:
            try:
                client.clear_scroll(body={"scroll_id": [scroll_id]}, params={"ignore": "404"})
            except TransportError as exc:
                log.warning("could not clear scroll %s: %s", scroll_id, exc)


def scan_documents(
    client: OpenSearch,
    index: str,
    query: dict[str, Any] | None = None,
    fields: Sequence[str] | None = None,
    slice_id: int | None = None,
    slices: int | None = None,
    page_size: int = 500,
    keep_alive: str = "5m",
    *,
    search_after: list[Any] | None = None,
    order: ScanOrder = "id",
    use_pit: bool | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every hit of `index` matching `query` (all documents by default), each exactly once.

    `fields` restricts `_source` to those fields (None: the whole source; empty: no source). `slice_id` of
    `slices` reads one slice of a sliced search. `search_after` resumes after a position a previous scan
    yielded (`hit["sort"]`). `use_pit` None picks PIT when the cluster has it, else a scroll; False forces
    the scroll. Errors from the cluster are raised as `ClusterError` (`IndexNotFound` for a missing index).
    """
    _check(slice_id, slices, page_size, order)
    if slices == 1:  # one slice is the whole index; OpenSearch refuses max 1
        slice_id = slices = None
    body = _body(query, fields, slice_id, slices, page_size)
    pit_id = _open_pit(client, index, keep_alive) if use_pit is not False else None
    if pit_id is None:
        yield from _scan_scroll(client, index, body, keep_alive, order, search_after)
        return
    pit = [pit_id]
    try:
        yield from _scan_pit(client, pit, body, keep_alive, order, search_after)
    finally:
        _close_pit(client, pit[0])
