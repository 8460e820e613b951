"""Lucene 9 / OpenSearch scoring arithmetic, reproduced step for step in float32.

The embedded engine is the oracle the bridge is measured with, so every function here repeats the Java
expression it cites *in the same order and precision* (float where Java uses ``float``, double where it
uses ``double``, then the same cast).  numpy float32 add/sub/mul/div are IEEE round-to-nearest exactly like
Java (Java 17+ is strictfp and never fuses into FMA), so the results agree to the bit.  The only
places that cannot be bit-exact are ``Math.log`` / ``Math.pow`` (Java's intrinsics and glibc/numpy are
both within 1 ulp of the *double* result); after the cast to float a difference would need the double to
sit within a few double-ulps of a float rounding boundary (~1e-8 of values).

Sources read (apache/lucene main, unchanged in the 9.x line for everything used here; OpenSearch main):

- ``lucene/core/.../search/similarities/BM25Similarity.java``   idf, avgdl, norm cache, score, explain
- ``lucene/core/.../search/similarities/Similarity.java``       computeNorm = SmallFloat.intToByte4(length)
- ``lucene/core/.../util/SmallFloat.java``                       intToByte4 / byte4ToInt / longToInt4
- ``lucene/core/.../document/FeatureField.java``, ``FeatureQuery.java``   rank features
- ``lucene/core/.../search/DisjunctionSumScorer.java``           SHOULD clauses: double sum, cast to float
- OpenSearch ``server/.../lucene/similarity/LegacyBM25Similarity.java``,
  ``server/.../index/similarity/SimilarityService.java``
- OpenSearch ``modules/mapper-extras/.../RankFeatureFieldMapper.java``, ``RankFeaturesFieldMapper.java``,
  ``index/query/RankFeatureQueryBuilder.java``
- opensearch-project/neural-search ``query/NeuralSparseQueryBuilder.java``
- opensearch-project/k-NN ``index/SpaceType.java``, ``index/engine/faiss/Faiss.java``,
  ``index/engine/lucene/Lucene.java``

Facts the engine needs (all verified in those files):

* **OpenSearch 2.x vs 3.x BM25.**  OpenSearch 2.x's default ``BM25`` similarity is ``LegacyBM25Similarity``,
  whose ``scorer()`` calls Lucene's with ``boost * (1 + k1)``: every BM25 score is 2.2x Lucene's and the
  explanation carries a ``"boost"`` node of 2.2.  OpenSearch 3.0 switched the default to Lucene's
  ``BM25Similarity`` (OpenSearch issue #17315 / PR #17306; ``LegacyBM25`` stays available by name).
  ``bm25_weight(..., legacy=True)`` and ``explain_bm25(..., legacy=True)`` give the 2.x numbers.
* **Norms.**  ``computeNorm`` encodes ``length - numOverlap`` (tokens with position increment 0, e.g.
  synonyms, are not counted: ``discount_overlaps`` defaults to true) with ``SmallFloat.intToByte4``;
  lengths 0..39 are exact (bytes 0..39), longer ones keep 4 significant bits, rounded *down*.  A field
  without norms (``keyword``, ``norms: false``) scores with norm byte 1.
* **rank_feature** stores ``FeatureField("_feature", <field name>, value)``; with
  ``positive_score_impact: false`` it stores ``1 / value`` (float division) at index time, and the ``log``
  function is refused on such a field (``LOG_ON_NEGATIVE_IMPACT``).  Duplicate values are refused.
* **rank_features** stores ``FeatureField(<field>, <key>, value)`` per key.  OpenSearch puts no rule on
  keys (the empty string and keys with dots are indexed); values must be what FeatureField accepts
  (finite and >= Float.MIN_NORMAL, so 0 and negatives fail); ``null`` values are skipped; strings are
  coerced.  The Lucene message is wrapped in ``mapper_parsing_exception`` "failed to parse" (rank_features
  overrides ``parse``) or "failed to parse field [f] of type [rank_feature] in document with id ...".
  There is no ``positive_score_impact`` on rank_features in OpenSearch (Elasticsearch 8 added one).
* **rank_feature query on a rank_features key** resolves ``field.rpartition(".")``: the parent must be a
  rank_features field, else the query matches nothing.  A key that itself contains a dot (BERT vocab has
  ``"."``, ``"..."``) therefore can't be reached by ``rank_feature`` - only by ``neural_sparse``, which
  uses the field name and token as given.
* **boost.**  ``RankFeatureQueryBuilder`` builds every function with weight 1 and OpenSearch wraps the
  query in ``BoostQuery(boost)``, so the function's ``w`` *is* the query boost (not range-checked).
  ``neural_sparse`` builds ``FeatureField.newLinearQuery(field, token, weight)`` per token (weight must be
  in (0, 64], ``FEATURE_WEIGHT_ERROR``) as SHOULD clauses of a BooleanQuery; a query boost multiplies
  each clause weight (float product).  The clause scores are summed in double and cast to float.
* **Pivot.**  Saturation without a pivot uses ``computePivotFeatureValue``: shard-level (not DFS)
  ``totalTermFreq / docFreq`` of the feature's term, i.e. the mean of the stored int bits (an
  approximate geometric mean); deleted-but-unmerged docs count, as they do in BM25 statistics.
* **k-NN.**  Score translation per space type is in ``knn_score``.  Since k-NN 2.19 every engine gives
  cosinesimil ``(1 + cos) / 2`` (faiss: ``max((2 - (1 - cos)) / 2, 0)``; Lucene: ``max((1 + cos) / 2, 0)``);
  k-NN < 2.19 with nmslib gave ``1 / (2 - cos)`` and faiss had no cosine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..index.encoding import (
    F32,
    FEATURE_WEIGHT_ERROR,
    FLOAT_MAX_VALUE,
    LENGTH_TABLE,
    MAX_FEATURE_FREQ,
    MAX_FEATURE_WEIGHT,
    ONE,
    SPACE_TYPES,
    TWO,
    decode_feature,
    java_float_str,
    json_float,
)

#: A float or a numpy float (the scorers take float32 weights as Lucene's do)
Real = float | np.floating[Any]


# --- BM25 ---------------------------------------------------------------------------------------------
def _check_bm25_params(k1: Real, b: Real) -> tuple[np.float32, np.float32]:
    """BM25Similarity's constructor checks, with its messages."""
    k1f, bf = F32(k1), F32(b)
    if not np.isfinite(k1f) or k1f < 0:
        raise ValueError(f"illegal k1 value: {java_float_str(k1f)}, must be a non-negative finite value")
    if np.isnan(bf) or bf < 0 or bf > 1:
        raise ValueError(f"illegal b value: {java_float_str(bf)}, must be between 0 and 1")
    return k1f, bf


