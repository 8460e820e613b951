"""What a document's content is, for the connector and the workers alike: field values by path, their hash.

    value_at({"a": {"b": 1}}, "a.b")                  # 1
    content_hash(source, ["title", "text"])           # "sha256:…", what nir_meta.content_hash holds

One definition serves both sides: the workers write the hash into `nir_meta`, the connector compares it to
decide whether a re-run skips a document (the workers never import the connector; both import this).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

__all__ = ["HASH_PREFIX", "content_hash", "value_at"]

HASH_PREFIX = "sha256:"


def value_at(source: Mapping[str, Any], path: str) -> Any:
    """A field's value by name, or by dotted path through objects (None when absent)."""
    if path in source:
        return source[path]
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def content_hash(source: Mapping[str, Any] | None, fields: Sequence[str]) -> str:
    """`sha256:<hex>` of the named fields' values, in the order given (the order encoders read them).

    Stable across runs, processes and key order of the source: the input is the canonical JSON of
    `[[field, value], ...]` (sorted keys inside values); a missing field hashes as null, which differs
    from "".
    """
    if not fields:
        raise ValueError("content_hash needs at least one field name")
    pairs = [[name, value_at(source or {}, name)] for name in fields]
    try:
        canonical = orjson.dumps(pairs, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise ValueError(f"content_hash: a field value is not JSON: {exc}") from exc
    return HASH_PREFIX + hashlib.sha256(canonical).hexdigest()
