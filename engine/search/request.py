"""Executing a search request over one or more index views: ordering, paging, totals and hit rendering.

:func:`search_views` is the engine's search function, the one the HTTP handler calls. It parses the request,
runs the query on each view (one per index, as OpenSearch runs one per shard), orders the matches by score or
by the requested sort, applies ``search_after`` / ``from`` / ``size`` and renders OpenSearch's hit objects.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import errors
from ..index.dates import NANOS_PER_MILLI, format_nanos, parse_date_value
from ..index.mapping import Mapping
from ..index.postings import INT64_TYPES
from ..index.searcher import Searcher
from ..index.values import format_decimal
from .query.parser import Matches, QueryParser
from .slicing import Slice, parse_slice, slice_mask
from .source_filter import filter_source, parse_source_param

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


# ------------------------------------------------------------------------------------------------------------


@functools.total_ordering
class _Reversed:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.value == other.value

    def __lt__(self, other: _Reversed) -> bool:
        return other.value < self.value


def _sort_values_of(s: Searcher, mapping: Mapping, ord_: int, sf: SortField, score: float) -> tuple[Any, Any]:
    """(raw sort value for the response, comparable key) of one document for one sort field."""
    if sf.field == "_score":
        return score, (0, _Reversed(score) if sf.descending else score)
    if sf.field in ("_doc", "_shard_doc"):
        return ord_, (0, _Reversed(ord_) if sf.descending else ord_)
    doc = s.ord_docs[ord_]
    spec = mapping.field(sf.field)
    if sf.field == "_id":
        values: list[Any] = [doc.id]
    elif sf.field == "_index":
        values = [s.index.name]
    elif sf.field == "_routing":
        values = [doc.routing] if doc.routing is not None else []
    else:
        if spec is None:
            if sf.unmapped_type is None:
                raise errors.EngineError(
                    400, "query_shard_exception", f"No mapping found for [{sf.field}] in order to sort on"
                )
            values = []
        elif spec.is_text and not spec.params.get("fielddata"):
            raise errors.illegal_argument(
                f"Text fields are not optimised for operations that require per-document field data like "
                "aggregations and sorting, so these operations are disabled by default. Please use a "
                "keyword field "
                f"instead. Alternatively, set fielddata=true on [{sf.field}] in order to load field data by "
                f"uninverting the inverted index. Note that this can use significant memory."
            )
        elif spec.is_numeric:
            values = list(doc.parsed.numbers.get(sf.field, [])) if doc.parsed else []
        else:
            values = list(doc.parsed.terms.get(sf.field, [])) if doc.parsed else []
            if spec.type == "boolean":
                values = [1 if v == "true" else 0 for v in values]
    if not values:
        missing_first = sf.missing == "_first"
        if sf.missing not in ("_first", "_last"):
            value = sf.missing
            return value, (0, _Reversed(value) if sf.descending else value)
        rank = -1 if missing_first else 1
        return _missing_value(s, mapping, sf), (rank, 0)
    mode = sf.mode or ("max" if sf.descending else "min")
    integral = spec is not None and spec.type in INT64_TYPES
    value = pick_sort_value(values, mode, integral)
    raw: Any = value
    if spec is not None and spec.type in ("date", "date_nanos") and sf.format:
        raw = format_nanos(value * (NANOS_PER_MILLI if spec.type == "date" else 1), sf.format, spec.type)
    elif spec is not None and spec.type == "unsigned_long":
        raw = int(value)
    return raw, (0, _Reversed(value) if sf.descending else value)


def pick_sort_value(values: list[Any], mode: str, integral: bool) -> Any:
    """One sort value from a multi-valued field, as OpenSearch's ``MultiValueMode`` picks it.

    For longs (and dates) the arithmetic is Java's: ``sum`` wraps around at 64 bits, ``avg`` is
    ``Math.round((double) sum / count)`` and an even ``median`` is ``Math.round((a + b) / 2.0)``.
    """
    if mode == "min":
        return min(values)
    if mode == "max":
        return max(values)
    if mode in ("sum", "avg"):
        total = _wrap_long(sum(values)) if integral else float(sum(values))
        if mode == "sum" or len(values) == 1:
            return total
        return _java_round(float(total) / len(values)) if integral else total / len(values)
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    half = (float(ordered[middle - 1]) + float(ordered[middle])) / 2
    return _java_round(half) if integral else half


def _wrap_long(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


def _java_round(value: float) -> int:
    """Java's ``Math.round(double)``: the closest long, ties towards positive infinity."""
    return int(value) if value.is_integer() else math.floor(value + 0.5)


