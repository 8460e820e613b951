"""The engine node: its indices, aliases, search contexts (scroll, point in time) and data directory.

All state is touched from one thread (the server's event loop), like a single-shard OpenSearch node whose
operations are serialised; that keeps every structure lock-free.
"""

from __future__ import annotations

import base64
import fnmatch
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import errors
from .index import Index
from .mapping import Mapping
from .searcher import Searcher
from .settings import IndexSettings, format_time_value, parse_time_value
from .store import IndexFiles, Translog, index_dirs

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


class Node:
    def __init__(self, data_dir: str | Path | None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.indices: dict[str, Index] = {}
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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        uuid_file = self.data_dir / "cluster_uuid"
        if uuid_file.exists():
            self.cluster_uuid = uuid_file.read_text().strip()
        else:
            uuid_file.write_text(self.cluster_uuid)
        for directory in index_dirs(self.data_dir):
            files = IndexFiles(directory)
            meta = files.read_meta()
            index = Index(
                meta["name"],
                IndexSettings(meta["settings"]),
                meta["mappings"],
                meta.get("aliases"),
                files,
                uuid=meta["uuid"],
            )
            index.closed = bool(meta.get("closed", False))
            ops = 0
            for op in Translog.replay(files.translog_path):
                index.replay(op)
                ops += 1
            index.refresh()
            index.translog = files.open_translog()
            index.translog.operations = ops
            if ops > 2 * len(index.docs) + 1000:
                index.translog.rewrite(iter(index.live_operations()))
            if index.mapping.to_json() != meta["mappings"]:
                index.persist_meta()
            self.indices[index.name] = index
            log.info(
                "recovered index [%s]: %d documents from %d operations", index.name, index.doc_count(), ops
            )

    # ----- index lifecycle ----------------------------------------------------------------------------------
    def create_index(self, name: str, body: dict[str, Any] | None) -> Index:
        _validate_index_name(name)
        if name in self.indices:
            raise errors.index_already_exists(name, self.indices[name].uuid)
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
        aliases = {alias: alias_metadata(spec) for alias, spec in (body.get("aliases") or {}).items()}
        files = None
        if self.data_dir is not None:
            files = IndexFiles(self.data_dir / "indices" / uuid)
        index = Index(name, settings, mappings, aliases, files, uuid=uuid)  # validates the mapping
        if files is not None:
            files.create()
            index.persist_meta()
            index.translog = files.open_translog()
        self.indices[name] = index
        return index

    def delete_index(self, name: str) -> None:
        index = self.indices.pop(name)
        if index.translog is not None:
            index.translog.close()
        if index.files is not None:
            index.files.destroy()

    # ----- name resolution ----------------------------------------------------------------------------------
    def alias_names(self) -> set[str]:
        return {alias for index in self.indices.values() for alias in index.aliases}

    def resolve(self, expression: str | None, ignore_unavailable: bool = False, allow_no_indices: bool = True,
                include_closed: bool = False, expand_wildcards: str = "open") -> list[Index]:
        """Indices named by an OpenSearch index expression: names, aliases, wildcards, ``_all``,
        ``-exclusions``."""
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
