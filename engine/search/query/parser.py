"""The query DSL: parse OpenSearch query JSON into nodes that score a whole view at once.

Every node's :meth:`Node.run` returns a :class:`Matches`: a boolean mask over the view's ordinals and float32
scores, computed with numpy over postings (bm25s-style), never document by document. Scores follow Lucene:
each leaf scores in float32, and Boolean / disjunction sums add in double and round to float, as Lucene's
``BooleanScorer`` / ``DisjunctionSumScorer`` do.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import errors
from ...index.dates import parse_date_value
from ...index.encoding import ONE, decode_feature
from ...index.mapping import TEXT_TYPES, Field, Mapping
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
from ..similarity import (
    bm25_avgdl,
    bm25_idf,
    bm25_norm_cache,
    feature_pivot,
    linear_scores,
    log_scores,
    saturation_scores,
    sigmoid_scores,
)

_INTEGRAL_TEXT = re.compile(r"\s*[+-]?\d+(\.0*)?\s*")
# Docs-only fields (keyword, boolean) have no norms; Lucene then scores every document with norm value 1.
NO_NORM_BYTE = 1


@dataclass
class Matches:
    mask: np.ndarray  # bool[max_ord]
    scores: np.ndarray  # float32[max_ord]; 0 where mask is False


def _empty(n: int) -> Matches:
    return Matches(np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.float32))


def _constant(mask: np.ndarray, boost: float) -> Matches:
    return Matches(mask, np.where(mask, np.float32(boost), np.float32(0)).astype(np.float32))


class Node:
    boost: float = 1.0

    def run(self, s: Searcher) -> Matches:
        raise NotImplementedError


@dataclass
class MatchAll(Node):
    boost: float = 1.0

    def run(self, s: Searcher) -> Matches:
        return _constant(s.live.copy(), self.boost)


@dataclass
class MatchNone(Node):
    def run(self, s: Searcher) -> Matches:
        return _empty(s.max_ord)


@dataclass
class Term(Node):
    """Lucene TermQuery scored with BM25Similarity (k1 1.2, b 0.75)."""

    path: str
    term: str
    boost: float = 1.0

    def run(self, s: Searcher) -> Matches:
        out = _empty(s.max_ord)
        leg = self.leg(s)
        if leg is not None:
            out.scores[leg.ords] = bm25_legs([leg], leg.ords)
            out.mask[leg.ords] = True
        return out

    def leg(self, s: Searcher) -> TermLeg | None:
        """What scoring this term needs (postings, weight, norms), without dense arrays; None when absent.

        Remembered by the view (which never changes), scores included once computed: the BM25 impacts that
        bm25s precomputes at indexing, computed here on a term's first use."""
        key = ("term_leg", self.path, self.term, self.boost)
        leg = s.recalled(key, _UNSEEN)
        if leg is not _UNSEEN:
            return leg  # type: ignore[no-any-return]
        posting = s.posting(self.path, self.term)
        if posting is None:
            leg = None
        else:
            doc_count, sum_ttf = s.field_stats.get(self.path, (0, 0))
            weight = _weight(self.boost, posting.ords.shape[0], doc_count)
            budget = s.recalled(("score_budget",))
            if budget is None:
                budget = [_VIEW_SCORE_BYTES]
                s.remember(("score_budget",), budget)
            inverse = _inverse_norms(s, self.path, doc_count, sum_ttf)
            leg = TermLeg(posting.ords, posting.freqs, weight, inverse, budget)
        s.remember(key, leg, limit=_VIEW_MEMO_MAX)
        return leg


_UNSEEN = object()
_VIEW_MEMO_MAX = 8192  # entries a view remembers (terms' postings and legs)
_VIEW_SCORE_BYTES = 64 << 20  # memory a view may spend on remembered scores


@dataclass
class TermLeg:
    ords: np.ndarray  # ascending
    freqs: np.ndarray
    weight: np.float32  # boost * idf
    inverse: np.ndarray | np.float32  # see _inverse_norms
    budget: list[int]  # bytes of scores its view may still remember (shared by the view's legs)
    scores: np.ndarray | None = None  # float32, one per posting, once bm25_legs computed them (read-only)


