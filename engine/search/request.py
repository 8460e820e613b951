"""A search request: its JSON body and URL parameters parsed into a :class:`Request`, as OpenSearch
parses and refuses them; the :class:`Hit` a view contributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import errors
from ..index.mapping import Mapping
from ..index.searcher import Searcher
from .query import Matches, QueryParser
from .slicing import Slice, parse_slice, slice_mask
from .source_filter import parse_source_param

DEFAULT_TRACK_TOTAL_HITS = 10_000
MAX_RESULT_WINDOW = 10_000
BODY_KEYS = {
    "query", "size", "from", "sort", "search_after", "track_total_hits", "_source", "track_scores",
    "min_score", "timeout", "pit", "stored_fields", "docvalue_fields", "fields", "version",
    "seq_no_primary_term", "post_filter", "ext", "explain", "terminate_after", "profile", "indices_boost",
    "stats", "search_pipeline", "slice",
}


@dataclass
class SortField:
    field: str
    descending: bool
    missing: Any = "_last"
    mode: str | None = None
    unmapped_type: str | None = None
    format: str | None = None


@dataclass
class Request:
    query: Any
    size: int
    from_: int
    sort: list[SortField] | None
    search_after: list[Any] | None
    track_total_hits: int | bool
    fetch_source: bool
    includes: list[str]
    excludes: list[str]
    track_scores: bool
    min_score: float | None
    post_filter: Any
    version: bool
    seq_no_primary_term: bool
    stored_fields: list[str] | None
    docvalue_fields: list[Any]
    fields: list[Any]
    explain: bool
    rest_total_hits_as_int: bool = False
    source_requested: bool = False  # _source named explicitly: stored_fields do not turn it off
    slice: Slice | None = None  # sliced scroll / PIT search: only this slice's documents match
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    view: int  # position of the view in the request (index order)
    ord: int
    score: float
    sort_values: list[Any] | None
    key: Any


def parse_request(body: dict[str, Any] | None, params: dict[str, str]) -> Request:
    """A search request's body and URL parameters; a value of the wrong JSON type is a 400."""
    try:
        return _parse_request(body, params)
    except (TypeError, ValueError, AttributeError) as exc:
        raise errors.parsing(f"failed to parse search request: {exc}") from exc


def _parse_request(body: dict[str, Any] | None, params: dict[str, str]) -> Request:
    body = dict(body or {})
    for key in body:
        if key not in BODY_KEYS:
            if key in ("aggs", "aggregations"):
                raise errors.illegal_argument("aggregations are not supported by the nirbridge engine")
            if key in ("highlight", "suggest", "rescore", "collapse", "script_fields", "knn"):
                raise errors.illegal_argument(f"[{key}] is not supported by the nirbridge engine")
            raise errors.parsing(f"Unknown key for a {_token(body[key])} in [{key}].", line=1, col=1)
    size = _int_param(params.get("size", body.get("size", 10)), "size")
    from_ = _int_param(params.get("from", body.get("from", 0)), "from")
    if size < 0:
        raise errors.illegal_argument(f"[size] parameter cannot be negative, found [{size}]")
    if from_ < 0:
        raise errors.illegal_argument(f"[from] parameter cannot be negative, found [{from_}]")
    rest_int = params.get("rest_total_hits_as_int", "false") == "true"
    tth_raw = params.get("track_total_hits", body.get("track_total_hits", None))
    track_total_hits: int | bool
    if tth_raw is None:
        track_total_hits = True if rest_int else DEFAULT_TRACK_TOTAL_HITS
    elif tth_raw is True or tth_raw == "true":
        track_total_hits = True
    elif tth_raw is False or tth_raw == "false":
        track_total_hits = False
    else:
        track_total_hits = _int_param(tth_raw, "track_total_hits")
        if track_total_hits < -1:
            raise errors.illegal_argument(
                f"[track_total_hits] parameter must be positive or equals to -1, got {track_total_hits}"
            )
        if track_total_hits == -1:  # SearchContext.TRACK_TOTAL_HITS_DISABLED
            track_total_hits = False
    if rest_int and track_total_hits is not True and track_total_hits is not False:
        raise errors.illegal_argument(
            "[rest_total_hits_as_int] cannot be used if the tracking of total hits is not accurate, got "
            f"{track_total_hits}"
        )
    source = body.get("_source")
    if "_source" in params:
        source = params["_source"]
    fetch, includes, excludes = parse_source_param(source)
    if "_source_includes" in params:
        fetch, includes = True, [p for p in params["_source_includes"].split(",") if p]
    if "_source_excludes" in params:
        fetch, excludes = True, [p for p in params["_source_excludes"].split(",") if p]
    query = body.get("query")
    if "q" in params:
        query = _query_string_query(params["q"], params)
    sort_spec = body.get("sort")
    if "sort" in params:
        sort_spec = [_url_sort(s) for s in params["sort"].split(",") if s]
    stored = body.get("stored_fields", params.get("stored_fields"))
    if isinstance(stored, str):
        stored = stored.split(",")
    search_after = body.get("search_after")
    if search_after is not None and not isinstance(search_after, list):
        raise errors.parsing("[search_after] must be an array")
    if search_after is not None and from_ > 0:
        raise errors.EngineError(400, "search_phase_execution_exception",
                                 "[from] parameter must be set to 0 when [search_after] is used")
    return Request(
        query=query,
        size=size,
        from_=from_,
        sort=parse_sort(sort_spec),
        search_after=search_after,
        track_total_hits=track_total_hits,
        fetch_source=fetch,
        includes=includes,
        excludes=excludes,
        track_scores=bool(body.get("track_scores", False)),
        min_score=float(body["min_score"]) if body.get("min_score") is not None else None,
        post_filter=body.get("post_filter"),
        version=bool(body.get("version", params.get("version") == "true")),
        seq_no_primary_term=bool(
            body.get("seq_no_primary_term", params.get("seq_no_primary_term") == "true")
        ),
        stored_fields=stored,
        docvalue_fields=list(body.get("docvalue_fields") or [])
        or [f for f in params.get("docvalue_fields", "").split(",") if f],
        fields=list(body.get("fields") or []),
        explain=bool(body.get("explain", False)),
        rest_total_hits_as_int=rest_int,
        source_requested="_source" in body
        or any(p in params for p in ("_source", "_source_includes", "_source_excludes")),
        slice=parse_slice(body.get("slice")),
    )


