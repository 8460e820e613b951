"""Cluster routes: the root info, _cluster/health, _cat/indices."""

from __future__ import annotations

import fnmatch
from typing import Any

from .. import errors
from ..index.index import Index
from ..index.values import format_date
from ..node import Node, QuarantinedIndex
from .controller import Request, Response, param_list, route

VERSION = {
    "distribution": "opensearch",
    "number": "3.3.0",
    "build_type": "tar",
    "build_hash": "nirbridge-engine",
    "build_date": "2025-01-01T00:00:00.000000Z",
    "build_snapshot": False,
    "lucene_version": "10.3.1",
    "minimum_wire_compatibility_version": "2.19.0",
    "minimum_index_compatibility_version": "2.0.0",
}


@route("/", methods=("GET", "HEAD"))
def info(node: Node, request: Request) -> Response:
    if request.method == "HEAD":
        return Response(200)
    return Response(200, {
        "name": node.name,
        "cluster_name": "nirbridge",
        "cluster_uuid": node.cluster_uuid,
        "version": VERSION,
        "tagline": "The OpenSearch Project: https://opensearch.org/",
    })


# ----- health and cat ---------------------------------------------------------------------------------------


def _index_health(index: Index) -> str:
    """One node holds every primary; replicas stay unassigned. Closed indices are replicated like open ones
    (OpenSearch 7.2+), so their health is computed the same way."""
    return "green" if index.settings.number_of_replicas == 0 else "yellow"


HEALTH_STATUSES = ("green", "yellow", "red")


@route("/_cluster/health", "/_cluster/health/{index}")
def health(node: Node, request: Request) -> Response:
    expression = request.parts.get("index")
    indices = node.resolve(expression, include_closed=True, expand_wildcards="all",
                           skip_quarantined=True) if expression else list(node.indices.values())
    red = node.quarantined_matching(expression)
    shards = sum(i.settings.number_of_shards for i in indices)
    unassigned = sum(i.settings.number_of_shards * i.settings.number_of_replicas for i in indices)
    unassigned += sum(_red_shards(q) * (1 + _red_replicas(q)) for q in red)  # no copy of them is active
    statuses = [_index_health(i) for i in indices]
    status = "red" if red else "yellow" if "yellow" in statuses else "green"
    wait = request.params.get("wait_for_status")
    if wait is not None and wait not in HEALTH_STATUSES:
        raise errors.illegal_argument(f"unknown cluster health status [{wait}]")
    order = {"green": 0, "yellow": 1, "red": 2}
    timed_out = bool(wait) and order[status] > order[wait]  # type: ignore[index]
    body: dict[str, Any] = {
        "cluster_name": "nirbridge",
        "status": status,
        "timed_out": timed_out,
        "number_of_nodes": 1,
        "number_of_data_nodes": 1,
        "discovered_master": True,
        "discovered_cluster_manager": True,
        "active_primary_shards": shards,
        "active_shards": shards,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": unassigned,
        "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0,
        "number_of_in_flight_fetch": 0,
        "task_max_waiting_in_queue_millis": 0,
        "active_shards_percent_as_number": 100.0 if not shards + unassigned else
        100.0 * shards / (shards + unassigned),
    }
    report = _quarantine_report(node, red, indices)
    if report:
        body["nirbridge"] = report
    level = request.params.get("level", "cluster")
    if level in ("indices", "shards"):
        body["indices"] = {}
        for index in indices:
            entry: dict[str, Any] = {
                "status": _index_health(index),
                "number_of_shards": index.settings.number_of_shards,
                "number_of_replicas": index.settings.number_of_replicas,
                "active_primary_shards": index.settings.number_of_shards,
                "active_shards": index.settings.number_of_shards,
                "relocating_shards": 0,
                "initializing_shards": 0,
                "unassigned_shards": index.settings.number_of_shards * index.settings.number_of_replicas,
            }
            if level == "shards":
                entry["shards"] = {
                    str(s): {"status": entry["status"], "primary_active": True, "active_shards": 1,
                             "relocating_shards": 0, "initializing_shards": 0,
                             "unassigned_shards": index.settings.number_of_replicas}
                    for s in range(index.settings.number_of_shards)
                }
            body["indices"][index.name] = entry
        for q in red:
            shards_of = _red_shards(q)
            body["indices"][q.name] = {
                "status": "red",
                "number_of_shards": shards_of,
                "number_of_replicas": _red_replicas(q),
                "active_primary_shards": 0,
                "active_shards": 0,
                "relocating_shards": 0,
                "initializing_shards": 0,
                "unassigned_shards": shards_of * (1 + _red_replicas(q)),
            }
            if level == "shards":
                body["indices"][q.name]["shards"] = {
                    str(s): {"status": "red", "primary_active": False, "active_shards": 0,
                             "relocating_shards": 0, "initializing_shards": 0,
                             "unassigned_shards": 1 + _red_replicas(q)}
                    for s in range(shards_of)
                }
        body["indices"] = dict(sorted(body["indices"].items()))
    return Response(408 if timed_out else 200, body)


def _red_shards(index: QuarantinedIndex) -> int:
    return index.setting("index.number_of_shards", 1)


def _red_replicas(index: QuarantinedIndex) -> int:
    return index.setting("index.number_of_replicas", 1)


def _quarantine_report(node: Node, red: list[QuarantinedIndex], indices: list[Index]) -> dict[str, Any]:
    """What recovery set aside (node.py and index.py): indices that could not start, each with its reason,
    and the number of operations skipped in the indices that did. Empty when there is nothing to say."""
    report: dict[str, Any] = {}
    if red:
        report["quarantined_indices"] = {q.name: {"uuid": q.uuid, "reason": q.reason} for q in red}
    skipped = {i.name: len(getattr(i, "quarantined_ops", None) or ()) for i in indices}
    skipped = {name: count for name, count in skipped.items() if count}
    if skipped:
        report["quarantined_operations"] = skipped
    return report