def bm25_legs(legs: list[TermLeg], ords: np.ndarray) -> np.ndarray:
    """The float32 BM25 score of every posting of ``legs`` (``ords``: their ordinals, concatenated),
    read-only; the legs scored before reuse their scores, the others are scored in one pass and keep theirs
    (within their view's budget)."""
    missing = [leg for leg in legs if leg.scores is None]
    if not missing:
        return legs[0].scores if len(legs) == 1 else np.concatenate([leg.scores for leg in legs])  # type: ignore
    if len(missing) < len(legs):
        ords = np.concatenate([leg.ords for leg in missing])
    fresh = _bm25_pass(missing, ords)
    fresh.setflags(write=False)
    slices, start = [], 0
    for leg in missing:
        slices.append(fresh[start: start + leg.ords.shape[0]])
        start += leg.ords.shape[0]
    if len(missing) == len(legs):
        result = fresh
    else:
        pending = iter(slices)
        result = np.concatenate([leg.scores if leg.scores is not None else next(pending) for leg in legs])
    for leg, scores in zip(missing, slices, strict=True):
        if leg.scores is None and leg.budget[0] >= scores.nbytes:
            leg.budget[0] -= scores.nbytes
            leg.scores = scores
    return result


def _bm25_pass(legs: list[TermLeg], ords: np.ndarray) -> np.ndarray:
    """Per posting exactly ``scoring.bm25_scores``: ``weight - weight / (1f + freq * cache[norm])``, each
    operation in float32 (elementwise, so batching the terms changes no bit)."""
    if len(legs) == 1:
        leg = legs[0]
        inverse = leg.inverse
        x = inverse[ords] if isinstance(inverse, np.ndarray) else np.full(ords.shape[0], inverse, np.float32)
        weight: np.float32 | np.ndarray = leg.weight
        freqs = leg.freqs
    else:
        first = legs[0].inverse
        if isinstance(first, np.ndarray) and all(leg.inverse is first for leg in legs):
            x = first[ords]  # one field: one gather
        else:
            x = np.concatenate([leg.inverse[leg.ords] if isinstance(leg.inverse, np.ndarray)
                                else np.full(leg.ords.shape[0], leg.inverse, np.float32) for leg in legs])
        weight = np.repeat(np.array([leg.weight for leg in legs], dtype=np.float32),
                           [leg.ords.shape[0] for leg in legs])
        freqs = np.concatenate([leg.freqs for leg in legs])
    x *= freqs.astype(np.float32, copy=False)  # freq * cache[norm]
    x += ONE
    np.divide(weight, x, out=x)
    np.subtract(weight, x, out=x)
    return x


@functools.lru_cache(maxsize=1 << 16)
def _weight(boost: float, doc_freq: int, doc_count: int) -> np.float32:
    return np.float32(boost) * _idf(doc_freq, doc_count)


@functools.lru_cache(maxsize=1 << 16)
def _idf(doc_freq: int, doc_count: int) -> np.float32:
    return bm25_idf(doc_freq, doc_count)


def _inverse_norms(s: Searcher, path: str, doc_count: int, sum_ttf: int) -> np.ndarray | np.float32:
    """``cache[norm byte]`` (BM25's 1 / (k1 * (1 - b + b * dl / avgdl))) of every ordinal of the view,
    float32, computed once per view and field; for a field without norms the single value Lucene uses (norm
    1)."""
    key = ("inverse_norms", path)
    cached = s.recalled(key)
    if cached is None:
        cache = _norm_cache(s, path, doc_count, sum_ttf)
        norms = s.norms(path)
        cached = cache[NO_NORM_BYTE] if norms is None else cache[norms[: s.max_ord].astype(np.int64) & 0xFF]
        s.remember(key, cached)
    return cached  # type: ignore[no-any-return]


def _norm_cache(s: Searcher, path: str, doc_count: int, sum_ttf: int) -> np.ndarray:
    key = ("norm_cache", path)
    cached = s.recalled(key)
    if cached is None:
        avgdl = bm25_avgdl(sum_ttf, doc_count) if doc_count else np.float32(1.0)
        cached = bm25_norm_cache(avgdl)
        s.remember(key, cached)
    return cached  # type: ignore[no-any-return]


@dataclass
class ConstantMask(Node):
    """A filter-like query (terms, ids, range, exists, numeric term): every match scores ``boost``."""

    compute: Any  # Callable[[Searcher], np.ndarray]
    boost: float = 1.0

    def run(self, s: Searcher) -> Matches:
        return _constant(self.compute(s) & s.live, self.boost)


@dataclass
class ConstantScore(Node):
    inner: Node
    boost: float = 1.0

    def run(self, s: Searcher) -> Matches:
        return _constant(self.inner.run(s).mask, self.boost)