def _idf_one(doc_freq: int, doc_count: int) -> np.float32:
    return F32(math.log(1 + (doc_count - doc_freq + 0.5) / (doc_freq + 0.5)))


def bm25_idf(doc_freq: int | np.ndarray, doc_count: int) -> Any:
    """``BM25Similarity.idf``: ``(float) Math.log(1 + (docCount - docFreq + 0.5D) / (docFreq + 0.5D))``.

    n = docFreq (documents containing the term), N = docCount (documents with a value in the field,
    CollectionStatistics.docCount).  Computed in double, cast to float.  Scalar in -> np.float32 out;
    an array of doc freqs -> float32 array (same per-element arithmetic).
    """
    if int(doc_count) <= 0:
        raise ValueError(f"docCount must be positive, got {doc_count}")
    if np.ndim(doc_freq) == 0:
        return _idf_one(int(doc_freq), int(doc_count))
    return np.array([_idf_one(int(n), int(doc_count)) for n in np.ravel(doc_freq)], dtype=np.float32).reshape(
        np.shape(doc_freq)
    )


def bm25_idf_sum(doc_freqs: Sequence[int], doc_count: int) -> np.float32:
    """``BM25Similarity.idfExplain(stats, TermStatistics[])`` (phrases): float idfs summed in double, then
    cast to float."""
    return F32(sum(float(_idf_one(int(n), int(doc_count))) for n in doc_freqs))


