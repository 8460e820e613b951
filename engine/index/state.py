"""The node's committed metadata: one file, ``_state/cluster.json``, replaced atomically.

Layout under the data directory::

    _state/cluster.json          which indices exist (name -> uuid, settings, mappings, aliases, closed),
                                 the persistent cluster settings, the last deletions (tombstones) and a
                                 generation number; replaced with write_atomically (tmp, fsync, rename, fsync)
    indices/<uuid>/              one folder per index: its translog (see store.py)
    indices/.deleted-<uuid>/     an index being deleted (removed at the next start if a crash left it)
    indices/.orphaned-<name>/    a folder the metadata does not account for, moved aside (never deleted)

Why one file: a change that touches several indices (an alias moved from ``a`` to ``b``; the migration's
swap that adds alias ``m`` and removes index ``m``; a mapping put on ``a,b``) is one rename, so a crash
leaves the state before it or the state after it, never a mix. OpenSearch commits its cluster state the same
way (``PersistedClusterStateService``, one Lucene commit per new state).

The file is the single source of truth for which indices exist. At start (:meth:`MetadataStore.clean`) a
folder under ``indices/`` that it does not name is an index whose creation was never committed (empty:
removed), an index whose deletion was committed (a tombstone names it: removed), or something else (moved
aside as ``.orphaned-<name>`` and logged: data is never deleted on a guess).

Migration: a data directory from before this file (each index's metadata in ``indices/<uuid>/meta.json``, no
``_state``) is read once and committed as generation 1; the old ``meta.json`` files are left as they were and
never read again. The old layout could be left inconsistent by a crash, which is repaired here: of two
indices with one name, the newer is kept; an index whose name is also an alias (the migration's swap, killed
between adding the alias and removing the index) is rolled forward to the swap's after-state, its folder
moved aside rather than deleted.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .store import DELETED_PREFIX, fsync_dir, write_atomically

log = logging.getLogger("nirbridge.engine")

STATE_DIR = "_state"
STATE_FILE = "cluster.json"
FORMAT = 1
MAX_TOMBSTONES = 500  # as OpenSearch's cluster.indices.tombstones.size
ORPHANED_PREFIX = ".orphaned-"
LEGACY_META = "meta.json"


class MetadataError(RuntimeError):
    """The node's metadata file cannot be read: the engine does not start rather than guess."""


@dataclass
class Metadata:
    """One committed state. ``indices`` maps a name to its metadata (``uuid``, ``settings``, ``mappings``,
    ``aliases``, ``closed``): a dict, or (when committing) that dict serialised, an orjson.Fragment."""

    cluster_uuid: str
    indices: dict[str, Any] = field(default_factory=dict)
    persistent: dict[str, Any] = field(default_factory=dict)
    tombstones: list[dict[str, Any]] = field(default_factory=list)
    generation: int = 0  # 0: never committed (a new or migrated data directory)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT,
                "generation": self.generation,
                "cluster_uuid": self.cluster_uuid,
                "persistent": self.persistent,
                "indices": self.indices,
                "tombstones": self.tombstones[-MAX_TOMBSTONES:],
            },
        )  # compact: an index's metadata can be large, and it is rewritten at every change


