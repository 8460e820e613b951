"""Document APIs: index, create, get, exists, delete, update, _source, _mget and _bulk."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import orjson

from .. import errors
from ..index.index import DocVersion, Index
from ..node import Node
from ..search import filter_source, parse_source_param, stored_fields_of
from .controller import Request, Response, param_list, route

WRITE_OPS = ("index", "create", "update", "delete")


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.illegal_argument(
            f"Failed to parse int parameter [{name}] with value [{value}]"
        ) from None


def _write_options(values: dict[str, Any], update: bool = False) -> dict[str, Any]:
    """Concurrency control and routing of a write, from URL parameters or a bulk item's metadata line."""
    options: dict[str, Any] = {
        "if_seq_no": _int_or_none(values.get("if_seq_no"), "if_seq_no"),
        "if_primary_term": _int_or_none(values.get("if_primary_term"), "if_primary_term"),
        "routing": values.get("routing"),
    }
    if not update:  # updates take no version: OpenSearch refuses it there
        options["version"] = _int_or_none(values.get("version"), "version")
        options["version_type"] = values.get("version_type")
    return options


def _after_write(index: Index, request: Request, body: dict[str, Any]) -> None:
    """Durability then visibility: fsync the translog, then honour ``?refresh`` (the document's shard
    only)."""
    index.sync()
    refresh = request.params.get("refresh")
    if refresh in ("", "true", "wait_for"):
        index.refresh({index.shard_of(body["_id"])})
        if refresh != "wait_for":
            body["forced_refresh"] = True


@route("/{index}/_doc/{id}", methods=("PUT", "POST"))
def index_with_id(node: Node, request: Request) -> Response:
    return _index(node, request, request.parts["id"], request.params.get("op_type", "index"))


@route("/{index}/_doc", methods=("POST",))
def index_without_id(node: Node, request: Request) -> Response:
    return _index(node, request, None, "create")


@route("/{index}/_create/{id}", methods=("PUT", "POST"))
def create(node: Node, request: Request) -> Response:
    return _index(node, request, request.parts["id"], "create")


def _index(node: Node, request: Request, doc_id: str | None, op_type: str) -> Response:
    if op_type not in ("index", "create"):
        raise errors.illegal_argument(f"opType must be 'create' or 'index', found: [{op_type}]")
    source = request.json(required=True)
    _check_pipeline(request.params.get("pipeline"))
    index = node.index_for_write(request.parts["index"])
    status, body = index.index_doc(doc_id, source, op_type=op_type, **_write_options(request.params))
    _after_write(index, request, body)
    return Response(status, body)


@route("/{index}/_doc/{id}", methods=("DELETE",))
def delete(node: Node, request: Request) -> Response:
    index = node.get_index(request.parts["index"])
    status, body = index.delete_doc(request.parts["id"], **_write_options(request.params))
    _after_write(index, request, body)
    return Response(status, body)


@route("/{index}/_update/{id}", methods=("POST",))
def update(node: Node, request: Request) -> Response:
    body = request.json(required=True)
    index = node.index_for_write(request.parts["index"])
    options = _write_options(request.params, update=True)
    status, result = index.update_doc(request.parts["id"], body, **options)
    _add_update_get(
        index,
        request.parts["id"],
        result,
        request.params.get("_source", body.get("_source") if isinstance(body, dict) else None),
    )
    _after_write(index, request, result)
    return Response(status, result)


def _add_update_get(index: Index, doc_id: str, result: dict[str, Any], source_param: Any) -> None:
    if source_param is None or source_param in (False, "false"):
        return
    fetch, includes, excludes = parse_source_param(source_param)
    entry = index.get_doc(doc_id)
    if entry is None or not fetch:
        return
    result["get"] = {
        "_seq_no": entry.seq_no,
        "_primary_term": entry.primary_term,
        "found": True,
        "_source": filter_source(entry.source or {}, includes, excludes),
    }


# ----- reads ------------------------------------------------------------------------------------------------


SOURCE_PARAMS = ("_source", "_source_includes", "_source_excludes")


def _source_requested(request: Request, spec: dict[str, Any] | None = None) -> bool:
    """Whether the request names ``_source`` explicitly (then stored_fields do not turn the source off)."""
    return any(p in request.params for p in SOURCE_PARAMS) or "_source" in (spec or {})