@dataclass
class Bool(Node):
    must: list[Node] = field(default_factory=list)
    should: list[Node] = field(default_factory=list)
    filter: list[Node] = field(default_factory=list)
    must_not: list[Node] = field(default_factory=list)
    minimum_should_match: int = 0
    boost: float = 1.0

    def run(self, s: Searcher) -> Matches:
        if all(type(c) is Term for c in self.must) and all(type(c) is Term for c in self.should):
            return self._run_terms(s)
        n = s.max_ord
        mask = s.live.copy()
        total = np.zeros(n, dtype=np.float64)
        for clause in self.must:
            m = clause.run(s)
            mask &= m.mask
            total += m.scores
        for clause in self.filter:
            mask &= clause.run(s).mask
        for clause in self.must_not:
            mask &= ~clause.run(s).mask
        if self.should:
            count = np.zeros(n, dtype=np.int32)
            for clause in self.should:
                m = clause.run(s)
                count += m.mask
                total += m.scores
            required = self._required_should()
            if required > len(self.should):
                mask[:] = False
            elif required:
                mask &= count >= required
        scores = (total * self.boost if self.boost != 1.0 else total).astype(np.float32)
        scores[~mask] = 0
        return Matches(mask, scores)

    def _required_should(self) -> int:
        """How many should clauses a document must match; a pure disjunction needs one."""
        if not self.must and not self.filter:
            return max(self.minimum_should_match, 1)
        return self.minimum_should_match

    def _run_terms(self, s: Searcher) -> Matches:
        """:meth:`run` when every scoring clause is a term (what ``match`` builds), without a dense array per
        clause: all postings scored in one pass, then summed per document by one ``bincount``, in double and
        in clause order (must, then should), exactly as :meth:`run` adds them."""
        n = s.max_ord
        must = [c.leg(s) for c in self.must]  # type: ignore[attr-defined]
        should = [c.leg(s) for c in self.should]  # type: ignore[attr-defined]
        if any(leg is None for leg in must):
            return _empty(n)
        legs = [leg for leg in must + should if leg is not None]
        if legs:
            # Pointer-sized indices: numpy gathers and scatters with them several times faster than int32.
            ords = legs[0].ords if len(legs) == 1 else np.concatenate([leg.ords for leg in legs])
            ords = ords.astype(np.intp)
            total = np.bincount(ords, weights=bm25_legs(legs, ords), minlength=n)
        else:
            ords = np.empty(0, dtype=np.int32)
            total = np.zeros(n, dtype=np.float64)
        if (
            self.should
            and not must
            and not self.filter
            and not self.must_not
            and self.minimum_should_match <= 1
        ):
            # A pure disjunction (``match`` with operator or): the matches are the postings' documents (live
            # already), and the sum is 0 elsewhere.
            mask = np.zeros(n, dtype=np.bool_)
            mask[ords] = True
            return Matches(mask, (total * self.boost if self.boost != 1.0 else total).astype(np.float32))
        must_postings = sum(leg.ords.shape[0] for leg in must)  # type: ignore[union-attr]
        mask = s.live.copy()
        if must:
            mask &= np.bincount(ords[:must_postings], minlength=n) == len(must)
        for clause in self.filter:
            mask &= clause.run(s).mask
        for clause in self.must_not:
            mask &= ~clause.run(s).mask
        if self.should:
            required = self._required_should()
            if required > len(self.should):
                mask[:] = False
            elif required:
                mask &= np.bincount(ords[must_postings:], minlength=n) >= required
        scores = (total * self.boost if self.boost != 1.0 else total).astype(np.float32)
        scores[~mask] = 0
        return Matches(mask, scores)


@dataclass
class DisMax(Node):
    """Lucene DisjunctionMaxQuery: max + tie_breaker * (sum of the other scores)."""

    queries: list[Node]
    tie_breaker: float = 0.0
    boost: float = 1.0

    def run(self, s: Searcher) -> Matches:
        n = s.max_ord
        mask = np.zeros(n, dtype=np.bool_)
        best = np.zeros(n, dtype=np.float32)
        total = np.zeros(n, dtype=np.float64)
        for query in self.queries:
            m = query.run(s)
            mask |= m.mask
            best = np.maximum(best, m.scores)
            total += m.scores
        others = total - best
        scores = (best.astype(np.float64) + others * np.float32(self.tie_breaker)).astype(np.float32)
        if self.boost != 1.0:
            scores = (scores * np.float32(self.boost)).astype(np.float32)
        scores[~mask] = 0
        return Matches(mask, scores)


