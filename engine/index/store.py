"""Durability: a per-index translog (write-ahead log), atomically replaced files, and the crash hook.

Layout of one index folder, ``indices/<uuid>/`` (the node's metadata is ``_state/cluster.json``, state.py)::

    translog.ndjson             one JSON operation per line, fsynced before a write is acknowledged
    translog.quarantine.ndjson  operations recovery could not apply, set aside (quarantine.py)

An acknowledged write is on disk: the HTTP layer answers only after :meth:`Translog.sync`. On start the
translog is replayed; a torn last line (a crash in the middle of a write that was never acknowledged) is
cut off.

Test-only: ``NIRBRIDGE_ENGINE_CRASH_AT=<point>`` makes the process exit at once (``os._exit``, as ``kill -9``
would leave it) when it reaches ``<point>``: ``commit.before_rename`` (the new metadata is written and
fsynced under its temporary name), ``commit.before_dir_fsync`` (renamed, the folder not yet fsynced),
``create_index.before_commit`` (the index folder exists), ``delete_index.before_rename`` (its deletion is
committed) and ``delete_index.before_remove`` (its folder is renamed ``.deleted-<uuid>``). Only
tests/test_engine_crash_metadata.py sets it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

CRASH_ENV = "NIRBRIDGE_ENGINE_CRASH_AT"
CRASH_EXIT_STATUS = 137  # what a shell reports for a process killed by SIGKILL
DELETED_PREFIX = ".deleted-"


def crash_point(name: str) -> None:
    """Test-only fault injection: exit here, at once, when ``NIRBRIDGE_ENGINE_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(CRASH_EXIT_STATUS)


def write_atomically(path: Path, data: bytes, crash_prefix: str | None = None) -> None:
    """Replace ``path`` by ``data`` so that a crash leaves either the old or the new content."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if crash_prefix:
        crash_point(f"{crash_prefix}.before_rename")
    os.replace(tmp, path)
    if crash_prefix:
        crash_point(f"{crash_prefix}.before_dir_fsync")
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a folder's entries (a rename, a new or removed file) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Translog:
    """Append-only operation log of one index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = open(path, "ab")
        self._dirty = False
        self.operations = 0

    def append(self, op: dict[str, Any]) -> None:
        self._handle.write(orjson.dumps(op) + b"\n")
        self._dirty = True
        self.operations += 1

    def sync(self) -> None:
        if self._dirty:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._dirty = False

    def close(self) -> None:
        self.sync()
        self._handle.close()

    @staticmethod
    def replay(path: Path) -> Iterator[dict[str, Any]]:
        """Yield the logged operations; truncate a torn final line left by a crash."""
        if not path.exists():
            return
        good = 0
        with open(path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                try:
                    op = orjson.loads(line)
                except orjson.JSONDecodeError:
                    break
                good += len(line)
                yield op
        if good != path.stat().st_size:
            with open(path, "r+b") as handle:
                handle.truncate(good)

    def rewrite(self, ops: Iterator[dict[str, Any]]) -> None:
        """Replace the log by ``ops`` (compaction), atomically."""
        self._handle.close()
        tmp = self.path.with_suffix(".tmp")
        count = 0
        with open(tmp, "wb") as handle:
            for op in ops:
                handle.write(orjson.dumps(op) + b"\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self._handle = open(self.path, "ab")
        self.operations = count


class IndexFiles:
    """The files of one index folder. Its metadata is not kept here but in the node's one metadata file:
    ``write_meta`` hands it to ``commit_meta`` (the node), so that every metadata change is one commit."""

    def __init__(self, directory: Path, commit_meta: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.directory = directory
        self.translog_path = directory / "translog.ndjson"
        self._commit_meta = commit_meta

    def create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.directory.parent)

    def write_meta(self, meta: dict[str, Any]) -> None:
        if self._commit_meta is not None:
            self._commit_meta(meta)

    def open_translog(self) -> Translog:
        return Translog(self.translog_path)

    def destroy(self) -> None:
        """Remove the folder of an index whose deletion is committed: renamed first, so that a crash
        leaves a ``.deleted-<uuid>`` folder that the next start removes, never half an index under its own
        name."""
        crash_point("delete_index.before_rename")
        doomed = self.directory.with_name(DELETED_PREFIX + self.directory.name)
        if self.directory.exists():
            os.replace(self.directory, doomed)
            fsync_dir(self.directory.parent)
        crash_point("delete_index.before_remove")
        shutil.rmtree(doomed, ignore_errors=True)
        fsync_dir(self.directory.parent)
