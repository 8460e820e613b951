"""The mappings nirbridge writes into an index, composed from the JSON fragments in `nirbridge.mappings`.

The fragments are data (one file per enriched field, plus the index template); this module loads them, fills
their `"${name}"` placeholders, checks the parameters, and compares a wanted mapping with an existing one:

    >>> fields = EnrichedFields()
    >>> wanted = enriched_properties(fields, dense_dimension=384, dense_space_type="cosinesimil")
    >>> client.indices.put_mapping(index=name, body={"properties": missing_fields(existing, wanted)})

`conflicts()` names the fields an index already has with another type; those cannot be changed in place
(OpenSearch refuses it), they need a new index.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from functools import cache
from importlib.resources import files
from typing import Any, Literal, get_args

__all__ = [
    "DENSE_ENGINES",
    "FieldKind",
    "SPACE_TYPES",
    "EnrichedFields",
    "conflicts",
    "corpus_index_body",
    "enriched_properties",
    "field_mapping",
    "index_template",
    "load_fragment",
    "missing_fields",
    "properties_of",
]

FieldKind = Literal["sparse", "terms", "expansion", "dense", "meta", "terms_text"]
ALL_FIELD_KINDS: tuple[FieldKind, ...] = get_args(FieldKind)
# terms_text (DeepCT's pseudo-text, BM25-searchable) is written only when asked for: not in the default set
FIELD_KINDS: tuple[FieldKind, ...] = ("sparse", "terms", "expansion", "dense", "meta")

SPACE_TYPES = ("l2", "cosinesimil", "innerproduct")
# lucene takes all three space types on every OpenSearch since 2.13; faiss takes cosinesimil only since 2.19.
DENSE_ENGINES = ("lucene", "faiss", "nmslib")

# The parameters each fragment takes, with their defaults (None: required).
_PARAMETERS: dict[FieldKind, dict[str, Any]] = {
    "sparse": {},
    "terms": {},
    "expansion": {},
    "dense": {"dimension": None, "space_type": "cosinesimil", "engine": "lucene"},
    "meta": {},
    "terms_text": {},
}
_PLACEHOLDER = re.compile(r"^\$\{([a-z_]+)\}$")
_FIELD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class EnrichedFields:
    """The names of the fields nirbridge writes; the defaults are DESIGN.md's."""

    sparse: str = "nir_sparse"
    terms: str = "nir_terms"
    expansion: str = "nir_expansion"
    dense: str = "nir_dense"
    meta: str = "nir_meta"
    terms_text: str = "nir_terms_text"

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for item in dataclass_fields(self):
            name = getattr(self, item.name)
            if not isinstance(name, str) or not _FIELD_NAME.match(name):
                raise ValueError(
                    f"EnrichedFields.{item.name}: {name!r} is not a usable field name "
                    "(letters, digits, '_' or '-', not starting with '_' or '-', no dots)"
                )
            if name in seen:
                raise ValueError(f"EnrichedFields.{item.name}: {name!r} is already the name of {seen[name]}")
            seen[name] = item.name

    def name_of(self, kind: FieldKind) -> str:
        """The configured field name for one kind of enriched field."""
        if kind not in ALL_FIELD_KINDS:
            known = ", ".join(ALL_FIELD_KINDS)
            raise ValueError(f"unknown enriched field kind {kind!r}; choose one of {known}")
        return str(getattr(self, kind))


@cache
def _fragment_text(filename: str) -> str:
    return (files("nirbridge.mappings") / filename).read_text(encoding="utf-8")


def load_fragment(filename: str) -> dict[str, Any]:
    """A fresh copy of one JSON fragment shipped in `nirbridge.mappings` (e.g. "nir_dense.json")."""
    try:
        text = _fragment_text(filename)
    except FileNotFoundError:
        raise ValueError(f"no mapping fragment named {filename!r} in nirbridge.mappings") from None
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"mapping fragment {filename} must hold a JSON object")
    return loaded


