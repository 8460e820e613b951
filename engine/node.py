"""The engine node: its indices, aliases, search contexts (scroll, point in time) and data directory.

All state is touched from one thread (the server's event loop), like a single-shard OpenSearch node whose
operations are serialised; that keeps every structure lock-free.

Metadata (which indices exist, their settings, mappings, aliases, the persistent cluster settings) is
committed as one file (state.py): a change is made in memory inside :meth:`Node.metadata_change` and
committed once when the block ends, so a crash keeps all of it or none of it. At start each index is
recovered on its own: one that fails is quarantined (kept in the metadata, reported red, refused by name),
and the others start.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import logging
import os
import secrets
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import errors
from .index.index import Index
from .index.mapping import Mapping
from .index.searcher import Searcher
from .index.settings import IndexSettings, format_time_value, parse_time_value
from .index.state import MAX_TOMBSTONES, Metadata, MetadataStore
from .index.store import IndexFiles, Translog, crash_point

log = logging.getLogger("nirbridge.engine")

INDEX_NAME_FORBIDDEN = set('\\/*?"<>| ,#:')


@dataclass
class SearchContext:
    """A scroll or a point in time: frozen views of some indices, kept alive until ``expires``."""

    id: str
    views: list[tuple[Searcher, Mapping]]
    keep_alive: float
    expires: float
    created_ms: int
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class QuarantinedIndex:
    """An index whose recovery failed: its committed metadata is kept as it was (so nothing is lost and its
    name stays taken), its folder is left untouched, and it is reported red until it is deleted."""

    name: str
    meta: dict[str, Any]
    reason: str

    @property
    def uuid(self) -> str:
        return str(self.meta.get("uuid", "_na_"))

    @property
    def aliases(self) -> dict[str, Any]:
        aliases = self.meta.get("aliases")
        return aliases if isinstance(aliases, dict) else {}

    def setting(self, key: str, default: int) -> int:
        try:
            return int((self.meta.get("settings") or {}).get(key, default))
        except (TypeError, ValueError):
            return default


class Node:
    def __init__(self, data_dir: str | Path | None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.indices: dict[str, Index] = {}
        self.quarantined: dict[str, QuarantinedIndex] = {}
        self.tombstones: list[dict[str, Any]] = []
        self._store: MetadataStore | None = None
        self._changing = False  # inside metadata_change: commits wait for the end of the block
        self._detached: list[tuple[str, Index | None]] = []  # deleted in this block: (uuid, index)
        self._serialised: dict[str, orjson.Fragment] = {}  # each index's metadata as last committed
        self.scrolls: dict[str, SearchContext] = {}
        self.pits: dict[str, SearchContext] = {}
        self.cluster_settings: dict[str, dict[str, Any]] = {"persistent": {}, "transient": {}}
        self.name = "nirbridge-engine"
        self.cluster_uuid = "nirbridge-" + secrets.token_hex(6)
        self.started = time.time()
        if self.data_dir is not None:
            self._recover()

    # ----- recovery -----------------------------------------------------------------------------------------
    def _recover(self) -> None:
        assert self.data_dir is not None
        self._store = MetadataStore(self.data_dir)
        metadata = self._store.load()
        self.cluster_uuid = metadata.cluster_uuid
        self.cluster_settings["persistent"] = dict(metadata.persistent)
        self.tombstones = list(metadata.tombstones)
        self._store.clean(metadata)
        changed = metadata.generation == 0  # a new or migrated data directory: commit its first state
        for name, meta in metadata.indices.items():
            try:
                index, mapping_grew = self._recover_index(name, copy.deepcopy(meta))
            except Exception as exc:  # one index that cannot start must not keep the others down
                reason = f"{type(exc).__name__}: {exc}"
                log.error("index [%s] (%s) is quarantined, its recovery failed: %s\n%s", name,
                          meta.get("uuid"), reason, traceback.format_exc())
                self.quarantined[name] = QuarantinedIndex(name, meta, reason)
                continue
            self.indices[name] = index
            changed |= mapping_grew
        if changed:
            self._commit()

    def _recover_index(self, name: str, meta: dict[str, Any]) -> tuple[Index, bool]:
        """The index rebuilt from its committed metadata and its translog; whether replay grew its mapping."""
        assert self.data_dir is not None
        files = IndexFiles(self.data_dir / "indices" / meta["uuid"], self._index_meta_changed)
        if not files.directory.is_dir():
            raise FileNotFoundError(f"its folder {files.directory} is missing")
        index = Index(
            name,
            IndexSettings(meta["settings"]),
            meta["mappings"],
            meta.get("aliases"),
            files,
            uuid=meta["uuid"],
        )
        index.closed = bool(meta.get("closed", False))
        ops = 0
        try:
            for op in Translog.replay(files.translog_path):
                index.replay(op)
                ops += 1
            index.refresh()
            index.translog = files.open_translog()
            index.translog.operations = ops
            if ops > 2 * len(index.docs) + 1000:
                index.translog.rewrite(iter(index.live_operations()))
        except BaseException:
            if index.translog is not None:
                index.translog.close()
            raise
        skipped = len(getattr(index, "quarantined_ops", None) or ())
        log.info("recovered index [%s]: %d documents from %d operations%s", name, index.doc_count(), ops,
                 f", {skipped} quarantined" if skipped else "")
        return index, index.mapping.to_json() != meta["mappings"]

    # ----- committing metadata ------------------------------------------------------------------------------
    def _metadata(self, changed: dict[str, Any] | None = None) -> Metadata:
        """The node's metadata as it is in memory (what the next commit writes). With ``changed`` (one
        index's own meta, from a dynamic mapping update) only that index is serialised again: the others
        are as last committed, since every other change goes through a full commit."""
        indices: dict[str, Any] = {name: q.meta for name, q in self.quarantined.items()}
        for name, index in self.indices.items():
            cached = self._serialised.get(name)
            if changed is not None and changed.get("name") == name:
                cached = None
                meta = changed
            elif changed is None or cached is None:
                cached = None
                meta = index.meta()  # Mapping.to_json deep-copies: the cost a dynamic update avoids
            if cached is None:
                cached = orjson.Fragment(orjson.dumps({k: v for k, v in meta.items() if k != "name"}))
                self._serialised[name] = cached
            indices[name] = cached
        for name in [n for n in self._serialised if n not in self.indices]:
            del self._serialised[name]
        return Metadata(
            self.cluster_uuid,
            dict(sorted(indices.items())),
            dict(self.cluster_settings["persistent"]),
            self.tombstones[-MAX_TOMBSTONES:],
        )

    def _commit(self, changed: dict[str, Any] | None = None) -> None:
        if self._store is not None and not self._changing:
            self._store.commit(self._metadata(changed))

    def _index_meta_changed(self, meta: dict[str, Any]) -> None:
        """An index's own metadata changed (a dynamic mapping update while indexing): commit it."""
        self._commit(changed=meta)

    @contextmanager
    def metadata_change(self) -> Iterator[None]:
        """Make the metadata changes of the block one commit: a crash keeps all of them or none. An error in
        the block, or a commit that fails, puts back what the block changed in memory (aliases, settings,
        open/closed, which indices exist, cluster settings; a merged mapping stays, which put_mapping
        validates before it changes anything). Blocks nest; the outermost commits."""
        if self._changing:
            yield
            return
        snapshot = self._snapshot()
        self._changing = True
        try:
            yield
            self._changing = False
            self._commit()
        except BaseException:
            self._changing = False
            self._restore(snapshot)
            raise
        detached, self._detached = self._detached, []
        for uuid, index in detached:  # the deletion is committed: now their files may go
            if index is not None and index.translog is not None:
                index.translog.close()
            if self.data_dir is not None:
                IndexFiles(self.data_dir / "indices" / uuid).destroy()

    def _snapshot(self) -> dict[str, Any]:
        return {
            "indices": dict(self.indices),
            "quarantined": dict(self.quarantined),
            "aliases": {name: copy.deepcopy(i.aliases) for name, i in self.indices.items()},
            "closed": {name: i.closed for name, i in self.indices.items()},
            "settings": {name: i.settings.flat for name, i in self.indices.items()},
            "cluster_settings": copy.deepcopy(self.cluster_settings),
            "tombstones": list(self.tombstones),
        }

    def _restore(self, snapshot: dict[str, Any]) -> None:
        self.indices.clear()
        self.indices.update(snapshot["indices"])
        self.quarantined.clear()
        self.quarantined.update(snapshot["quarantined"])
        for name, index in self.indices.items():
            index.aliases = snapshot["aliases"][name]
            index.closed = snapshot["closed"][name]
            index.settings.flat = snapshot["settings"][name]  # IndexSettings.update replaces, never mutates
        self.cluster_settings = snapshot["cluster_settings"]
        self.tombstones = snapshot["tombstones"]
        self._detached = []
        self._serialised.clear()  # it may hold what the failed commit serialised

    # ----- index lifecycle ----------------------------------------------------------------------------------
    def create_index(self, name: str, body: dict[str, Any] | None) -> Index:
        _validate_index_name(name)
        if name in self.indices or name in self.quarantined:
            existing = self.indices.get(name) or self.quarantined[name]
            raise errors.index_already_exists(name, existing.uuid)
        if name in self.alias_names():
            raise errors.EngineError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{name}], an alias with the same name already exists",
                index=name,
                index_uuid="_na_",
            )
        body = body or {}
        unknown = set(body) - {"settings", "mappings", "aliases"}
        if unknown:
            key = sorted(unknown)[0]
            raise errors.parsing(f"unknown key [{key}] for create index")
        uuid = secrets.token_urlsafe(16)[:22]
        settings = IndexSettings.create(body.get("settings"), name, uuid, int(time.time() * 1000))
        mappings = body.get("mappings") or {}
        if not isinstance(body.get("aliases") or {}, dict):
            raise errors.EngineError(400, "parse_exception", "key [aliases] must be an object")
        aliases = {alias: alias_metadata(spec) for alias, spec in (body.get("aliases") or {}).items()}
        for alias in aliases:
            if alias == name or alias in self.index_names():
                raise errors.invalid_alias_name(alias)
        files = None
        if self.data_dir is not None:
            files = IndexFiles(self.data_dir / "indices" / uuid, self._index_meta_changed)
        index = Index(name, settings, mappings, aliases, files, uuid=uuid)  # validates the mapping
        with self.metadata_change():
            if files is not None:
                files.create()  # an empty folder: until the commit names it, a start removes it
                crash_point("create_index.before_commit")
            self.indices[name] = index
        if files is not None:
            index.translog = files.open_translog()
        return index

    def delete_index(self, name: str) -> None:
        """Delete an index (or a quarantined one): the metadata without it is committed first (with a
        tombstone), then its folder is renamed ``.deleted-<uuid>`` and removed (see metadata_change)."""
        with self.metadata_change():
            if name in self.quarantined:
                uuid, index = self.quarantined.pop(name).uuid, None
            else:
                index = self.indices.pop(name)
                uuid = index.uuid
            self._detached.append((uuid, index))
            self.tombstones.append({"name": name, "uuid": uuid, "deleted_ms": int(time.time() * 1000)})
            del self.tombstones[:-MAX_TOMBSTONES]

    # ----- name resolution ----------------------------------------------------------------------------------
    def alias_names(self) -> set[str]:
        live = {alias for index in self.indices.values() for alias in index.aliases}
        return live | {alias for q in self.quarantined.values() for alias in q.aliases}

    def index_names(self) -> set[str]:
        """Every index name that is taken, the quarantined ones included."""
        return set(self.indices) | set(self.quarantined)

    def quarantined_matching(self, expression: str | None) -> list[QuarantinedIndex]:
        """The quarantined indices an index expression names (by name or wildcard; ``_all``)."""
        if expression in (None, "", "_all", "*"):
            return sorted(self.quarantined.values(), key=lambda q: q.name)
        parts = [p.strip() for p in expression.split(",") if p.strip() and not p.strip().startswith("-")]
        return sorted(
            (q for q in self.quarantined.values() if any(fnmatch.fnmatchcase(q.name, p) for p in parts)),
            key=lambda q: q.name,
        )

    def _refuse_quarantined(self, name: str) -> None:
        quarantined = self.quarantined.get(name)
        if quarantined is not None:
            raise errors.index_quarantined(name, quarantined.uuid, quarantined.reason)

    def resolve(self, expression: str | None, ignore_unavailable: bool = False, allow_no_indices: bool = True,
                include_closed: bool = False, expand_wildcards: str = "open",
                skip_quarantined: bool = False) -> list[Index]:
        """Indices named by an OpenSearch index expression: names, aliases, wildcards, ``_all``,
        ``-exclusions``. Wildcards pass over quarantined indices; naming one is an error unless
        ``skip_quarantined``."""
        if expression in (None, "", "_all", "*"):
            return sorted((i for i in self.indices.values() if include_closed or not i.closed or
                           "closed" in expand_wildcards or expand_wildcards == "all"), key=lambda i: i.name)
        selected: dict[str, Index] = {}
        for part in expression.split(","):
            part = part.strip()
            if not part:
                continue
            if part.startswith("-") and selected:
                pattern = part[1:]
                for name in [n for n in selected if fnmatch.fnmatchcase(n, pattern)]:
                    del selected[name]
                continue
            if "*" in part or "?" in part:
                matched = False
                for index in self.indices.values():
                    if fnmatch.fnmatchcase(index.name, part) or any(
                        fnmatch.fnmatchcase(a, part) for a in index.aliases
                    ):
                        if index.closed and expand_wildcards not in ("all", "closed", "open,closed"):
                            continue
                        selected[index.name] = index
                        matched = True
                if not matched and not allow_no_indices and not ignore_unavailable:
                    raise errors.index_not_found(part)
                continue
            if part in self.indices:
                selected[part] = self.indices[part]
                continue
            if part in self.quarantined:
                if not skip_quarantined:
                    self._refuse_quarantined(part)
                continue
            aliased = [i for i in self.indices.values() if part in i.aliases]
            if aliased:
                for index in aliased:
                    selected[index.name] = index
                continue
            if not ignore_unavailable:
                raise errors.index_not_found(part)
        if not selected and not allow_no_indices:
            raise errors.index_not_found(expression)
        return sorted(selected.values(), key=lambda i: i.name)

    def index_for_write(self, name: str, create: bool = True) -> Index:
        """The index a document write goes to; created with dynamic mapping when missing
        (auto_create_index)."""
        if name in self.indices:
            return self.indices[name]
        self._refuse_quarantined(name)  # never auto-create a second index under a quarantined one's name
        aliased = [i for i in self.indices.values() if name in i.aliases]
        if aliased:
            if len(aliased) == 1:
                return aliased[0]
            writers = [i for i in aliased if (i.aliases[name] or {}).get("is_write_index")]
            if len(writers) == 1:
                return writers[0]
            raise errors.illegal_argument(
                f"no write index is defined for alias [{name}]. The write index may be explicitly disabled "
                "using "
                "is_write_index=false or the alias points to multiple indices without one being designated "
                "as a "
                f"write index"
            )
        if not create:
            raise errors.index_not_found(name)
        return self.create_index(name, None)

    def alias_filter(self, expression: str | None, index: Index) -> dict[str, Any] | None:
        """The filter a search through ``expression`` applies to ``index``: None when the index is named
        directly (or through an alias without a filter), else the alias filters OR-ed together, as OpenSearch
        does."""
        filters: list[Any] = []
        for part in (expression or "_all").split(","):
            part = part.strip()
            if part in ("_all", "*") or fnmatch.fnmatchcase(index.name, part):
                return None
            for alias, spec in index.aliases.items():
                if alias == part or ("*" in part and fnmatch.fnmatchcase(alias, part)):
                    if not (spec or {}).get("filter"):
                        return None
                    filters.append(spec["filter"])
        if not filters:
            return None
        return filters[0] if len(filters) == 1 else {"bool": {"should": filters}}

    def get_index(self, name: str) -> Index:
        indices = self.resolve(name)
        if len(indices) != 1:
            raise errors.index_not_found(name)
        return indices[0]

    # ----- refresh ------------------------------------------------------------------------------------------
    def scheduled_refresh(self) -> None:
        now = time.monotonic()
        for index in list(self.indices.values()):
            if not index.closed and index.refresh_due(now):
                index.refresh()
        self._expire_contexts()

    # ----- search contexts ----------------------------------------------------------------------------------
    def cluster_setting(self, key: str, default: str) -> str:
        """A cluster setting's value: transient over persistent over the default."""
        for scope in ("transient", "persistent"):
            if key in self.cluster_settings[scope]:
                return str(self.cluster_settings[scope][key])
        return default

    def keep_alive_seconds(self, keep_alive: Any) -> float:
        """A scroll or PIT keep-alive in seconds, refused above ``search.max_keep_alive`` (24h by default)."""
        seconds = parse_time_value(keep_alive, "keep_alive") or 0.0
        maximum = parse_time_value(
            self.cluster_setting("search.max_keep_alive", "24h"), "search.max_keep_alive"
        )
        if maximum is not None and seconds > maximum:
            raise errors.illegal_argument(
                f"Keep alive for request ({format_time_value(seconds)}) is too large. It must be less than "
                f"({format_time_value(maximum)}). This limit can be set by changing the "
                "[search.max_keep_alive] "
                f"cluster level setting."
            )
        return seconds

    def new_context(self, views: list[tuple[Searcher, Mapping]], keep_alive: str, kind: str) -> SearchContext:
        seconds = self.keep_alive_seconds(keep_alive)
        raw = f"{kind}:{secrets.token_hex(16)}".encode()
        context_id = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        context = SearchContext(
            context_id, views, seconds, time.monotonic() + seconds, int(time.time() * 1000)
        )
        (self.scrolls if kind == "scroll" else self.pits)[context_id] = context
        return context

    def context(self, context_id: str, kind: str) -> SearchContext:
        self._expire_contexts()
        store = self.scrolls if kind == "scroll" else self.pits
        context = store.get(context_id)
        if context is None:
            raise errors.search_context_missing(context_id)
        return context

    def _expire_contexts(self) -> None:
        now = time.monotonic()
        for store in (self.scrolls, self.pits):
            for key in [k for k, c in store.items() if c.expires < now]:
                del store[key]

    def close(self) -> None:
        for index in self.indices.values():
            if index.translog is not None:
                index.translog.close()


