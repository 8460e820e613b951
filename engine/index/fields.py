"""Field types and what a document's values become: the :class:`Field` table entry, the :class:`ParsedDoc`,
and the checks and conversions of one value (term length, ip, floats, scaled floats, rank features, vectors),
with OpenSearch's messages.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import errors
from ..analysis import Analyzer
from .encoding import encode_feature
from .values import (
    NUMERIC_TYPES,
    coerce_number,
)

TEXT_TYPES = ("text", "match_only_text")
TERM_TYPES = ("keyword", "boolean", "ip", "constant_keyword", "wildcard")
LEAF_TYPES = TEXT_TYPES + TERM_TYPES + NUMERIC_TYPES + (
    "date", "date_nanos", "rank_feature", "rank_features", "knn_vector", "binary", "geo_point", "completion",
)
OBJECT_TYPES = ("object", "nested", "flat_object")
# Parameters OpenSearch lets a put-mapping change on an existing field; any other change is a conflict.
UPDATABLE_PARAMS = {
    "ignore_above", "search_analyzer", "search_quote_analyzer", "fields", "meta", "ignore_malformed",
    "null_value", "boost", "copy_to", "use_similarity",
}


@dataclass
class Field:
    """One leaf field of the mapping (a multi-field has its own, e.g. ``title.keyword``)."""

    path: str
    type: str
    params: dict[str, Any]
    analyzer: Analyzer | None = None
    search_analyzer: Analyzer | None = None

    @property
    def indexed(self) -> bool:
        return bool(self.params.get("index", True))

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES or self.type in ("date", "date_nanos")


@dataclass
class ParsedDoc:
    """A document's indexable values, keyed by field path."""

    text: dict[str, tuple[dict[str, int], int]] = field(
        default_factory=dict
    )  # path -> (term -> freq, length)
    terms: dict[str, list[str]] = field(default_factory=dict)  # keyword / boolean / ip terms
    numbers: dict[str, list[int | float]] = field(default_factory=dict)  # numeric and date (epoch millis)
    features: dict[str, dict[str, int]] = field(default_factory=dict)  # path -> feature name -> encoded freq
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)  # every field and object path that has a value
    nested_docs: int = 0  # objects under `nested` fields: Lucene indexes each as a hidden document


MAX_TERM_BYTES = 32766  # Lucene's IndexWriter.MAX_TERM_LENGTH


def _check_term_length(path: str, term: str) -> None:
    """Lucene refuses a document with a term longer than 32766 UTF-8 bytes (OpenSearch answers 400)."""
    if len(term) > MAX_TERM_BYTES // 4 and len(encoded := term.encode()) > MAX_TERM_BYTES:
        prefix = list(encoded[:30])
        raise errors.illegal_argument(
            f'Document contains at least one immense term in field="{path}" (whose UTF8 encoding is longer '
            f"than the max length {MAX_TERM_BYTES}), all of which were skipped.  Please correct the "
            f"analyzer to not produce such terms.  The prefix of the first immense term is: '{prefix}...', "
            f"original message: bytes can be at most {MAX_TERM_BYTES} in length; got {len(encoded)}"
        )


def _check_ip(text: str) -> None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"'{text}' is not an IP string literal.") from None


def _java_float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def _narrow_float(number: int | float, ftype: str) -> float:
    """``number`` rounded to a float / half_float; NumberFieldMapper refuses what overflows it."""
    with np.errstate(over="ignore"):
        narrowed = float(np.float16(number) if ftype == "half_float" else np.float32(number))
    if not math.isfinite(narrowed):
        shown = _java_float_text(float(np.float32(number)) if ftype == "float" else float(number))
        raise ValueError(f"[{ftype}] supports only finite values, but got [{shown}]")
    return narrowed


def _scaled(number: int | float, scaling_factor: Any) -> float:
    """A scaled_float's value: ``Math.round(value * scaling_factor) / scaling_factor`` (Math.round saturates
    at the long range)."""
    factor = _positive_number(scaling_factor)
    if factor is None:
        raise ValueError(f"[scaling_factor] must be a positive number, got [{scaling_factor}]")
    scaled = float(number) * factor
    if not math.isfinite(scaled) or abs(scaled) >= 2**63:
        rounded = 2**63 - 1 if scaled > 0 else -(2**63)
    else:
        rounded = round(scaled)
    return rounded / factor


# Root mapping parameters, with the JSON shape each must have.
ROOT_PARAMS: dict[str, type | tuple[type, ...]] = {
    "dynamic": (bool, str), "_source": dict, "_meta": dict, "date_detection": (bool, str),
    "numeric_detection": (bool, str), "dynamic_templates": list, "_routing": dict, "enabled": (bool, str),
    "_field_names": dict, "_all": dict, "_size": dict,
}


def _check_root_param(key: str, value: Any) -> None:
    """A root mapping parameter of the shape OpenSearch's RootObjectMapper parses (a stored mapping is
    read leniently instead: see source_enabled)."""
    expected = ROOT_PARAMS[key]
    if not isinstance(value, expected):
        raise errors.mapper_parsing(
            f"Failed to parse mapping [_doc]: [{key}] has an unsupported value [{value}] "
            f"(a {_java_type(value)})"
        )
    if isinstance(value, str):
        allowed = ("true", "false", "strict", "runtime") if key == "dynamic" else ("true", "false")
        if value.lower() not in allowed:
            raise errors.mapper_parsing(f"Could not convert [{key}] to boolean")
    source_enabled = value.get("enabled", True) if key == "_source" and isinstance(value, dict) else True
    if not isinstance(source_enabled, bool | str):
        raise errors.mapper_parsing("Could not convert [_source.enabled] to boolean")


