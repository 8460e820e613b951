"""Document APIs: index, create, get, exists, delete, update, _source, _mget and _bulk."""

from __future__ import annotations

import time
from typing import Any

import orjson

from . import errors
from .index import DocVersion, Index
from .node import Node
from .rest import Request, Response, param_list, route
from .search import stored_fields_of
from .source_filter import filter_source, parse_source_param

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
    lines = request.ndjson()
    default_index = request.parts.get("index")
    items: list[dict[str, Any]] = []
    touched: dict[str, Index] = {}
    touched_shards: dict[str, set[int]] = {}
    position = 0
    actions = _parse_bulk(lines, default_index)
    require_alias = request.flag("require_alias")
    source_default: Any = request.params.get("_source")
    if "_source_includes" in request.params or "_source_excludes" in request.params:
        source_default = {"includes": param_list(request.params.get("_source_includes")),
                          "excludes": param_list(request.params.get("_source_excludes"))}
    for action, meta, payload, _line in actions:
        position += 1
        name = meta.get("_index", default_index)
        doc_id = meta.get("_id")
        doc_id = str(doc_id) if doc_id is not None else None
        try:
            if isinstance(payload, errors.EngineError):
                raise payload
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
    """(action, metadata, payload or the item's parse error, line number); malformed metadata fails the
    request."""
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
        action, meta = next(iter(header.items()))
        if action not in WRITE_OPS:
            raise errors.illegal_argument(
                f"Malformed action/metadata line [{i}], expected field [create], [delete], [index] or "
                "[update] but "
                f"found [{action}]"
            )
        if not isinstance(meta, dict):
            raise errors.illegal_argument(f"Malformed action/metadata line [{i}], expected START_OBJECT")
        if meta.get("_index", default_index) is None:
            raise errors.validation("index is missing")
        payload: Any = None
        if action != "delete":
            while i < n and not lines[i].strip():
                i += 1
            if i >= n:
                raise errors.illegal_argument("The bulk request must be terminated by a newline [\\n]")
            raw = lines[i]
            i += 1
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                payload = errors.mapper_parsing(f"failed to parse: {exc}")
            if (
                action == "update"
                and not isinstance(payload, errors.EngineError)
                and not isinstance(payload, dict)
            ):
                payload = errors.mapper_parsing("failed to parse update request")
        actions.append((action, meta, payload, i))
    return actions


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