# _cat/indices columns as RestIndicesAction declares them: name, aliases, right-aligned, shown by default.
CAT_INDICES_COLUMNS: list[tuple[str, tuple[str, ...], bool, bool]] = [
    ("health", ("h",), False, True),
    ("status", ("s",), False, True),
    ("index", ("i", "idx"), False, True),
    ("uuid", ("id", "uuid"), False, True),
    ("pri", ("p", "shards.primary", "shardsPrimary"), True, True),
    ("rep", ("r", "shards.replica", "shardsReplica"), True, True),
    ("docs.count", ("dc", "docsCount"), True, True),
    ("docs.deleted", ("dd", "docsDeleted"), True, True),
    ("creation.date", ("cd",), True, False),
    ("creation.date.string", ("cds",), True, False),
    ("store.size", ("ss", "storeSize"), True, True),
    ("pri.store.size", (), True, True),
]


@route("/_cat/indices", "/_cat/indices/{index}")
def cat_indices(node: Node, request: Request) -> Response:
    health_filter = request.params.get("health")
    if health_filter is not None and health_filter not in HEALTH_STATUSES:
        raise errors.illegal_argument(f"unknown cluster health status [{health_filter}]")
    expression = request.parts.get("index")
    indices = node.resolve(expression, include_closed=True, expand_wildcards="all", skip_quarantined=True)
    rows = []
    for index in indices:
        size = _store_size(index) if not index.closed else None
        created = int(index.settings.flat.get("index.creation_date", 0))
        rows.append(
            {
                "health": _index_health(index),
                "status": "close" if index.closed else "open",
                "index": index.name,
                "uuid": index.uuid,
                "pri": str(index.settings.number_of_shards),
                "rep": str(index.settings.number_of_replicas),
                "docs.count": None if index.closed else str(index.doc_count()),
                "docs.deleted": None if index.closed else str(index.num_deleted),
                "creation.date": str(created),
                "creation.date.string": format_date(created),
                "store.size": None
                if size is None
                else _byte_size(size * (1 + index.settings.number_of_replicas)),
                "pri.store.size": None if size is None else _byte_size(size),
            }
        )
    for q in node.quarantined_matching(expression):  # red, as an index whose primary is unassigned
        created = q.setting("index.creation_date", 0)
        rows.append({
            "health": "red",
            "status": "close" if q.meta.get("closed") else "open",
            "index": q.name,
            "uuid": q.uuid,
            "pri": str(_red_shards(q)),
            "rep": str(_red_replicas(q)),
            "docs.count": None,
            "docs.deleted": None,
            "creation.date": str(created),
            "creation.date.string": format_date(created),
            "store.size": None,
            "pri.store.size": None,
        })
    if health_filter:
        rows = [r for r in rows if r["health"] == health_filter]
    return _cat(rows, request, CAT_INDICES_COLUMNS)


def _store_size(index: Index) -> int:
    """Bytes on disk (translog and metadata): the engine's stand-in for Lucene's store size."""
    if index.files is None:
        return 0
    return sum(p.stat().st_size for p in index.files.directory.iterdir() if p.is_file())


def _byte_size(size: int) -> str:
    """Bytes as OpenSearch's ByteSizeValue prints them (``225b``, ``4.5kb``, ``1.2mb``)."""
    for unit, scale in (("pb", 1 << 50), ("tb", 1 << 40), ("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}".rstrip("0").rstrip(".") + unit
    return f"{size}b"


def _cat(rows: list[dict[str, str | None]], request: Request,
         columns: list[tuple[str, tuple[str, ...], bool, bool]]) -> Response:
    """Render a _cat table: ``h`` (names, aliases, wildcards), ``s`` (with ``:desc``), ``v``,
    ``format=json``."""
    by_alias = {alias: name for name, aliases, _, _ in columns for alias in (name, *aliases)}
    right_aligned = {name for name, _, right, _ in columns if right}
    requested = param_list(request.params.get("h"))
    if requested:
        selected = []
        for item in requested:
            if "*" in item:
                selected += [name for name, _, _, _ in columns if fnmatch.fnmatchcase(name, item)]
            elif item in by_alias:
                selected.append(by_alias[item])
    else:
        selected = [name for name, _, _, default in columns if default]
    for key in reversed(param_list(request.params.get("s"))):
        name, _, order = key.partition(":")
        column = by_alias.get(name)
        if column is None:
            raise errors.illegal_argument(f"Unable to sort by unknown sort key `{name}`")

        def sort_key(row: dict[str, str | None], c: str = column) -> tuple[int, Any]:
            return _cat_sort_key(row.get(c))

        rows.sort(key=sort_key, reverse=order == "desc")
    if request.params.get("format") == "json":
        return Response(200, [{c: r.get(c) for c in selected} for r in rows])
    table = [[r.get(c) or "" for c in selected] for r in rows]
    if request.flag("v"):
        table.insert(0, list(selected))
    widths = [max((len(row[i]) for row in table), default=0) for i in range(len(selected))]
    lines = []
    last = len(selected) - 1
    for row in table:  # RestTable.pad: right-aligned cells pad left, others pad right except the last column
        cells = [value.rjust(widths[i]) if selected[i] in right_aligned else
                 (value if i == last else value.ljust(widths[i])) for i, value in enumerate(row)]
        lines.append(" ".join(cells) + "\n")
    return Response(200, "".join(lines), content_type="text/plain; charset=UTF-8")


def _cat_sort_key(value: str | None) -> tuple[int, Any]:
    if value is None:
        return (1, 0)
    try:
        return (0, float(value))
    except ValueError:
        return (0, value)