def _missing_value(s: Searcher, mapping: Mapping, sf: SortField) -> Any:
    spec = mapping.field(sf.field)
    if spec is None or not spec.is_numeric:
        return None
    descending = sf.descending
    if spec.type in ("float", "double", "half_float", "scaled_float"):
        return -math.inf if descending else math.inf
    return -(2**63) if descending else 2**63 - 1


def _after_key(request: Request, mapping: Mapping, values: list[Any]) -> tuple[Any, ...]:
    assert request.sort is not None
    if len(values) != len(request.sort):
        raise errors.illegal_argument(
            f"search_after has {len(values)} value(s) but sort has {len(request.sort)}."
        )
    key = []
    for sf, value in zip(request.sort, values, strict=True):
        spec = mapping.field(sf.field)
        if spec is not None and spec.is_numeric and isinstance(value, str):
            value = _parse_after_value(spec, value)
        if value is None:
            key.append((1 if sf.missing != "_first" else -1, 0))
        else:
            key.append((0, _Reversed(value) if sf.descending else value))
    return tuple(key)


def _parse_after_value(spec: Any, value: str) -> int | float:
    """A ``search_after`` string for a numeric or date sort: a number, or a date in the field's format."""
    try:
        if spec.type in ("date", "date_nanos"):
            if re.fullmatch(r"[+-]?\d+", value.strip()):
                return int(value)
            return parse_date_value(value, spec.type, spec.params.get("format"))
        return float(value) if re.search(r"[.eE]", value) else int(value)
    except ValueError:
        raise errors.illegal_argument(f"Failed to parse search_after value [{value}]") from None


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


def ordered_hits(
    views: list[tuple[Searcher, Mapping]], request: Request, limit: int | None
) -> tuple[list[Hit], int, float | None]:
    """All views' matches in response order, cut to ``limit`` (None: all); also the total and the max
    score."""
    hits: list[Hit] = []
    total = 0
    max_score: float | None = None
    sort = request.sort
    score_sort = sort is None or (len(sort) == 1 and sort[0].field == "_score" and sort[0].descending)
    for position, (view, mapping) in enumerate(views):
        matches = run_query(view, mapping, request)
        ords = np.flatnonzero(matches.mask)
        total += int(ords.shape[0])
        if ords.shape[0] == 0:
            continue
        scores = matches.scores[ords]
        view_max = float(scores.max())
        max_score = view_max if max_score is None else max(max_score, view_max)
        if score_sort:
            if request.search_after is not None:
                after = float(request.search_after[0])
                keep = scores < np.float32(after)
                ords, scores = ords[keep], scores[keep]
            if limit == 0:
                continue
            if limit is not None and ords.shape[0] > limit:
                threshold = np.partition(scores, scores.shape[0] - limit)[scores.shape[0] - limit]
                keep = scores >= threshold
                ords, scores = ords[keep], scores[keep]
            order = np.lexsort((ords, -scores.astype(np.float64)))
            if limit is not None:
                order = order[:limit]
            for o, score in zip(ords[order].tolist(), scores[order].tolist(), strict=True):
                hits.append(Hit(position, o, score, [score] if sort is not None else None,
                                (_Reversed(score), position, o)))
            continue
        assert sort is not None
        after_key = (
            _after_key(request, mapping, request.search_after) if request.search_after is not None else None
        )
        if len(sort) == 1 and sort[0].field in ("_doc", "_shard_doc") and not sort[0].descending:
            if after_key is not None:
                keep = ords > int(request.search_after[0])  # type: ignore[index]
                ords, scores = ords[keep], scores[keep]
            cut = ords if limit is None else ords[:limit]
            for i, o in enumerate(cut):
                hits.append(Hit(position, int(o), float(scores[i]), [int(o)], ((0, int(o)), position)))
            continue
        by_id = len(sort) == 1 and sort[0].field == "_id"
        if by_id and (request.search_after is None or request.search_after[0] is not None):
            hits.extend(_hits_by_id(view, position, ords, scores, sort[0].descending, request, limit))
            continue
        view_hits = []
        for o, score in zip(ords.tolist(), scores.tolist(), strict=True):
            pairs = [_sort_values_of(view, mapping, o, sf, score) for sf in sort]
            key = tuple(p[1] for p in pairs)
            if after_key is not None and not key > after_key:
                continue
            view_hits.append(Hit(position, o, score, [p[0] for p in pairs], (key, position, o)))
        view_hits.sort(key=lambda h: h.key)
        hits.extend(view_hits if limit is None else view_hits[:limit])
    if len(views) > 1:
        hits.sort(key=lambda h: h.key)
    if limit is not None:
        hits = hits[:limit]
    return hits, total, max_score


