"""Which requests the proxy passes to the cluster while writes are not allowed, and `_source` filtering.

    is_read_only("POST", "/scifact/_search")        True
    is_read_only("POST", "/scifact/_doc/1")         False (a write)
    is_read_only("PUT", "/scifact")                 False (index creation)

Read-only: every GET and HEAD; POST to the search and read APIs (`_search` and its `scroll`,
`point_in_time` and `template` sub-routes, `_count`, `_msearch` (and `/template`), `_mget`, `_field_caps`,
`_validate/query`, `_explain`, `_analyze`, `_termvectors`, `_mtermvectors`, `_rank_eval`, `_render/template`);
DELETE of a scroll or a point in time (it releases a reader, it writes nothing). Everything else (PUT, PATCH,
other DELETE and POST: `_bulk`, `_doc`, `_update`, `_delete_by_query`, `_aliases`, `_settings`, ...) is a
write or an admin call.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

__all__ = ["endpoint_of", "filter_source", "is_read_only"]

_READ_POSTS: dict[str, frozenset[str | None]] = {
    # first endpoint segment -> the sub-routes allowed after it (None: nothing after it)
    "_search": frozenset({None, "scroll", "point_in_time", "template"}),
    "_count": frozenset({None}),
    "_msearch": frozenset({None, "template"}),
    "_mget": frozenset({None}),
    "_field_caps": frozenset({None}),
    "_validate": frozenset({"query"}),
    "_explain": frozenset({"*"}),  # /_explain/<id>
    "_analyze": frozenset({None}),
    "_termvectors": frozenset({None, "*"}),
    "_mtermvectors": frozenset({None}),
    "_rank_eval": frozenset({None}),
    "_render": frozenset({"template"}),
}
_READ_DELETES = {("_search", "scroll"), ("_search", "point_in_time")}


def endpoint_of(path: str) -> list[str]:
    """The path from its first API segment on (`/a,b/_search/scroll` -> `["_search", "scroll"]`).

    Index names cannot start with `_` in OpenSearch, except the `_all` pattern, which is skipped.
    """
    segments = [part for part in path.split("/") if part]
    for at, segment in enumerate(segments):
        if segment.startswith("_") and segment != "_all":
            return segments[at:]
    return []


def is_read_only(method: str, path: str) -> bool:
    """Whether `method path` only reads (see the module docstring for the list)."""
    method = method.upper()
    if method in ("GET", "HEAD"):
        return True
    endpoint = endpoint_of(path)
    if not endpoint:
        return False  # POST/PUT/DELETE on an index itself
    if method == "DELETE":
        return tuple(endpoint[:2]) in _READ_DELETES
    if method != "POST" or endpoint[0] not in _READ_POSTS:
        return False
    allowed = _READ_POSTS[endpoint[0]]
    rest = endpoint[1] if len(endpoint) > 1 else None
    if rest is None:
        return None in allowed
    return rest in allowed or ("*" in allowed and not rest.startswith("_"))


def _patterns(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.split(",") if part]
    return [str(part) for part in value]


def _matches(key: str, patterns: list[str]) -> bool:
    # a pattern names a top-level key, or a path below one ("meta.models" keeps or drops "meta")
    return any(fnmatchcase(key, p) or fnmatchcase(key, p.split(".", 1)[0]) for p in patterns)


def filter_source(source: Mapping[str, Any] | None, spec: Any) -> dict[str, Any] | None:
    """`source` filtered as a `_source` parameter asks (true/false, a field or a list, or
    `{"includes": [...], "excludes": [...]}`), on top-level keys: a dotted include keeps its whole top key,
    a dotted exclude drops nothing."""
    if source is None or spec is None or spec is True:
        return dict(source) if source is not None else None
    if spec is False:
        return None
    if isinstance(spec, Mapping):
        includes = _patterns(spec.get("includes", spec.get("include")))
        excludes = _patterns(spec.get("excludes", spec.get("exclude")))
    else:
        includes, excludes = _patterns(spec), []
    return {
        key: value
        for key, value in source.items()
        if (not includes or _matches(key, includes)) and not any(fnmatchcase(key, x) for x in excludes)
    }