class MetadataStore:
    """Reads, commits and cleans up after the node's metadata under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.state_dir = data_dir / STATE_DIR
        self.path = self.state_dir / STATE_FILE
        self.indices_dir = data_dir / "indices"
        self.generation = 0
        for directory in (data_dir, self.state_dir, self.indices_dir):
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True)
                fsync_dir(directory.parent)

    def load(self) -> Metadata:
        """The committed metadata; built from the old per-index files when there is none yet."""
        if not self.path.exists():
            return self._migrate()
        try:
            data = orjson.loads(self.path.read_bytes())
            metadata = Metadata(
                cluster_uuid=str(data["cluster_uuid"]),
                indices=dict(data["indices"]),
                persistent=dict(data.get("persistent") or {}),
                tombstones=list(data.get("tombstones") or []),
                generation=int(data["generation"]),
            )
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MetadataError(
                f"the node's metadata {self.path} cannot be read ({type(exc).__name__}: {exc}); it is "
                "written atomically, so this is damage from outside: restore it from a backup"
            ) from exc
        if int(data.get("format", FORMAT)) > FORMAT:
            raise MetadataError(f"{self.path} was written by a newer engine (format {data['format']})")
        self.generation = metadata.generation
        return metadata

    def commit(self, metadata: Metadata) -> None:
        """Make ``metadata`` the committed state (its generation is the next one)."""
        metadata.generation = self.generation + 1
        write_atomically(self.path, metadata.to_json(), crash_prefix="commit")
        self.generation = metadata.generation

    def clean(self, metadata: Metadata) -> None:
        """Remove what a crash left behind and move aside the folders the metadata does not account for."""
        live = {meta.get("uuid") for meta in metadata.indices.values()}
        deleted = {t.get("uuid") for t in metadata.tombstones}
        changed = False
        for tmp in self.state_dir.glob("*.tmp"):  # a commit that never got renamed
            tmp.unlink()
        for folder in sorted(self.indices_dir.iterdir()):
            name = folder.name
            if name.startswith(ORPHANED_PREFIX) or name in live:
                continue
            if name.startswith(DELETED_PREFIX) or name in deleted or _is_empty(folder):
                # a committed deletion, or a creation that was never committed (nothing was written to it)
                _remove(folder)
                log.info("removed %s: not in the committed metadata", folder)
            else:
                aside = folder.with_name(ORPHANED_PREFIX + name)
                os.replace(folder, aside)
                log.warning("moved %s aside to %s: the committed metadata does not name it", folder, aside)
            changed = True
        if changed:
            fsync_dir(self.indices_dir)

    # ----- the layout before _state/cluster.json ------------------------------------------------------------
    def _migrate(self) -> Metadata:
        uuid_file = self.data_dir / "cluster_uuid"
        cluster_uuid = (
            uuid_file.read_text().strip() if uuid_file.exists() else "nirbridge-" + secrets.token_hex(6)
        )
        metadata = Metadata(cluster_uuid)
        found: list[dict[str, Any]] = []
        for folder in sorted(self.indices_dir.iterdir()):
            meta_path = folder / LEGACY_META
            if folder.name.startswith(".") or not meta_path.exists():
                continue
            try:
                meta = orjson.loads(meta_path.read_bytes())
                if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
                    raise ValueError("not an index's metadata")
                meta["uuid"] = folder.name
                for key in ("settings", "mappings", "aliases"):
                    meta[key] = meta.get(key) or {}
                    if not isinstance(meta[key], dict):
                        raise ValueError(f"[{key}] is not an object")
            except (OSError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
                log.error("index folder %s: its %s cannot be read (%s): moved aside", folder, LEGACY_META,
                          exc)
                continue
            found.append(meta)
        # Of two folders with one name (a delete killed half-way, then a create), the newer one is the index.
        found.sort(key=lambda m: _created(m["settings"]))
        for meta in found:
            older = metadata.indices.get(meta["name"])
            if older is not None:
                log.warning("index [%s]: folders %s and %s; keeping the newer", meta["name"], older["uuid"],
                            meta["uuid"])
            metadata.indices[meta["name"]] = {k: meta[k] for k in meta if k != "name"}
        aliases = {alias for meta in metadata.indices.values() for alias in meta["aliases"]}
        for name in sorted(aliases & set(metadata.indices)):
            # An alias can only have been given an index's name by _aliases removing that index in the same
            # request: that request was killed between the two, so finish it.
            uuid = metadata.indices.pop(name)["uuid"]
            log.warning("index [%s] (folder %s) is also an alias: finishing the _aliases request that "
                        "removed it; its folder is moved aside", name, uuid)
        log.info("migrating %s to %s: %d indices", self.indices_dir, self.path, len(metadata.indices))
        return metadata


def _created(settings: dict[str, Any]) -> int:
    try:
        return int(settings.get("index.creation_date", 0))
    except (TypeError, ValueError):
        return 0


def _is_empty(folder: Path) -> bool:
    """Nothing but empty files (a translog never written to) in ``folder``."""
    try:
        return all(p.is_file() and p.stat().st_size == 0 for p in folder.iterdir())
    except NotADirectoryError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