def _id_order(view: Searcher) -> tuple[list[str], np.ndarray]:
    """The view's ids in sorted order and each ordinal's rank in it (computed once per view, then reused)."""
    cached = _id_orders.get(id(view))
    if cached is not None and cached[0]() is view:
        return cached[1], cached[2]
    ids = [view.ord_docs[o].id for o in range(view.max_ord)]
    order = sorted(range(len(ids)), key=ids.__getitem__)
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(len(ids), dtype=np.int64)
    sorted_ids = [ids[o] for o in order]
    if len(_id_orders) >= 16:
        for stale in [k for k, entry in _id_orders.items() if entry[0]() is None] or [next(iter(_id_orders))]:
            del _id_orders[stale]
    _id_orders[id(view)] = (weakref.ref(view), sorted_ids, ranks)
    return sorted_ids, ranks


# id(view) -> (weak reference to the view, its sorted ids, rank per ordinal): a PIT or scroll sorted on _id
# pages through one view, and this keeps each page from sorting every id again.
_id_orders: dict[int, tuple[weakref.ref[Searcher], list[str], np.ndarray]] = {}


def _hits_by_id(view: Searcher, position: int, ords: np.ndarray, scores: np.ndarray, descending: bool,
                request: Request, limit: int | None) -> list[Hit]:
    """Matches sorted on ``_id`` alone, after ``search_after``: the same hits and keys as the general path."""
    sorted_ids, ranks = _id_order(view)
    rank = ranks[ords]
    if request.search_after is not None:
        after = str(request.search_after[0])
        if descending:
            keep = rank < bisect.bisect_left(sorted_ids, after)
        else:
            keep = rank >= bisect.bisect_right(sorted_ids, after)
        ords, scores, rank = ords[keep], scores[keep], rank[keep]
    signed = -rank if descending else rank
    if limit is not None and signed.shape[0] > limit:
        nearest = np.argpartition(signed, limit - 1)[:limit] if limit > 0 else np.zeros(0, dtype=np.int64)
        ords, scores, signed = ords[nearest], scores[nearest], signed[nearest]
    hits = []
    for i in np.argsort(signed, kind="stable").tolist():
        o = int(ords[i])
        doc_id = view.ord_docs[o].id
        key = ((0, _Reversed(doc_id) if descending else doc_id),)
        hits.append(Hit(position, o, float(scores[i]), [doc_id], (key, position, o)))
    return hits


