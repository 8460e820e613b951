"""``_source`` filtering with includes / excludes and wildcards (OpenSearch's XContentMapValues.filter)."""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1024)
def _compile(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(fnmatch.translate(p)) for p in patterns)


def _matches(path: str, patterns: tuple[re.Pattern[str], ...]) -> bool:
    return any(p.match(path) for p in patterns)


def _could_match_below(path: str, patterns: tuple[str, ...]) -> bool:
    """True when some include pattern may select a field under the object ``path``."""
    prefix = path + "."
    for pattern in patterns:
        head = pattern.split("*", 1)[0]
        if head.startswith(prefix) or prefix.startswith(head) or pattern.startswith(prefix):
            return True
    return False


def filter_source(
    source: dict[str, Any], includes: list[str] | None, excludes: list[str] | None
) -> dict[str, Any]:
    """The parts of ``source`` selected by ``includes`` (all when empty) minus ``excludes``."""
    inc = tuple(includes or ())
    exc = tuple(excludes or ())
    if not inc and not exc:
        return source
    return _filter(source, "", inc, _compile(inc), _compile(exc))


def _filter(node: dict[str, Any], prefix: str, inc_raw: tuple[str, ...], inc: tuple[re.Pattern[str], ...],
            exc: tuple[re.Pattern[str], ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if exc and _matches(path, exc):
            continue
        included = not inc or _matches(path, inc)
        if isinstance(value, dict):
            if included:
                child = _filter(value, path + ".", (), (), exc)
                out[key] = child
            elif _could_match_below(path, inc_raw):
                child = _filter(value, path + ".", inc_raw, inc, exc)
                if child:
                    out[key] = child
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            if included:
                out[key] = [_filter(v, path + ".", (), (), exc) if isinstance(v, dict) else v for v in value]
            elif _could_match_below(path, inc_raw):
                items = [_filter(v, path + ".", inc_raw, inc, exc) for v in value if isinstance(v, dict)]
                items = [v for v in items if v]
                if items:
                    out[key] = items
        elif included:
            out[key] = value
    return out


def parse_source_param(value: Any) -> tuple[bool, list[str], list[str]]:
    """(fetch, includes, excludes) from a body ``_source`` value: bool, string, list or
    {includes, excludes}."""
    if value is None or value is True:
        return True, [], []
    if value is False:
        return False, [], []
    if isinstance(value, str):
        if value in ("true", "false"):
            return value == "true", [], []
        return True, [p for p in value.split(",") if p], []
    if isinstance(value, list):
        return True, [str(v) for v in value], []
    if isinstance(value, dict):
        inc = value.get("includes", value.get("include", []))
        exc = value.get("excludes", value.get("exclude", []))
        inc = [inc] if isinstance(inc, str) else list(inc or [])
        exc = [exc] if isinstance(exc, str) else list(exc or [])
        return True, inc, exc
    return True, [], []
