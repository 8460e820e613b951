"""Limits on what one request may make the engine hold: body size (after inflation) and JSON nesting.

- ``http.max_content_length`` (OpenSearch's node setting, 100mb by default): a body longer than this is
  answered 413 before it is read further, and a ``gzip`` / ``deflate`` body is inflated incrementally and
  refused as soon as its *inflated* size passes the limit, so a small compressed body cannot make the engine
  allocate gigabytes. :class:`BodyReader` does both while the body arrives.
- JSON nesting: orjson parses up to 1024 levels but serialises only 254, and the engine walks documents and
  queries recursively. A body nested deeper than :data:`MAX_JSON_DEPTH` is refused when it is parsed, so
  nothing that could not be logged, returned or walked is ever accepted (OpenSearch's own parser allows 1000
  levels; see engine/README.md).
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Any

from . import errors

DEFAULT_MAX_CONTENT_LENGTH = 100 * 1024 * 1024  # OpenSearch's http.max_content_length default, 100mb
MAX_CONTENT_LENGTH_ENV = "NIRBRIDGE_ENGINE_MAX_CONTENT_LENGTH"
# Deep enough for any document or query in practice, shallow enough that a stored document wrapped in a
# response (search hits, _msearch, bulk `get`: at most ~8 more levels) stays within orjson's 254.
MAX_JSON_DEPTH = 200

_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4, "pb": 1024**5}


class BodyTooLarge(Exception):
    """The request body, or what it inflates to, is longer than ``http.max_content_length`` (HTTP 413)."""


def parse_byte_size(value: str | int, name: str = "http.max_content_length") -> int:
    """An OpenSearch byte size value (``100mb``, ``512kb``, ``1048576b``; a bare number of bytes)."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?b)?\s*", value.lower())
    if match is None:
        raise ValueError(
            f"failed to parse setting [{name}] with value [{value}] as a size in bytes: unit is missing or "
            "unrecognized"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2) or "b"])


def max_content_length_from_env() -> int:
    """``http.max_content_length`` from ``NIRBRIDGE_ENGINE_MAX_CONTENT_LENGTH`` (100mb when unset)."""
    value = os.environ.get(MAX_CONTENT_LENGTH_ENV)
    return parse_byte_size(value, MAX_CONTENT_LENGTH_ENV) if value else DEFAULT_MAX_CONTENT_LENGTH


class BodyReader:
    """Collects a request body chunk by chunk, inflating ``Content-Encoding: gzip`` / ``deflate`` as it
    arrives, never holding more than ``limit`` bytes of either the raw or the inflated body.

    ``feed`` and ``finish`` raise :class:`BodyTooLarge` past the limit, and an ``EngineError`` (400) for a
    body that does not decode as its ``Content-Encoding`` says.
    """

    def __init__(self, limit: int, content_encoding: str | None = None) -> None:
        self.limit = limit
        self.encoding = (content_encoding or "").strip().lower()
        self._raw = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._inflater: Any = None
        if self.encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif self.encoding in ("deflate", "x-deflate"):
            self._wbits = zlib.MAX_WBITS
        else:  # identity, or an encoding the engine does not know: passed through as Netty does
            self._wbits = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._raw += len(chunk)
        if self._raw > self.limit:
            raise BodyTooLarge()
        if not self._wbits:
            self._keep(chunk)
            return
        data = chunk
        while data:
            if self._inflater is None:
                self._inflater = zlib.decompressobj(self._wbits)
            try:
                # Never more than what is left under the limit (+1 to see that it was passed).
                out = self._inflater.decompress(data, self.limit - self._size + 1)
            except zlib.error as exc:
                raise self._undecodable(exc) from None
            self._keep(out)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                # gzip allows several members back to back (gzip.decompress reads them all)
                data = self._inflater.unused_data + data
                self._inflater = None
                if data.strip(b"\x00") == b"":  # trailing zero padding after the last member
                    break

    def finish(self) -> bytes:
        if self._inflater is not None and not self._inflater.eof and self._raw:
            raise self._undecodable("incomplete or truncated stream")
        return b"".join(self._parts)

    def _keep(self, data: bytes) -> None:
        if data:
            self._size += len(data)
            if self._size > self.limit:
                raise BodyTooLarge()
            self._parts.append(data)

    def _undecodable(self, cause: object) -> errors.EngineError:
        return errors.EngineError(
            400, "illegal_argument_exception",
            f"the request body is not valid [{self.encoding}] content, as its Content-Encoding header says: "
            f"{cause}",
        )


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply ``value`` nests objects and arrays, counted up to ``limit + 1`` (iteratively: a deep value
    must not exhaust the Python stack while it is being measured)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def check_json_depth(value: Any, what: str = "the request body") -> None:
    """Refuse ``value`` when it nests deeper than :data:`MAX_JSON_DEPTH`."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise errors.EngineError(
            400, "parse_exception",
            f"Failed to parse content to map: the nesting depth of {what} exceeds the maximum allowed "
            f"[{MAX_JSON_DEPTH}]",
        )