def render_hit(
    view: Searcher, mapping: Mapping, hit: Hit, request: Request, show_score: bool
) -> dict[str, Any]:
    doc = view.ord_docs[hit.ord]
    out: dict[str, Any] = {"_index": view.index.name, "_id": doc.id}
    if request.version:
        out["_version"] = doc.version
    if request.seq_no_primary_term:
        out["_seq_no"] = doc.seq_no
        out["_primary_term"] = doc.primary_term
    out["_score"] = hit.score if show_score else None
    if doc.routing is not None:
        out["_routing"] = doc.routing
    stored = request.stored_fields
    fetch = request.fetch_source
    if stored is not None:
        if stored == ["_none_"]:
            out.pop("_id", None)
            out.pop("_index", None)
            fetch = False
        elif "_source" not in stored and not request.source_requested:
            fetch = False
    if fetch and doc.source is not None and mapping.source_enabled():
        out["_source"] = filter_source(doc.source, request.includes, request.excludes)
    fields = _fetch_fields(doc, mapping, request)
    if stored:
        fields = {**stored_fields_of(doc, mapping, stored), **fields}
    if fields:
        out["fields"] = fields
    if hit.sort_values is not None:
        out["sort"] = hit.sort_values
    return out


def _fetch_fields(doc: Any, mapping: Mapping, request: Request) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for spec in list(request.docvalue_fields) + list(request.fields):
        name = spec["field"] if isinstance(spec, dict) else spec
        fmt = spec.get("format") if isinstance(spec, dict) else None
        names = [p for p in mapping.fields if _glob_match(name, p)] if "*" in name else [name]
        for path in names:
            values = _doc_values(doc, mapping, path, fmt)
            if values:
                out[path] = values
    return out


def stored_fields_of(doc: Any, mapping: Mapping, names: list[str]) -> dict[str, list[Any]]:
    """The values of the requested fields mapped with ``store: true`` (in document order, as Lucene stores
    them)."""
    out: dict[str, list[Any]] = {}
    for name in names:
        if name in ("_source", "_none_") or name.startswith("_"):
            continue
        paths = [p for p in mapping.fields if _glob_match(name, p)] if "*" in name else [name]
        for path in paths:
            spec = mapping.field(path)
            if spec is None or not spec.params.get("store") or doc.parsed is None:
                continue
            if spec.type in ("date", "date_nanos"):
                unit = NANOS_PER_MILLI if spec.type == "date" else 1
                values = [format_nanos(v * unit, spec.params.get("format"), spec.type)
                          for v in doc.parsed.numbers.get(path, [])]
            elif spec.is_numeric:
                values = list(doc.parsed.numbers.get(path, []))
            elif spec.type == "boolean":
                values = [v == "true" for v in doc.parsed.terms.get(path, [])]
            else:
                values = [v for v in _source_values(doc.source or {}, path) if v is not None]
            if values:
                out[path] = values
    return out


def _glob_match(pattern: str, path: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(path, pattern)


def _doc_values(doc: Any, mapping: Mapping, path: str, fmt: str | None) -> list[Any]:
    """A document's doc values for ``path`` (sorted, as Lucene keeps them), printed with ``fmt``."""
    spec = mapping.field(path)
    if spec is None or doc.parsed is None:
        return []
    if fmt == "use_field_mapping":
        fmt = None
    if spec.type in ("date", "date_nanos"):
        unit = NANOS_PER_MILLI if spec.type == "date" else 1
        fmt = fmt or spec.params.get("format")
        return [format_nanos(v * unit, fmt, spec.type) for v in sorted(doc.parsed.numbers.get(path, []))]
    if spec.is_numeric:
        values = sorted(doc.parsed.numbers.get(path, []))
        return [format_decimal(v, fmt) for v in values] if fmt else values
    if spec.type == "boolean":
        return sorted(v == "true" for v in doc.parsed.terms.get(path, []))
    if spec.is_text:
        source_values = _source_values(doc.source or {}, path)
        return [v for v in source_values if v is not None]
    return sorted(set(doc.parsed.terms.get(path, [])))


def _source_values(source: dict[str, Any], path: str) -> list[Any]:
    node: Any = source
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return []
    return node if isinstance(node, list) else [node]


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
