"""Index settings, kept flat (``index.number_of_shards``) with string values, as OpenSearch keeps them."""

from __future__ import annotations

import re
from typing import Any

from .. import errors

DEFAULTS = {
    "index.number_of_shards": "1",
    "index.number_of_replicas": "1",
}
# Settings that can only be set when the index is created (OpenSearch's "final"/static index settings).
STATIC = {
    "index.number_of_shards",
    "index.knn",
    "index.codec",
    "index.analysis",
    "index.number_of_routing_shards",
}
STATIC_PREFIXES = ("index.analysis.",)
# The k-NN plugin's dynamic integer index settings that take effect here, with their minimums.
KNN_INT_SETTINGS = {"index.knn.algo_param.ef_search": 2, "index.knn.advanced.approximate_threshold": -1}
# MapperService's dynamic mapping limits (Setting.longSetting): default and minimum.
MAPPING_LIMITS = {
    "index.mapping.total_fields.limit": (1000, 0),
    "index.mapping.depth.limit": (20, 1),
    "index.mapping.nested_objects.limit": (10000, 0),
}
# KNNSettings.INDEX_KNN_DEFAULT_BUILD_VECTOR_DATA_STRUCTURE_THRESHOLD
KNN_DEFAULT_APPROXIMATE_THRESHOLD = 15_000
GENERATED = ("index.uuid", "index.creation_date", "index.provided_name", "index.version.created")


def flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested settings to dotted keys; ``index.`` is added where a key lacks it."""
    if not isinstance(settings, dict):
        raise errors.illegal_argument(f"malformed settings [{settings}]")
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, full + "."))
        else:
            flat[full] = value
    if prefix == "":
        flat = {(k if k.startswith("index.") else f"index.{k}"): v for k, v in flat.items()}
    return flat


def _int_setting(value: Any, key: str, minimum: int, bits: int = 32) -> int:
    """OpenSearch's ``Setting.intSetting`` (``longSetting`` with ``bits=64``) parse: an integer within
    [minimum, 2^(bits-1) - 1]."""
    try:
        number = int(str(value))
    except ValueError:
        raise errors.illegal_argument(f"Failed to parse value [{value}] for setting [{key}]") from None
    if number < minimum:
        raise errors.illegal_argument(
            f"Failed to parse value [{value}] for setting [{key}] must be >= {minimum}"
        )
    if number > 2 ** (bits - 1) - 1:
        raise errors.illegal_argument(
            f"Failed to parse value [{value}] for setting [{key}] must be <= {2 ** (bits - 1) - 1}"
        )
    return number


def _as_setting_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return [_as_setting_value(v) for v in value]
    return value


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in sorted(flat.items()):
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return nested


def parse_time_value(value: Any, name: str) -> float | None:
    """Seconds for an OpenSearch time value (``1s``, ``500ms``, ``2m``); None for ``-1`` (disabled)."""
    text = str(value).strip()
    if text == "-1":
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(nanos|micros|ms|s|m|h|d)?", text)
    if not match:
        raise errors.illegal_argument(
            f"failed to parse setting [{name}] with value [{value}] as a time value: unit is missing or "
            "unrecognized"
        )
    number = float(match.group(1))
    unit = match.group(2) or ("ms" if number == 0 else None)
    if unit is None:
        raise errors.illegal_argument(
            f"failed to parse setting [{name}] with value [{value}] as a time value: unit is missing or "
            "unrecognized"
        )
    scale = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[unit]
    return number * scale


def format_time_value(seconds: float) -> str:
    """A duration as OpenSearch's ``TimeValue.toString()`` prints it: the largest unit, one decimal if
    needed."""
    nanos = round(seconds * 1e9)
    for unit, size in (("d", 86400e9), ("h", 3600e9), ("m", 60e9), ("s", 1e9), ("ms", 1e6), ("micros", 1e3)):
        if nanos >= size:
            value = nanos / size
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return f"{nanos}nanos"


class IndexSettings:
    def __init__(self, flat: dict[str, Any]) -> None:
        self.flat = flat
        # True only for the settings of an index being created: its mapping is then held to every rule
        # (limits included) that a stored, recovering one is not re-checked against.
        self.new_index = False

    @classmethod
    def create(cls, body: Any, name: str, uuid: str, created_ms: int) -> IndexSettings:
        flat = {k: _as_setting_value(v) for k, v in flatten(body or {}).items()}
        merged = {**DEFAULTS, **flat}
        merged.update({
            "index.uuid": uuid,
            "index.provided_name": name,
            "index.creation_date": str(created_ms),
            "index.version.created": "137217827",
        })
        settings = cls(merged)
        settings.validate()
        settings.new_index = True
        return settings

    def validate(self) -> None:
        for key in ("index.number_of_shards", "index.number_of_replicas"):
            value: Any = self.flat.get(key)  # int(None) raises TypeError, refused below
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise errors.illegal_argument(
                    f"Failed to parse value [{value}] for setting [{key}]"
                ) from None
            minimum = 1 if key == "index.number_of_shards" else 0
            if number < minimum:
                raise errors.illegal_argument(
                    f"Failed to parse value [{value}] for setting [{key}] must be >= {minimum}"
                )
        if "index.refresh_interval" in self.flat:
            parse_time_value(self.flat["index.refresh_interval"], "index.refresh_interval")
        if "index.knn" in self.flat and str(self.flat["index.knn"]).lower() not in ("true", "false"):
            raise errors.illegal_argument(
                f"Failed to parse value [{self.flat['index.knn']}] as only [true] or [false] are allowed."
            )
        for key, minimum in KNN_INT_SETTINGS.items():  # the k-NN plugin's Setting.intSetting bounds
            if key in self.flat:
                _int_setting(self.flat[key], key, minimum)
        for key, (_, minimum) in MAPPING_LIMITS.items():
            if key in self.flat:
                _int_setting(self.flat[key], key, minimum, bits=64)

    def update(self, body: Any, index_open: bool = True) -> None:
        flat = {k: _as_setting_value(v) for k, v in flatten(body or {}).items()}
        for key in flat:
            if key in GENERATED:
                raise errors.illegal_argument(f"final {key.split('.')[0]} setting [{key}], not updateable")
            if index_open and (key in STATIC or key.startswith(STATIC_PREFIXES)):
                raise errors.illegal_argument(
                    f"Can't update non dynamic settings [[{key}]] for open indices "
                    f"[{self.flat['index.provided_name']}]"
                )
        candidate = IndexSettings(dict(self.flat))
        for key, value in flat.items():
            if value is None:
                candidate.flat.pop(key, None)
                if key in DEFAULTS:
                    candidate.flat[key] = DEFAULTS[key]
            else:
                candidate.flat[key] = value
        candidate.validate()
        self.flat = candidate.flat

    @property
    def number_of_replicas(self) -> int:
        return int(self.flat.get("index.number_of_replicas", 1))

    @property
    def number_of_shards(self) -> int:
        return int(self.flat.get("index.number_of_shards", 1))

    @property
    def refresh_interval(self) -> float | None:
        return parse_time_value(self.flat.get("index.refresh_interval", "1s"), "index.refresh_interval")

    @property
    def number_of_routing_shards(self) -> int | None:
        value = self.flat.get("index.number_of_routing_shards")
        return int(value) if value is not None else None

    @property
    def max_result_window(self) -> int:
        return int(self.flat.get("index.max_result_window", 10000))

    def _limit(self, key: str) -> int:
        try:
            return int(self.flat.get(key, MAPPING_LIMITS[key][0]))
        except (TypeError, ValueError):  # stored before it was validated: the default applies
            return MAPPING_LIMITS[key][0]

    @property
    def nested_objects_limit(self) -> int:
        return self._limit("index.mapping.nested_objects.limit")

    @property
    def total_fields_limit(self) -> int:
        """``index.mapping.total_fields.limit``: object and leaf fields (multi-fields included), 1000."""
        return self._limit("index.mapping.total_fields.limit")

    @property
    def depth_limit(self) -> int:
        """``index.mapping.depth.limit``: an object at ``a.b`` has depth 3 (the root is 1), 20."""
        return self._limit("index.mapping.depth.limit")

    @property
    def knn(self) -> bool:
        return str(self.flat.get("index.knn", "false")).lower() == "true"

    @property
    def knn_ef_search(self) -> int | None:
        """``index.knn.algo_param.ef_search`` when set (the field's own default, 100, otherwise)."""
        value = self.flat.get("index.knn.algo_param.ef_search")
        return None if value is None else int(value)

    @property
    def knn_approximate_threshold(self) -> int:
        """``index.knn.advanced.approximate_threshold``: vectors needed before an HNSW graph is built."""
        value = self.flat.get("index.knn.advanced.approximate_threshold", KNN_DEFAULT_APPROXIMATE_THRESHOLD)
        return int(value)

    def analysis(self) -> dict[str, Any]:
        prefix = "index.analysis."
        return nest({k[len(prefix):]: v for k, v in self.flat.items() if k.startswith(prefix)})

    def render(self, flat_settings: bool = False, include_defaults: bool = False) -> dict[str, Any]:
        if flat_settings:
            return dict(sorted(self.flat.items()))
        return nest(self.flat)
