"""The executable query tree: every node's :meth:`Node.run` returns a :class:`Matches`, a boolean mask over
the view's ordinals and float32 scores, computed with numpy over postings (bm25s-style), never document by
document. Scores follow Lucene: each leaf scores in float32, and Boolean / disjunction sums add in double and
round to float, as Lucene's ``BooleanScorer`` / ``DisjunctionSumScorer`` do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import errors
from ...index.searcher import Searcher
from ..similarity import (
    feature_pivot,
    linear_scores,
    log_scores,
    saturation_scores,
    sigmoid_scores,
)
from .bm25 import TermLeg, bm25_legs, term_leg


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
        """What scoring this term needs, remembered by the view (:func:`.bm25.term_leg`)."""
        return term_leg(s, self.path, self.term, self.boost)


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
            pivot: float | np.floating[Any] | None = self.params.get("pivot")
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


