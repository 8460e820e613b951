"""Executing a search request over one or more index views: ordering, paging, totals and hit rendering.

:func:`search_views` is the engine's search function, the one the HTTP handler calls. It parses the request,
runs the query on each view (one per index, as OpenSearch runs one per shard), orders the matches by score or
by the requested sort, applies ``search_after`` / ``from`` / ``size`` and renders OpenSearch's hit objects.
"""

from __future__ import annotations

import time
from typing import Any

from .. import errors
from ..index.mapping import Mapping
from ..index.searcher import Searcher
from .fetch import render_hit
from .request import MAX_RESULT_WINDOW, Hit, Request, parse_request, run_query
from .sort import ordered_hits


def total_hits(total: int, request: Request) -> Any:
    tth = request.track_total_hits
    if request.rest_total_hits_as_int:
        return -1 if tth is False else total
    if tth is True:
        return {"value": total, "relation": "eq"}
    if tth is False:
        return None
    if total > tth:
        return {"value": tth, "relation": "gte"}
    return {"value": total, "relation": "eq"}


def search_views(views: list[tuple[Searcher, Mapping]], body: dict[str, Any] | None, params: dict[str, str],
                 request: Request | None = None) -> dict[str, Any]:
    """Run one search request over ``views`` and build OpenSearch's response body."""
    started = time.perf_counter()
    request = request or parse_request(body, params)
    window = min((view.index.settings.max_result_window for view, _ in views), default=MAX_RESULT_WINDOW)
    if request.from_ + request.size > window and "scroll" not in params:
        raise errors.illegal_argument(
            f"Result window is too large, from + size must be less than or equal to: [{window}] but was "
            f"[{request.from_ + request.size}]. See the scroll api for a more efficient way to request large "
            f"data sets. This limit can be set by changing the [index.max_result_window] index level setting."
        )
    hits, total, max_score = ordered_hits(views, request, request.from_ + request.size)
    page = hits[request.from_: request.from_ + request.size]
    return build_response(views, request, page, total, max_score, started)


def build_response(views: list[tuple[Searcher, Mapping]], request: Request, page: list[Hit], total: int,
                   max_score: float | None, started: float) -> dict[str, Any]:
    sort = request.sort
    show_score = sort is None or request.track_scores or any(sf.field == "_score" for sf in sort)
    # With a sort, OpenSearch tracks max_score only for track_scores or when _score descending sorts first
    # (since 3.2, #18715); otherwise it is null.
    score_first = sort is not None and sort[0].field == "_score" and sort[0].descending
    if sort is not None and not request.track_scores and not score_first:
        max_score = None
    if request.size == 0:  # only counted, never scored: OpenSearch's max_score is NaN, printed as null
        max_score = None
    rendered = [render_hit(views[h.view][0], views[h.view][1], h, request, show_score) for h in page]
    hits_block: dict[str, Any] = {}
    total_block = total_hits(total, request)
    if total_block is not None:
        hits_block["total"] = total_block
    hits_block["max_score"] = max_score
    hits_block["hits"] = rendered
    return {
        "took": int((time.perf_counter() - started) * 1000),
        "timed_out": False,
        "_shards": {"total": len(views), "successful": len(views), "skipped": 0, "failed": 0},
        "hits": hits_block,
    }


def count_views(
    views: list[tuple[Searcher, Mapping]], body: dict[str, Any] | None, params: dict[str, str]
) -> int:
    request = parse_request({"query": (body or {}).get("query")} if body else None, params)
    return sum(int(run_query(view, mapping, request).mask.sum()) for view, mapping in views)
