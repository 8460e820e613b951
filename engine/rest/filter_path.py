"""The ``filter_path`` response parameter: keep only the parts of a JSON response that the patterns name.

As in OpenSearch (XContent FilterPath): comma-separated dotted paths; ``*`` matches within one key, ``**`` any
number of levels; arrays are transparent (each element is filtered with the same remaining path); a pattern
starting with ``-`` excludes. Objects left empty by the filtering disappear.
"""

from __future__ import annotations

import fnmatch
from typing import Any

_DROP = object()


def apply_filter_path(body: Any, spec: str) -> Any:
    patterns = [p.strip() for p in spec.split(",") if p.strip()]
    includes = [p.split(".") for p in patterns if not p.startswith("-")]
    excludes = [p[1:].split(".") for p in patterns if p.startswith("-")]
    result = body
    if includes:
        result = _include(body, includes)
        if result is _DROP:
            return {}
    if excludes:
        result = _exclude(result, excludes)
        if result is _DROP:
            return {}
    return result


def _step(patterns: list[list[str]], key: str) -> tuple[bool, list[list[str]]]:
    """(does a pattern end at ``key``, the remaining patterns below ``key``)."""
    done = False
    rest: list[list[str]] = []
    for pattern in patterns:
        head = pattern[0]
        if head == "**":
            rest.append(pattern)  # ** may swallow this key too
            if len(pattern) > 1 and fnmatch.fnmatchcase(key, pattern[1]):
                if len(pattern) == 2:
                    done = True
                else:
                    rest.append(pattern[2:])
            elif len(pattern) == 1:
                done = True
        elif fnmatch.fnmatchcase(key, head):
            if len(pattern) == 1:
                done = True
            else:
                rest.append(pattern[1:])
    return done, rest


def _include(node: Any, patterns: list[list[str]]) -> Any:
    if isinstance(node, list):
        items = [_include(item, patterns) for item in node]
        items = [item for item in items if item is not _DROP]
        return items if items else _DROP
    if not isinstance(node, dict):
        return _DROP
    out: dict[str, Any] = {}
    for key, value in node.items():
        done, rest = _step(patterns, str(key))
        if done:
            out[key] = value
        elif rest:
            child = _include(value, rest)
            if child is not _DROP:
                out[key] = child
    return out if out else _DROP


def _exclude(node: Any, patterns: list[list[str]]) -> Any:
    if isinstance(node, list):
        return [item for item in (_exclude(item, patterns) for item in node) if item is not _DROP]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        done, rest = _step(patterns, str(key))
        if done:
            continue
        out[key] = _exclude(value, rest) if rest else value
    return out
