"""The query DSL's parameters: ``minimum_should_match``, rank-feature functions, k-NN method parameters,
single-field forms and term text, as OpenSearch reads them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import errors


def _knn_method_parameters(given: Any) -> int | None:
    """``ef_search`` from a knn query's ``method_parameters`` (k-NN ``MethodParametersParser``); ``nprobes``
    (IVF) is validated and has no effect on an HNSW field."""
    if given is None:
        return None
    if not isinstance(given, dict):
        raise errors.illegal_argument("[knn] method_parameters must be an object")
    problems = []
    for name, value in given.items():
        if name not in ("ef_search", "nprobes"):
            problems.append(f"{name} is not a valid method parameter")
        elif not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            problems.append(f"{name} should be greater than 0")
    if problems:
        numbered = "".join(f"{i}: {problem};" for i, problem in enumerate(problems, 1))
        raise errors.illegal_argument(f"[knn] errors in method parameter [Validation Failed: {numbered}]")
    return given.get("ef_search")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _single_field(body: Any, query: str, value_key: str | None) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise errors.parsing(f"[{query}] query malformed, no start_object after query name")
    fields = [(k, v) for k, v in body.items() if k not in ("boost", "_name") or isinstance(v, dict)]
    if len(fields) != 1:
        raise errors.parsing(
            f"[{query}] query doesn't support multiple fields, found [{fields[0][0]}] and [{fields[1][0]}]"
            if len(fields) > 1 else f"[{query}] query requires a field"
        )
    path, params = fields[0]
    if not isinstance(params, dict):
        if value_key is None:
            raise errors.parsing(f"[{query}] query malformed, expected an object for field [{path}]")
        params = {value_key: params}
    elif value_key is not None and value_key not in params:
        raise errors.parsing(f"[{query}] query requires [{value_key}] for field [{path}]")
    if "boost" in body and not isinstance(body["boost"], dict):
        params = {**params, "boost": body["boost"]}
    return path, params


def _term_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


FEATURE_MAX_WEIGHT = 64.0  # FeatureField.MAX_WEIGHT (Long.SIZE)
# What each rank_feature function takes (RankFeatureQueryBuilder.ScoreFunction parsers, declareFloat) and the
# bounds Lucene's FeatureField factories then check (`pivot must be > 0`, `scalingFactor must be >= 1`, ...).
_FEATURE_PARAMS: dict[str, dict[str, tuple[str, float, bool]]] = {
    "saturation": {"pivot": ("pivot must be > 0", 0.0, False)},
    "log": {"scaling_factor": ("scalingFactor must be >= 1", 1.0, True)},
    "sigmoid": {"pivot": ("pivot must be > 0", 0.0, False), "exponent": ("exp must be > 0", 0.0, False)},
    "linear": {},
}


def _feature_function_params(function: str, given: Any) -> dict[str, float]:
    """A rank_feature function's parameters as floats, refused as OpenSearch refuses them: an unknown or
    non-numeric field while parsing, a value out of FeatureField's range when the query is built."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise errors.xcontent_parse(f"[{function}] expected an object, found [{given}]")
    allowed = _FEATURE_PARAMS[function]
    params: dict[str, float] = {}
    for name, value in given.items():
        if name not in allowed:
            raise errors.xcontent_parse(f"[{function}] unknown field [{name}]")
        try:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError
            number = float(value)
        except ValueError:
            raise errors.xcontent_parse(f"[{function}] failed to parse field [{name}]") from None
        with np.errstate(over="ignore"):
            as_float = float(np.float32(number))  # declareFloat: the value is read as a Java float
        message, bound, inclusive = allowed[name]
        if not math.isfinite(as_float) or as_float < bound or (as_float == bound and not inclusive):
            raise _query_shard(f"failed to create query: {message}, got: {_java_float(as_float)}")
        params[name] = as_float
    return params


def _java_float(value: float) -> str:
    """``Float.toString`` for the values these messages print (``-1.0``, ``0.0``, ``Infinity``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value != 0 and not 1e-3 <= abs(value) < 1e7:
        mantissa, exponent = np.format_float_scientific(np.float32(value), unique=True).split("e")
        return f"{mantissa}{'0' if mantissa.endswith('.') else ''}E{int(exponent)}"
    return str(np.float32(value))


def _query_shard(reason: str) -> errors.EngineError:
    return errors.EngineError(400, "query_shard_exception", reason)

def minimum_should_match(spec: Any, optional_clauses: int) -> int:
    """OpenSearch's Queries.calculateMinShouldMatch: ``3``, ``-2``, ``75%``, ``-25%``, ``3<90%``, ``2<-25%
    9<-3``."""
    text = str(spec).strip()
    if "<" in text:
        result = optional_clauses
        for part in text.split():
            upper, _, rule = part.partition("<")
            if optional_clauses > int(upper):
                result = minimum_should_match(rule, optional_clauses)
        return result
    if text.endswith("%"):
        percent = float(text[:-1])
        computed = int(optional_clauses * percent / 100) if percent >= 0 else optional_clauses - int(
            optional_clauses * -percent / 100)
        result = computed
    else:
        try:
            value = int(text)
        except ValueError:
            raise errors.illegal_argument(f"Invalid minimum_should_match value [{spec}]") from None
        result = optional_clauses + value if value < 0 else value
    return max(0, result) if result <= optional_clauses else result


