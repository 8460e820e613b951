"""A small JSON checkpoint of an enrichment run, written atomically after every written batch.

    checkpoint = open_checkpoint(path, index=name, query=query, spec_fingerprint=spec, slices=4,
                                 restart=args.restart)
    for hit in scan_documents(..., slice_id=s, slices=4, search_after=checkpoint.position(s)):
        ...
        checkpoint.record_batch(s, last_hit["sort"], processed=n, skipped=k, failures=[(id, reason), ...])
        checkpoint.save(path)                   # write-to-temp, fsync, rename: never half a file
    checkpoint.finish_slice(s)

The file names the run it belongs to (index, a hash of the query, the spec fingerprint, the number of slices);
resuming with anything else is a `CheckpointMismatch` that says what differs, unless `restart` is given.
Positions are `search_after` values of a scan in order "id" (`_id`), which mean the same in any later point in
time: a resumed run starts after the last document of the last saved batch, so a batch is written at most
twice
when a job dies between its bulk request and the save (and `nir_meta` makes that second write a skip).
Failed ids and reasons are kept up to `MAX_FAILURES`; the `failed` counter counts all of them. Documents
skipped with nothing to enrich (`empty`: no text in the fields) are kept and counted the same way.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .errors import CheckpointMismatch

__all__ = ["MAX_FAILURES", "Checkpoint", "load_checkpoint", "open_checkpoint", "query_hash"]

FORMAT_VERSION = 1
MAX_FAILURES = 1000


def query_hash(query: Mapping[str, Any] | None) -> str:
    """`sha256:<hex>` of the query's canonical JSON (None and match_all hash alike: both read everything)."""
    canonical = orjson.dumps(query or {"match_all": {}}, option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


@dataclass
class Checkpoint:
    index: str
    query_hash: str
    spec_fingerprint: str
    slices: int = 1
    positions: dict[str, list[Any] | None] = field(default_factory=dict)  # slice -> search_after
    finished: list[int] = field(default_factory=list)
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    # skipped with nothing to enrich: not failures (a re-run would meet them again), counted with their reason
    skipped_empty: int = 0
    empty: list[dict[str, str]] = field(default_factory=list)
    target: str | None = None  # the new index a migrating run copies into and enriches
    version: int = FORMAT_VERSION

    def position(self, slice_id: int = 0) -> list[Any] | None:
        """Where slice `slice_id` resumes (`search_after`), None for its beginning."""
        return self.positions.get(str(slice_id))

    def is_finished(self, slice_id: int = 0) -> bool:
        return slice_id in self.finished

    def record_batch(
        self,
        slice_id: int,
        position: list[Any] | None,
        *,
        processed: int = 0,
        skipped: int = 0,
        failures: Iterable[tuple[str, str]] = (),
        empty: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Account for one written batch of slice `slice_id` ending at `position`."""
        if position is not None:
            self.positions[str(slice_id)] = list(position)
        self.processed += processed
        self.skipped += skipped
        for doc_id, reason in failures:
            self.failed += 1
            if len(self.failures) < MAX_FAILURES:
                self.failures.append({"id": str(doc_id), "reason": str(reason)})
        for doc_id, reason in empty:
            self.skipped_empty += 1
            if len(self.empty) < MAX_FAILURES:
                self.empty.append({"id": str(doc_id), "reason": str(reason)})

    def finish_slice(self, slice_id: int = 0) -> None:
        if slice_id not in self.finished:
            self.finished.append(slice_id)
            self.finished.sort()

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    def save(self, path: str | Path) -> None:
        """Write the checkpoint atomically: a temporary file in the same folder, fsync, then rename over."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_checkpoint(path: str | Path) -> Checkpoint | None:
    """The checkpoint saved at `path`, or None when there is none. A file that is not one is a ValueError."""
    target = Path(path)
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        if data.get("version") != FORMAT_VERSION:
            raise TypeError(f"format version {data.get('version')!r}, expected {FORMAT_VERSION}")
        return Checkpoint(**data)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise ValueError(
            f"{target}: not a nirbridge checkpoint ({exc}); delete it or use --restart"
        ) from None


def open_checkpoint(
    path: str | Path,
    *,
    index: str,
    query: Mapping[str, Any] | None,
    spec_fingerprint: str,
    slices: int = 1,
    restart: bool = False,
) -> Checkpoint:
    """The checkpoint to continue (loaded from `path`) or a fresh one (none there, or `restart`).

    A saved checkpoint of another index, query, spec or slice count raises CheckpointMismatch naming what
    differs.
    """
    fresh = Checkpoint(
        index=index, query_hash=query_hash(query), spec_fingerprint=spec_fingerprint, slices=slices
    )
    if restart:
        return fresh
    saved = load_checkpoint(path)
    if saved is None:
        return fresh
    differences = [
        f"{name} {getattr(saved, name)!r} in the file, {getattr(fresh, name)!r} now"
        for name in ("index", "query_hash", "spec_fingerprint", "slices")
        if getattr(saved, name) != getattr(fresh, name)
    ]
    if differences:
        raise CheckpointMismatch(path, differences)
    return saved
