"""Ordering the matches: by score or the requested sort (values per hit, missing values, modes), with
``search_after``; hits of several views merged in one order.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import weakref
from typing import Any

import numpy as np

from .. import errors
from ..index.dates import NANOS_PER_MILLI, format_nanos, parse_date_value
from ..index.mapping import Mapping
from ..index.postings import INT64_TYPES
from ..index.searcher import Searcher
from .request import Hit, Request, SortField, run_query

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
    key: list[tuple[int, Any]] = []
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


