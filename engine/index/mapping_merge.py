"""Mapping updates: OpenSearch's dynamic mapping of a new value, typed-mapping detection, and the additive
merge of a put-mapping into the ``properties`` tree.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from .. import errors
from .fields import OBJECT_TYPES, UPDATABLE_PARAMS, _first, _flatten, _java_type
from .values import (
    looks_like_date,
)


def _infer_mapping(value: Any, body: dict[str, Any]) -> dict[str, Any] | None:
    """OpenSearch's default dynamic mapping for a JSON value (arrays take their first non-null element)."""
    if isinstance(value, list):
        value = _first(_flatten(value))
        if value is None:
            return None
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "float"}
    if isinstance(value, str):
        if body.get("date_detection", True) and looks_like_date(value):
            if "/" in value:  # matched by the dynamic_date_formats' yyyy/MM/dd HH:mm:ss||yyyy/MM/dd
                return {"type": "date", "format": "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis"}
            return {"type": "date"}
        if body.get("numeric_detection", False):
            try:
                return {"type": "long"} if value.strip().lstrip("+-").isdigit() else (
                    {"type": "float"} if math.isfinite(float(value)) else None)
            except ValueError:
                pass
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    return None


def _ensure_object(props: dict[str, Any], path: str) -> None:
    node = props
    for part in path.split("."):
        node = node.setdefault(part, {"properties": {}}).setdefault("properties", {})


def _ensure_leaf(props: dict[str, Any], path: str, spec: dict[str, Any]) -> None:
    *parents, leaf = path.split(".")
    node = props
    for part in parents:
        node = node.setdefault(part, {"properties": {}}).setdefault("properties", {})
    node[leaf] = spec


def is_typed_mapping(body: Any) -> bool:
    """OpenSearch's MapperService.isMappingSourceTyped: a mapping whose only root key is the type ``_doc``."""
    return isinstance(body, dict) and len(body) == 1 and "_doc" in body and isinstance(body["_doc"], dict)


def _keep_object_types(update: dict[str, Any], existing: dict[str, Any]) -> None:
    """A dynamic update adds fields under existing objects: give each such object its mapped type
    (``nested``)."""
    for name, spec in update.items():
        current = existing.get(name)
        if isinstance(current, dict) and isinstance(spec, dict) and "properties" in spec:
            if "type" in current and "type" not in spec:
                spec["type"] = current["type"]
            _keep_object_types(spec["properties"], current.get("properties", {}))


def _expand_dotted(update: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": spec}`` as OpenSearch reads it in a mapping: ``{"a": {"properties": {"b": spec}}}``."""
    if not any("." in name for name in update):
        return update
    out: dict[str, Any] = {}
    for name, spec in update.items():
        if "." not in name or not name.strip("."):
            out[name] = spec
            continue
        head, rest = name.split(".", 1)
        node = out.setdefault(head, {"properties": {}})
        node.setdefault("properties", {})[rest] = spec
        node["properties"] = _expand_dotted(node["properties"])
    return out


def _merge_properties(target: dict[str, Any], update: dict[str, Any], prefix: str) -> None:
    if not isinstance(update, dict):
        raise errors.mapper_parsing(
            f"Expected map for property [properties] on field [{prefix[:-1]}] but got a {_java_type(update)}"
        )
    for name in update:
        if not name:
            raise errors.illegal_argument("field name cannot be an empty string")
    for name, spec in _expand_dotted(update).items():
        path = f"{prefix}{name}"
        if not isinstance(spec, dict):
            raise errors.mapper_parsing(
                f"Expected map for property [fields] on field [{name}] but got a {type(spec).__name__}"
            )
        if name in target:
            existing = target[name]
            old_type = existing.get("type", "object")
            new_type = spec.get("type", "object" if "properties" in spec or "type" not in spec else None)
            if old_type in OBJECT_TYPES or new_type in OBJECT_TYPES:
                if old_type != new_type:
                    if old_type in OBJECT_TYPES:
                        raise errors.illegal_argument(
                            f"can't merge a non object mapping [{path}] with an object mapping"
                        )
                    raise errors.illegal_argument(
                        f"mapper [{path}] cannot be changed from type [{old_type}] to [{new_type}]"
                    )
                for key, value in spec.items():
                    if key != "properties":
                        existing[key] = copy.deepcopy(value)
                existing.setdefault("properties", {})
                _merge_properties(existing["properties"], spec.get("properties", {}), path + ".")
                continue
            if old_type != new_type:
                raise errors.illegal_argument(
                    f"mapper [{path}] cannot be changed from type [{old_type}] to [{new_type}]"
                )
            conflicts = [
                f"Cannot update parameter [{key}] from [{existing.get(key)}] to [{spec.get(key)}]"
                for key in sorted(set(existing) | set(spec))
                if key not in UPDATABLE_PARAMS
                and key != "type"
                and key in spec
                and existing.get(key) != spec.get(key)
            ]
            if conflicts:
                raise errors.illegal_argument(
                    f"Mapper for [{path}] conflicts with existing mapper:\n\t" + "\n\t".join(conflicts)
                )
            for key, value in spec.items():
                if key == "fields":
                    existing.setdefault("fields", {})
                    _merge_properties(existing["fields"], value, path + ".")
                else:
                    existing[key] = copy.deepcopy(value)
        else:
            target[name] = copy.deepcopy(spec)