def _fill(value: Any, params: Mapping[str, Any], where: str) -> Any:
    """Replace every string that is exactly "${name}" by params[name], keeping the parameter's own type."""
    if isinstance(value, dict):
        return {key: _fill(item, params, where) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, params, where) for item in value]
    if isinstance(value, str) and (match := _PLACEHOLDER.match(value)):
        name = match.group(1)
        if name not in params:
            raise ValueError(f"{where}: placeholder ${{{name}}} has no value")
        return params[name]
    return value


def _check_dense(params: Mapping[str, Any]) -> None:
    dimension = params["dimension"]
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
        raise ValueError(f"dense field: dimension must be a positive int, got {dimension!r}")
    if params["space_type"] not in SPACE_TYPES:
        raise ValueError(
            f"dense field: space_type {params['space_type']!r} is not one of {', '.join(SPACE_TYPES)}"
        )
    if params["engine"] not in DENSE_ENGINES:
        raise ValueError(f"dense field: engine {params['engine']!r} is not one of {', '.join(DENSE_ENGINES)}")


def field_mapping(kind: FieldKind, name: str | None = None, **params: Any) -> dict[str, Any]:
    """The mapping of one enriched field, from its fragment `nir_<kind>.json`.

    Without `name`, the field's own mapping (`{"type": "rank_features"}`); with it, `{name: mapping}`.
    Only `dense` takes parameters: `dimension` (required, positive int), `space_type` (l2, cosinesimil,
    innerproduct; default cosinesimil) and `engine` (lucene, faiss, nmslib; default lucene).
    """
    if kind not in _PARAMETERS:
        raise ValueError(f"unknown enriched field kind {kind!r}; choose one of {', '.join(ALL_FIELD_KINDS)}")
    accepted = _PARAMETERS[kind]
    unexpected = sorted(set(params) - set(accepted))
    if unexpected:
        takes = ", ".join(accepted) or "no parameters"
        raise ValueError(f"{kind} field: unexpected parameter(s) {', '.join(unexpected)}; it takes {takes}")
    filled = {key: params.get(key, default) for key, default in accepted.items()}
    missing = sorted(key for key, value in filled.items() if value is None)
    if missing:
        raise ValueError(f"{kind} field: missing required parameter(s) {', '.join(missing)}")
    if kind == "dense":
        _check_dense(filled)
    mapping = _fill(load_fragment(f"nir_{kind}.json"), filled, f"nir_{kind}.json")
    return {name: mapping} if name is not None else mapping


def enriched_properties(
    fields: EnrichedFields | None = None,
    dense_dimension: int | None = None,
    dense_space_type: str = "cosinesimil",
    *,
    kinds: tuple[FieldKind, ...] = FIELD_KINDS,
    dense_engine: str = "lucene",
) -> dict[str, Any]:
    """`properties` for the enriched fields of `kinds`, under the names in `fields`.

    The dense field is left out when `dense_dimension` is None (no bi-encoder chosen yet).
    """
    fields = fields or EnrichedFields()
    properties: dict[str, Any] = {}
    for kind in kinds:
        if kind == "dense":
            if dense_dimension is None:
                continue
            mapping = field_mapping(
                "dense", dimension=dense_dimension, space_type=dense_space_type, engine=dense_engine
            )
        else:
            mapping = field_mapping(kind)
        properties[fields.name_of(kind)] = mapping
    return properties


def index_template(
    fields: EnrichedFields | None = None,
    dense_dimension: int | None = None,
    dense_space_type: str = "cosinesimil",
    *,
    base_properties: Mapping[str, Any] | None = None,
    kinds: tuple[FieldKind, ...] = FIELD_KINDS,
    dense_engine: str = "lucene",
) -> dict[str, Any]:
    """A create-index body: `index.knn` on, the `base_properties` (e.g. title/text) and the enriched fields
    of `kinds` (all five by default; the dense one only with a `dense_dimension`).

    `index.knn` is static in OpenSearch, so it is set even without a dense field: a bi-encoder can be added
    later without a new index.
    """
    body = load_fragment("index_template.json")
    properties = body["mappings"].setdefault("properties", {})
    properties.update(copy.deepcopy(dict(base_properties or {})))
    enriched = enriched_properties(
        fields, dense_dimension, dense_space_type, kinds=kinds, dense_engine=dense_engine
    )
    clashes = sorted(set(properties) & set(enriched))
    if clashes:
        raise ValueError(f"base_properties already define enriched field(s) {', '.join(clashes)}")
    properties.update(enriched)
    return body


