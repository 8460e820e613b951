"""Durability: a per-index translog (write-ahead log) and atomically replaced metadata files.

Layout under the data directory::

    indices/<uuid>/meta.json        name, settings, mappings, aliases, state (replaced atomically)
    indices/<uuid>/translog.ndjson  one JSON operation per line, fsynced before a write is acknowledged

An acknowledged write is on disk: the HTTP layer answers only after :meth:`Translog.sync`. On start the
translog is replayed; a torn last line (a crash in the middle of a write that was never acknowledged) is
cut off.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
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
        _fsync_dir(self.path.parent)
        self._handle = open(self.path, "ab")
        self.operations = count


class IndexFiles:
    """The files of one index directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.meta_path = directory / "meta.json"
        self.translog_path = directory / "translog.ndjson"

    def create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _fsync_dir(self.directory.parent)

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_atomically(self.meta_path, orjson.dumps(meta, option=orjson.OPT_INDENT_2))

    def read_meta(self) -> dict[str, Any]:
        return orjson.loads(self.meta_path.read_bytes())

    def open_translog(self) -> Translog:
        return Translog(self.translog_path)

    def destroy(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        _fsync_dir(self.directory.parent)


def index_dirs(data_dir: Path) -> list[Path]:
    root = data_dir / "indices"
    root.mkdir(parents=True, exist_ok=True)
    return sorted(p for p in root.iterdir() if (p / "meta.json").exists())