@dataclass
class RankFeature(Node):
    """Lucene FeatureField queries behind OpenSearch's ``rank_feature`` (saturation, log, sigmoid, linear)."""

    path: str
    feature: str
    function: str
    params: dict[str, float]
    boost: float = 1.0

    def run(self, s: Searcher) -> Matches:
        out = _empty(s.max_ord)
        posting = s.feature_posting(self.path, self.feature)
        if posting is None:
            return out
        weight = np.float32(self.boost)
        freqs = posting.freqs
        if self.function == "saturation":
            pivot = self.params.get("pivot")
            if pivot is None:
                pivot = feature_pivot(int(freqs.astype(np.int64).sum()), freqs.shape[0])
            scores = saturation_scores(freqs, weight, np.float32(pivot))
        elif self.function == "log":
            scores = log_scores(freqs, weight, np.float32(self.params["scaling_factor"]))
        elif self.function == "sigmoid":
            scores = sigmoid_scores(
                freqs, weight, np.float32(self.params["pivot"]), np.float32(self.params["exponent"])
            )
        else:
            scores = linear_scores(freqs, weight)
        out.scores[posting.ords] = scores
        out.mask[posting.ords] = True
        return out


@dataclass
class NeuralSparse(Node):
    """neural_sparse with ``query_tokens``: a Boolean should of FeatureField linear queries, one per token."""

    path: str
    tokens: dict[str, float]
    boost: float = 1.0

    def run(self, s: Searcher) -> Matches:
        n = s.max_ord
        mask = np.zeros(n, dtype=np.bool_)
        total = np.zeros(n, dtype=np.float64)
        for token, weight in self.tokens.items():
            posting = s.feature_posting(self.path, token)
            if posting is None:
                continue
            total[posting.ords] += linear_scores(posting.freqs, np.float32(weight))
            mask[posting.ords] = True
        scores = total.astype(np.float32)
        if self.boost != 1.0:
            scores = (scores * np.float32(self.boost)).astype(np.float32)
        return Matches(mask, scores)


@dataclass
class Knn(Node):
    path: str
    vector: np.ndarray
    k: int
    filter: Node | None = None
    boost: float = 1.0
    ef_search: int | None = None  # method_parameters.ef_search (else the index setting, else the field's)

    def run(self, s: Searcher) -> Matches:
        out = _empty(s.max_ord)
        vectors = s.store.vectors.get(self.path)
        if vectors is None:
            return out
        allowed = s.live if self.filter is None else (s.live & self.filter.run(s).mask)
        ef_search = self.ef_search if self.ef_search is not None else s.index.settings.knn_ef_search
        try:
            ords, scores = vectors.search(self.vector, self.k, allowed=allowed, ef_search=ef_search)
        except ValueError as exc:  # e.g. a zero query vector with cosinesimil
            raise errors.illegal_argument(str(exc).removeprefix("query: ")) from None
        ords = ords[ords < s.max_ord]
        scores = scores[: ords.shape[0]]
        out.mask[ords] = True
        out.scores[ords] = (scores * np.float32(self.boost)).astype(np.float32)
        return out


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
        per_term = [
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


def _term_mask(s: Searcher, path: str, term: str) -> np.ndarray:
    mask = np.zeros(s.max_ord, dtype=np.bool_)
    posting = s.posting(path, term)
    if posting is not None:
        mask[posting.ords] = True
    return mask


def _numeric_mask(
    s: Searcher, path: str, low: float, high: float, include_low: bool, include_high: bool
) -> np.ndarray:
    ords, values = s.numeric(path)
    keep = (values >= low if include_low else values > low) & (
        values <= high if include_high else values < high
    )
    mask = np.zeros(s.max_ord, dtype=np.bool_)
    mask[ords[keep]] = True
    return mask


def _in_string_range(term: str, bounds: dict[str, Any]) -> bool:
    if "gte" in bounds and term < str(bounds["gte"]):
        return False
    if "gt" in bounds and term <= str(bounds["gt"]):
        return False
    if "lte" in bounds and term > str(bounds["lte"]):
        return False
    return not ("lt" in bounds and term >= str(bounds["lt"]))


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


__all__ = ["Matches", "Node", "QueryParser", "minimum_should_match", "decode_feature"]
