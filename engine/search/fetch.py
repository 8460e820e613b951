"""Rendering a hit: ``_source`` filtering, ``fields`` / ``docvalue_fields`` / ``stored_fields``, formats.
"""

from __future__ import annotations

from typing import Any

from ..index.dates import NANOS_PER_MILLI, format_nanos
from ..index.mapping import Mapping
from ..index.searcher import Searcher
from ..index.values import format_decimal
from .request import Hit, Request
from .source_filter import filter_source


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