def bm25_avgdl(sum_total_term_freq: int, doc_count: int) -> np.float32:
    """``BM25Similarity.avgFieldLength``: ``(float) (sumTotalTermFreq / (double) docCount)``.

    Python's int/int true division is correctly rounded, as Java's double division of the two (exactly
    representable) operands is.
    """
    if int(doc_count) <= 0:
        raise ValueError(f"docCount must be positive, got {doc_count}")
    return F32(int(sum_total_term_freq) / int(doc_count))


def bm25_norm_cache(avgdl: Real, k1: Real = 1.2, b: Real = 0.75) -> np.ndarray:
    """``BM25Similarity.scorer``'s cache, float32[256]:

        cache[i] = 1f / (k1 * ((1 - b) + b * LENGTH_TABLE[i] / avgdl))

    evaluated in float in Java's order (``b * LENGTH_TABLE[i]`` first, then ``/ avgdl``).
    """
    k1f, bf = _check_bm25_params(k1, b)
    with np.errstate(divide="ignore"):  # b == 1: cache[0] is Infinity in Java too (byte 0 = empty field)
        return ONE / (k1f * ((ONE - bf) + bf * LENGTH_TABLE / F32(avgdl)))


def bm25_weight(
    idf: float | np.float32, boost: float = 1.0, k1: float = 1.2, legacy: bool = False
) -> np.float32:
    """``BM25Scorer.weight = boost * idf`` (float).

    ``legacy=True`` is OpenSearch 2.x's default ``LegacyBM25Similarity``: ``scorer(boost * (1 + k1), ...)``,
    i.e. the boost becomes ``boost * (1 + k1)`` (2.2 for the defaults) before it multiplies the idf.
    """
    b = F32(boost)
    if legacy:
        b = b * (ONE + F32(k1))
    return b * F32(idf)


def bm25_scores(
    freqs: np.ndarray | Sequence[float],
    norm_bytes: np.ndarray | Sequence[int] | None,
    weight: float | np.float32,
    cache: np.ndarray,
) -> np.ndarray:
    """``BM25Scorer.score``: ``weight - weight / (1f + freq * cache[norm & 0xFF])``, float32.

    Lucene's rewrite of ``weight * freq / (freq + norm)`` (kept monotonic in float).  ``norm_bytes=None``
    means the field has no norms: Lucene then uses norm 1 (``cache[1]``).
    """
    f = np.asarray(freqs, dtype=np.float32)
    if norm_bytes is None:
        inv = cache[1]
    else:
        inv = cache[np.asarray(norm_bytes).astype(np.int64) & 0xFF]
    w = F32(weight)
    return w - w / (ONE + f * inv)


