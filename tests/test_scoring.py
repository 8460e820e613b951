"""engine.scoring against independent references.

Expected values come from the formulas written out here in plain float64 Python (``math``, ``struct``),
from hand-worked SmallFloat fixed points, and from a published Elasticsearch 7 / OpenSearch 2.x explain
output (LegacyBM25Similarity, identical code in OpenSearch 2.x) - never from the module's own output.
"""

from __future__ import annotations

import math
import random
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from nirbridge.engine.index import encoding
from nirbridge.engine.search import similarity

# the scoring arithmetic this file checks, under the one name it used before encoding and similarity split
sc = SimpleNamespace(**{k: v for m in (encoding, similarity) for k, v in vars(m).items()})

REL = 1e-5
rng = random.Random(20240611)


def f32_bits(v: float) -> int:
    return struct.unpack(">I", struct.pack(">f", v))[0]


def bits_f32(b: int) -> float:
    return struct.unpack(">f", struct.pack(">I", b))[0]


def close(actual: float, expected: float, rel: float = REL, scale: float = 0.0) -> bool:
    """Relative agreement, plus a few float ulps of ``scale`` for Lucene's cancelling rewrites: in float,
    ``w - w / (1 + x)`` (BM25) and ``w * (1 - k / (S + k))`` (saturation) are accurate to ~ulp(w), so a
    score far below its weight w carries Lucene's own rounding error, which must be reproduced, not fixed."""
    return abs(float(actual) - expected) <= rel * abs(expected) + 4 * EPS32 * abs(scale)


EPS32 = float(np.finfo(np.float32).eps)


def fround(x: float) -> float:
    """Round a double to the nearest float (Java's (float) cast), without numpy."""
    return struct.unpack(">f", struct.pack(">f", x))[0]


# Java float arithmetic emulated in Python doubles: a double +,-,*,/ of two floats rounded once more to
# float is the correctly rounded float result (53 >= 2 * 24 + 2), so these reproduce Java bit for bit.
def fadd(a: float, b: float) -> float:
    return fround(a + b)


def fsub(a: float, b: float) -> float:
    return fround(a - b)


def fmul(a: float, b: float) -> float:
    return fround(a * b)


def fdiv(a: float, b: float) -> float:
    return fround(a / b)


# --- SmallFloat / norms --------------------------------------------------------------------------------
def test_small_lengths_are_stored_exactly() -> None:
    for i in range(40):  # 0..23 are "free" values, 24..39 are exact subnormal/first-octave int4 values
        assert sc.int_to_byte4(i) == i
        assert sc.byte4_to_int(i) == i
        assert sc.LENGTH_TABLE[i] == i