ALIAS_KEYS = ("filter", "routing", "index_routing", "search_routing", "is_write_index", "is_hidden")


def alias_metadata(spec: Any) -> dict[str, Any]:
    """An alias definition as OpenSearch keeps it: ``routing`` becomes both ``index_routing`` and
    ``search_routing`` (routing values are strings); other keys are refused."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise errors.parsing(f"[alias] expected an object but found [{spec}]")
    unknown = [
        key for key in spec if key not in ALIAS_KEYS + ("index", "indices", "alias", "aliases", "must_exist")
    ]
    if unknown:
        raise errors.illegal_argument(f"[alias] unknown field [{unknown[0]}]")
    out: dict[str, Any] = {}
    if spec.get("filter") is not None:
        out["filter"] = spec["filter"]
    for key in ("index_routing", "search_routing"):
        value = spec.get(key, spec.get("routing"))
        if value is not None:
            out[key] = str(value)
    for key in ("is_write_index", "is_hidden"):
        if spec.get(key) is not None:
            out[key] = spec[key]
    return out


def _validate_index_name(name: str) -> None:
    problems = None
    if not name:
        problems = "must not be empty"
    elif name != name.lower():
        problems = "must be lowercase"
    elif name.startswith(("_", "-", "+")):
        problems = "must not start with '_', '-', or '+'"
    elif name in (".", ".."):
        problems = "must not be '.' or '..'"
    elif any(c in INDEX_NAME_FORBIDDEN for c in name):
        problems = 'must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?]'
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):  # NUL, newline: they break _cat and logs
        problems = "must not contain control characters"
    elif len(name.encode()) > 255:
        problems = "index name is too long, (" + str(len(name.encode())) + " > 255)"
    if problems:
        raise errors.EngineError(
            400,
            "invalid_index_name_exception",
            f"Invalid index name [{name}], {problems}",
            index=name,
            index_uuid="_na_",
        )


def data_dir_from_env() -> str | None:
    return os.environ.get("NIRBRIDGE_ENGINE_DATA")