def _node(value: Any, description: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One OpenSearch explanation node; float values carry Java's digits (see ``json_float``)."""
    v = value if isinstance(value, int) and not isinstance(value, bool) else json_float(value)
    return {"value": v, "description": description, "details": details or []}


def explain_bm25(
    freq: float,
    norm_byte: int,
    doc_freq: int,
    doc_count: int,
    avgdl: float | np.float32,
    boost: float = 1.0,
    k1: float = 1.2,
    b: float = 0.75,
    legacy: bool = False,
) -> dict[str, Any]:
    """``BM25Scorer.explain`` as OpenSearch renders it (``{"value", "description", "details"}``).

    The node returned is the ``score(freq=...)`` one; TermWeight wraps it as
    ``"weight(<field>:<term> in <doc>) [PerFieldSimilarity], result of:"``.  Children, in Lucene's order:
    ``boost`` (only when the effective boost != 1; 2.2 under ``legacy``), idf (with integer n and N), tf
    (freq, k1, b, dl, avgdl).  ``dl`` is described as "(approximate)" when the norm byte is above 39.
    Float values are Python floats carrying the digits Java prints (``json_float``: ``0.47000363``, not
    ``0.4700036346912384``); n and N stay ints, as OpenSearch writes them.
    """
    k1f, bf = _check_bm25_params(k1, b)
    freq_f, avgdl_f = F32(freq), F32(avgdl)
    idf = bm25_idf(doc_freq, doc_count)
    eff_boost = F32(boost) * (ONE + k1f) if legacy else F32(boost)
    weight = eff_boost * idf
    norm = int(norm_byte) & 0xFF
    inv = bm25_norm_cache(avgdl_f, k1f, bf)[norm]
    score = weight - weight / (ONE + freq_f * inv)
    doclen = LENGTH_TABLE[norm]
    tf_inv = ONE / (k1f * ((ONE - bf) + bf * doclen / avgdl_f))  # explainTF recomputes it the same way
    tf = ONE - ONE / (ONE + freq_f * tf_inv)
    details = []
    if eff_boost != ONE:
        details.append(_node(eff_boost, "boost"))
    details.append(
        _node(
            idf,
            "idf, computed as log(1 + (N - n + 0.5) / (n + 0.5)) from:",
            [
                _node(int(doc_freq), "n, number of documents containing term"),
                _node(int(doc_count), "N, total number of documents with field"),
            ],
        )
    )
    dl_desc = "dl, length of field (approximate)" if norm > 39 else "dl, length of field"
    details.append(
        _node(
            tf,
            "tf, computed as freq / (freq + k1 * (1 - b + b * dl / avgdl)) from:",
            [
                _node(freq_f, "freq, occurrences of term within document"),
                _node(k1f, "k1, term saturation parameter"),
                _node(bf, "b, length normalization parameter"),
                _node(doclen, dl_desc),
                _node(avgdl_f, "avgdl, average length of field"),
            ],
        )
    )
    return _node(score, f"score(freq={java_float_str(freq_f)}), computed as boost * idf * tf from:", details)



def feature_pivot(sum_total_term_freq: int, doc_freq: int) -> np.float32:
    """``FeatureField.computePivotFeatureValue``: the default saturation pivot.

        if docFreq == 0: 1
        avgFreq = (float) ((double) totalTermFreq / docFreq);  decodeFeatureValue(avgFreq)  # (int) truncation

    The mean of the stored int bits approximates the geometric mean of the feature values.
    """
    if int(doc_freq) == 0:
        return ONE
    avg = F32(int(sum_total_term_freq) / int(doc_freq))
    if avg > MAX_FEATURE_FREQ:
        return F32(FLOAT_MAX_VALUE)
    return decode_feature(int(avg))


def check_feature_weight(weight: float) -> np.float32:
    """The ``newLinearQuery`` / ``newLogQuery`` / ... check: weight in (0, 64]; ValueError with Lucene's
    message."""
    w = F32(weight)
    if not w > 0 or w > MAX_FEATURE_WEIGHT:
        raise ValueError(FEATURE_WEIGHT_ERROR.format(weight=java_float_str(w)))
    return w


def _check_positive(name: str, value: Real) -> np.float32:
    v = F32(value)
    if not v > 0 or not np.isfinite(v):
        raise ValueError(f"{name} must be > 0, got: {java_float_str(v)}")
    return v


def linear_scores(freqs: Any, weight: Real) -> Any:
    """``FeatureField.LinearFunction``: ``w * decodeFeatureValue(freq)`` in float."""
    return F32(weight) * decode_feature(freqs)


def log_scores(freqs: Any, weight: Real, scaling_factor: Real) -> Any:
    """``FeatureField.LogFunction``: ``(float) (w * Math.log(scalingFactor + decodeFeatureValue(freq)))``.

    ``scalingFactor + S`` is a float addition; log and the product with w are double, then cast.
    ``newLogQuery`` demands scalingFactor >= 1 and finite.
    """
    a = F32(scaling_factor)
    if not a >= 1 or not np.isfinite(a):
        raise ValueError(f"scalingFactor must be >= 1, got: {java_float_str(a)}")
    inner = (a + np.asarray(decode_feature(freqs), dtype=np.float32)).astype(np.float64)
    out = (float(F32(weight)) * np.log(inner)).astype(np.float32)
    return out[()] if out.ndim == 0 else out


def saturation_scores(freqs: Any, weight: Real, pivot: Real) -> Any:
    """``FeatureField.SaturationFunction``: ``w * (1 - pivot / (S + pivot))`` in float (Lucene's rewrite of
    ``w * S / (S + k)``, monotonic in S).  ``pivot`` must be > 0 (``feature_pivot`` for the default)."""
    k = _check_positive("pivot", pivot)
    return F32(weight) * (ONE - k / (decode_feature(freqs) + k))


def sigmoid_scores(freqs: Any, weight: Real, pivot: Real, exponent: Real) -> Any:
    """``FeatureField.SigmoidFunction``: ``(float) (w * (1 - k^a / (Math.pow(S, a) + k^a)))`` where
    ``k^a = Math.pow(pivot, a)`` is a double computed once; all double, then cast."""
    k = _check_positive("pivot", pivot)
    a = _check_positive("exp", exponent)
    try:
        pivot_pa = math.pow(float(k), float(a))
    except OverflowError:  # Java's Math.pow overflows to Infinity (the scores are then NaN, as in Lucene)
        pivot_pa = math.inf
    s = np.asarray(decode_feature(freqs), dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        out = (float(F32(weight)) * (1.0 - pivot_pa / (np.power(s, float(a)) + pivot_pa))).astype(np.float32)
    return out[()] if out.ndim == 0 else out


FeatureFunction = Literal["linear", "log", "saturation", "sigmoid"]


def explain_feature(
    function: FeatureFunction,
    field: str,
    feature: str,
    freq: int,
    weight: float,
    *,
    pivot: float | None = None,
    scaling_factor: float | None = None,
    exponent: float | None = None,
) -> dict[str, Any]:
    """``FeatureField.<Function>.explain`` (what FeatureQuery's Weight.explain returns as is).

    ``weight`` is the query boost (rank_feature) or token weight * boost (neural_sparse); for a
    rank_feature field pass ``field="_feature"`` and ``feature=<field name>``.  ``pivot`` is required by
    saturation (pass ``feature_pivot(...)`` for the default) and sigmoid, ``exponent`` by sigmoid,
    ``scaling_factor`` by log.
    """
    needs = {"log": ("scaling_factor",), "saturation": ("pivot",), "sigmoid": ("pivot", "exponent")}
    if function not in ("linear", "log", "saturation", "sigmoid"):
        raise ValueError(
            f"unknown feature function {function!r}; expected one of linear, log, saturation, sigmoid"
        )
    given = {"pivot": pivot, "scaling_factor": scaling_factor, "exponent": exponent}
    missing = [name for name in needs.get(function, ()) if given[name] is None]
    if missing:
        raise ValueError(f"the {function} function needs {', '.join(missing)}")
    s = _node(decode_feature(freq), "S, feature value")
    w = _node(F32(weight), "w, weight of this function")
    k_desc = "k, pivot feature value that would give a score contribution equal to w/2"
    head = f"on the {field} field for the {feature} feature, computed as"
    if function == "linear":
        return _node(linear_scores(freq, weight), f"Linear function {head} w * S from:", [w, s])
    if function == "log":
        assert scaling_factor is not None
        a = _node(F32(scaling_factor), "a, scaling factor")
        return _node(
            log_scores(freq, weight, scaling_factor), f"Log function {head} w * log(a + S) from:", [w, a, s]
        )
    assert pivot is not None
    k = _node(F32(pivot), k_desc)
    if function == "saturation":
        score = saturation_scores(freq, weight, pivot)
        return _node(score, f"Saturation function {head} w * S / (S + k) from:", [w, k, s])
    assert exponent is not None
    a_desc = "a, exponent, higher values make the function grow slower before k and faster after k"
    score = sigmoid_scores(freq, weight, pivot, exponent)
    return _node(
        score, f"Sigmoid function {head} w * S^a / (S^a + k^a) from:", [w, k, _node(F32(exponent), a_desc), s]
    )


def neural_sparse_weights(query_tokens: dict[str, float], boost: float = 1.0) -> dict[str, np.float32]:
    """Per-token clause weights of ``neural_sparse`` with ``query_tokens``.

    NeuralSparseQueryBuilder.doToQuery adds ``FeatureField.newLinearQuery(field, token, weight)`` as a
    SHOULD clause per token; newLinearQuery refuses weights outside (0, 64] (``FEATURE_WEIGHT_ERROR``).
    The query boost reaches each clause as ``weight * boost`` (BoostQuery, float).  The document score is
    then ``sum_should_scores(linear_scores(freq_t, w_t) for matching tokens t)``.
    """
    b = F32(boost)
    return {token: check_feature_weight(w) * b for token, w in query_tokens.items()}


def sum_should_scores(scores: Sequence[Any]) -> Any:
    """A BooleanQuery's SHOULD clauses: float scores summed in double, cast to float
    (DisjunctionSumScorer / BooleanScorer).  Pass one array (or scalar) per matching clause, 0 where a
    clause does not match."""
    total = np.zeros(np.shape(scores[0]) if scores else (), dtype=np.float64)
    for s in scores:
        total = total + np.asarray(s, dtype=np.float32).astype(np.float64)
    out = total.astype(np.float32)
    return out[()] if out.ndim == 0 else out


KnnEngine = Literal["faiss", "lucene"]


def knn_score(
    raw: np.ndarray | Sequence[float] | float,
    space_type: str,
    engine: KnnEngine = "faiss",
    boost: float = 1.0,
) -> Any:
    """OpenSearch k-NN score translation, float32 (array in, array out; scalar in, np.float32 out).

    ``raw`` is what the library returns: squared L2 distance for ``l2`` (faiss METRIC_L2 is squared), the
    cosine similarity for ``cosinesimil`` (faiss indexes normalised vectors with inner product), the inner
    product for ``innerproduct``, the distance for ``l1``/``linf``/``hamming``.

    - l2, l1, linf, hamming: ``1 / (1 + d)``
    - cosinesimil, faiss: ``SpaceType.COSINESIMIL.scoreTranslation(1 - cos)`` =
      ``max((2 - (1 - cos)) / 2, 0)``; lucene: ``VectorSimilarityFunction.COSINE`` =
      ``max((1 + cos) / 2, 0)``.
      Both are (1 + cos)/2 up to one float rounding.
    - innerproduct, faiss: ``SpaceType.INNER_PRODUCT.scoreTranslation(-ip)``: ``ip + 1`` if ip > 0 else
      ``1 / (1 - ip)``; lucene's MAXIMUM_INNER_PRODUCT (``VectorUtil.scaleMaxInnerProductScore``) is the
      same float arithmetic.

    ``boost`` multiplies the translated score (Lucene's DocAndScoreQuery ``scores[i] * boost``, which the
    k-NN query rewrites to).
    """
    if space_type not in SPACE_TYPES:
        raise ValueError(f"Unable to find space: {space_type} . Valid values are: [{', '.join(SPACE_TYPES)}]")
    if engine not in ("faiss", "lucene"):
        raise ValueError(f"unknown k-NN engine {engine!r}; expected 'faiss' or 'lucene'")
    r = np.asarray(raw, dtype=np.float32)
    if space_type == "cosinesimil":
        if engine == "faiss":
            score = np.maximum((TWO - (ONE - r)) / TWO, F32(0))
        else:
            score = np.maximum((ONE + r) / TWO, F32(0))
    elif space_type == "innerproduct":
        neg = -r  # faiss path: translation of -1 * rawScore
        with np.errstate(divide="ignore"):
            score = np.where(neg >= 0, ONE / (ONE + neg), -neg + ONE)
    else:
        score = ONE / (ONE + r)
    out = (score * F32(boost)).astype(np.float32)
    return out[()] if out.ndim == 0 else out