def test_length_table_shape() -> None:
    ints = [sc.byte4_to_int(byte) for byte in range(256)]
    assert all(a < b for a, b in zip(ints, ints[1:], strict=False))  # strictly increasing
    # from byte 32 on, every 8 bytes the step between consecutive lengths doubles (4 significant bits)
    for byte in range(32, 255):
        assert ints[byte + 1] - ints[byte] == 2 ** ((byte - 32) // 8)
    assert ints[255] == 2013265944  # byte4ToInt((byte) 255) still fits a Java int
    assert sc.int_to_byte4(2**31 - 1) == 255
    # LENGTH_TABLE is Java's float[]: the int lengths rounded to float (inexact above 2**24)
    assert sc.LENGTH_TABLE.dtype == np.float32 and len(sc.LENGTH_TABLE) == 256
    assert [float(x) for x in sc.LENGTH_TABLE] == [fround(i) for i in ints]
    assert float(sc.LENGTH_TABLE[255]) == 2013265920.0


def test_hand_worked_fixed_points() -> None:
    # 100 - 24 = 76 = 0b1001100: 7 bits, shift 3, mantissa (76 >> 3) & 7 = 1, exponent field 4 -> 33; byte 57
    assert sc.int_to_byte4(100) == 57
    assert sc.byte4_to_int(57) == 96  # 24 + ((1 | 8) << 3)
    assert sc.int_to_byte4(40) == 40 and sc.int_to_byte4(41) == 40 and sc.int_to_byte4(42) == 41
    assert sc.byte4_to_int(-1) == sc.byte4_to_int(255)  # Java bytes are signed; & 0xFF


def test_encoding_rounds_down_to_the_table() -> None:
    table = sc.LENGTH_TABLE.astype(np.float64)
    lengths = [rng.randrange(0, 2**31) for _ in range(3000)] + [rng.randrange(0, 5000) for _ in range(3000)]
    for length in lengths:
        byte = sc.int_to_byte4(length)
        assert table[byte] <= length  # never rounds up
        assert byte == 255 or table[byte + 1] > length  # largest such byte
        assert byte == np.searchsorted(table, length, side="right") - 1


def test_every_byte_round_trips() -> None:
    for byte in range(256):
        assert sc.int_to_byte4(sc.byte4_to_int(byte)) == byte


def test_encode_norms_vectorised_equals_scalar() -> None:
    lengths = np.array(
        [0, 1, 23, 24, 39, 40, 41, 1000, 123456, 2**31 - 1] + [rng.randrange(0, 10**7) for _ in range(500)]
    )
    vec = sc.encode_norms(lengths)
    assert vec.dtype == np.uint8
    assert [int(b) for b in vec] == [sc.int_to_byte4(int(n)) for n in lengths]
    assert np.array_equal(sc.decode_norms(vec), sc.LENGTH_TABLE[vec])
    assert sc.encode_norms([]).shape == (0,)


def test_negative_lengths_rejected() -> None:
    with pytest.raises(ValueError, match="Only supports positive values, got -1"):
        sc.int_to_byte4(-1)
    with pytest.raises(ValueError, match="-3"):
        sc.encode_norms([1, -3])


# --- BM25 ----------------------------------------------------------------------------------------------
def ref_idf(n: int, big_n: int) -> float:
    return math.log(1 + (big_n - n + 0.5) / (n + 0.5))


def ref_bm25(
    tf: float, n: int, big_n: int, dl: float, avgdl: float, k1: float = 1.2, b: float = 0.75
) -> float:
    return ref_idf(n, big_n) * tf / (tf + k1 * (1 - b + b * dl / avgdl))


def test_idf_and_avgdl_match_the_formula() -> None:
    for _ in range(2000):
        big_n = rng.randrange(1, 10**7)
        n = rng.randrange(1, big_n + 1)
        assert close(sc.bm25_idf(n, big_n), ref_idf(n, big_n))
        total = rng.randrange(big_n, 300 * big_n)
        assert close(sc.bm25_avgdl(total, big_n), total / big_n)
    assert isinstance(sc.bm25_idf(3, 10), np.float32)
    freqs = np.array([1, 5, 9])
    assert np.array_equal(sc.bm25_idf(freqs, 10), [sc.bm25_idf(int(n), 10) for n in freqs])
    with pytest.raises(ValueError):
        sc.bm25_avgdl(10, 0)


@pytest.mark.parametrize("k1,b", [(1.2, 0.75), (0.9, 0.4), (2.0, 1.0), (1.2, 0.0)])
def test_bm25_scores_match_the_formula(k1: float, b: float) -> None:
    for _ in range(40):
        big_n = rng.randrange(2, 10**6)
        avgdl = sc.bm25_avgdl(rng.randrange(big_n, 500 * big_n), big_n)
        cache = sc.bm25_norm_cache(avgdl, k1, b)
        n = rng.randrange(1, big_n + 1)
        boost = rng.choice([1.0, 0.5, 3.0])
        weight = sc.bm25_weight(sc.bm25_idf(n, big_n), boost)
        lengths = np.array([rng.randrange(1, 100_000) for _ in range(200)])
        freqs = np.array([rng.randrange(1, 50) for _ in range(200)])
        norms = sc.encode_norms(lengths)
        got = sc.bm25_scores(freqs, norms, weight, cache)
        assert got.dtype == np.float32
        for tf, norm, score in zip(freqs, norms, got, strict=True):
            dl = float(sc.LENGTH_TABLE[norm])  # the decoded norm, as Lucene scores with
            expected = boost * ref_bm25(float(tf), n, big_n, dl, float(avgdl), k1, b)
            assert close(score, expected, scale=float(weight))
        # vectorised == scalar, bit for bit
        one = [
            sc.bm25_scores([f], [m], weight, cache)[0] for f, m in zip(freqs[:20], norms[:20], strict=True)
        ]
        assert np.array_equal(got[:20], one)


def test_bm25_float_arithmetic_is_javas() -> None:
    """cache[i] = 1f / (k1 * ((1 - b) + b * LENGTH_TABLE[i] / avgdl));
    score = w - w / (1f + freq * cache[i])."""
    for _ in range(30):
        big_n = rng.randrange(2, 10**6)
        total = rng.randrange(big_n, 300 * big_n)
        avgdl = fround(total / big_n)
        k1, b = fround(rng.choice([1.2, 0.9, 1.5])), fround(rng.choice([0.75, 0.3, 1.0]))
        lengths = [sc.byte4_to_int(byte) for byte in range(1, 256)]
        cache = [fdiv(1.0, fmul(k1, fadd(fsub(1.0, b), fdiv(fmul(b, fround(dl)), avgdl)))) for dl in lengths]
        got_cache = sc.bm25_norm_cache(sc.bm25_avgdl(total, big_n), k1, b)
        assert [float(x) for x in got_cache[1:]] == cache
        n = rng.randrange(1, big_n + 1)
        weight = fmul(fround(rng.choice([1.0, 2.5])), fround(ref_idf(n, big_n)))
        for _ in range(50):
            byte, freq = rng.randrange(1, 256), float(rng.randrange(1, 100))
            expected = fsub(weight, fdiv(weight, fadd(1.0, fmul(freq, cache[byte - 1]))))
            assert float(sc.bm25_scores([freq], [byte], np.float32(weight), got_cache)[0]) == expected


def test_fields_without_norms_use_norm_one() -> None:
    cache = sc.bm25_norm_cache(np.float32(1.0))
    weight = sc.bm25_weight(sc.bm25_idf(1, 4))
    assert sc.bm25_scores([1], None, weight, cache)[0] == sc.bm25_scores([1], [1], weight, cache)[0]


def test_bm25_parameter_checks() -> None:
    with pytest.raises(ValueError, match="illegal k1 value: -1.0, must be a non-negative finite value"):
        sc.bm25_norm_cache(np.float32(3.0), k1=-1)
    with pytest.raises(ValueError, match="illegal b value: 1.5, must be between 0 and 1"):
        sc.bm25_norm_cache(np.float32(3.0), b=1.5)


def test_published_opensearch_2_explain() -> None:
    """ "rock climbing" over 3 docs (lengths 6, 5, 6); Elasticsearch 7 / OpenSearch 2.x LegacyBM25 output:
    rock 0.4589591 (idf 0.47000363, tf 0.44386417), climbing 0.95778096, sum 1.4167401, avgdl 5.6666665."""
    avgdl = sc.bm25_avgdl(17, 3)
    assert sc.java_float_str(avgdl) == "5.6666665"
    rock = sc.explain_bm25(1, sc.int_to_byte4(6), 2, 3, avgdl, legacy=True)
    climbing = sc.explain_bm25(1, sc.int_to_byte4(6), 1, 3, avgdl, legacy=True)
    assert [sc.java_float_str(x["value"]) for x in (rock, climbing)] == ["0.4589591", "0.95778096"]
    assert sc.java_float_str(
        sc.sum_should_scores([np.float32(rock["value"]), np.float32(climbing["value"])])
    ) == ("1.4167401")
    assert rock == {
        "value": 0.4589591,
        "description": "score(freq=1.0), computed as boost * idf * tf from:",
        "details": [
            {"value": 2.2, "description": "boost", "details": []},
            {
                "value": 0.47000363,
                "description": "idf, computed as log(1 + (N - n + 0.5) / (n + 0.5)) from:",
                "details": [
                    {"value": 2, "description": "n, number of documents containing term", "details": []},
                    {"value": 3, "description": "N, total number of documents with field", "details": []},
                ],
            },
            {
                "value": 0.44386417,
                "description": "tf, computed as freq / (freq + k1 * (1 - b + b * dl / avgdl)) from:",
                "details": [
                    {"value": 1.0, "description": "freq, occurrences of term within document", "details": []},
                    {"value": 1.2, "description": "k1, term saturation parameter", "details": []},
                    {"value": 0.75, "description": "b, length normalization parameter", "details": []},
                    {"value": 6.0, "description": "dl, length of field", "details": []},
                    {"value": 5.6666665, "description": "avgdl, average length of field", "details": []},
                ],
            },
        ],
    }
    # the same stored weights through the vectorised path
    cache = sc.bm25_norm_cache(avgdl)
    weight = sc.bm25_weight(sc.bm25_idf(2, 3), legacy=True)
    assert sc.bm25_scores([1], [6], weight, cache)[0] == np.float32(rock["value"])


def test_lucene_bm25_explain_has_no_boost_node_and_marks_approximate_lengths() -> None:
    avgdl = sc.bm25_avgdl(17, 3)
    plain = sc.explain_bm25(1, 6, 2, 3, avgdl)
    assert [d["description"].split(",")[0] for d in plain["details"]] == ["idf", "tf"]
    assert close(plain["value"], ref_bm25(1, 2, 3, 6, 17 / 3))
    boosted = sc.explain_bm25(2, sc.int_to_byte4(1000), 2, 3, avgdl, boost=3.0)
    assert boosted["details"][0] == {"value": 3.0, "description": "boost", "details": []}
    assert boosted["description"].startswith("score(freq=2.0)")
    assert boosted["details"][2]["details"][3]["description"] == "dl, length of field (approximate)"
    assert close(
        boosted["value"], 3 * ref_bm25(2, 2, 3, float(sc.LENGTH_TABLE[sc.int_to_byte4(1000)]), 17 / 3)
    )


def test_legacy_weight_is_two_point_two_times() -> None:
    idf = sc.bm25_idf(5, 100)
    assert close(sc.bm25_weight(idf, legacy=True), 2.2 * float(idf))
    assert close(sc.bm25_weight(idf, boost=2.0, k1=0.9, legacy=True), 2.0 * 1.9 * float(idf))


def test_phrase_idf_is_a_sum() -> None:
    assert close(sc.bm25_idf_sum([3, 40], 1000), ref_idf(3, 1000) + ref_idf(40, 1000))


# --- FeatureField -------------------------------------------------------------------------------------
def ref_encode(v: float) -> int:
    return f32_bits(v) >> 15


def ref_decode(freq: int) -> float:
    return bits_f32(freq << 15)


def random_feature_values(count: int) -> list[float]:
    return [10 ** rng.uniform(-6, 6) for _ in range(count)] + [rng.uniform(0.01, 5) for _ in range(count)]


def test_feature_encoding_keeps_nine_significant_bits() -> None:
    for v in random_feature_values(2000):
        freq = sc.encode_feature(v)
        assert freq == ref_encode(v)
        stored = float(sc.decode_feature(freq))
        assert stored == ref_decode(freq)
        v32 = float(np.float32(v))
        assert stored <= v32 < stored * (1 + 2**-8)  # truncation, relative precision 2**-8
    for exact in (1.0, 1.5, 0.75, 3.0, 511.0, 2.0**-20, 0.625):  # <= 9 significant bits: stored exactly
        assert float(sc.decode_feature(sc.encode_feature(exact))) == exact
    assert float(sc.decode_feature(sc.encode_feature(1.0 + 2**-8 + 2**-9))) == 1.0 + 2**-8


def test_feature_encode_decode_vectorised_equals_scalar() -> None:
    values = random_feature_values(300)
    enc = sc.encode_features(values)
    assert enc.tolist() == [sc.encode_feature(v) for v in values]
    dec = sc.decode_feature(enc)
    assert dec.dtype == np.float32
    assert dec.tolist() == [float(sc.decode_feature(int(f))) for f in enc]
    assert isinstance(sc.decode_feature(int(enc[0])), np.float32)


def test_feature_limits() -> None:
    assert sc.MAX_FEATURE_FREQ == f32_bits(float(np.finfo(np.float32).max)) >> 15 == 65279
    assert sc.encode_feature(2.0**-126) == 256  # Float.MIN_NORMAL is accepted
    assert sc.encode_feature(float(np.finfo(np.float32).max)) == sc.MAX_FEATURE_FREQ
    assert sc.decode_feature(sc.MAX_FEATURE_FREQ + 1) == np.finfo(np.float32).max


@pytest.mark.parametrize(
    "value,message",
    [
        (
            0.0,
            "featureValue must be a positive normal float, got: 0.0 for feature f on field x which is less "
            "than the minimum positive normal float: 1.1754944E-38",
        ),
        (-1.0, "featureValue must be a positive normal float, got: -1.0 for feature f on field x"),
        (1e-40, "got: 1.0E-40 for feature f on field x which is less than"),  # subnormal float
        (1e-50, "got: 0.0 for feature f"),  # underflows to 0 in the cast to float
        (math.inf, "featureValue must be finite, got: Infinity for feature f on field x"),
        (1e39, "featureValue must be finite, got: Infinity"),  # overflows in the cast to float
        (math.nan, "featureValue must be finite, got: NaN for feature f on field x"),
    ],
)
def test_feature_values_lucene_refuses(value: float, message: str) -> None:
    with pytest.raises(ValueError) as err:
        sc.encode_feature(value, "f", "x")
    assert message in str(err.value)
    with pytest.raises(ValueError):
        sc.encode_features([1.0, value])


def test_rank_feature_negative_impact_stores_the_inverse() -> None:
    stored = sc.rank_feature_value(22, positive_score_impact=False)
    assert stored == np.float32(1) / np.float32(22)
    assert sc.encode_feature(stored) == ref_encode(1 / 22)
    assert sc.rank_feature_value(8) == np.float32(8)
    assert sc.feature_value_error(
        sc.rank_feature_value(0, False), "url_length", sc.RANK_FEATURE_META_FIELD
    ) == ("featureValue must be finite, got: Infinity for feature url_length on field _feature")


def test_feature_functions_match_the_formulas() -> None:
    values = random_feature_values(300)
    freqs = np.array([ref_encode(v) for v in values])
    s = [ref_decode(int(f)) for f in freqs]
    w, pivot, a, exp = 1.7, 2.5, 3.0, 0.6
    checks = [
        (sc.linear_scores(freqs, w), [w * x for x in s]),
        (sc.log_scores(freqs, w, a), [w * math.log(a + x) for x in s]),
        (sc.saturation_scores(freqs, w, pivot), [w * x / (x + pivot) for x in s]),
        (sc.sigmoid_scores(freqs, w, pivot, exp), [w * x**exp / (x**exp + pivot**exp) for x in s]),
    ]
    for got, expected in checks:
        assert got.dtype == np.float32
        for g, e in zip(got, expected, strict=True):
            assert close(g, e, scale=w)
    # saturation and linear are all-float in Lucene: emulate them bit for bit
    k = fround(pivot)
    for f, x, g_sat, g_lin in zip(freqs, s, checks[2][0], checks[0][0], strict=True):
        assert float(g_sat) == fmul(fround(w), fsub(1.0, fdiv(k, fadd(x, k)))), f
        assert float(g_lin) == fmul(fround(w), x)


def test_feature_functions_vectorised_equal_scalar() -> None:
    freqs = np.array([ref_encode(v) for v in random_feature_values(50)])
    for fn, args in [
        (sc.linear_scores, (0.3,)),
        (sc.log_scores, (2.0, 1.5)),
        (sc.saturation_scores, (1.0, 0.8)),
        (sc.sigmoid_scores, (1.0, 0.8, 0.7)),
    ]:
        vec = fn(freqs, *args)
        one = [fn(int(f), *args) for f in freqs]
        assert all(isinstance(x, np.float32) for x in one)
        assert np.array_equal(vec, np.array(one, dtype=np.float32)), fn.__name__


def test_feature_function_parameter_checks() -> None:
    with pytest.raises(ValueError, match="scalingFactor must be >= 1, got: 0.5"):
        sc.log_scores([300], 1.0, 0.5)
    with pytest.raises(ValueError, match="pivot must be > 0, got: 0.0"):
        sc.saturation_scores([300], 1.0, 0.0)
    with pytest.raises(ValueError, match="exp must be > 0, got: -1.0"):
        sc.sigmoid_scores([300], 1.0, 1.0, -1.0)


def test_default_pivot() -> None:
    assert sc.feature_pivot(0, 0) == 1.0  # term absent: a legal placeholder
    for _ in range(200):
        values = [10 ** rng.uniform(-2, 3) for _ in range(rng.randrange(1, 400))]
        freqs = [ref_encode(v) for v in values]
        pivot = float(sc.feature_pivot(sum(freqs), len(freqs)))
        assert pivot == ref_decode(int(sum(freqs) / len(freqs)))  # mean of the int bits, truncated
        geo = math.exp(sum(math.log(ref_decode(f)) for f in freqs) / len(freqs))
        assert (
            abs(pivot / geo - 1) < 0.1
        )  # int-bit mean of floats ~ geometric mean (log2 is piecewise linear)


def test_explain_feature_functions() -> None:
    freq = ref_encode(4.0)
    sat = sc.explain_feature("saturation", "_feature", "pagerank", freq, 2.0, pivot=4.0)
    assert sat["value"] == 1.0  # 2 * 4 / (4 + 4)
    assert sat["description"] == (
        "Saturation function on the _feature field for the pagerank feature, "
        "computed as w * S / (S + k) from:"
    )
    assert [d["description"] for d in sat["details"]] == [
        "w, weight of this function",
        "k, pivot feature value that would give a score contribution equal to w/2",
        "S, feature value",
    ]
    lin = sc.explain_feature("linear", "nir_sparse", "hello", freq, 0.5)
    assert lin["value"] == 2.0 and lin["details"][1] == {
        "value": 4.0,
        "description": "S, feature value",
        "details": [],
    }
    sig = sc.explain_feature("sigmoid", "f", "g", freq, 1.0, pivot=4.0, exponent=2.0)
    assert close(sig["value"], 0.5) and len(sig["details"]) == 4
    log = sc.explain_feature("log", "f", "g", freq, 1.0, scaling_factor=1.0)
    assert close(log["value"], math.log(5.0))
    with pytest.raises(ValueError, match="pivot"):
        sc.explain_feature("saturation", "f", "g", freq, 1.0)


# --- neural_sparse / BooleanQuery sums ---------------------------------------------------------------
def test_neural_sparse_is_a_sum_of_linear_clauses() -> None:
    for _ in range(100):
        tokens = {f"t{i}": rng.uniform(0.01, 64) for i in range(rng.randrange(1, 30))}
        boost = rng.choice([1.0, 0.5, 2.0])
        weights = sc.neural_sparse_weights(tokens, boost)
        doc = {t: 10 ** rng.uniform(-3, 1) for t in tokens if rng.random() < 0.6}
        clause_scores = [sc.linear_scores(ref_encode(v), weights[t]) for t, v in doc.items()]
        got = sc.sum_should_scores(clause_scores) if clause_scores else np.float32(0)
        expected = sum(boost * tokens[t] * ref_decode(ref_encode(v)) for t, v in doc.items())
        assert close(got, expected)


def test_neural_sparse_weight_range() -> None:
    assert sc.neural_sparse_weights({"a": 64.0})["a"] == 64.0
    for bad, shown in [(0.0, "0.0"), (-1.0, "-1.0"), (64.5, "64.5")]:
        with pytest.raises(ValueError, match=rf"weight must be in \(0, 64.0\], got: {shown}"):
            sc.neural_sparse_weights({"a": bad})


def test_should_sum_is_double_then_float() -> None:
    parts = [np.float32(0.1), np.float32(0.2), np.float32(0.3)]
    assert sc.sum_should_scores(parts) == np.float32(sum(float(p) for p in parts))
    arrays = [np.array([0.5, 0.0], dtype=np.float32), np.array([0.25, 1.0], dtype=np.float32)]
    assert sc.sum_should_scores(arrays).tolist() == [0.75, 1.0]


# --- k-NN ----------------------------------------------------------------------------------------------
def ref_knn(raw: float, space: str) -> float:
    if space == "cosinesimil":
        return max((1 + raw) / 2, 0.0)
    if space == "innerproduct":
        return raw + 1 if raw >= 0 else 1 / (1 - raw)
    return 1 / (1 + raw)


@pytest.mark.parametrize("engine", ["faiss", "lucene"])
@pytest.mark.parametrize("space", sc.SPACE_TYPES)
def test_knn_translation_matches_the_formula(space: str, engine: str) -> None:
    if space == "cosinesimil":
        raw = [rng.uniform(-1, 1) for _ in range(500)]
    elif space == "innerproduct":
        raw = [rng.uniform(-50, 50) for _ in range(500)]
    else:
        raw = [rng.uniform(0, 100) for _ in range(500)]
    got = sc.knn_score(np.array(raw), space, engine)
    assert got.dtype == np.float32
    for r, g in zip(raw, got, strict=True):
        assert close(g, ref_knn(float(np.float32(r)), space), rel=1e-6, scale=1.0)
    assert np.array_equal(got[:10], [sc.knn_score(r, space, engine) for r in raw[:10]])


def test_knn_faiss_float_arithmetic() -> None:
    """faiss cosinesimil: max((2f - (1f - cos)) / 2f, 0f); innerproduct via scoreTranslation(-ip)."""
    for _ in range(500):
        c = fround(rng.uniform(-1, 1))
        assert float(sc.knn_score(c, "cosinesimil")) == max(fdiv(fsub(2.0, fsub(1.0, c)), 2.0), 0.0)
        ip = fround(rng.uniform(-20, 20))
        expected = fdiv(1.0, fadd(1.0, -ip)) if -ip >= 0 else fadd(ip, 1.0)
        assert float(sc.knn_score(ip, "innerproduct")) == expected
        d = fround(rng.uniform(0, 50))
        assert float(sc.knn_score(d, "l2")) == fdiv(1.0, fadd(1.0, d))


def test_knn_fixed_points() -> None:
    assert sc.knn_score([0.0, 1.0, 3.0], "l2").tolist() == [1.0, 0.5, 0.25]
    assert sc.knn_score([1.0, 0.0, -1.0], "cosinesimil").tolist() == [1.0, 0.5, 0.0]
    assert sc.knn_score([1.0, 0.0, -1.0, 3.0], "innerproduct").tolist() == [2.0, 1.0, 0.5, 4.0]
    assert sc.knn_score([1.0], "l2", boost=2.0).tolist() == [1.0]
    lucene = sc.knn_score(np.linspace(-1, 1, 1001), "cosinesimil", "lucene")
    faiss = sc.knn_score(np.linspace(-1, 1, 1001), "cosinesimil", "faiss")
    assert np.max(np.abs(lucene - faiss)) <= np.finfo(np.float32).eps  # same formula, one rounding apart


def test_knn_unknown_space() -> None:
    with pytest.raises(ValueError, match="Unable to find space: dot"):
        sc.knn_score([1.0], "dot")
    assert set(sc.FAISS_SPACE_TYPES) <= set(sc.SPACE_TYPES)


# --- Java float formatting -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value,text",
    [
        (1.0, "1.0"),
        (0.1, "0.1"),
        (100.0, "100.0"),
        (0.001, "0.001"),
        (1234567.0, "1234567.0"),
        (1e7, "1.0E7"),
        (1e-4, "1.0E-4"),
        (-1.0, "-1.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (2.2, "2.2"),
        (0.47000363, "0.47000363"),
        (2.0**-126, "1.1754944E-38"),  # Float.MIN_NORMAL as JDK 19+ prints it
        (2.0**-149, "1.4E-45"),  # Float.MIN_VALUE: Java keeps a 2-digit form here
        (float(np.finfo(np.float32).max), "3.4028235E38"),
        (math.inf, "Infinity"),
        (math.nan, "NaN"),
    ],
)
def test_java_float_str(value: float, text: str) -> None:
    assert sc.java_float_str(value) == text


def test_json_float_round_trips() -> None:
    for _ in range(1000):
        f = np.float32(10 ** rng.uniform(-30, 30))
        assert np.float32(sc.json_float(f)) == f
