"""Which requests the proxy passes to the cluster while writes are not allowed, and `_source` filtering.

    is_read_only("POST", "/scifact/_search")        True
    is_read_only("POST", "/scifact/_doc/1")         False (a write)
    is_read_only("PUT", "/scifact")                 False (index creation)

Read-only: every GET and HEAD, but for `_flush` and `_refresh` (OpenSearch takes both by GET too, and they
make the cluster work: admin calls); POST to the search and read APIs, in exactly their own shapes (`_search`
and its `scroll` (`/{scroll_id}`), `point_in_time` and `template` sub-routes, `_count`, `_msearch` (and
`/template`), `_mget`, `_field_caps`, `_validate/query`, `_explain/{id}`, `_analyze`, `_termvectors`
(`/{id}`), `_mtermvectors`, `_rank_eval`, `_render/template` (`/{id}`)), after index names or none; DELETE of
the scrolls or points in time a caller names (`DELETE /_search/scroll` or `/_search/point_in_time` with the
ids in a JSON body, `DELETE /_search/scroll/{id}`: it releases readers, it writes nothing). Releasing every
reader of the cluster (`_all`: `DELETE /_search/scroll/_all`, `/_search/point_in_time/_all`, or `_all` as the
id in the body or in `?scroll_id=`) would also end the scans of a running enrichment: it is an admin call, as
is a DELETE whose body is not JSON or comes in the `source` parameter (unreadable here). Everything else (PUT,
PATCH, other DELETE and POST: `_bulk`, `_doc`, `_update`, `_delete_by_query`, `_aliases`, `_settings`, ...) is
a write or an admin call.

The path judged here is the decoded one that connector.proxy.paths checked, the very path the cluster gets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

import orjson

from .errors import BadRequest

__all__ = ["check_source_spec", "endpoint_of", "filter_source", "is_read_only"]

_READ_POSTS: dict[str, frozenset[tuple[str, ...]]] = {
    # first endpoint segment -> the whole rest of the path allowed after it ("*": one id, not `_`-named);
    # nothing longer: a read route with more segments after it is some other API
    "_search": frozenset({(), ("scroll",), ("scroll", "*"), ("point_in_time",), ("template",)}),
    "_count": frozenset({()}),
    "_msearch": frozenset({(), ("template",)}),
    "_mget": frozenset({()}),
    "_field_caps": frozenset({()}),
    "_validate": frozenset({("query",)}),
    "_explain": frozenset({("*",)}),
    "_analyze": frozenset({()}),
    "_termvectors": frozenset({(), ("*",)}),
    "_mtermvectors": frozenset({()}),
    "_rank_eval": frozenset({()}),
    "_render": frozenset({("template",), ("template", "*")}),
}
_ACTING_GETS = frozenset({"_flush", "_refresh"})  # GET routes of OpenSearch that act on the cluster
_READ_DELETES = {"scroll": 1, "point_in_time": 0}  # what a DELETE releases -> the ids its path may name
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')  # every string literal of a valid JSON text


def endpoint_of(path: str) -> list[str]:
    """The path from its first API segment on (`/a,b/_search/scroll` -> `["_search", "scroll"]`).

    Index names cannot start with `_` in OpenSearch, except the `_all` pattern, which is skipped.
    """
    segments = [part for part in path.split("/") if part]
    for at, segment in enumerate(segments):
        if segment.startswith("_") and segment != "_all":
            return segments[at:]
    return []


def _names_all(value: str) -> bool:
    return "_all" in (part.strip() for part in value.split(","))


def _releases_named_readers(
    path: str, params: Iterable[tuple[str, str]], body: bytes | None
) -> bool:
    """Whether a DELETE releases only the scrolls or points in time it names (not `_all`)."""
    segments = [part for part in path.split("/") if part]
    if len(segments) < 2 or segments[0] != "_search" or segments[1] not in _READ_DELETES:
        return False
    ids = segments[2:]
    if len(ids) > _READ_DELETES[segments[1]] or any(_names_all(one) for one in ids):
        return False
    for name, value in params:
        if name == "source" or (name in ("scroll_id", "pit_id") and _names_all(value)):
            return False
    if body and body.strip():
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return False  # not JSON (YAML, CBOR, ...): what it names cannot be read here
        # every string literal, duplicate keys included (a parser that keeps the last one would miss one)
        if any(_names_all(orjson.loads(literal)) for literal in _JSON_STRING.findall(body)):
            return False
    return True


def is_read_only(
    method: str, path: str, params: Iterable[tuple[str, str]] = (), body: bytes | None = None
) -> bool:
    """Whether `method path` only reads (see the module docstring for the list); `params` (the decoded query
    parameters) and `body` matter to a DELETE, which must not release every reader."""
    method = method.upper()
    endpoint = endpoint_of(path)
    if method in ("GET", "HEAD"):
        return not endpoint or endpoint[0] not in _ACTING_GETS
    if not endpoint:
        return False  # POST/PUT/DELETE on an index itself
    if method == "DELETE":
        return _releases_named_readers(path, params, body)
    if method != "POST" or endpoint[0] not in _READ_POSTS:
        return False
    rest = endpoint[1:]
    return any(_fits(shape, rest) for shape in _READ_POSTS[endpoint[0]])


def _fits(shape: tuple[str, ...], rest: list[str]) -> bool:
    if len(shape) != len(rest):
        return False
    pairs = zip(shape, rest, strict=True)
    return all(want == got or (want == "*" and not got.startswith("_")) for want, got in pairs)


def _patterns(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.split(",") if part]
    return [str(part) for part in value]


def _matches(key: str, patterns: list[str]) -> bool:
    # a pattern names a top-level key, or a path below one ("meta.models" keeps or drops "meta")
    return any(fnmatchcase(key, p) or fnmatchcase(key, p.split(".", 1)[0]) for p in patterns)


_SOURCE_KEYS = ("includes", "include", "excludes", "exclude")


def _field_names(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def check_source_spec(spec: Any, where: str = "_source") -> Any:
    """`spec` as given when `filter_source` can apply it (true/false, a field or a list of them, or an
    object of includes/excludes, each a field or a list), else BadRequest `parsing_exception` (as
    OpenSearch answers)."""
    if spec is None or isinstance(spec, bool) or _field_names(spec):
        return spec
    if not isinstance(spec, Mapping):
        raise BadRequest(
            f"[{where}] must be a boolean, a field, a list of fields or an object, got {spec!r:.100}",
            "parsing_exception",
        )
    for key, value in spec.items():
        if key not in _SOURCE_KEYS:
            known = ", ".join(_SOURCE_KEYS)
            raise BadRequest(f"[{where}] unknown key [{key}]; known: {known}", "parsing_exception")
        if value is not None and not _field_names(value):
            reason = f"[{where}.{key}] must be a field or a list of fields, got {value!r:.100}"
            raise BadRequest(reason, "parsing_exception")
    return spec


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
