"""Index mappings: validation, additive merges, dynamic mapping, and parsing documents into indexable values.

A :class:`Mapping` keeps the mapping JSON as OpenSearch returns it (``properties`` tree as given, plus
dynamically added fields) and a flat table of :class:`Field` objects, one per leaf path, multi-fields included
(``title.keyword``). :meth:`Mapping.parse` turns a document's ``_source`` into a :class:`ParsedDoc`: analysed
term frequencies for text, terms for keyword/boolean, numbers for numeric and date fields, encoded feature
frequencies for ``rank_feature(s)`` and arrays for ``knn_vector``.
"""

from __future__ import annotations

import copy
import ipaddress
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import errors
from ..analysis import AnalysisError, Analyzer, get_analyzer
from .dates import storable_date_value
from .encoding import SPACE_TYPES, encode_feature
from .metadata_fields import METADATA_FIELDS
from .settings import IndexSettings
from .values import (
    NUMERIC_TYPES,
    coerce_boolean,
    coerce_number,
    looks_like_date,
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


class Mapping:
    """An index's mapping. ``limits`` (the index's live settings) gives ``index.mapping.total_fields.limit``
    and ``index.mapping.depth.limit``; every merge after construction is held to them and to the checks a new
    field gets, and so is the initial body when ``strict`` (a new index, not one recovering: a stored mapping
    is never refused at start, whatever rules came since)."""

    def __init__(self, body: dict[str, Any] | None = None, analysis: dict[str, Any] | None = None,
                 limits: IndexSettings | None = None, strict: bool = False) -> None:
        self.analysis = analysis or {}
        self.limits = limits
        self.body: dict[str, Any] = {}
        self.fields: dict[str, Field] = {}
        self.objects: set[str] = set()
        self._checking = True  # whether the document being parsed is held to the limits
        self._lenient = False  # replaying: a value the mapping cannot take is skipped, not refused
        self.skipped: list[str] = []  # what the last lenient parse skipped (field and reason)
        if body:
            self.merge(body, strict=strict)

    # ----- validation and merging ---------------------------------------------------------------------------
    def merge(self, update: dict[str, Any], strict: bool = True) -> bool:
        """Add ``update`` to this mapping (put-mapping semantics); raise on conflicts and, when ``strict``, on
        broken limits or field parameters. True when anything changed."""
        if not isinstance(update, dict):
            raise errors.mapper_parsing("Root mapping definition must be an object")
        merged = copy.deepcopy(self.body)
        for key, value in update.items():
            if key == "properties":
                if not isinstance(value, dict):
                    raise errors.mapper_parsing("[properties] must be an object")
                merged.setdefault("properties", {})
                _merge_properties(merged["properties"], value, "")
            elif key in ROOT_PARAMS:
                if strict:
                    _check_root_param(key, value)
                merged[key] = copy.deepcopy(value)
            else:
                raise errors.mapper_parsing(
                    f"Root mapping definition has unsupported parameters:  [{key} : {value}]"
                )
        fields, objects = self._compile(merged)
        if strict:
            for path, spec in fields.items():
                if path not in self.fields or self.fields[path].params != spec.params:
                    _check_new_field(spec)
            self._check_limits(fields, objects)
        changed = merged != self.body
        self.body, self.fields, self.objects = merged, fields, objects
        return changed

    def _check_limits(self, fields: dict[str, Field], objects: set[str]) -> None:
        """MapperService's checks, in its order: total fields (objects, leaves and multi-fields), then the
        depth of every object (``a.b`` is at depth 3: the root counts as 1)."""
        if self.limits is None:
            return
        total = self.limits.total_fields_limit
        if len(fields) + len(objects) > total:
            raise errors.illegal_argument(f"Limit of total fields [{total}] has been exceeded")
        for path in objects:
            self._check_depth(path)

    def _check_depth(self, object_path: str) -> None:
        if self.limits is None:
            return
        limit = self.limits.depth_limit
        if object_path.count(".") + 2 > limit:
            raise errors.illegal_argument(
                f"Limit of mapping depth [{limit}] has been exceeded due to object field [{object_path}]"
            )

    def _compile(self, body: dict[str, Any]) -> tuple[dict[str, Field], set[str]]:
        fields: dict[str, Field] = {}
        objects: set[str] = set()

        def walk(props: Any, prefix: str) -> None:
            if not isinstance(props, dict):
                raise errors.mapper_parsing(
                    f"Expected map for property [properties] on field [{prefix[:-1]}] but got a "
                    f"{_java_type(props)}"
                )
            for name, spec in props.items():
                path = f"{prefix}{name}"
                if not isinstance(spec, dict):
                    raise errors.mapper_parsing(
                        f"Expected map for property [fields] on field [{name}] but got a {_java_type(spec)}"
                    )
                ftype = spec.get("type", "object" if "properties" in spec or "type" not in spec else None)
                if ftype in OBJECT_TYPES:
                    objects.add(path)
                    walk(spec.get("properties", {}), path + ".")
                    continue
                fields[path] = self._make_field(path, ftype, spec)
                multi = spec.get("fields") or {}
                if not isinstance(multi, dict):
                    raise errors.mapper_parsing(
                        f"Expected map for property [fields] on field [{name}] but got a {_java_type(multi)}"
                    )
                for sub, subspec in multi.items():
                    if not isinstance(subspec, dict):
                        raise errors.mapper_parsing(
                            f"Expected map for property [fields] on field [{sub}] but got a "
                            f"{_java_type(subspec)}"
                        )
                    fields[f"{path}.{sub}"] = self._make_field(f"{path}.{sub}", subspec.get("type"), subspec)

        walk(body.get("properties", {}), "")
        return fields, objects

    def _make_field(self, path: str, ftype: str | None, spec: dict[str, Any]) -> Field:
        if ftype is None:
            raise errors.mapper_parsing(f"No type specified for field [{path.rsplit('.', 1)[-1]}]")
        if ftype not in LEAF_TYPES:
            raise errors.mapper_parsing(
                f"No handler for type [{ftype}] declared on field [{path.rsplit('.', 1)[-1]}]"
            )
        result = Field(path, ftype, spec)
        if ftype in TEXT_TYPES:
            try:
                result.analyzer = get_analyzer(spec.get("analyzer", "default"), self.analysis)
                result.search_analyzer = get_analyzer(self._search_analyzer_name(spec), self.analysis)
            except AnalysisError as exc:
                raise errors.mapper_parsing(str(exc)) from exc
        if ftype == "knn_vector":
            dimension = spec.get("dimension")
            if not isinstance(dimension, int) or isinstance(dimension, bool) or not 1 <= dimension <= 16000:
                raise errors.mapper_parsing(
                    f"Dimension value must be a positive integer no greater than 16000 for vector: {path}"
                    if dimension is not None else f"Dimension value missing for vector: {path}"
                )
            method = spec.get("method") or {}
            if not isinstance(method, dict):
                raise errors.mapper_parsing(
                    f"Unable to parse mapping into KNNMethodContext for field [{path}]"
                )
            space = method.get("space_type", spec.get("space_type", "l2"))
            if space not in SPACE_TYPES:
                raise errors.mapper_parsing(
                    f"Unable to parse mapping into KNNMethodContext. Invalid space type "
                    f"[{space}] for field [{path}]; choose one of {list(SPACE_TYPES)}"
                )
        if ftype in ("rank_feature", "rank_features") and "positive_score_impact" in spec and not isinstance(
            spec["positive_score_impact"], bool
        ):
            raise errors.mapper_parsing(f"[positive_score_impact] on field [{path}] must be a boolean")
        return result

    def _search_analyzer_name(self, spec: dict[str, Any]) -> str:
        """Search analyzer: the field's own, else its index analyzer, else default_search, else default."""
        if "search_analyzer" in spec:
            return str(spec["search_analyzer"])
        if "analyzer" in spec:
            return str(spec["analyzer"])
        return "default_search" if "default_search" in (self.analysis.get("analyzer") or {}) else "default"

    # ----- lookups ------------------------------------------------------------------------------------------
    def field(self, path: str) -> Field | None:
        return self.fields.get(path)

    def dynamic(self) -> str:
        return str(self.body.get("dynamic", "true")).lower()

    def source_enabled(self) -> bool:
        source = self.body.get("_source")
        return not isinstance(source, dict) or str(source.get("enabled", True)).lower() != "false"

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(self.body)

    # ----- document parsing ---------------------------------------------------------------------------------
    def parse(self, source: dict[str, Any], doc_id: str, nested_limit: int | None = None,
              check_limits: bool = True, lenient: bool = False) -> tuple[ParsedDoc, dict[str, Any] | None]:
        """Parse ``source``; returns the parsed values and a dynamic mapping update (or None).

        A dynamic update is held to the mapping limits unless ``check_limits`` is false. ``lenient`` is for
        translog replay: the document was accepted when it was written, under the mapping of that moment,
        and the mapping may have grown since (a field mapped after the document ignored a value of it,
        ``dynamic`` made strict), so a value the mapping now refuses is skipped, as ``ignore_malformed``
        would, instead of refusing an acknowledged document."""
        parsed = ParsedDoc()
        dynamic_props: dict[str, Any] = {}
        saved = (dict(self.fields), set(self.objects))
        self._checking, self._lenient = check_limits, lenient
        self.skipped = []
        update = None
        try:
            for name in source:
                if name in METADATA_FIELDS and not lenient:
                    raise errors.mapper_parsing(
                        f"Field [{name}] is a metadata field and cannot be added inside a document. Use the "
                        "index API request parameters."
                    )
            self._parse_object(source, "", parsed, dynamic_props, doc_id, self.dynamic())
            if nested_limit is not None and parsed.nested_docs > nested_limit:
                raise errors.mapper_parsing(
                    "failed to parse",
                    caused_by={
                        "type": "illegal_argument_exception",
                        "reason": "The number of nested documents has exceeded the allowed limit of "
                                  f"[{nested_limit}]. "
                        f"This limit can be set by changing the [index.mapping.nested_objects.limit] index "
                        f"level setting.",
                    },
                )
            if dynamic_props:
                _keep_object_types(dynamic_props, self.body.get("properties", {}))
                update = {"properties": dynamic_props}
                self.merge(update, strict=check_limits)
                # Values of newly mapped fields were collected under their inferred types already.
        except Exception:
            self.fields, self.objects = saved  # a rejected document leaves no dynamic fields behind
            raise
        return parsed, update

    def _parse_object(
        self,
        obj: dict[str, Any],
        prefix: str,
        parsed: ParsedDoc,
        dynamic_props: dict[str, Any],
        doc_id: str,
        dynamic: str,
    ) -> None:
        lenient = self._lenient
        for name, value in obj.items():
            if not prefix and name in METADATA_FIELDS:  # refused by parse(); skipped when replaying
                continue
            if not name or name.strip(".") != name or ".." in name:
                if lenient:
                    self.skipped.append(f"[{prefix}{name}]: not a usable field name")
                    continue
                raise errors.mapper_parsing(
                    "field name cannot be an empty string" if not name else
                    f"object field starting or ending with a [.] makes object resolution ambiguous: [{name}]"
                )
            path = f"{prefix}{name}"
            if "." in name:  # dotted names map to nested objects, as OpenSearch expands them
                head, rest = name.split(".", 1)
                self._parse_object({head: {rest: value}}, prefix, parsed, dynamic_props, doc_id, dynamic)
                continue
            if value is None or value == []:
                spec = self.fields.get(path)
                # An empty knn_vector is the field's to refuse (a dimension mismatch), not a missing value.
                if spec is None or spec.type != "knn_vector" or value is None:
                    null_value = spec.params.get("null_value") if spec else None
                    if null_value is None:
                        continue
                    value = null_value
            # An array is a field's values whatever its nesting ([[1, 2], [3]] is 1, 2, 3), as OpenSearch
            # parses it; an unmapped one whose first value is an object maps an object, as a lone object does.
            values = _flatten(value) if isinstance(value, list) else None
            is_object = isinstance(value, dict) or (values is not None and isinstance(_first(values), dict))
            if path in self.objects or (path not in self.fields and is_object):
                if not isinstance(value, dict | list):
                    if lenient:
                        self.skipped.append(f"[{path}]: a concrete value for an object")
                        continue
                    raise errors.mapper_parsing(
                        f"object mapping for [{path}] tried to parse field [{name}] as object, but found a "
                        "concrete value"
                    )
                for item in values if values is not None else [value]:
                    if item is None:
                        continue
                    if not isinstance(item, dict):
                        if lenient:
                            self.skipped.append(f"[{path}]: a concrete value for an object")
                            continue
                        raise errors.mapper_parsing(
                            f"object mapping for [{path}] tried to parse field [{name}] as object, but "
                            "found a concrete value"
                        )
                    if path not in self.objects:
                        if dynamic == "strict" and not lenient:
                            raise _strict(name, prefix)
                        if dynamic in ("false", "strict"):
                            continue
                        if self._checking:  # at once, before a deep document is walked any deeper
                            self._check_depth(path)
                        _ensure_object(dynamic_props, path)
                        self.objects.add(path)
                    spec = self._object_spec(path)
                    if spec is not None and spec.get("type") == "nested":
                        parsed.nested_docs += 1
                    if spec is not None and spec.get("enabled") is False:
                        parsed.present.add(path)
                        continue
                    sub_dynamic = str(spec.get("dynamic", dynamic)).lower() if spec else dynamic
                    self._parse_object(item, path + ".", parsed, dynamic_props, doc_id, sub_dynamic)
                    parsed.present.add(path)
                continue
            spec_field = self.fields.get(path)
            if spec_field is None:
                if dynamic == "strict" and not lenient:
                    raise _strict(name, prefix)
                if dynamic in ("false", "strict"):
                    continue
                inferred = _infer_mapping(value, self.body)
                if inferred is None:
                    continue
                _ensure_leaf(dynamic_props, path, inferred)
                spec_field = self._make_field(path, inferred["type"], inferred)
                self.fields[path] = spec_field
                for sub, subspec in (inferred.get("fields") or {}).items():
                    self.fields[f"{path}.{sub}"] = self._make_field(f"{path}.{sub}", subspec["type"], subspec)
            self._parse_leaf(spec_field, value, parsed, doc_id)
            for sub in spec_field.params.get("fields") or {}:
                self._parse_leaf(self.fields[f"{path}.{sub}"], value, parsed, doc_id)
            for target in _as_list(spec_field.params.get("copy_to")):
                target_field = self.fields.get(target)
                if target_field is not None:
                    self._parse_leaf(target_field, value, parsed, doc_id)

    def _object_spec(self, path: str) -> dict[str, Any] | None:
        node: dict[str, Any] | None = {"properties": self.body.get("properties", {})}
        for part in path.split("."):
            if node is None:
                return None
            node = (node.get("properties") or {}).get(part)
        return node

    def _parse_leaf(self, spec: Field, value: Any, parsed: ParsedDoc, doc_id: str) -> None:
        ftype = spec.type
        path = spec.path
        try:
            if ftype == "knn_vector":
                parsed.vectors[path] = _parse_vector(value, spec)
                parsed.present.add(path)
                return
            if ftype == "rank_features":
                parsed.features[path] = _parse_rank_features(
                    value, path, positive_impact=spec.params.get("positive_score_impact", True) is not False)
                parsed.present.add(path)
                return
            if ftype == "rank_feature":
                if isinstance(value, list):
                    raise ValueError(
                        f"[rank_feature] fields do not support indexing multiple values for the same field "
                        f"[{path}] in the same document"
                    )
                number = float(coerce_number(value, "float"))
                if spec.params.get("positive_score_impact", True) is False:
                    number = _inverse_float(number)
                parsed.features[path] = {path: _encode_feature(number, path)}
                parsed.present.add(path)
                return
            values = _flatten(value) if isinstance(value, list) else [value]
            for item in values:
                if item is None:
                    continue
                if isinstance(item, dict):
                    raise ValueError("Can't get text on a START_OBJECT")
                self._parse_scalar(spec, item, parsed)
        except errors.EngineError as exc:
            if self._lenient:
                self.skipped.append(f"[{path}]: {exc.reason}")
                return
            raise
        except ValueError as exc:
            if self._lenient:
                self.skipped.append(f"[{path}]: {exc}")
                return
            if spec.params.get("ignore_malformed"):
                return
            preview = value if not isinstance(value, str) else value[:20]
            raise errors.mapper_parsing(
                f"failed to parse field [{path}] of type [{ftype}] in document with id '{doc_id}'. "
                f"Preview of field's value: '{preview}'",
                caused_by={"type": "illegal_argument_exception", "reason": str(exc)},
            ) from exc

    def _parse_scalar(self, spec: Field, item: Any, parsed: ParsedDoc) -> None:
        ftype, path = spec.type, spec.path
        if ftype in TEXT_TYPES:
            text = item if isinstance(item, str) else _json_scalar_text(item)
            tokens = spec.analyzer.tokens(text) if spec.analyzer else [text]
            if spec.indexed is False:
                parsed.present.add(path)
                return
            previous = parsed.text.get(path)
            if previous is None:
                freqs, length = dict(Counter(tokens)), 0  # Counter counts in C, in first-occurrence order
            else:
                freqs, length = previous
                for token in tokens:
                    freqs[token] = freqs.get(token, 0) + 1
            if len(text) > MAX_TERM_BYTES // 4:  # only then can a token pass Lucene's term length limit
                for token in tokens:
                    _check_term_length(path, token)
            # Lucene counts every position of every value (position_increment_gap only shifts positions).
            parsed.text[path] = (freqs, length + len(tokens))
        elif ftype in ("keyword", "constant_keyword", "wildcard", "ip"):
            text = item if isinstance(item, str) else _json_scalar_text(item)
            if ftype == "ip":
                _check_ip(text)
            ignore_above = spec.params.get("ignore_above")
            if ignore_above is not None and len(text) > int(ignore_above):
                return
            if spec.params.get("normalizer") == "lowercase":
                text = text.lower()
            _check_term_length(path, text)
            parsed.terms.setdefault(path, []).append(text)
        elif ftype == "boolean":
            parsed.terms.setdefault(path, []).append("true" if coerce_boolean(item) else "false")
        elif ftype in ("date", "date_nanos"):
            parsed.numbers.setdefault(path, []).append(
                storable_date_value(item, ftype, spec.params.get("format"))
            )
        elif ftype in NUMERIC_TYPES:
            number = coerce_number(item, ftype, bool(spec.params.get("coerce", True)))
            if ftype in ("half_float", "float"):
                number = _narrow_float(number, ftype)
            elif ftype == "scaled_float":
                number = _scaled(number, spec.params.get("scaling_factor"))
            parsed.numbers.setdefault(path, []).append(number)
        else:  # binary, geo_point, completion: stored in _source, exists-queryable, not searchable here
            pass
        parsed.present.add(path)


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
    if key == "_source" and not isinstance(value.get("enabled", True), bool | str):
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


def term_counts(tokens: list[str]) -> tuple[dict[str, int], int]:
    """Term frequencies and field length of an analysed value."""
    return dict(Counter(tokens)), len(tokens)
