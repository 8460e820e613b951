"""Index administration routes: create/delete/get/open/close, refresh and flush, mappings, index and cluster
settings, aliases, _stats.

(Registered after :mod:`.cluster`, in the order the routes had in one module: ties between routes with as many
literal segments resolve in registration order.)
"""

from __future__ import annotations

import copy
import fnmatch
import time
from typing import Any

from .. import errors
from ..index.index import Index
from ..index.mapping_merge import is_typed_mapping
from ..index.settings import flatten, nest
from ..node import Node, alias_metadata
from .controller import Request, Response, deprecation_warning, ok, param_list, route

# ----- index lifecycle --------------------------------------------------------------------------------------


@route("/{index}", methods=("PUT",))
def create_index(node: Node, request: Request) -> Response:
    body = request.json()
    if body is not None and not isinstance(body, dict):
        raise errors.parsing("request body must be an object")
    if body is not None and is_typed_mapping(body.get("mappings")):
        raise errors.illegal_argument("The mapping definition cannot be nested under a type [_doc] unless "
                                      "include_type_name is set to true.")
    index = node.create_index(request.parts["index"], body)
    headers: dict[str, str] = {}
    if index.settings.flat.get("index.soft_deletes.enabled") == "false":
        headers = deprecation_warning(
            "Creating indices with soft-deletes disabled is deprecated and will be removed in future "
            "OpenSearch "
            "versions. Please do not specify value for setting [index.soft_deletes.enabled] of index "
            f"[{index.name}]."
        )
    return Response(
        200, {"acknowledged": True, "shards_acknowledged": True, "index": index.name}, headers=headers
    )


@route("/{index}", methods=("DELETE",))
def delete_index(node: Node, request: Request) -> Response:
    expression = request.parts["index"]
    indices = node.resolve(expression, ignore_unavailable=request.params.get("ignore_unavailable") == "true",
                           include_closed=True, expand_wildcards="all", skip_quarantined=True)
    for part in expression.split(","):
        if part in node.alias_names() and part not in node.index_names():
            raise errors.illegal_argument(
                f"The provided expression [{part}] matches an alias, specify the corresponding concrete "
                "indices "
                f"instead."
            )
    with node.metadata_change():  # DELETE a,b: one commit
        for name in [i.name for i in indices] + [q.name for q in node.quarantined_matching(expression)]:
            node.delete_index(name)
    return ok()


@route("/{index}", methods=("GET", "HEAD"))
def get_index(node: Node, request: Request) -> Response:
    try:
        indices = node.resolve(
            request.parts["index"],
            ignore_unavailable=request.params.get("ignore_unavailable") == "true",
            include_closed=True,
            expand_wildcards="all",
        )
    except errors.EngineError:
        if request.method == "HEAD":
            return Response(404)
        raise
    if request.method == "HEAD":
        return Response(200 if indices else 404)
    flat = request.flag("flat_settings")
    return Response(200, {
        i.name: {"aliases": copy.deepcopy(i.aliases), "mappings": i.mapping.to_json(),
                 "settings": i.settings.render(flat)}
        for i in indices
    })


@route("/{index}/_close", methods=("POST",))
def close_index(node: Node, request: Request) -> Response:
    indices = node.resolve(request.parts["index"], include_closed=True, expand_wildcards="all")
    with node.metadata_change():
        for index in indices:
            index.refresh()
            index.closed = True
    return Response(200, {"acknowledged": True, "shards_acknowledged": True,
                          "indices": {i.name: {"closed": True} for i in indices}})


@route("/{index}/_open", methods=("POST",))
def open_index(node: Node, request: Request) -> Response:
    indices = node.resolve(request.parts["index"], include_closed=True, expand_wildcards="all")
    with node.metadata_change():
        for index in indices:
            index.closed = False
    return Response(200, {"acknowledged": True, "shards_acknowledged": True})