def corpus_index_body() -> dict[str, Any]:
    """The body `nirbridge ingest` creates a missing index with: title and text as english `text`.

    The enriched fields are left to `nirbridge enrich`, which adds the ones it writes under the names it is
    given; `index.knn` is on already so that a dense field needs no new index.
    """
    return index_template(base_properties=load_fragment("beir_corpus.json"), kinds=())


def properties_of(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level `properties` of a mapping, in any shape the API hands out.

    Accepts a GET `_mapping` response for one index (`{index: {"mappings": {...}}}`), a `{"mappings": ...}`
    object, or the mapping itself (`{"properties": ...}`).
    """
    if "properties" in mapping:
        return dict(mapping["properties"] or {})
    if "mappings" in mapping:
        return properties_of(mapping["mappings"] or {})
    if len(mapping) == 1:
        (only,) = mapping.values()
        if isinstance(only, Mapping) and ("mappings" in only or "properties" in only):
            return properties_of(only)
    if not mapping:
        return {}
    raise ValueError(
        "expected a mapping ({'properties': ...}), {'mappings': ...} or a GET _mapping response for one "
        f"index; got keys {', '.join(sorted(mapping))}"
    )


def _type_of(field: Mapping[str, Any]) -> str:
    # OpenSearch leaves "type" out of object fields when it hands a mapping back.
    return str(field.get("type", "object"))


def missing_fields(existing_mapping: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The part of `wanted` (properties) that `existing_mapping` lacks, ready for PUT _mapping.

    Objects are compared field by field, so an existing `nir_meta` missing one sub-field yields just that
    sub-field. Fields that exist with another type are not here: see `conflicts()`.
    """
    existing = properties_of(existing_mapping)
    missing: dict[str, Any] = {}
    for name, field in wanted.items():
        if name not in existing:
            missing[name] = copy.deepcopy(field)
            continue
        have = existing[name]
        if _type_of(field) == "object" and _type_of(have) == "object" and "properties" in field:
            inner = missing_fields({"properties": have.get("properties", {})}, field["properties"])
            if inner:
                missing[name] = {key: value for key, value in field.items() if key != "properties"}
                missing[name]["properties"] = inner
    return missing


def _knn_differences(have: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    reasons = []
    if "dimension" in have and have["dimension"] != want.get("dimension"):
        reasons.append(f"dimension {have['dimension']}, wanted {want.get('dimension')}")
    have_space = (have.get("method") or {}).get("space_type", have.get("space_type"))
    want_space = (want.get("method") or {}).get("space_type", want.get("space_type"))
    if have_space is not None and want_space is not None and have_space != want_space:
        reasons.append(f"space_type {have_space}, wanted {want_space}")
    return reasons


def conflicts(existing_mapping: Mapping[str, Any], wanted: Mapping[str, Any], _prefix: str = "") -> list[str]:
    """One line per wanted field that exists in `existing_mapping` in an incompatible form.

    Each line names the field (dotted for sub-fields) and the reason, e.g.
    "nir_sparse: exists as float, wanted rank_features". An empty list means `missing_fields()` can be
    applied in place.
    """
    existing = properties_of(existing_mapping)
    found: list[str] = []
    for name, field in wanted.items():
        if name not in existing:
            continue
        path = f"{_prefix}{name}"
        have = existing[name]
        have_type, want_type = _type_of(have), _type_of(field)
        if have_type != want_type:
            found.append(f"{path}: exists as {have_type}, wanted {want_type}")
        elif want_type == "knn_vector":
            found.extend(f"{path}: {reason}" for reason in _knn_differences(have, field))
        elif want_type == "text" and have.get("analyzer", "standard") != field.get("analyzer", "standard"):
            have_analyzer, want_analyzer = have.get("analyzer", "standard"), field.get("analyzer", "standard")
            found.append(f"{path}: analyzer {have_analyzer}, wanted {want_analyzer}")
        elif want_type == "object" and "properties" in field:
            found.extend(
                conflicts({"properties": have.get("properties", {})}, field["properties"], f"{path}.")
            )
    return found