def _source_options(
    request: Request, spec: dict[str, Any] | None = None
) -> tuple[bool, list[str], list[str]]:
    spec = spec or {}
    fetch, includes, excludes = parse_source_param(spec.get("_source", request.params.get("_source")))
    if "_source_includes" in request.params:
        fetch, includes = True, param_list(request.params["_source_includes"])
    if "_source_excludes" in request.params:
        fetch, excludes = True, param_list(request.params["_source_excludes"])
    return fetch, includes, excludes


def _render_doc(
    index: Index,
    doc_id: str,
    entry: DocVersion | None,
    fetch: bool,
    includes: list[str],
    excludes: list[str],
    stored_fields: Any = None,
    source_requested: bool = False,
) -> dict[str, Any]:
    if entry is None:
        return {"_index": index.name, "_id": doc_id, "found": False}
    out: dict[str, Any] = {
        "_index": index.name,
        "_id": entry.id,
        "_version": entry.version,
        "_seq_no": entry.seq_no,
        "_primary_term": entry.primary_term,
        "found": True,
    }
    if entry.routing is not None:
        out["_routing"] = entry.routing
    fields: dict[str, list[Any]] = {}
    if stored_fields is not None:
        names = stored_fields if isinstance(stored_fields, list) else param_list(stored_fields)
        if "_source" not in names and not source_requested:
            fetch = False
        fields = stored_fields_of(entry, index.mapping, names)
    if fetch and index.mapping.source_enabled():
        out["_source"] = filter_source(entry.source or {}, includes, excludes)
    if fields:
        out["fields"] = fields
    return out


def _realtime_get(
    index: Index, request: Request, doc_id: str, realtime: bool | None = None
) -> DocVersion | None:
    if request.flag("refresh"):
        index.refresh()
    rt = request.flag("realtime", True) if realtime is None else realtime
    return index.get_doc(doc_id, realtime=rt)


@route("/{index}/_doc/{id}", methods=("GET", "HEAD"))
def get(node: Node, request: Request) -> Response:
    index = node.get_index(request.parts["index"])
    doc_id = request.parts["id"]
    entry = _realtime_get(index, request, doc_id)
    if request.method == "HEAD":
        return Response(200 if entry is not None else 404)
    fetch, includes, excludes = _source_options(request)
    body = _render_doc(index, doc_id, entry, fetch, includes, excludes, request.params.get("stored_fields"),
                       _source_requested(request))
    return Response(200 if entry is not None else 404, body)


@route("/{index}/_source/{id}", methods=("GET", "HEAD"))
def get_source(node: Node, request: Request) -> Response:
    index = node.get_index(request.parts["index"])
    entry = _realtime_get(index, request, request.parts["id"])
    if entry is None:
        if request.method == "HEAD":
            return Response(404)
        raise errors.resource_not_found(f"Document not found [{index.name}]/[{request.parts['id']}]")
    if request.method == "HEAD":
        return Response(200)
    _, includes, excludes = _source_options(request)
    return Response(200, filter_source(entry.source or {}, includes, excludes))


