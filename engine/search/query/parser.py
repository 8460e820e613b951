"""OpenSearch's query DSL: query JSON to :mod:`.nodes` for one index, with OpenSearch's errors, word for word.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ... import errors
from ...index.dates import parse_date_value
from ...index.fields import TEXT_TYPES, Field
from ...index.mapping import Mapping
from ...index.metadata_fields import (
    ALWAYS_PRESENT_METADATA,
    EXISTS_QUERYABLE_METADATA,
    METADATA_FIELDS,
    ids_mask,
    index_name_matches,
    not_searchable_reason,
)
from ...index.postings import INT64_TYPES
from ...index.searcher import Searcher
from ...index.values import NUMERIC_TYPES, coerce_boolean, coerce_number
from .nodes import (
    Bool,
    ConstantMask,
    ConstantScore,
    DisMax,
    Knn,
    MatchAll,
    MatchNone,
    NeuralSparse,
    Node,
    RankFeature,
    Term,
    _in_string_range,
    _numeric_mask,
    _term_mask,
)
from .params import (
    FEATURE_MAX_WEIGHT,
    _as_list,
    _feature_function_params,
    _java_float,
    _knn_method_parameters,
    _query_shard,
    _single_field,
    _term_text,
    minimum_should_match,
)

_INTEGRAL_TEXT = re.compile(r"\s*[+-]?\d+(\.0*)?\s*")
# ------------------------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------------------------


class QueryParser:
    """Turns query JSON into nodes for one index (field types come from its mapping)."""

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping

    def parse(self, query: Any) -> Node:
        if query is None:
            return MatchAll()
        if not isinstance(query, dict) or len(query) != 1:
            if isinstance(query, dict) and not query:
                raise errors.parsing("query malformed, empty clause found")
            raise errors.parsing(
                "[_na] query malformed, must start with start_object"
                if not isinstance(query, dict)
                else f"[{next(iter(query))}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]"
            )
        name, body = next(iter(query.items()))
        handler = getattr(self, f"_q_{name}", None)
        if handler is None:
            raise errors.parsing(f"unknown query [{name}]", line=1, col=1)
        try:
            return handler(body)
        except (TypeError, ValueError, AttributeError) as exc:
            # Parsing only builds nodes: a value of the wrong JSON type (a string boost, a list where an
            # object belongs) is the request's error, answered 400 as OpenSearch's parsers answer it.
            raise errors.parsing(f"[{name}] failed to parse query: {exc}") from exc

    # ----- compound -----------------------------------------------------------------------------------------
    def _q_match_all(self, body: dict[str, Any]) -> Node:
        return MatchAll(float(body.get("boost", 1.0)) if isinstance(body, dict) else 1.0)

    def _q_match_none(self, body: dict[str, Any]) -> Node:
        return MatchNone()

    def _q_bool(self, body: dict[str, Any]) -> Node:
        if not isinstance(body, dict):
            raise errors.parsing("[bool] query malformed, no start_object after query name")
        known = {"must", "should", "filter", "must_not", "minimum_should_match", "boost", "_name",
                 "adjust_pure_negative"}
        for key in body:
            if key not in known:
                raise errors.parsing(f"[bool] query does not support [{key}]")
        clauses = {
            key: [self.parse(q) for q in _as_list(body.get(key))]
            for key in ("must", "should", "filter", "must_not")
        }
        if not any(clauses.values()):
            return MatchAll(float(body.get("boost", 1.0)))
        msm_spec = body.get("minimum_should_match")
        msm = minimum_should_match(msm_spec, len(clauses["should"])) if msm_spec is not None else 0
        return Bool(clauses["must"], clauses["should"], clauses["filter"], clauses["must_not"], msm,
                    float(body.get("boost", 1.0)))

    def _q_constant_score(self, body: dict[str, Any]) -> Node:
        if "filter" not in body:
            raise errors.parsing("[constant_score] requires a 'filter' element")
        return ConstantScore(self.parse(body["filter"]), float(body.get("boost", 1.0)))

    def _q_dis_max(self, body: dict[str, Any]) -> Node:
        return DisMax(
            [self.parse(q) for q in _as_list(body.get("queries"))],
            float(body.get("tie_breaker", 0.0)),
            float(body.get("boost", 1.0)),
        )

    # ----- full text ----------------------------------------------------------------------------------------
    def _q_match(self, body: dict[str, Any]) -> Node:
        path, params = _single_field(body, "match", value_key="query")
        return self.match_field(path, params["query"], params)

    def match_field(self, path: str, text: Any, params: dict[str, Any], boost: float | None = None) -> Node:
        if params.get("fuzziness") not in (None, 0, "0"):
            raise errors.illegal_argument("[fuzziness] is not supported by the nirbridge engine")
        spec = self.mapping.field(path)
        boost = float(params.get("boost", 1.0)) if boost is None else boost
        if spec is None:
            return self.metadata_terms(path, [text], boost) if path in METADATA_FIELDS else MatchNone()
        if not spec.is_text:
            try:
                return self.term_node(spec, text, boost)
            except errors.EngineError:
                if params.get("lenient"):
                    return MatchNone()
                raise
        analyzer = spec.search_analyzer
        if params.get("analyzer"):
            from ...analysis import AnalysisError, get_analyzer

            try:
                analyzer = get_analyzer(params["analyzer"], self.mapping.analysis)
            except AnalysisError as exc:
                raise errors.EngineError(400, "query_shard_exception", str(exc)) from exc
        tokens = analyzer.tokens(str(text)) if analyzer else [str(text)]
        if not tokens:
            return MatchAll() if params.get("zero_terms_query", "none") == "all" else MatchNone()
        terms = [Term(path, t) for t in tokens]
        operator = str(params.get("operator", "or")).lower()
        if operator not in ("or", "and"):
            raise errors.illegal_argument(
                f"No enum constant org.opensearch.index.search.MatchQuery.Operator.{operator.upper()}"
            )
        if len(terms) == 1:
            node: Node = terms[0]
            node.boost = boost
            return node
        if operator == "and":
            return Bool(must=list(terms), boost=boost)
        msm_spec = params.get("minimum_should_match")
        msm = minimum_should_match(msm_spec, len(terms)) if msm_spec is not None else 0
        return Bool(should=list(terms), minimum_should_match=msm, boost=boost)

    def _q_multi_match(self, body: dict[str, Any]) -> Node:
        if "query" not in body:
            raise errors.parsing("[multi_match] requires query value")
        fields = body.get("fields") or ["*"]
        fields = [fields] if isinstance(fields, str) else fields
        resolved: list[tuple[str, float]] = []
        for spec in fields:
            name, _, boost_text = spec.partition("^")
            boost = float(boost_text) if boost_text else 1.0
            for path in self._expand_fields(name):
                resolved.append((path, boost))
        kind = body.get("type", "best_fields")
        lenient = body.get("lenient", any("*" in f for f in fields))
        params = {**body, "lenient": lenient}
        params.pop("boost", None)
        per_field = [self.match_field(path, body["query"], params, boost=boost) for path, boost in resolved]
        outer_boost = float(body.get("boost", 1.0))
        if not per_field:
            return MatchNone()
        if kind in ("phrase", "phrase_prefix", "bool_prefix"):
            raise errors.illegal_argument(
                f"[multi_match] type [{kind}] is not supported by the nirbridge engine (no positions)"
            )
        if kind == "best_fields":
            return DisMax(per_field, float(body.get("tie_breaker", 0.0)), outer_boost)
        if kind == "most_fields":
            return Bool(should=per_field, boost=outer_boost)
        if kind == "cross_fields":
            return self._cross_fields(resolved, body, outer_boost)
        raise errors.parsing(f"[multi_match] query does not support type {kind}")

    def _cross_fields(self, resolved: list[tuple[str, float]], body: dict[str, Any], boost: float) -> Node:
        """Term-centric: each query term must match in some field (dis_max over fields per term)."""
        text_fields = [(p, b) for p, b in resolved if (f := self.mapping.field(p)) is not None and f.is_text]
        if not text_fields:
            return MatchNone()
        analyzer = self.mapping.field(text_fields[0][0]).search_analyzer  # type: ignore[union-attr]
        tokens = analyzer.tokens(str(body["query"])) if analyzer else [str(body["query"])]
        per_term: list[Node] = [
            DisMax([Term(p, t, b) for p, b in text_fields], float(body.get("tie_breaker", 0.0)))
            for t in tokens
        ]
        if not per_term:
            return MatchNone()
        if str(body.get("operator", "or")).lower() == "and":
            return Bool(must=per_term, boost=boost)
        msm_spec = body.get("minimum_should_match")
        msm = minimum_should_match(msm_spec, len(per_term)) if msm_spec is not None else 0
        return Bool(should=per_term, minimum_should_match=msm, boost=boost)

    def _expand_fields(self, pattern: str) -> list[str]:
        if "*" not in pattern:
            return [pattern]
        regex = re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")
        return [
            p for p, f in self.mapping.fields.items() if regex.match(p) and (f.is_text or f.type == "keyword")
        ]

    # ----- term level ---------------------------------------------------------------------------------------
    def _q_term(self, body: dict[str, Any]) -> Node:
        path, params = _single_field(body, "term", value_key="value")
        if path in METADATA_FIELDS:
            return self.metadata_terms(path, [params["value"]], float(params.get("boost", 1.0)),
                                       bool(params.get("case_insensitive", False)))
        spec = self.mapping.field(path)
        if spec is None:
            return MatchNone()
        return self.term_node(spec, params["value"], float(params.get("boost", 1.0)),
                              bool(params.get("case_insensitive", False)))

    def term_node(self, spec: Field, value: Any, boost: float, case_insensitive: bool = False) -> Node:
        if isinstance(value, dict | list):
            raise errors.parsing(f"[term] query does not support array of values for field [{spec.path}]")
        if spec.type in TEXT_TYPES or spec.type in ("keyword", "constant_keyword", "wildcard", "ip"):
            text = _term_text(value)
            if spec.params.get("normalizer") == "lowercase":
                text = text.lower()
            if case_insensitive:
                return self._case_insensitive(spec.path, text, boost)
            if spec.is_text or (spec.type == "keyword" and spec.params.get("use_similarity") is True):
                return Term(spec.path, text, boost)
            # OpenSearch 3.x scores a keyword term query as a constant (KeywordFieldType with
            # use_similarity false); ip, wildcard and constant_keyword term queries are constant-score too.
            return ConstantMask(lambda s, p=spec.path, t=text: _term_mask(s, p, t), boost)
        if spec.type == "boolean":
            try:
                return Term(spec.path, "true" if coerce_boolean(value) else "false", boost)
            except ValueError as exc:
                raise _query_shard(str(exc)) from exc
        if spec.is_numeric:
            number = self._number(spec, value)
            return ConstantMask(lambda s, p=spec.path, v=number: _numeric_mask(s, p, v, v, True, True), boost)
        if spec.type in ("rank_feature", "rank_features", "knn_vector"):
            raise errors.illegal_argument(f"[{spec.type}] fields do not support [term] queries")
        return MatchNone()

    def _case_insensitive(self, path: str, text: str, boost: float) -> Node:
        lowered = text.lower()

        def compute(s: Searcher) -> np.ndarray:
            mask = np.zeros(s.max_ord, dtype=np.bool_)
            for term in s.terms(path):
                if term.lower() == lowered:
                    posting = s.posting(path, term)
                    if posting is not None:
                        mask[posting.ords] = True
            return mask

        return ConstantMask(compute, boost)

    def _number(self, spec: Field, value: Any) -> int | float:
        """A query value in the field's stored unit, exact for longs (a decimal stays a float, so that
        ``gt: 1.5`` on a long means ``>= 2`` and ``term: 1.5`` matches nothing, as in OpenSearch)."""
        try:
            if spec.type in ("date", "date_nanos"):
                return parse_date_value(value, spec.type, spec.params.get("format"))
            if spec.type in INT64_TYPES or spec.type == "unsigned_long":
                if isinstance(value, str) and _INTEGRAL_TEXT.fullmatch(value):
                    return coerce_number(value.strip().split(".")[0], spec.type)
                number = coerce_number(value, "double") if not isinstance(value, int) else value
                if isinstance(number, float) and not number.is_integer():
                    return number
                return coerce_number(number, spec.type)
            return coerce_number(value, spec.type if spec.type in NUMERIC_TYPES else "double")
        except ValueError as exc:
            raise _query_shard(f"failed to create query: {exc}") from exc

    def _q_terms(self, body: dict[str, Any]) -> Node:
        boost = float(body.get("boost", 1.0))
        fields = [(k, v) for k, v in body.items() if k not in ("boost", "_name")]
        if len(fields) != 1:
            raise errors.parsing("[terms] query does not support multiple fields" if fields
                                 else "[terms] query requires a field")
        path, values = fields[0]
        if not isinstance(values, list):
            raise errors.parsing(f"[terms] query does not support [{path}]")
        if path in METADATA_FIELDS:
            return self.metadata_terms(path, values, boost)
        spec = self.mapping.field(path)
        if spec is None:
            return MatchNone()
        nodes = [self.term_node(spec, v, 1.0) for v in values]

        def compute(s: Searcher) -> np.ndarray:
            mask = np.zeros(s.max_ord, dtype=np.bool_)
            for node in nodes:
                mask |= node.run(s).mask
            return mask

        return ConstantMask(compute, boost)

    def _q_ids(self, body: dict[str, Any]) -> Node:
        values = body.get("values")
        if not isinstance(values, list):
            raise errors.parsing("[ids] query malformed, values must be an array")
        wanted = [str(v) for v in values]
        return ConstantMask(lambda s: ids_mask(s, wanted), float(body.get("boost", 1.0)))

    def metadata_terms(
        self, path: str, values: list[Any], boost: float, case_insensitive: bool = False
    ) -> Node:
        """term / terms / match on a metadata field, as OpenSearch's metadata field mappers build them."""
        if any(isinstance(v, dict | list) for v in values):
            raise errors.parsing(f"[term] query does not support array of values for field [{path}]")
        texts = [_term_text(v) for v in values]
        if path == "_id":  # IdFieldType.termsQuery: a constant-score TermInSetQuery
            return ConstantMask(lambda s: ids_mask(s, texts), boost)
        if path == "_index":  # ConstantFieldType: match all when the index name matches, else nothing
            return ConstantMask(
                lambda s: (
                    s.live.copy()
                    if any(index_name_matches(t, s.index.name, case_insensitive) for t in texts)
                    else np.zeros(s.max_ord, dtype=np.bool_)
                ),
                boost,
            )
        if path == "_routing":  # an indexed docs-only keyword: a scored TermQuery per value
            if case_insensitive:
                return self._case_insensitive(path, texts[0], boost)
            if len(texts) == 1:
                return Term(path, texts[0], boost)
            nodes = [Term(path, t) for t in texts]
            return ConstantMask(lambda s: np.logical_or.reduce([n.run(s).mask for n in nodes]), boost)
        raise _query_shard(not_searchable_reason(path))

    def _q_exists(self, body: dict[str, Any]) -> Node:
        path = body.get("field")
        if not isinstance(path, str):
            raise errors.parsing("[exists] must be provided with a [field]")
        paths = self._exists_paths(path)
        boost = float(body.get("boost", 1.0))
        if path in METADATA_FIELDS and path not in EXISTS_QUERYABLE_METADATA:
            raise _query_shard(not_searchable_reason(path))
        if any((f := self.mapping.field(p)) is not None and f.type == "rank_features" for p in paths):
            raise errors.illegal_argument("[rank_features] fields do not support [exists] queries")

        def compute(s: Searcher) -> np.ndarray:
            mask = np.zeros(s.max_ord, dtype=np.bool_)
            for p in paths:
                if p in ALWAYS_PRESENT_METADATA:
                    return s.live.copy()
                mask |= s.present(p)
            return mask

        return ConstantMask(compute, boost)

    def _exists_paths(self, pattern: str) -> list[str]:
        if "*" in pattern:
            regex = re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")
            return [p for p in list(self.mapping.fields) + sorted(self.mapping.objects) if regex.match(p)]
        if pattern in self.mapping.objects:
            return [p for p in self.mapping.fields if p.startswith(pattern + ".")]
        return [pattern]

    def _q_range(self, body: dict[str, Any]) -> Node:
        path, params = _single_field(body, "range", value_key=None)
        spec = self.mapping.field(path)
        if spec is None:
            return MatchNone()
        bounds: dict[str, Any] = {}
        for key, value in params.items():
            if key in ("gt", "gte", "lt", "lte"):
                if value is not None:
                    bounds[key] = value
            elif key == "from":
                if value is not None:
                    bounds["gte" if params.get("include_lower", True) else "gt"] = value
            elif key == "to":
                if value is not None:
                    bounds["lte" if params.get("include_upper", True) else "lt"] = value
            elif key not in (
                "boost",
                "format",
                "time_zone",
                "relation",
                "include_lower",
                "include_upper",
                "_name",
            ):
                raise errors.parsing(f"[range] query does not support [{key}]")
        boost = float(params.get("boost", 1.0))
        if spec.is_numeric:
            fmt_spec = Field(spec.path, spec.type, {**spec.params, **({"format": params["format"]}
                                                                      if "format" in params else {})})
            low = self._number(fmt_spec, bounds["gte"] if "gte" in bounds else bounds["gt"]) if (
                "gte" in bounds or "gt" in bounds) else -math.inf
            high = self._number(fmt_spec, bounds["lte"] if "lte" in bounds else bounds["lt"]) if (
                "lte" in bounds or "lt" in bounds) else math.inf
            return ConstantMask(
                lambda s: _numeric_mask(s, path, low, high, "gt" not in bounds, "lt" not in bounds), boost
            )
        if spec.type in ("keyword", "text", "ip", "constant_keyword"):
            def compute(s: Searcher) -> np.ndarray:
                mask = np.zeros(s.max_ord, dtype=np.bool_)
                for term in s.terms(path):
                    if _in_string_range(term, bounds):
                        posting = s.posting(path, term)
                        if posting is not None:
                            mask[posting.ords] = True
                return mask

            return ConstantMask(compute, boost)
        raise errors.illegal_argument(f"Field [{path}] of type [{spec.type}] does not support range queries")

    # ----- neural -------------------------------------------------------------------------------------------
    def _q_rank_feature(self, body: dict[str, Any]) -> Node:
        path = body.get("field")
        if not isinstance(path, str):
            raise errors.parsing("[rank_feature] requires a [field]")
        functions = [k for k in ("saturation", "log", "sigmoid", "linear") if k in body]
        if len(functions) > 1:
            raise errors.parsing(
                "[rank_feature] query can only have one of [saturation], [log], [sigmoid], [linear]"
            )
        function = functions[0] if functions else "saturation"
        params = _feature_function_params(function, body.get(function))
        spec = self.mapping.field(path)
        feature = path
        if spec is None and "." in path:
            parent, feature = path.rsplit(".", 1)
            spec = self.mapping.field(parent)
            if spec is not None and spec.type != "rank_features":
                spec = None
            path = parent
        if spec is None:
            return MatchNone()
        if spec.type not in ("rank_feature", "rank_features"):
            raise errors.illegal_argument(
                "[rank_feature] query only works on [rank_feature] fields and features of [rank_features] "
                "fields, "
                f"not [{spec.type}]"
            )
        if function == "log":
            if spec.params.get("positive_score_impact", True) is False:
                raise errors.illegal_argument(
                    "Cannot use the [log] function with a field that has a negative score impact as it would "
                    "trigger negative scores"
                )
            if "scaling_factor" not in params:
                raise errors.parsing("[log] function requires a [scaling_factor]")
        if function == "sigmoid" and ("pivot" not in params or "exponent" not in params):
            raise errors.parsing("[sigmoid] function requires a [pivot] and an [exponent]")
        return RankFeature(path, feature, function, params, float(body.get("boost", 1.0)))

    def _q_neural_sparse(self, body: dict[str, Any]) -> Node:
        path, params = _single_field(body, "neural_sparse", value_key=None)
        tokens = params.get("query_tokens")
        if not isinstance(tokens, dict) or not tokens:
            if "query_text" in params:
                raise errors.illegal_argument(
                    "[neural_sparse] query_text needs a model in the cluster; the nirbridge engine takes "
                    "query_tokens "
                    "(encode the query with the proxy or nirbridge.workers)"
                )
            raise errors.parsing("[neural_sparse] query requires a non-empty [query_tokens] object")
        spec = self.mapping.field(path)
        if spec is None:
            return MatchNone()
        if spec.type != "rank_features":
            raise errors.illegal_argument(
                f"[neural_sparse] query only works on [rank_features] fields, not [{spec.type}]"
            )
        weights = {}
        for token, weight in tokens.items():
            if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
                raise errors.illegal_argument(
                    f"[neural_sparse] query token [{token}] has an invalid weight [{weight}]"
                )
            # Each token is a Lucene FeatureField.newLinearQuery, whose weight must be in (0, 64]; a weight
            # read as a float that overflows would make every score NaN or infinite.
            as_float = float(np.float32(weight)) if abs(weight) < 3.5e38 else math.inf
            if as_float > FEATURE_MAX_WEIGHT:
                raise _query_shard(
                    f"failed to create query: weight must be in (0, {FEATURE_MAX_WEIGHT:.1f}], got: "
                    f"{_java_float(as_float)}"
                )
            weights[token] = float(weight)
        return NeuralSparse(path, weights, float(params.get("boost", 1.0)))

    def _q_knn(self, body: dict[str, Any]) -> Node:
        path, params = _single_field(body, "knn", value_key=None)
        spec = self.mapping.field(path)
        if spec is None:
            raise errors.illegal_argument(f"Field '{path}' is not knn_vector type.")
        if spec.type != "knn_vector":
            raise errors.illegal_argument(f"Field '{path}' is not knn_vector type.")
        vector = params.get("vector")
        if not isinstance(vector, list) or not vector:
            raise errors.illegal_argument("[knn] requires a [vector]")
        try:
            query = np.asarray(vector, dtype=np.float32)
        except (TypeError, ValueError):
            raise errors.illegal_argument("[knn] vector must be an array of numbers") from None
        dimension = int(spec.params["dimension"])
        if query.shape[0] != dimension:
            raise errors.illegal_argument(
                f"Query vector has invalid dimension: {query.shape[0]}. Dimension should be: {dimension}"
            )
        k = params.get("k")
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0 or k > 10000:
            raise errors.illegal_argument("[knn] requires k to be in the range (0, 10000]")
        filter_node = self.parse(params["filter"]) if params.get("filter") is not None else None
        ef_search = _knn_method_parameters(params.get("method_parameters"))
        return Knn(path, query, k, filter_node, float(params.get("boost", 1.0)), ef_search)


