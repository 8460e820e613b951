"""BM25 over a view's postings: a term's leg (postings, weight, inverse norms) remembered by the view, and
the scores of many legs at once, in the order and precision of Lucene's ``BM25Similarity`` scorer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ...index.encoding import ONE
from ...index.searcher import Searcher
from ..similarity import (
    bm25_avgdl,
    bm25_idf,
    bm25_norm_cache,
)

# Docs-only fields (keyword, boolean) have no norms; Lucene then scores every document with norm value 1.
NO_NORM_BYTE = 1

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


def term_leg(s: Searcher, path: str, term: str, boost: float) -> TermLeg | None:
    """What scoring ``term`` in ``path`` needs (postings, weight, norms), without dense arrays; None when
    absent.

    Remembered by the view (which never changes), scores included once computed: the BM25 impacts that
    bm25s precomputes at indexing, computed here on a term's first use."""
    key = ("term_leg", path, term, boost)
    leg = s.recalled(key, _UNSEEN)
    if leg is not _UNSEEN:
        return leg  # type: ignore[no-any-return]
    posting = s.posting(path, term)
    if posting is None:
        leg = None
    else:
        doc_count, sum_ttf = s.field_stats.get(path, (0, 0))
        weight = _weight(boost, posting.ords.shape[0], doc_count)
        budget = s.recalled(("score_budget",))
        if budget is None:
            budget = [_VIEW_SCORE_BYTES]
            s.remember(("score_budget",), budget)
        inverse = _inverse_norms(s, path, doc_count, sum_ttf)
        leg = TermLeg(posting.ords, posting.freqs, weight, inverse, budget)
    s.remember(key, leg, limit=_VIEW_MEMO_MAX)
    return leg


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