@route("/_mget", "/{index}/_mget", methods=("GET", "POST"))
def mget(node: Node, request: Request) -> Response:
    body = request.json(required=True)
    default_index = request.parts.get("index")
    if not isinstance(body, dict):
        raise errors.parsing("request body must be an object")
    docs = body.get("docs")
    if docs is None and "ids" in body:
        if not isinstance(body["ids"], list):
            raise errors.parsing("ids must be an array")
        docs = [{"_id": i} for i in body["ids"]]
        if not body["ids"]:
            raise errors.validation("no documents to get")
    if docs is None:
        unknown = [key for key in body if key not in ("docs", "ids")]
        if unknown:
            raise errors.parsing(
                f"unknown key [{unknown[0]}] for a {_json_token(body[unknown[0]])}, expected [docs] or [ids]"
            )
        docs = []
    if not isinstance(docs, list):
        raise errors.parsing("docs must be an array")
    problems = []
    for position, spec in enumerate(docs):
        if not isinstance(spec, dict):
            raise errors.illegal_argument("docs array element should include an object")
        for key in ("_index", "_id", "routing"):  # MultiGetRequest reads them as text
            if isinstance(spec.get(key), dict | list):
                kind = "OBJECT" if isinstance(spec[key], dict) else "ARRAY"
                raise errors.EngineError(400, "parse_exception",
                                         f"No parameter named [{key}] and type {kind}")
            if spec.get(key) is not None:
                spec[key] = _json_text(spec[key])
        if spec.get("_index", default_index) is None:
            problems.append(f"index is missing for doc {position}")
        if spec.get("_id") is None:
            problems.append(f"id is missing for doc {position}")
    if not docs:
        raise errors.validation("no documents to get")
    if problems:
        raise errors.validation(*problems)
    out = []
    realtime = request.flag("realtime", True)
    refreshed: set[str] = set()
    for spec in docs:
        name = spec.get("_index", default_index)
        doc_id = str(spec["_id"])
        try:
            index = node.get_index(name)
        except errors.EngineError as exc:
            out.append({"_index": name, "_id": doc_id, "error": exc.cause()})
            continue
        if request.flag("refresh") and index.name not in refreshed:
            index.refresh()
            refreshed.add(index.name)
        entry = index.get_doc(doc_id, realtime=realtime)
        fetch, includes, excludes = _source_options(request, spec)
        stored = spec.get("stored_fields", request.params.get("stored_fields"))
        out.append(_render_doc(index, doc_id, entry, fetch, includes, excludes, stored,
                               _source_requested(request, spec)))
    return Response(200, {"docs": out})


# ----- bulk -------------------------------------------------------------------------------------------------


@route("/_bulk", "/{index}/_bulk", methods=("POST", "PUT"))
def bulk(node: Node, request: Request) -> Response:
    started = time.perf_counter()
    if not request.body:
        raise errors.EngineError(400, "parse_exception", "request body is required")
    lines = request.ndjson()
    default_index = request.parts.get("index")
    items: list[dict[str, Any]] = []
    touched: dict[str, Index] = {}
    touched_shards: dict[str, set[int]] = {}
    position = 0
    actions = _parse_bulk(lines, default_index)
    if not actions:
        raise errors.validation("no requests added")
    default_pipeline = request.params.get("pipeline")
    require_alias = request.flag("require_alias")
    source_default: Any = request.params.get("_source")
    if "_source_includes" in request.params or "_source_excludes" in request.params:
        source_default = {"includes": param_list(request.params.get("_source_includes")),
                          "excludes": param_list(request.params.get("_source_excludes"))}
    for action, meta, payload, _line in actions:
        position += 1
        name = meta.get("_index", default_index)
        doc_id = meta.get("_id")
        try:
            if isinstance(payload, errors.EngineError):
                raise payload
            assert name is not None  # _parse_bulk refused an action without an index
            if action in ("index", "create"):
                _check_pipeline(meta.get("pipeline", default_pipeline))
            if action == "delete":
                index = node.get_index(name)
            else:
                if meta.get("require_alias", require_alias) and name not in node.alias_names():
                    raise _not_an_alias(name)
                index = node.index_for_write(name)
            touched[index.name] = index
            status, result = _bulk_item(index, action, doc_id, meta, payload, source_default)
            touched_shards.setdefault(index.name, set()).add(index.shard_of(result["_id"]))
            result["status"] = status
            items.append({_item_key(action, meta): result})
        except errors.EngineError as exc:
            item: dict[str, Any] = {"_index": name, "_id": doc_id, "status": exc.status, "error": exc.cause()}
            items.append({_item_key(action, meta): item})
    for index in touched.values():
        index.sync()
    refresh = request.params.get("refresh")
    if refresh in ("", "true", "wait_for"):
        for index in touched.values():
            index.refresh(touched_shards.get(index.name, set()))
    return Response(200, {
        "took": int((time.perf_counter() - started) * 1000),
        "errors": any("error" in next(iter(item.values())) for item in items),
        "items": items,
    })


def _check_pipeline(pipeline: str | None) -> None:
    """The engine has no ingest pipelines: a write naming one fails as OpenSearch fails it for a pipeline that
    does not exist, instead of indexing the document unprocessed (``_none`` means no pipeline)."""
    if pipeline is not None and pipeline != "_none":
        raise errors.illegal_argument(f"pipeline with id [{pipeline}] does not exist")


def _item_key(action: str, meta: dict[str, Any]) -> str:
    """The key of a bulk response item: the operation's type (an ``index`` with ``op_type: create`` is a
    create)."""
    return "create" if action == "index" and meta.get("op_type") == "create" else action