@route("/_refresh", "/{index}/_refresh", methods=("POST", "GET"))
def refresh(node: Node, request: Request) -> Response:
    indices = node.resolve(
        request.parts.get("index"),
        ignore_unavailable=request.params.get("ignore_unavailable") == "true",
        allow_no_indices=request.params.get("allow_no_indices", "true") == "true",
    )
    for index in indices:
        index.refresh()
    shards = sum(i.settings.number_of_shards * (1 + i.settings.number_of_replicas) for i in indices)
    successful = sum(i.settings.number_of_shards for i in indices)
    return Response(200, {"_shards": {"total": shards, "successful": successful, "failed": 0}})


@route("/_flush", "/{index}/_flush", "/_forcemerge", "/{index}/_forcemerge", methods=("POST", "GET"))
def flush(node: Node, request: Request) -> Response:
    indices = node.resolve(request.parts.get("index"))
    for index in indices:
        index.sync()
    count = sum(i.settings.number_of_shards for i in indices)
    return Response(200, {"_shards": {"total": count, "successful": count, "failed": 0}})


# ----- mappings ---------------------------------------------------------------------------------------------


@route("/_mapping", "/{index}/_mapping")
def get_mapping(node: Node, request: Request) -> Response:
    indices = node.resolve(
        request.parts.get("index"),
        ignore_unavailable=request.params.get("ignore_unavailable") == "true",
        allow_no_indices=request.params.get("allow_no_indices", "true") == "true",
        include_closed=True,
        expand_wildcards="all",
    )
    return Response(200, {i.name: {"mappings": i.mapping.to_json()} for i in indices})


@route("/{index}/_mapping", methods=("PUT", "POST"))
def put_mapping(node: Node, request: Request) -> Response:
    body = request.json(required=True)
    if is_typed_mapping(body):
        raise errors.illegal_argument("Types cannot be provided in put mapping requests")
    indices = node.resolve(request.parts["index"], include_closed=True, expand_wildcards="all")
    if not indices:
        raise errors.index_not_found(request.parts["index"])
    # Validate against every index first, so that a conflict changes none of them.
    for index in indices:
        trial = copy.deepcopy(index.mapping)
        trial.merge(body)
    with node.metadata_change():
        for index in indices:
            index.mapping.merge(body)
    return ok()


# ----- settings ---------------------------------------------------------------------------------------------


@route("/_settings", "/{index}/_settings", "/{index}/_settings/{name}", "/_settings/{name}")
def get_settings(node: Node, request: Request) -> Response:
    indices = node.resolve(
        request.parts.get("index"),
        ignore_unavailable=request.params.get("ignore_unavailable") == "true",
        include_closed=True,
        expand_wildcards="all",
    )
    names = [n for n in param_list(request.parts.get("name")) if n != "_all"]
    flat = request.flag("flat_settings")
    out = {}
    for index in indices:
        settings = index.settings.flat
        if names:
            settings = {k: v for k, v in settings.items() if any(fnmatch.fnmatchcase(k, n) for n in names)}
            if not settings:
                continue
        out[index.name] = {"settings": dict(sorted(settings.items())) if flat else nest(settings)}
    return Response(200, out)


@route("/_settings", "/{index}/_settings", methods=("PUT",))
def put_settings(node: Node, request: Request) -> Response:
    body = request.json(required=True)
    if isinstance(body, dict) and set(body) == {"settings"}:
        body = body["settings"]
    indices = node.resolve(request.parts.get("index"), include_closed=True, expand_wildcards="all")
    preserve = request.flag("preserve_existing")
    with node.metadata_change():  # one index refusing the update leaves every one as it was
        for index in indices:
            update = body
            if preserve:
                update = {k: v for k, v in flatten(body).items() if k not in index.settings.flat}
            index.settings.update(update, index_open=not index.closed)
    return ok()


@route("/_cluster/settings")
def get_cluster_settings(node: Node, request: Request) -> Response:
    flat = request.flag("flat_settings")
    return Response(200, {k: (v if flat else nest(v)) for k, v in node.cluster_settings.items()})


