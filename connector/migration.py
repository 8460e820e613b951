"""Add the enriched fields to an index: a put-mapping when the index allows it, else a new index + alias swap.

    wanted = enriched_properties(dense_dimension=384)
    plan = plan_mapping_change(client, "corpus", wanted, {"index.knn": True})
    print(plan.describe())                      # --dry-run: what will change, nothing done
    target = apply(client, plan)                # put-mapping on "corpus", or create "corpus-nir-1"
    if plan.needs_new_index:
        copy_documents(client, plan.concrete, target, drop_fields=plan.drop_fields)   # or copy + enrich
        swap_alias(client, plan.index, target)  # one atomic _aliases call, after comparing doc counts
    rollback(client, plan.index)                # later, if the new index disappoints: the alias moves back

When a put-mapping is enough: every wanted field is missing or already there in the same form
(`schema.missing_fields` / `schema.conflicts`), and no static setting has to change.
When a new index is needed: a field exists in another form (a type, a knn dimension or space, an analyzer), a
`knn_vector` is wanted on an index without `index.knn` (a static setting: fixed at creation), or another
static
setting differs. The new index is `<base>-nir-<n>` (the next free n) with the old mapping and settings merged
with the wanted ones; fields in conflict take the wanted form and are dropped while copying (`drop_fields`).

The swap (no downtime: readers see the old index until the one call that moves the name), after checking
that the new index holds as many documents as the old one (both refreshed; else MigrationError, nothing
changed):
- the name is an alias: `remove` it from the old index and `add` it to the new one in one `_aliases` request.
- the name is a concrete index: OpenSearch cannot give an alias the name of an existing index, so the one
  `_aliases` request holds `add` (alias = the old name, on the new index) and `remove_index` (the old index).
  OpenSearch applies `remove_index` first inside the same atomic cluster-state update, so no reader sees the
  name missing. Because that call deletes the old index, it is first copied into `<name>-nir-0` (a name that
  is already an alias avoids this extra copy).
Either way the old index (or its copy) is kept: the new index's mapping `_meta.nirbridge.previous_index`
names it, `rollback` moves the alias back to it in one `_aliases` call, and `retire_index` deletes it once
the new index is trusted.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from .client import cluster_error
from .errors import IndexNotFound, MigrationError, UsageError
from .scan import _url_of, scan_documents
from .schema import conflicts, missing_fields, properties_of
from .writer import ItemResult, streaming_update, summarize

__all__ = [
    "Plan",
    "apply",
    "copy_documents",
    "plan_mapping_change",
    "previous_index",
    "retire_index",
    "rollback",
    "swap_alias",
]

Action = Literal["none", "put_mapping", "new_index"]

# Settings fixed when an index is created; any other difference can be applied with PUT _settings.
STATIC_SETTINGS = ("index.knn", "index.number_of_shards", "index.codec", "index.number_of_routing_shards")
STATIC_PREFIXES = ("index.analysis.", "index.sort.", "index.similarity.")
# Settings an index reports that a new index must not be created with.
_NOT_COPIED = (
    "index.uuid",
    "index.creation_date",
    "index.provided_name",
    "index.version.",
    "index.resize.",
    "index.routing.allocation.initial_recovery",
    "index.history.uuid",
    "index.replication.type",
)
# wraps a stream of write results, e.g. to wait between chunks (the enrichment job's throttle)
Pace = Callable[[Iterator[ItemResult]], Iterator[ItemResult]]
_META_KEY = "nirbridge"  # where a swapped-in index records what it replaced (its mapping's `_meta`)
_SUFFIX = re.compile(r"^(?P<base>.+)-nir-(?P<n>\d+)$")


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _normalise(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    flat = _flatten(settings or {})
    return {(key if key.startswith("index.") else f"index.{key}"): value for key, value in flat.items()}


def _same(a: Any, b: Any) -> bool:
    return str(a).lower() == str(b).lower()


def _is_static(key: str) -> bool:
    return key in STATIC_SETTINGS or key.startswith(STATIC_PREFIXES)


def _knn_fields(properties: Mapping[str, Any], prefix: str = "") -> list[str]:
    found = []
    for name, spec in properties.items():
        if spec.get("type") == "knn_vector":
            found.append(f"{prefix}{name}")
        if isinstance(spec.get("properties"), Mapping):
            found.extend(_knn_fields(spec["properties"], f"{prefix}{name}."))
    return found


@dataclass
class Plan:
    """What `apply` will do to give `index` the wanted fields and settings (nothing is done by planning)."""

    index: str  # the name readers use: an alias or a concrete index
    concrete: str  # the concrete index behind it now
    is_alias: bool
    action: Action
    add_properties: dict[str, Any] = field(default_factory=dict)  # for put_mapping
    update_settings: dict[str, Any] = field(default_factory=dict)  # dynamic settings to change in place
    reasons: list[str] = field(default_factory=list)  # why a new index is needed
    new_index: str | None = None
    new_body: dict[str, Any] | None = None  # settings + mappings of the new index
    drop_fields: list[str] = field(default_factory=list)  # conflicting fields not copied into the new index
    doc_count: int | None = None

    @property
    def needs_new_index(self) -> bool:
        return self.action == "new_index"

    def describe(self) -> str:
        """The dry-run report: what will change and how, one line each."""
        where = f"{self.index} (alias of {self.concrete})" if self.is_alias else self.index
        if self.action == "none":
            return f"{where}: nothing to change, the index has every wanted field and setting"
        lines = []
        if self.action == "put_mapping":
            added = ", ".join(
                f"{name} ({spec.get('type', 'object')})" for name, spec in self.add_properties.items()
            )
            if added:
                lines.append(f"{where}: put mapping adding {added}")
            for key, value in self.update_settings.items():
                lines.append(f"{where}: set {key} = {value}")
            return "\n".join(lines)
        lines.append(f"{where}: a new index is needed:")
        lines.extend(f"  - {reason}" for reason in self.reasons)
        lines.append(f"create {self.new_index} with the merged mapping and settings")
        count = f"{self.doc_count} documents" if self.doc_count is not None else "the documents"
        dropped = f" (without {', '.join(self.drop_fields)})" if self.drop_fields else ""
        lines.append(f"copy and enrich {count} from {self.concrete} into {self.new_index}{dropped}")
        if self.is_alias:
            lines.append(
                f"swap alias {self.index}: {self.concrete} -> {self.new_index} in one _aliases call, after "
                f"doc counts are compared; {self.concrete} is kept until verified (and for rollback)"
            )
        else:
            lines.append(
                f"{self.index} is an index, not an alias: it is copied into {self.concrete}-nir-0 (kept for "
                f"rollback), then one _aliases call adds alias {self.index} to {self.new_index} and removes "
                f"index {self.index} (after doc counts are compared)"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "concrete": self.concrete,
            "is_alias": self.is_alias,
            "action": self.action,
            "add_properties": self.add_properties,
            "update_settings": self.update_settings,
            "reasons": self.reasons,
            "new_index": self.new_index,
            "drop_fields": self.drop_fields,
            "doc_count": self.doc_count,
        }


def _resolve(client: OpenSearch, index: str) -> tuple[str, bool, dict[str, Any]]:
    try:
        response = client.indices.get(index=index)
    except NotFoundError as exc:
        raise IndexNotFound(_url_of(client), index) from exc
    except TransportError as exc:
        raise cluster_error(exc, _url_of(client), index) from exc
    if len(response) != 1:
        raise UsageError(
            f"{index} names {len(response)} indices ({', '.join(sorted(response))}); "
            "point it at one index or an alias of one index"
        )
    ((concrete, body),) = response.items()
    return concrete, concrete != index, body


def _next_name(client: OpenSearch, concrete: str) -> str:
    match = _SUFFIX.match(concrete)
    base = match.group("base") if match else concrete
    taken = {concrete}
    try:
        taken |= set(client.indices.get(index=f"{base}-nir-*", params={"allow_no_indices": "true"}))
    except NotFoundError:
        pass
    numbers = [int(m.group("n")) for name in taken if (m := _SUFFIX.match(name)) and m.group("base") == base]
    return f"{base}-nir-{max(numbers, default=0) + 1}"


def _copyable_settings(flat: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in flat.items() if not key.startswith(_NOT_COPIED)}


def _merged_mapping(
    existing: Mapping[str, Any], wanted: Mapping[str, Any], drop: Sequence[str]
) -> dict[str, Any]:
    mapping = copy.deepcopy(dict(existing.get("mappings") or {}))
    properties = mapping.setdefault("properties", {})
    for name in drop:
        properties.pop(name, None)
    properties.update(missing_fields({"properties": properties}, wanted))
    return mapping


def plan_mapping_change(
    client: OpenSearch,
    index: str,
    wanted_properties: Mapping[str, Any],
    wanted_settings: Mapping[str, Any] | None = None,
) -> Plan:
    """How to give `index` (an index or an alias of one) the wanted properties and settings; a dry run."""
    concrete, is_alias, body = _resolve(client, index)
    existing_properties = properties_of(body.get("mappings") or {})
    have = _normalise(body.get("settings"))
    want = _normalise(wanted_settings)
    reasons = list(conflicts({"properties": existing_properties}, wanted_properties))
    conflicting = sorted({line.split(":", 1)[0].split(".", 1)[0] for line in reasons})
    update_settings: dict[str, Any] = {}
    for key, value in want.items():
        if key in have and _same(have[key], value):
            continue
        if key == "index.knn" and not _same(value, "true") and key not in have:
            continue  # false is the default
        if _is_static(key):
            reasons.append(f"{key}: is {have.get(key, 'unset')}, wanted {value} (a static setting)")
        else:
            update_settings[key] = value
    add = missing_fields({"properties": existing_properties}, wanted_properties)
    knn_on = _same(want.get("index.knn", have.get("index.knn", "false")), "true")
    if not _same(have.get("index.knn", "false"), "true"):
        for path in _knn_fields(add):
            reasons.append(
                f"{path}: knn_vector needs index.knn, a static setting this index was created without"
            )
            knn_on = True
    plan = Plan(index=index, concrete=concrete, is_alias=is_alias, action="none")
    if not reasons:
        if add or update_settings:
            plan.action = "put_mapping"
            plan.add_properties, plan.update_settings = add, update_settings
        return plan
    settings = _copyable_settings(have)
    settings.update(want)
    if knn_on:
        settings["index.knn"] = True
    plan.action = "new_index"
    plan.reasons = reasons
    plan.drop_fields = conflicting
    plan.new_index = _next_name(client, concrete)
    plan.new_body = {"settings": settings, "mappings": _merged_mapping(body, wanted_properties, conflicting)}
    try:
        plan.doc_count = int(client.count(index=concrete)["count"])
    except TransportError:
        plan.doc_count = None
    return plan


def apply(client: OpenSearch, plan: Plan) -> str:
    """Carry out a plan: the index to write into afterwards (the concrete index, or the new one)."""
    try:
        if plan.action == "put_mapping":
            if plan.add_properties:
                client.indices.put_mapping(index=plan.concrete, body={"properties": plan.add_properties})
            if plan.update_settings:
                client.indices.put_settings(index=plan.concrete, body=plan.update_settings)
            return plan.concrete
        if plan.action == "new_index":
            assert plan.new_index is not None and plan.new_body is not None
            client.indices.create(index=plan.new_index, body=plan.new_body)
            return plan.new_index
    except TransportError as exc:
        raise cluster_error(exc, _url_of(client), plan.concrete) from exc
    return plan.concrete


def copy_documents(
    client: OpenSearch,
    source_index: str,
    dest_index: str,
    *,
    drop_fields: Sequence[str] = (),
    page_size: int = 500,
    **write_options: Any,
) -> Iterator[ItemResult]:
    """Copy every document (same ids) from one index into another, yielding one result per document.

    `drop_fields` are left out of the copies (fields whose old form the new mapping would refuse).
    """

    def documents() -> Iterable[tuple[str, dict[str, Any]]]:
        for hit in scan_documents(client, source_index, page_size=page_size):
            source = dict(hit.get("_source") or {})
            for name in drop_fields:
                source.pop(name, None)
            yield hit["_id"], source

    return streaming_update(client, dest_index, documents(), op_type="index", **write_options)


def _count(client: OpenSearch, index: str) -> int:
    client.indices.refresh(index=index)
    return int(client.count(index=index)["count"])


def _keep_a_copy(
    client: OpenSearch, concrete: str, body: Mapping[str, Any], pace: Pace | None, chunk_docs: int
) -> str:
    """Copy a concrete index that a swap will delete into `<name>-nir-0` (same mapping and settings), so
    that the swap can be rolled back; the copy's name. `pace` wraps the copy's results (a throttle)."""
    url = _url_of(client)
    keep = f"{concrete}-nir-0"
    if client.indices.exists(index=keep):
        raise MigrationError(url, f"{keep} exists already: delete it or move it away before the swap", keep)
    settings = _copyable_settings(_normalise(body.get("settings")))
    client.indices.create(index=keep, body={"settings": settings, "mappings": body.get("mappings") or {}})
    results = copy_documents(client, concrete, keep, chunk_docs=chunk_docs)
    copied = summarize(pace(results) if pace is not None else results)
    if copied.failed or _count(client, keep) != _count(client, concrete):
        client.indices.delete(index=keep)
        raise MigrationError(
            url,
            f"keeping a copy of {concrete} in {keep} failed ({copied.failed} documents): not swapping",
            keep,
        )
    return keep


def previous_index(client: OpenSearch, index: str) -> str | None:
    """The index a swap moved the name away from, as recorded in `index`'s mapping `_meta`; None if none."""
    mapping = client.indices.get_mapping(index=index).get(index, {}).get("mappings") or {}
    recorded = (mapping.get("_meta") or {}).get(_META_KEY) or {}
    previous = recorded.get("previous_index")
    return str(previous) if previous else None