def _not_an_alias(name: str) -> errors.EngineError:
    error = errors.index_not_found(name)
    error.reason = (
        f"no such index [{name}] and [require_alias] request flag is [true] and [{name}] is not an alias"
    )
    return error


def _parse_bulk(lines: list[bytes], default_index: str | None) -> list[tuple[str, dict[str, Any], Any, int]]:
    """(action, metadata, payload or the item's parse error, line number), as OpenSearch's BulkRequestParser
    reads them: ``lines`` is the body split on newlines, the last piece being what follows the final newline.

    Malformed metadata fails the whole request before anything is written (OpenSearch parses the body at the
    REST layer); a document that does not parse fails its own item only.
    """
    if lines[-1]:  # OpenSearch: every line, the last included, ends with a newline
        raise errors.illegal_argument("The bulk request must be terminated by a newline [\\n]")
    lines = lines[:-1]
    actions = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        try:
            header = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise errors.illegal_argument(
                f"Malformed action/metadata line [{i}], expected START_OBJECT or END_OBJECT but found "
                f"[VALUE_STRING]"
            ) from None
        if not isinstance(header, dict):
            raise errors.illegal_argument(
                f"Malformed action/metadata line [{i}], expected START_OBJECT or END_OBJECT but found "
                f"[{_json_token(header)}]"
            )
        if not header:
            raise errors.illegal_argument(
                f"Malformed action/metadata line [{i}], expected FIELD_NAME but found [END_OBJECT]"
            )
        if len(header) != 1:
            raise errors.illegal_argument(
                f"Malformed action/metadata line [{i}], expected END_OBJECT but found [FIELD_NAME]"
            )
        action, given = next(iter(header.items()))
        if action not in WRITE_OPS:
            raise errors.illegal_argument(
                f"Malformed action/metadata line [{i}], expected field [create], [delete], [index] or "
                "[update] but "
                f"found [{action}]"
            )
        if not isinstance(given, dict):
            raise errors.illegal_argument(
                f"Malformed action/metadata line [{i}], expected START_OBJECT or END_OBJECT but found "
                f"[{_json_token(given)}]"
            )
        meta = _bulk_metadata(given, i, action)
        if meta.get("_index", default_index) is None:
            raise errors.validation("index is missing")
        payload: Any = None
        if action != "delete":
            if i >= n:  # OpenSearch drops a last action whose source line is missing
                break
            raw = lines[i].strip()
            i += 1
            if raw:  # an empty source is refused by the item itself ("document is empty")
                try:  # (its nesting is checked where every write is: Index.index_doc)
                    payload = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    payload = errors.mapper_parsing(f"failed to parse: {exc}")
            if (
                action == "update"
                and payload is not None
                and not isinstance(payload, errors.EngineError)
                and not isinstance(payload, dict)
            ):
                payload = errors.mapper_parsing("failed to parse update request")
        actions.append((action, meta, payload, i))
    return actions


# How BulkRequestParser reads each key of an action's metadata (any other key refuses the request).
_META_TEXT = ("_index", "_id", "routing", "op_type", "pipeline", "version_type")
_META_LONG = ("version", "if_seq_no", "if_primary_term")
_VERSION_TYPES = {"internal": "internal", "external": "external", "external_gt": "external",
                  "external_gte": "external_gte"}