def _java_type(value: Any) -> str:
    """The Java class name OpenSearch's mapping parser names for a JSON value in its errors."""
    if isinstance(value, bool):
        return "java.lang.Boolean"
    if isinstance(value, int):
        return "java.lang.Integer"
    if isinstance(value, float):
        return "java.lang.Double"
    if isinstance(value, list):
        return "java.util.ArrayList"
    return "java.lang.String" if isinstance(value, str) else "null"


def _positive_number(value: Any) -> float | None:
    """``value`` as a finite number above 0 (numeric strings accepted, as XContent coerces them); else
    None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _check_new_field(spec: Field) -> None:
    """Parameters OpenSearch refuses when a field is mapped, and that would otherwise fail every document (or
    a refresh) later. Only new and changed fields are checked: a stored mapping is never refused."""
    params = spec.params
    if spec.type == "scaled_float":
        if "scaling_factor" not in params:
            raise errors.mapper_parsing(f"Field [scaling_factor] is required for field [{spec.path}]")
        if _positive_number(params["scaling_factor"]) is None:
            raise errors.mapper_parsing(
                f"[scaling_factor] must be a positive number, got [{params['scaling_factor']}]"
            )
    if "ignore_above" in params:
        value = params["ignore_above"]
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
            raise errors.mapper_parsing(
                f"[ignore_above] must be a non-negative integer on field [{spec.path}], got [{value}]"
            )
    if spec.type == "knn_vector":
        method_params = (params.get("method") or {}).get("parameters") or {}
        if not isinstance(method_params, dict):
            raise errors.mapper_parsing(
                f"Unable to parse mapping into KNNMethodContext for field [{spec.path}]"
            )
        for name in ("m", "ef_construction"):
            value = method_params.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise errors.mapper_parsing(
                    f"Validation Failed: 1: parameter validation failed for MethodComponentContext "
                    f"parameter [{name}].;"
                )


def _encode_feature(value: float, path: str) -> int:
    try:
        return encode_feature(value)
    except ValueError as exc:
        raise ValueError(f"[rank_feature] fields only support finite positive values, but got [{value}] for "
                         f"field [{path}]: {exc}") from exc


def _inverse_float(value: float) -> float:
    """``1 / value`` in float32, as the feature mappers compute it for a negative score impact."""
    single = np.float32(value)
    return float(np.float32(1.0) / single) if single else math.inf


def _parse_rank_features(value: Any, path: str, positive_impact: bool = True) -> dict[str, int]:
    """Encoded features of a ``rank_features`` value; with a negative score impact each value is stored as its
    inverse (RankFeaturesFieldMapper), so that higher values score lower."""
    if not isinstance(value, dict):
        raise ValueError(
            f"[rank_features] fields must be json objects, expected a START_OBJECT but got: {value!r}"
        )
    out: dict[str, int] = {}
    for key, weight in value.items():
        if weight is None:  # RankFeaturesFieldMapper ignores a null feature, as numeric fields do
            continue
        if isinstance(weight, list):
            raise ValueError(
                f"[rank_features] fields do not support indexing multiple values for the same rank feature "
                f"[{path}.{key}] in the same document"
            )
        number = float(coerce_number(weight, "float"))
        if not positive_impact:
            number = _inverse_float(number)
        out[key] = _encode_feature(number, f"{path}.{key}")
    return out


def _parse_vector(value: Any, spec: Field) -> np.ndarray:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise ValueError("Vector values must be an array of numbers")
    vector = np.asarray(value, dtype=np.float32)
    dimension = int(spec.params["dimension"])
    if vector.shape[0] != dimension:
        raise ValueError(f"Vector dimension mismatch. Expected: {dimension}, Given: {vector.shape[0]}")
    if not np.all(np.isfinite(vector)):
        raise ValueError("KNN vector values cannot be NaN or Infinity")
    space = (spec.params.get("method") or {}).get("space_type", spec.params.get("space_type", "l2"))
    if space == "cosinesimil" and not np.any(vector):
        raise ValueError("zero vector is not supported when space type is [cosinesimil]")
    return vector


def _json_scalar_text(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _strict(name: str, prefix: str) -> errors.EngineError:
    parent = prefix[:-1] if prefix else "_doc"
    return errors.EngineError(
        400,
        "strict_dynamic_mapping_exception",
        f"mapping set to strict, dynamic introduction of [{name}] within [{parent}] is not allowed",
    )


def _flatten(values: list[Any]) -> list[Any]:
    """The values of a JSON array, nested arrays flattened in order (iteratively: no recursion on depth)."""
    if not any(isinstance(v, list) for v in values):
        return values
    out: list[Any] = []
    stack = [iter(values)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _first(values: list[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def term_counts(tokens: list[str]) -> tuple[dict[str, int], int]:
    """Term frequencies and field length of an analysed value."""
    return dict(Counter(tokens)), len(tokens)