def _record_previous(client: OpenSearch, new_index: str, previous: str, name: str) -> None:
    # put-mapping replaces the whole _meta: keep what others stored there
    mapping = client.indices.get_mapping(index=new_index).get(new_index, {}).get("mappings") or {}
    meta = dict(mapping.get("_meta") or {})
    meta[_META_KEY] = {"previous_index": previous, "alias": name}
    client.indices.put_mapping(index=new_index, body={"_meta": meta})


def swap_alias(
    client: OpenSearch,
    alias_or_index: str,
    new_index: str,
    *,
    verify_counts: bool = True,
    dry_run: bool = False,
    pace: Pace | None = None,
    chunk_docs: int = 500,
) -> list[dict]:
    """Point `alias_or_index` at `new_index` with one atomic `_aliases` call; the actions sent.

    With `verify_counts` (after a refresh of both), the new index must hold as many documents as the old one,
    else MigrationError and nothing changes. The old index is kept: an alias simply moves; a concrete index,
    which the same call must delete (an alias cannot take the name of an index), is first copied into
    `<name>-nir-0`. The new index's mapping `_meta.nirbridge.previous_index` records the old (or kept) index,
    for `rollback`. `dry_run`: the checks only, the actions that would be sent, nothing changed. `pace`
    wraps the results of that copy (the enrichment job throttles it as its own writes), written
    `chunk_docs` documents per `_bulk`.
    """
    url = _url_of(client)
    concrete, is_alias, body = _resolve(client, alias_or_index)
    try:
        if verify_counts:
            old, new = _count(client, concrete), _count(client, new_index)
            if old != new:
                raise MigrationError(
                    url,
                    f"{new_index} holds {new} documents, {concrete} holds {old}: not swapping; "
                    f"{alias_or_index} still reads {concrete}, unchanged. Compare them "
                    f"(GET _cat/indices/{concrete},{new_index}): documents written to {concrete} during the "
                    f"copy are missing from {new_index}. Pause the writers, then either rerun the same "
                    f"command (it resumes into {new_index}) after writing them there, or delete {new_index} "
                    "and rerun with --restart",
                    new_index,
                )
        if is_alias:
            previous = concrete
            actions = [
                {"remove": {"index": concrete, "alias": alias_or_index}},
                {"add": {"index": new_index, "alias": alias_or_index}},
            ]
        else:
            previous = f"{concrete}-nir-0"
            actions = [
                {"add": {"index": new_index, "alias": alias_or_index}},
                {"remove_index": {"index": concrete}},
            ]
        if dry_run:
            return actions
        if not is_alias:
            _keep_a_copy(client, concrete, body, pace, chunk_docs)
        _record_previous(client, new_index, previous, alias_or_index)
        client.indices.update_aliases(body={"actions": actions})
    except TransportError as exc:
        raise cluster_error(exc, url, alias_or_index) from exc
    return actions