def _bulk_metadata(given: dict[str, Any], line: int, action: str) -> dict[str, Any]:
    """An action's metadata with every value of the type OpenSearch reads it as (text for names, ids and
    routing, longs for versions and sequence numbers), so that nothing but a string reaches the index as an
    id or a routing value; the errors are those of BulkRequestParser, and fail the whole request."""
    meta: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:  # VALUE_NULL: the default stays, whatever the key
            continue
        if key == "_source":
            meta[key] = _fetch_source(value)
            continue
        if isinstance(value, dict | list):
            raise errors.illegal_argument(
                f"Malformed action/metadata line [{line}], expected a simple value for field [{key}] but "
                f"found [{_json_token(value)}]"
            )
        if key in _META_TEXT:
            meta[key] = _json_text(value)
        elif key in _META_LONG:
            meta[key] = _json_integer(value, key, 64)
        elif key == "retry_on_conflict":
            meta[key] = _json_integer(value, key, 32)
        elif key == "require_alias":
            meta[key] = _json_boolean(value)
        else:
            raise errors.illegal_argument(
                f"Action/metadata line [{line}] contains an unknown parameter [{key}]"
            )
    if "version_type" in meta:
        version_type = _VERSION_TYPES.get(meta["version_type"])
        if version_type is None:
            raise errors.illegal_argument(f"No version type match [{meta['version_type']}]")
        meta["version_type"] = version_type
    if action == "index" and "op_type" in meta:
        op_type = meta["op_type"].lower()
        if op_type not in ("index", "create"):
            raise errors.illegal_argument(f"opType must be 'create' or 'index', found: [{meta['op_type']}]")
        meta["op_type"] = op_type
    if action == "update" and (meta.get("version") is not None
                               or meta.get("version_type", "internal") != "internal"):
        raise errors.illegal_argument(
            "Update requests do not support versioning. Please use `if_seq_no` and `if_primary_term` instead"
        )
    return meta


def _json_text(value: Any) -> str:
    """Jackson's ``text()`` of a scalar: strings as they are, numbers and booleans as written."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_integer(value: Any, name: str, bits: int) -> int:
    """XContentParser ``longValue()`` / ``intValue()`` with coercion: integral numbers, decimals truncated,
    numeric strings; anything else or out of range is refused."""
    number: Any = value
    if isinstance(value, bool):
        raise errors.illegal_argument(
            f"Current token (VALUE_{str(value).upper()}) not numeric, can not use numeric value accessors "
            f"for field [{name}]"
        )
    if isinstance(value, str):
        try:
            number = int(value.strip()) if re.fullmatch(r"\s*[+-]?\d+\s*", value) else float(value)
        except ValueError:
            raise errors.illegal_argument(f'For input string: "{value}"') from None
    out_of_range = errors.illegal_argument(
        f"Value [{value}] is out of range for a{'' if bits == 64 else 'n'} {'long' if bits == 64 else 'int'}"
    )
    if isinstance(number, float):
        if not math.isfinite(number):
            raise out_of_range
        number = int(number)
    if not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
        raise out_of_range
    return int(number)


def _json_boolean(value: Any) -> bool:
    """XContentParser ``booleanValue()``: a JSON boolean or the strings ``true`` / ``false``."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise errors.illegal_argument(
        f"Failed to parse value [{_json_text(value)}] as only [true] or [false] are allowed."
    )


def _fetch_source(value: Any) -> Any:
    """A ``_source`` of an action's metadata as FetchSourceContext.fromXContent accepts it."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, dict):
        for key, part in value.items():
            if key not in ("includes", "include", "excludes", "exclude"):
                raise errors.parsing(f"Unknown key for a START_OBJECT in [{key}].")
            if not isinstance(part, str) and not (
                isinstance(part, list) and all(isinstance(v, str) for v in part)
            ):
                raise errors.parsing(f"Unknown key for a {_json_token(part)} in [{key}].")
        return value
    raise errors.parsing(
        "Expected one of [VALUE_BOOLEAN, VALUE_STRING, START_ARRAY, START_OBJECT] but found "
        f"[{_json_token(value)}]"
    )


def _json_token(value: Any) -> str:
    """The Jackson token name OpenSearch's parsers report for a JSON value."""
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    return "VALUE_NULL" if value is None else "VALUE_NUMBER"


def _bulk_item(index: Index, action: str, doc_id: str | None, meta: dict[str, Any],
               payload: Any, source_default: Any = None) -> tuple[int, dict[str, Any]]:
    if action in ("index", "create"):
        op_type = "create" if action == "create" else meta.get("op_type", "index")
        return index.index_doc(doc_id, payload, op_type=op_type, **_write_options(meta))
    if doc_id is None:
        raise errors.validation("id is missing")
    if action == "delete":
        return index.delete_doc(doc_id, **_write_options(meta))
    status, result = index.update_doc(doc_id, payload, **_write_options(meta, update=True))
    # The item's body, then its metadata line, then the request's ?_source say what the item's `get` returns.
    source_param = meta.get("_source", source_default)
    if isinstance(payload, dict) and "_source" in payload:
        source_param = payload["_source"]
    _add_update_get(index, doc_id, result, source_param)
    return status, result
