"""Operations of an index that could not be replayed or indexed: set aside, kept, reported, never dropped.

Every write is validated before it is acknowledged, so this should stay empty. If an operation slipped
through anyway (written by an older, more lenient engine, or a bug), one bad operation must not keep the
index (or the node) from starting: recovery skips it and the refresh leaves it out, and it is appended, with
the reason, to ``translog.quarantine.ndjson`` beside the translog, fsynced, so that its bytes survive a later
compaction of the translog. ``Quarantine.entries`` is what a node reports (one dict per operation:
``seq_no``, ``id``, ``phase``, ``reason``).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("nirbridge.engine")

QUARANTINE_FILE = "translog.quarantine.ndjson"


class Quarantine:
    """The quarantined operations of one index (``directory`` None: an in-memory node keeps them in
    memory)."""

    def __init__(self, index_name: str, directory: Path | None) -> None:
        self.index_name = index_name
        self.path = directory / QUARANTINE_FILE if directory is not None else None
        self.entries: list[dict[str, Any]] = []
        self._keys: set[tuple[str, str, str]] = set()
        if self.path is not None and self.path.exists():
            for line in self.path.read_bytes().splitlines():
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:  # a torn last line: the entry is written again if it recurs
                    continue
                if isinstance(entry, dict):
                    self._remember(entry)

    def add(self, op: Any, phase: str, reason: str) -> None:
        """Set ``op`` aside (phase ``replay`` or ``refresh``); an operation already quarantined in that phase
        (the same one met again at the next start) is not written twice."""
        seq_no = op.get("q") if isinstance(op, dict) else None
        doc_id = op.get("id") if isinstance(op, dict) else None
        entry = {"seq_no": seq_no, "id": doc_id, "phase": phase, "reason": reason,
                 "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "op": op}
        log.error("index [%s]: operation seq_no=%s id=%r quarantined at %s: %s", self.index_name, seq_no,
                  doc_id, phase, reason)
        if _key(seq_no, doc_id, phase) in self._keys:
            return
        self._remember(entry)
        if self.path is not None:
            try:
                line = orjson.dumps(entry, default=repr) + b"\n"
            except TypeError:  # an operation orjson cannot encode (nested too deeply): keep its text
                entry["op"] = repr(op)
                line = orjson.dumps(entry) + b"\n"
            with open(self.path, "ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def _remember(self, entry: dict[str, Any]) -> None:
        self._keys.add(_key(entry.get("seq_no"), entry.get("id"), str(entry.get("phase"))))
        self.entries.append({k: entry.get(k) for k in ("seq_no", "id", "phase", "reason")})


def _key(seq_no: Any, doc_id: Any, phase: str) -> tuple[str, str, str]:
    return repr(seq_no), repr(doc_id), phase  # repr: a corrupt operation's id may be any JSON value