def rollback(client: OpenSearch, alias: str, *, dry_run: bool = False) -> list[dict]:
    """Point `alias` back at the index a swap moved it away from, in one atomic `_aliases` call; the actions.

    Refused (MigrationError, nothing changed) when `alias` is not an alias, when the index it points at was
    not made by a swap (no `previous_index` in its `_meta`), or when that previous index is gone (retired).
    The index rolled away from is kept; rolling back again follows the records further back.
    """
    url = _url_of(client)
    current, is_alias, _ = _resolve(client, alias)
    if not is_alias:
        raise MigrationError(url, f"{alias} is an index, not an alias: no swap to roll back")
    try:
        previous = previous_index(client, current)
        if previous is None:
            raise MigrationError(
                url, f"{alias} points at {current}, which no nirbridge swap made: nothing to roll back to"
            )
        if not client.indices.exists(index=previous):
            raise MigrationError(
                url,
                f"{alias} was swapped from {previous}, which no longer exists (retired): cannot roll back",
            )
        actions = [
            {"remove": {"index": current, "alias": alias}},
            {"add": {"index": previous, "alias": alias}},
        ]
        if not dry_run:
            client.indices.update_aliases(body={"actions": actions})
    except TransportError as exc:
        raise cluster_error(exc, url, alias) from exc
    return actions


def retire_index(client: OpenSearch, old_index: str, alias: str) -> None:
    """Delete the index an alias pointed at before a swap, refusing while the alias still points at it."""
    try:
        aliases = client.indices.get_alias(index=old_index)
    except NotFoundError:
        return
    if alias in (aliases.get(old_index) or {}).get("aliases", {}):
        raise MigrationError(_url_of(client), f"{alias} still points at {old_index}: swap before retiring it")
    client.indices.delete(index=old_index)
