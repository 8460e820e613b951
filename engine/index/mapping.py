"""Index mappings: validation, additive merges, dynamic mapping, and parsing documents into indexable values.

A :class:`Mapping` keeps the mapping JSON as OpenSearch returns it (``properties`` tree as given, plus
dynamically added fields) and a flat table of :class:`Field` objects, one per leaf path, multi-fields included
(``title.keyword``). :meth:`Mapping.parse` turns a document's ``_source`` into a :class:`ParsedDoc`: analysed
term frequencies for text, terms for keyword/boolean, numbers for numeric and date fields, encoded feature
frequencies for ``rank_feature(s)`` and arrays for ``knn_vector``.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

from .. import errors
from ..analysis import AnalysisError, get_analyzer
from .dates import storable_date_value
from .encoding import SPACE_TYPES
from .fields import (
    LEAF_TYPES,
    MAX_TERM_BYTES,
    OBJECT_TYPES,
    ROOT_PARAMS,
    TEXT_TYPES,
    Field,
    ParsedDoc,
    _as_list,
    _check_ip,
    _check_new_field,
    _check_root_param,
    _check_term_length,
    _encode_feature,
    _first,
    _flatten,
    _inverse_float,
    _java_type,
    _json_scalar_text,
    _narrow_float,
    _parse_rank_features,
    _parse_vector,
    _scaled,
    _strict,
)
from .mapping_merge import _ensure_leaf, _ensure_object, _infer_mapping, _keep_object_types, _merge_properties
from .metadata_fields import METADATA_FIELDS
from .settings import IndexSettings
from .values import (
    NUMERIC_TYPES,
    coerce_boolean,
    coerce_number,
)


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
                    object_spec = self._object_spec(path)
                    if object_spec is not None and object_spec.get("type") == "nested":
                        parsed.nested_docs += 1
                    if object_spec is not None and object_spec.get("enabled") is False:
                        parsed.present.add(path)
                        continue
                    sub_dynamic = str(object_spec.get("dynamic", dynamic)).lower() if object_spec else dynamic
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


