"""Search APIs: _search, _count, _msearch, scroll and point in time."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson

from .. import errors
from ..index.mapping import Mapping
from ..index.searcher import Searcher
from ..node import Node, SearchContext
from ..search import Request as SearchRequest
from ..search import build_response, count_views, ordered_hits, parse_request, search_views
from .controller import Request, Response, param_list, route

DEFAULT_SCROLL_KEEP_ALIVE = "5m"


def _views(node: Node, expression: str | None, params: dict[str, str]) -> list[tuple[Searcher, Mapping]]:
    indices = node.resolve(
        expression,
        ignore_unavailable=params.get("ignore_unavailable") == "true",
        allow_no_indices=params.get("allow_no_indices", "true") == "true",
        expand_wildcards=params.get("expand_wildcards", "open"),
    )
    views = []
    for index in indices:
        if index.closed:
            raise errors.EngineError(400, "index_closed_exception", "closed", index=index.name,
                                     index_uuid=index.uuid)
        if index.refresh_due(time.monotonic()):
            index.refresh()
        searcher = index.searcher
        alias_filter = node.alias_filter(expression, index)
        if alias_filter is not None:
            searcher = dataclasses.replace(searcher, alias_filter=alias_filter)
        views.append((searcher, index.mapping))
    return views


def _search_body(request: Request) -> dict[str, Any] | None:
    body = request.json()
    if body is not None and not isinstance(body, dict):
        raise errors.parsing("request body or source parameter is required")
    return body


@route("/_search", "/{index}/_search", methods=("GET", "POST"))
def search(node: Node, request: Request) -> Response:
    body = _search_body(request)
    pit = (body or {}).get("pit")
    if pit is not None:
        return Response(200, _search_pit(node, request, body or {}))
    views = _views(node, request.parts.get("index"), request.params)
    if "scroll" in request.params:
        return Response(200, _start_scroll(node, views, body, request.params))
    _refuse_slice_outside_context(body)
    return Response(200, search_views(views, body, request.params))


def _refuse_slice_outside_context(body: dict[str, Any] | None) -> None:
    """SearchRequest.validate(): a slice only makes sense over a scroll or a point in time."""
    if body is not None and body.get("slice") is not None:
        raise errors.validation("[slice] can only be used with [scroll] or [point-in-time] requests")


def _search_pit(node: Node, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    if request.parts.get("index"):
        raise errors.validation(
            "[indices] cannot be used with point in time. Do not specify any index with point in time."
        )
    pit = body["pit"]
    if not isinstance(pit, dict) or "id" not in pit:
        raise errors.parsing("[pit] requires an [id]")
    context = node.context(pit["id"], "pit")
    if pit.get("keep_alive"):
        seconds = node.keep_alive_seconds(pit["keep_alive"])
        context.expires = time.monotonic() + seconds
    rest = {k: v for k, v in body.items() if k != "pit"}
    response = search_views(context.views, rest, request.params)
    response["pit_id"] = context.id
    return response


# ----- scroll -----------------------------------------------------------------------------------------------


def _start_scroll(node: Node, views: list[tuple[Searcher, Mapping]], body: dict[str, Any] | None,
                  params: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    request = parse_request(body, params)
    _validate_scroll(request, body or {}, params)
    hits, total, max_score = ordered_hits(views, request, None)
    context = node.new_context(views, params["scroll"], "scroll")
    context.state = {
        "request": request,
        "hits": hits,
        "position": request.from_ + request.size,
        "total": total,
        "max_score": max_score,
    }
    response = build_response(
        views, request, hits[request.from_ : request.from_ + request.size], total, max_score, started
    )
    return {"_scroll_id": context.id, **response}


def _validate_scroll(request: SearchRequest, body: dict[str, Any], params: dict[str, str]) -> None:
    """SearchRequest.validate() for a scroll; a scroll counts its total hits exactly."""
    problems = []
    if "track_total_hits" not in params and "track_total_hits" not in body:
        request.track_total_hits = True
    elif request.track_total_hits is not True:
        problems.append("disabling [track_total_hits] is not allowed in a scroll context")
    if request.from_ > 0:
        problems.append("using [from] is not allowed in a scroll context")
    if request.size == 0:
        problems.append("[size] cannot be [0] in a scroll context")
    if params.get("request_cache") == "true":
        problems.append("[request_cache] cannot be used in a scroll context")
    if problems:
        raise errors.validation(*problems)


def _scroll_page(context: SearchContext) -> dict[str, Any]:
    started = time.perf_counter()
    state = context.state
    request = state["request"]
    position = state["position"]
    page = state["hits"][position: position + request.size]
    state["position"] = position + request.size
    response = build_response(context.views, request, page, state["total"], state["max_score"], started)
    return {"_scroll_id": context.id, **response}


@route("/_search/scroll", "/_search/scroll/{scroll_id}", methods=("GET", "POST"))
def scroll(node: Node, request: Request) -> Response:
    body = request.json() or {}
    scroll_id = request.parts.get("scroll_id") or body.get("scroll_id") or request.params.get("scroll_id")
    if not scroll_id:
        raise errors.validation("scrollId is missing")
    context = node.context(scroll_id, "scroll")
    keep_alive = body.get("scroll") or request.params.get("scroll")
    if keep_alive:
        context.keep_alive = node.keep_alive_seconds(keep_alive)
    context.expires = time.monotonic() + context.keep_alive
    response = _scroll_page(context)
    if request.params.get("rest_total_hits_as_int") == "true":
        total = response["hits"].get("total")
        if isinstance(total, dict):
            response["hits"]["total"] = total["value"]
    return Response(200, response)


@route("/_search/scroll", "/_search/scroll/{scroll_id}", methods=("DELETE",))
def clear_scroll(node: Node, request: Request) -> Response:
    body = request.json() or {}
    ids: list[str] = []
    if request.parts.get("scroll_id"):
        ids = param_list(request.parts["scroll_id"])
    elif isinstance(body, dict) and body.get("scroll_id") is not None:
        raw = body["scroll_id"]
        ids = raw if isinstance(raw, list) else param_list(raw)
    elif request.params.get("scroll_id"):
        ids = param_list(request.params["scroll_id"])
    if "_all" in ids:
        freed = len(node.scrolls)
        node.scrolls.clear()
        return Response(200, {"succeeded": True, "num_freed": freed})
    freed = 0
    for scroll_id in ids:
        if node.scrolls.pop(scroll_id, None) is not None:
            freed += 1
    if ids and freed == 0:
        return Response(404, {"succeeded": True, "num_freed": 0})
    return Response(200, {"succeeded": True, "num_freed": freed})


# ----- point in time ----------------------------------------------------------------------------------------


@route("/{index}/_search/point_in_time", methods=("POST",))
def create_pit(node: Node, request: Request) -> Response:
    keep_alive = request.params.get("keep_alive")
    if not keep_alive:
        raise errors.validation("keep alive not specified")
    views = _views(node, request.parts["index"], request.params)
    context = node.new_context(views, keep_alive, "pit")
    return Response(200, {
        "pit_id": context.id,
        "_shards": {"total": len(views), "successful": len(views), "skipped": 0, "failed": 0},
        "creation_time": context.created_ms,
    })


@route("/_search/point_in_time", methods=("DELETE",))
def delete_pit(node: Node, request: Request) -> Response:
    body = request.json() or {}
    ids = body.get("pit_id", []) if isinstance(body, dict) else []
    ids = ids if isinstance(ids, list) else [ids]
    pits = []
    for pit_id in ids:
        found = node.pits.pop(pit_id, None) is not None
        pits.append({"successful": found, "pit_id": pit_id})
    return Response(200, {"pits": pits})


@route("/_search/point_in_time/_all", methods=("DELETE",))
def delete_all_pits(node: Node, request: Request) -> Response:
    pits = [{"successful": True, "pit_id": pit_id} for pit_id in node.pits]
    node.pits.clear()
    return Response(200, {"pits": pits})


@route("/_search/point_in_time/_all", methods=("GET",))
def get_all_pits(node: Node, request: Request) -> Response:
    now = time.monotonic()
    pits = [
        {"pit_id": c.id, "creation_time": c.created_ms, "keep_alive": int(c.keep_alive * 1000)}
        for c in node.pits.values() if c.expires >= now
    ]
    return Response(200, {"pits": pits})


# ----- count and msearch ------------------------------------------------------------------------------------


@route("/_count", "/{index}/_count", methods=("GET", "POST"))
def count(node: Node, request: Request) -> Response:
    body = _search_body(request)
    if body is not None and set(body) - {"query"}:
        raise errors.parsing(f"request does not support [{sorted(set(body) - {'query'})[0]}]")
    views = _views(node, request.parts.get("index"), request.params)
    params = dict(request.params)
    total = count_views(views, body, params)
    return Response(
        200,
        {
            "count": total,
            "_shards": {"total": len(views), "successful": len(views), "skipped": 0, "failed": 0},
        },
    )


@route("/_msearch", "/{index}/_msearch", methods=("GET", "POST"))
def msearch(node: Node, request: Request) -> Response:
    started = time.perf_counter()
    lines = [line for line in request.ndjson() if line.strip()]
    if len(lines) % 2:
        raise errors.illegal_argument(
            "msearch body must be header/body line pairs, got an odd number of lines"
        )
    # Headers and bodies are parsed first, as RestMultiSearchAction does: a malformed item fails the whole
    # request; what fails while searching (a missing index, a query error) is that item's error.
    items = []
    for i in range(0, len(lines), 2):
        try:
            header = orjson.loads(lines[i])
            body = orjson.loads(lines[i + 1])
        except orjson.JSONDecodeError as exc:
            raise errors.EngineError(400, "parse_exception", f"Failed to parse msearch line: {exc}") from exc
        if not isinstance(header, dict):
            raise errors.parsing(f"msearch header at line [{i + 1}] must be a JSON object")
        expression = header.get("index", request.parts.get("index"))
        if isinstance(expression, list):
            expression = ",".join(expression)
        params = {**request.params, **{k: str(v).lower() if isinstance(v, bool) else str(v)
                                       for k, v in header.items() if k != "index"}}
        if not isinstance(body, dict):
            raise errors.parsing(f"msearch body at line [{i + 2}] must be a JSON object")
        is_pit = body.get("pit") is not None
        parsed = None if is_pit else parse_request(body, params)
        if not is_pit and "scroll" not in params:
            _refuse_slice_outside_context(body)
        items.append((expression, params, body, parsed))
    responses = []
    for expression, params, body, parsed in items:
        try:
            if parsed is None:
                sub = Request("POST", request.path, params, orjson.dumps(body), request.headers, {})
                result = _search_pit(node, sub, body)
            else:
                views = _views(node, expression, params)
                result = search_views(views, body, params, parsed)
            result["status"] = 200
            responses.append(result)
        except errors.EngineError as exc:
            responses.append({**exc.to_body(), "status": exc.status})
    return Response(200, {"took": int((time.perf_counter() - started) * 1000), "responses": responses})