def _token(value: Any) -> str:
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    return "VALUE_STRING" if isinstance(value, str) else "VALUE_NUMBER"


def _int_param(value: Any, name: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise errors.illegal_argument(
            f"Failed to parse int parameter [{name}] with value [{value}]"
        ) from None


def _url_sort(text: str) -> Any:
    name, _, order = text.partition(":")
    return {name: order} if order else name


def _query_string_query(q: str, params: dict[str, str]) -> dict[str, Any]:
    """The subset of ``?q=`` Lucene syntax the engine understands: ``field:value`` or free text on every
    field."""
    field_name, sep, value = q.partition(":")
    if sep and field_name and " " not in field_name:
        return {"match": {field_name: {"query": value.strip('"')}}}
    default_field = params.get("df")
    if default_field:
        return {"match": {default_field: {"query": q}}}
    return {"multi_match": {"query": q, "fields": ["*"], "lenient": True}}


def parse_sort(spec: Any) -> list[SortField] | None:
    if spec is None:
        return None
    items = spec if isinstance(spec, list) else [spec]
    out: list[SortField] = []
    for item in items:
        if isinstance(item, str):
            out.append(SortField(item, item == "_score"))
            continue
        if not isinstance(item, dict) or len(item) != 1:
            raise errors.parsing(
                f"malformed sort format, within the sort array, an object, or an actual string "
                f"are allowed: {item}"
            )
        name, options = next(iter(item.items()))
        if isinstance(options, str):
            options = {"order": options}
        if not isinstance(options, dict):
            raise errors.parsing(f"[{name}] sort options must be an object")
        order = str(options.get("order", "desc" if name == "_score" else "asc")).lower()
        if order not in ("asc", "desc"):
            raise errors.illegal_argument(
                f"No enum constant org.opensearch.search.sort.SortOrder.{order.upper()}"
            )
        mode = options.get("mode")
        if mode is not None and mode not in ("min", "max", "sum", "avg", "median"):
            raise errors.illegal_argument(f"Unknown SortMode [{mode}]")
        out.append(SortField(name, order == "desc", options.get("missing", "_last"), mode,
                             options.get("unmapped_type"), options.get("format")))
    return out


def run_query(view: Searcher, mapping: Mapping, request: Request) -> Matches:
    parser = QueryParser(mapping)
    matches = parser.parse(request.query).run(view)
    if view.alias_filter is not None:
        matches.mask &= parser.parse(view.alias_filter).run(view).mask
    if request.min_score is not None:
        matches.mask &= matches.scores >= np.float32(request.min_score)
    if request.post_filter is not None:
        matches.mask &= parser.parse(request.post_filter).run(view).mask
    if request.slice is not None:
        ords = np.flatnonzero(matches.mask)
        matches.mask[ords[~slice_mask(view, mapping, ords, request.slice)]] = False
    return matches