@route("/_cluster/settings", methods=("PUT",))
def put_cluster_settings(node: Node, request: Request) -> Response:
    body = request.json(required=True)
    _check_cluster_settings_body(body)
    out: dict[str, Any] = {"acknowledged": True}
    with node.metadata_change():  # the persistent ones are committed; the transient ones live in memory
        _apply_cluster_settings(node, body, out)
    return Response(200, out)


def _check_cluster_settings_body(body: Any) -> None:
    """The body as OpenSearch's ClusterUpdateSettingsRequest parser takes it: an object of `persistent` and
    `transient` objects (or null); anything else a 400 before any setting is applied."""
    if not isinstance(body, dict):
        raise errors.EngineError(
            400, "x_content_parse_exception", "[cluster_update_settings_request] expected an object"
        )
    for key, value in body.items():
        if key not in ("persistent", "transient"):
            raise errors.EngineError(
                400, "x_content_parse_exception", f"[cluster_update_settings_request] unknown field [{key}]"
            )
        if value is not None and not isinstance(value, dict):
            kinds = {str: "VALUE_STRING", list: "START_ARRAY", bool: "VALUE_BOOLEAN"}
            kind = kinds.get(type(value), "VALUE_NUMBER")
            raise errors.EngineError(
                400,
                "x_content_parse_exception",
                f"[cluster_update_settings_request] {key} doesn't support values of type: {kind}",
            )


def _apply_cluster_settings(node: Node, body: dict[str, Any], out: dict[str, Any]) -> None:
    for scope in ("persistent", "transient"):
        flat: dict[str, Any] = {}
        for key, value in (body.get(scope) or {}).items():
            if isinstance(value, dict):
                for sub, sub_value in _flatten_plain(value, key).items():
                    flat[sub] = sub_value
            else:
                flat[key] = value
        for key, value in flat.items():
            if value is None:
                node.cluster_settings[scope].pop(key, None)
            else:
                node.cluster_settings[scope][key] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
        out[scope] = nest(
            {k: node.cluster_settings[scope][k] for k in flat if k in node.cluster_settings[scope]}
        )


