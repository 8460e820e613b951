"""One index: documents with versions and sequence numbers, near-real-time refresh, durability.

Writes change ``docs`` (the real-time view that ``GET _doc`` reads) and go to the translog at once; they
become searchable at the next refresh, which indexes the pending documents into the :class:`InvertedStore` and
takes a new :class:`Searcher`. As in OpenSearch, a refresh happens every ``index.refresh_interval`` (1s by
default, ``-1`` disables it), on ``POST _refresh`` and on writes with ``?refresh``.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid as uuid_lib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import errors
from ..limits import check_json_depth
from .fields import ParsedDoc
from .mapping import Mapping
from .postings import InvertedStore
from .quarantine import Quarantine
from .routing import shard_id
from .searcher import Searcher
from .settings import IndexSettings
from .store import IndexFiles, Translog

log = logging.getLogger("nirbridge.engine")

VERSION_TYPES = ("internal", "external", "external_gte")
UPDATE_REQUEST_FIELDS = ("script", "scripted_upsert", "upsert", "doc", "doc_as_upsert", "detect_noop",
                         "_source")


@dataclass
class DocVersion:
    id: str
    source: dict[str, Any] | None  # None for a delete tombstone
    seq_no: int
    primary_term: int
    version: int
    parsed: ParsedDoc | None = None
    routing: str | None = None

    @property
    def found(self) -> bool:
        return self.source is not None


class Index:
    def __init__(
        self,
        name: str,
        settings: IndexSettings,
        mappings: dict[str, Any] | None = None,
        aliases: dict[str, Any] | None = None,
        files: IndexFiles | None = None,
        uuid: str | None = None,
    ) -> None:
        self.name = name
        self.uuid = uuid or uuid_lib.uuid4().hex[:22]
        self.settings = settings
        # A new index's mapping is held to every rule; a recovering one is taken as it was stored.
        self.mapping = Mapping(mappings or {}, settings.analysis(), settings, strict=settings.new_index)
        self.aliases: dict[str, Any] = aliases or {}
        self.closed = False
        self.files = files
        self.translog: Translog | None = None
        self.docs: dict[str, DocVersion] = {}  # real-time view, including delete tombstones
        self.pending: dict[str, DocVersion] = {}  # changes since the last refresh
        self.visible: dict[str, int] = {}  # id -> ordinal in the refreshed view
        self.ord_docs: list[DocVersion] = []
        self.store = InvertedStore(settings)
        self.live = np.zeros(0, dtype=np.bool_)
        self.num_deleted = 0
        self.field_stats: dict[str, list[int]] = {}
        self.seq_no = -1
        self.primary_term = 1
        self.generation = 0
        self.last_refresh = time.monotonic()
        self.searcher = self._take_searcher()
        self.quarantine = Quarantine(name, files.directory if files is not None else None)

    @property
    def quarantined_ops(self) -> list[dict[str, Any]]:
        """Operations set aside because they could not be replayed or indexed (``seq_no``, ``id``, ``phase``,
        ``reason``), kept in ``translog.quarantine.ndjson``: what a node reports."""
        return self.quarantine.entries

    # ----- metadata -----------------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "settings": self.settings.flat,
            "mappings": self.mapping.to_json(),
            "aliases": self.aliases,
            "closed": self.closed,
        }

    def persist_meta(self) -> None:
        if self.files is not None:
            self.files.write_meta(self.meta())

    @property
    def shards_header(self) -> dict[str, int]:
        return {"total": 1 + self.settings.number_of_replicas, "successful": 1, "failed": 0}

    # ----- writes -------------------------------------------------------------------------------------------
    def index_doc(
        self,
        doc_id: str | None,
        source: Any,
        op_type: str = "index",
        if_seq_no: int | None = None,
        if_primary_term: int | None = None,
        version: int | None = None,
        version_type: str | None = None,
        routing: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        self._check_open()
        if not isinstance(source, dict):
            raise errors.mapper_parsing("failed to parse, document is empty" if source in (None, b"", "")
                                        else "failed to parse")
        if doc_id == "":
            raise errors.illegal_argument("if _id is specified it must not be empty")
        if doc_id is None:
            doc_id = uuid_lib.uuid4().hex[:20]
            op_type = "create"
        _check_id(doc_id)
        _check_routing(routing)
        check_json_depth(source, "the document")
        current = self.docs.get(doc_id)
        exists = current is not None and current.found
        if op_type == "create" and exists:
            assert current is not None  # exists
            raise errors.version_conflict(
                self.name, doc_id, f"document already exists (current version [{current.version}])"
            )
        self._check_seq_no(doc_id, current, if_seq_no, if_primary_term)
        new_version = self._next_version(doc_id, current, version, version_type)
        parsed, mapping_update = self._parse(source, doc_id, routing)
        if mapping_update is not None:
            self.persist_meta()
        entry = DocVersion(doc_id, source, self.seq_no + 1, self.primary_term, new_version, parsed, routing)
        # Logged before it is applied: an operation the translog could not take changes nothing.
        self._log({"o": "i", "id": doc_id, "s": source, "q": entry.seq_no, "v": new_version, "r": routing})
        self.seq_no += 1
        self._apply(entry)
        return (200 if exists else 201), self._write_result(entry, "updated" if exists else "created")

    def delete_doc(
        self,
        doc_id: str,
        if_seq_no: int | None = None,
        if_primary_term: int | None = None,
        version: int | None = None,
        version_type: str | None = None,
        routing: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        self._check_open()
        _check_routing(routing)
        current = self.docs.get(doc_id)
        self._check_seq_no(doc_id, current, if_seq_no, if_primary_term)
        new_version = self._next_version(doc_id, current, version, version_type)
        found = current is not None and current.found
        entry = DocVersion(doc_id, None, self.seq_no + 1, self.primary_term, new_version, routing=routing)
        self._log({"o": "d", "id": doc_id, "q": entry.seq_no, "v": new_version})
        self.seq_no += 1
        self._apply(entry)
        return (200 if found else 404), self._write_result(entry, "deleted" if found else "not_found")

    def update_doc(
        self,
        doc_id: str,
        body: Any,
        if_seq_no: int | None = None,
        if_primary_term: int | None = None,
        routing: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Partial update: ``doc`` merged into the source, ``upsert`` / ``doc_as_upsert``, ``detect_noop``."""
        self._check_open()
        if not isinstance(body, dict):
            raise errors.validation("script or doc is missing")
        if "script" in body:
            raise errors.illegal_argument("scripted updates are not supported by the nirbridge engine")
        unknown = [key for key in body if key not in UPDATE_REQUEST_FIELDS]
        if unknown:
            raise errors.xcontent_parse(f"[UpdateRequest] unknown field [{unknown[0]}]"
                                        + errors.did_you_mean(unknown[0], list(UPDATE_REQUEST_FIELDS)))
        partial = body.get("doc")
        if partial is None:
            raise errors.validation("script or doc is missing")
        if not isinstance(partial, dict):
            raise errors.mapper_parsing("failed to parse field [doc]")
        if (if_seq_no is not None or if_primary_term is not None) and (
            "upsert" in body or body.get("doc_as_upsert")
        ):
            raise errors.validation("upsert requests don't support `if_seq_no` and `if_primary_term`")
        current = self.docs.get(doc_id)
        if current is None or not current.found:
            if body.get("doc_as_upsert"):
                return self.index_doc(doc_id, copy.deepcopy(partial), op_type="create", routing=routing)
            if "upsert" in body:
                return self.index_doc(
                    doc_id, copy.deepcopy(body["upsert"]), op_type="create", routing=routing
                )
            raise errors.document_missing(self.name, doc_id)
        self._check_seq_no(doc_id, current, if_seq_no, if_primary_term)
        assert current.source is not None  # current.found
        merged = copy.deepcopy(current.source)
        changed = _deep_merge(merged, partial)
        if not changed and body.get("detect_noop", True):
            result = self._write_result(current, "noop")
            result["_shards"] = {"total": 0, "successful": 0, "failed": 0}
            return 200, result
        return self.index_doc(doc_id, merged, routing=routing if routing is not None else current.routing)

    def _check_seq_no(self, doc_id: str, current: DocVersion | None, if_seq_no: int | None,
                      if_primary_term: int | None) -> None:
        if if_seq_no is None and if_primary_term is None:
            return
        if if_seq_no is None or if_primary_term is None:
            raise errors.validation("ifSeqNo is set, but primary term is [0]" if if_primary_term is None
                                    else f"ifSeqNo is unassigned, but primary term is [{if_primary_term}]")
        if current is None or not current.found:
            raise errors.version_conflict(
                self.name, doc_id,
                f"required seqNo [{if_seq_no}], primary term [{if_primary_term}]. but no document was found",
            )
        if current.seq_no != if_seq_no or current.primary_term != if_primary_term:
            raise errors.version_conflict(
                self.name, doc_id,
                f"required seqNo [{if_seq_no}], primary term [{if_primary_term}]. current document has seqNo "
                f"[{current.seq_no}] and primary term [{current.primary_term}]",
            )

    def _next_version(self, doc_id: str, current: DocVersion | None, version: int | None,
                      version_type: str | None) -> int:
        version_type = version_type or "internal"
        if version_type not in VERSION_TYPES:
            raise errors.illegal_argument(f"No version type match [{version_type}]")
        if version_type == "internal":
            if version is not None:
                raise errors.validation(
                    "internal versioning can not be used for optimistic concurrency control. "
                    "Please use `if_seq_no` and `if_primary_term` instead"
                )
            return (current.version + 1) if current is not None else 1
        if version is None:
            raise errors.validation("an external version must be set")
        if current is not None:
            too_low = version <= current.version if version_type == "external" else version < current.version
            if too_low:
                relation = "higher or equal to" if version_type == "external" else "higher than"
                raise errors.version_conflict(
                    self.name, doc_id,
                    f"current version [{current.version}] is {relation} the one provided [{version}]",
                )
        return version

    def _parse(self, source: dict[str, Any], doc_id: str, routing: str | None,
               replaying: bool = False) -> tuple[ParsedDoc, Any]:
        """The document's indexable values, with the ``_routing`` metadata field indexed as a docs-only
        term."""
        limit = None if replaying else self.settings.nested_objects_limit
        parsed, mapping_update = self.mapping.parse(source, doc_id, limit, check_limits=not replaying,
                                                    lenient=replaying)
        if routing is not None:
            parsed.terms["_routing"] = [routing]
            parsed.present.add("_routing")
        return parsed, mapping_update

    def _apply(self, entry: DocVersion) -> None:
        self.docs[entry.id] = entry
        self.pending[entry.id] = entry

    def _log(self, op: dict[str, Any]) -> None:
        if self.translog is not None:
            self.translog.append(op)

    def _write_result(self, entry: DocVersion, result: str) -> dict[str, Any]:
        return {
            "_index": self.name,
            "_id": entry.id,
            "_version": entry.version,
            "result": result,
            "_shards": self.shards_header,
            "_seq_no": entry.seq_no,
            "_primary_term": entry.primary_term,
        }

    def sync(self) -> None:
        """Make every logged write durable (called before acknowledging)."""
        if self.translog is not None:
            self.translog.sync()

    # ----- reads --------------------------------------------------------------------------------------------
    def get_doc(self, doc_id: str, realtime: bool = True) -> DocVersion | None:
        self._check_open()
        if realtime:
            entry = self.docs.get(doc_id)
            return entry if entry is not None and entry.found else None
        ord_ = self.visible.get(doc_id)
        return self.ord_docs[ord_] if ord_ is not None else None

    def doc_count(self) -> int:
        return len(self.visible)

    # ----- refresh ------------------------------------------------------------------------------------------
    def refresh_due(self, now: float) -> bool:
        interval = self.settings.refresh_interval
        return bool(self.pending) and interval is not None and now - self.last_refresh >= interval

    def shard_of(self, doc_id: str) -> int:
        """The shard OpenSearch would route the document's latest write to (its routing, else its id)."""
        entry = self.docs.get(doc_id)
        return shard_id(doc_id, entry.routing if entry is not None else None, self.settings.number_of_shards,
                        self.settings.number_of_routing_shards)

    def refresh(self, shards: set[int] | None = None) -> None:
        """Make pending writes searchable: index new versions, retire replaced ones, take a new searcher.

        With ``shards``, only the pending writes routed to those shards, as a write's ``?refresh`` refreshes
        only the shard it went to; the others wait for the next full refresh.
        """
        if shards is None:
            self.last_refresh = time.monotonic()
        if not self.pending:
            return
        if shards is None or self.settings.number_of_shards == 1:
            pending, self.pending = self.pending, {}
        else:
            pending = {k: e for k, e in self.pending.items() if self.shard_of(k) in shards}
            if not pending:
                return
            self.pending = {k: e for k, e in self.pending.items() if k not in pending}
        dead: list[int] = []
        added: list[DocVersion] = []
        for doc_id, entry in pending.items():
            old = self.visible.pop(doc_id, None)
            if old is not None:
                dead.append(old)
            if entry.found:
                added.append(entry)
        first = self.store.max_ord
        try:
            self.store.add(first, [entry.parsed for entry in added if entry.parsed is not None], self.mapping)
        except Exception:
            # One document the store cannot take must not fail every refresh from now on: find it (them),
            # leave it out of the searchable view and report it; the rest becomes searchable.
            added = self._indexable(added)
            self.store.add(first, [entry.parsed for entry in added if entry.parsed is not None], self.mapping)
        live = np.ones(first + len(added), dtype=np.bool_)
        live[: self.live.shape[0]] = self.live
        for offset, entry in enumerate(added):
            self.visible[entry.id] = first + offset
            self.ord_docs.append(entry)
        if dead:
            dead_arr = np.asarray(dead, dtype=np.int64)
            live[dead_arr] = False
            self.num_deleted += len(dead)
            self.store.remove_vectors(dead, [self.ord_docs[o].parsed for o in dead])
        self.live = live
        self._update_stats(first, len(added), dead)
        self.generation += 1
        self.searcher = self._take_searcher()

    def _indexable(self, entries: list[DocVersion]) -> list[DocVersion]:
        """``entries`` less those the store refuses, each quarantined (it stays in the translog and in the
        real-time view; it is not searchable)."""
        kept = []
        for entry in entries:
            try:
                if entry.parsed is not None:
                    self.store.check(entry.parsed, self.mapping)
            except Exception as exc:
                op = {"o": "i", "id": entry.id, "s": entry.source, "q": entry.seq_no, "v": entry.version,
                      "r": entry.routing}
                self.quarantine.add(op, "refresh", f"{type(exc).__name__}: {exc}")
                continue
            kept.append(entry)
        return kept

    def _update_stats(self, first: int, count: int, dead: list[int]) -> None:
        for path, text_field in self.store.text.items():
            lengths = text_field.lengths.view()
            stats = self.field_stats.setdefault(path, [0, 0])
            if count:
                added = lengths[first: first + count]
                stats[0] += int(np.count_nonzero(added))
                stats[1] += int(added.sum())
            if dead:
                gone = lengths[np.asarray([o for o in dead if o < lengths.shape[0]], dtype=np.int64)]
                stats[0] -= int(np.count_nonzero(gone))
                stats[1] -= int(gone.sum())

    def _take_searcher(self) -> Searcher:
        return Searcher(
            index=self,
            store=self.store,
            max_ord=self.store.max_ord,
            live=self.live.copy(),
            has_deletions=self.num_deleted > 0,
            field_stats={path: (s[0], s[1]) for path, s in self.field_stats.items()},
            ord_docs=self.ord_docs,
            generation=self.generation,
        )

    # ----- recovery -----------------------------------------------------------------------------------------
    def replay(self, op: Any) -> bool:
        """Re-apply one translog operation during recovery (no logging). An operation that cannot be
        applied (malformed, or a document the mapping refuses) is quarantined instead: skipped, reported and
        kept beside the translog, so that one bad operation never stops the index from starting. True when
        it was applied."""
        try:
            if isinstance(op, dict) and isinstance(op.get("q"), int) and not isinstance(op["q"], bool):
                self.seq_no = max(self.seq_no, op["q"])  # a skipped operation's seq_no is never reused
            self._replay(op)
        except Exception as exc:
            self.quarantine.add(op, "replay", f"{type(exc).__name__}: {exc}")
            return False
        return True

    def _replay(self, op: Any) -> None:
        kind, doc_id, seq_no, version = op["o"], op["id"], op["q"], op["v"]
        if not isinstance(doc_id, str) or not doc_id:
            raise ValueError(f"the operation's id [{doc_id}] is not a document id")
        if not isinstance(seq_no, int) or not isinstance(version, int) or kind not in ("i", "d"):
            raise ValueError("not a translog operation")
        if kind == "i":
            routing = op.get("r")
            _check_routing(routing)
            if not isinstance(op.get("s"), dict):
                raise ValueError("the operation has no document")
            parsed, _ = self._parse(op["s"], doc_id, routing, replaying=True)
            if self.mapping.skipped:  # the mapping grew since the document was written: say what it lost
                log.warning("index [%s]: document [%s] (seq_no %s) replayed without %s", self.name, doc_id,
                            seq_no, "; ".join(self.mapping.skipped))
            self._apply(DocVersion(doc_id, op["s"], seq_no, self.primary_term, version, parsed, routing))
        else:
            self._apply(DocVersion(doc_id, None, seq_no, self.primary_term, version))

    def live_operations(self) -> list[dict[str, Any]]:
        """The operations that rebuild the current state (translog compaction)."""
        ops = []
        for entry in sorted(self.docs.values(), key=lambda e: e.seq_no):
            if entry.found:
                ops.append(
                    {
                        "o": "i",
                        "id": entry.id,
                        "s": entry.source,
                        "q": entry.seq_no,
                        "v": entry.version,
                        "r": entry.routing,
                    }
                )
            else:
                ops.append({"o": "d", "id": entry.id, "q": entry.seq_no, "v": entry.version})
        return ops

    def _check_open(self) -> None:
        if self.closed:
            raise errors.EngineError(
                400, "index_closed_exception", "closed", index=self.name, index_uuid=self.uuid
            )


def _check_routing(routing: Any) -> None:
    """A routing value is a string (the REST and bulk layers read it as text); anything else would be
    indexed as a ``_routing`` term that no refresh or replay can take."""
    if routing is not None and not isinstance(routing, str):
        raise errors.illegal_argument(f"routing must be a string, got [{routing}]")


def _check_id(doc_id: str) -> None:
    if not isinstance(doc_id, str) or not doc_id:
        raise errors.validation("id is missing")
    if len(doc_id.encode()) > 512:
        raise errors.validation(
            f"id [{doc_id}] is too long, must be no longer than 512 bytes but was: {len(doc_id.encode())}"
        )


def _deep_merge(target: dict[str, Any], update: dict[str, Any]) -> bool:
    """Merge ``update`` into ``target`` as OpenSearch's update API does; True when anything changed."""
    changed = False
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            changed |= _deep_merge(target[key], value)
        elif key not in target or target[key] != value:
            target[key] = copy.deepcopy(value)
            changed = True
    return changed