def _flatten_plain(value: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in value.items():
        if isinstance(sub, dict):
            out.update(_flatten_plain(sub, f"{prefix}.{key}"))
        else:
            out[f"{prefix}.{key}"] = sub
    return out


# ----- aliases ----------------------------------------------------------------------------------------------


@route("/{index}/_alias/{name}", "/{index}/_aliases/{name}", methods=("PUT", "POST"))
def put_alias(node: Node, request: Request) -> Response:
    body = request.json() or {}
    indices = node.resolve(request.parts["index"], include_closed=True, expand_wildcards="all")
    with node.metadata_change():
        for name in param_list(request.parts["name"]):
            if name in node.index_names():
                raise errors.invalid_alias_name(name)
            for index in indices:
                index.aliases[name] = alias_metadata(body)
    return ok()


@route("/{index}/_alias/{name}", "/{index}/_aliases/{name}", methods=("DELETE",))
def delete_alias(node: Node, request: Request) -> Response:
    indices = node.resolve(request.parts["index"], include_closed=True, expand_wildcards="all")
    names = param_list(request.parts["name"])
    removed = False
    with node.metadata_change():
        for index in indices:
            for name in list(index.aliases):
                if name in names or "_all" in names or "*" in names:
                    del index.aliases[name]
                    removed = True
    if not removed:
        raise errors.EngineError(404, "aliases_not_found_exception", f"aliases [{','.join(names)}] missing",
                                 **{"resource.type": "aliases", "resource.id": ",".join(names)})
    return ok()


@route(
    "/_alias",
    "/_alias/{name}",
    "/{index}/_alias/{name}",
    "/{index}/_alias",
    "/_aliases",
    "/{index}/_aliases",
    methods=("GET", "HEAD"),
)
def get_alias(node: Node, request: Request) -> Response:
    indices = node.resolve(request.parts.get("index"), include_closed=True, expand_wildcards="all")
    names = param_list(request.parts.get("name"))
    out: dict[str, Any] = {}
    found = False
    for index in indices:
        aliases = {
            a: spec for a, spec in index.aliases.items()
            if not names or any(fnmatch.fnmatchcase(a, n) or n == "_all" for n in names)
        }
        if aliases:
            found = True
        if aliases or not names:
            out[index.name] = {"aliases": copy.deepcopy(aliases)}
    if request.method == "HEAD":
        return Response(200 if found or not names else 404)
    if names and not found:
        return Response(404, {"error": f"alias [{','.join(names)}] missing", "status": 404})
    return Response(200, out)


@route("/_aliases", methods=("POST",))
def update_aliases(node: Node, request: Request) -> Response:
    """Atomic alias actions (add / remove / remove_index), e.g. the zero-downtime swap after a reindex."""
    body = request.json(required=True)
    actions = body.get("actions") if isinstance(body, dict) else None
    if not isinstance(actions, list) or not actions:
        raise errors.validation("no actions specified")
    planned: list[tuple[str, Index, str | None, dict[str, Any]]] = []
    for action in actions:
        if not isinstance(action, dict) or len(action) != 1:
            raise errors.parsing("[aliases] each action must be an object with exactly one action type")
        kind, spec = next(iter(action.items()))
        if kind not in ("add", "remove", "remove_index"):
            raise errors.illegal_argument(f"[aliases] unknown action [{kind}]")
        index_names = spec.get("indices") or [spec.get("index")]
        alias_names = spec.get("aliases") or ([spec.get("alias")] if spec.get("alias") else [None])
        for index_name in index_names:
            if index_name is None:
                raise errors.validation("One of [index] or [indices] is required")
            for index in node.resolve(index_name, include_closed=True, expand_wildcards="all"):
                for alias in alias_names:
                    if kind != "remove_index" and alias is None:
                        raise errors.validation("One of [alias] or [aliases] is required")
                    if (
                        kind == "remove"
                        and alias not in index.aliases
                        and spec.get("must_exist") is not False
                    ):
                        if spec.get("must_exist"):
                            raise errors.EngineError(
                                404, "aliases_not_found_exception", f"aliases [{alias}] missing"
                            )
                    planned.append((kind, index, alias, alias_metadata(spec) if kind == "add" else {}))
    removed = {index.name for kind, index, _, _ in planned if kind == "remove_index"}
    for kind, _, alias, _ in planned:
        if kind == "add" and alias in node.index_names() - removed:
            raise errors.invalid_alias_name(alias)  # type: ignore[arg-type]
    # Every action in one commit: a crash leaves the aliases (and indices) of before or of after, never
    # an alias on no index, nor an alias and an index of one name (the migration's swap).
    with node.metadata_change():
        for kind, index, alias, extra in planned:
            if kind == "add":
                index.aliases[alias] = extra  # type: ignore[index]
            elif kind == "remove":
                index.aliases.pop(alias, None)  # type: ignore[arg-type]
            elif index.name in node.indices:
                node.delete_index(index.name)
    return ok()


@route("/_stats", "/{index}/_stats")
def stats(node: Node, request: Request) -> Response:
    indices = node.resolve(request.parts.get("index"))
    out: dict[str, Any] = {}
    for index in indices:
        docs = {"count": index.doc_count(), "deleted": index.num_deleted}
        out[index.name] = {"uuid": index.uuid, "primaries": {"docs": docs}, "total": {"docs": docs}}
    total_docs = sum(v["primaries"]["docs"]["count"] for v in out.values())
    return Response(200, {
        "_shards": {"total": len(out), "successful": len(out), "failed": 0},
        "_all": {"primaries": {"docs": {"count": total_docs}}, "total": {"docs": {"count": total_docs}}},
        "indices": out,
        "took": int(time.time()) and 0,
    })
