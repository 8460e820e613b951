"""What the index stores as Lucene stores it: norms (``SmallFloat`` int4/byte4 lengths), FeatureField
values (rank_feature, rank_features), the k-NN space types, Java's float text; and the messages, verbatim.

Scoring reads them back in :mod:`nirbridge.engine.search.similarity`, whose docstring cites the sources.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

F32 = np.float32
ONE: Final = np.float32(1.0)
TWO: Final = np.float32(2.0)
JAVA_INT_MAX: Final = 2**31 - 1
FLOAT_MIN_NORMAL: Final = np.float32(2.0**-126)  # Float.MIN_NORMAL
FLOAT_MAX_VALUE: Final = np.finfo(np.float32).max  # Float.MAX_VALUE

# --- messages, verbatim from the sources (format with str.format) -------------------------------------
#: RankFeatureFieldMapper indexes ``new FeatureField("_feature", name(), value)``
RANK_FEATURE_META_FIELD: Final = "_feature"
RANK_FEATURE_DUPLICATE: Final = (
    "[rank_feature] fields do not support indexing multiple values for the same field [{field}] in the same "
    "document"
)
RANK_FEATURES_DUPLICATE: Final = (
    "[rank_features] fields do not support indexing multiple values for the same rank feature [{key}] in the "
    "same document"
)  # key is "<field>.<feature>"
RANK_FEATURES_NOT_OBJECT: Final = (
    "[rank_features] fields must be json objects, expected a START_OBJECT but got: {token}"
)
RANK_FEATURES_BAD_TOKEN: Final = (
    "[rank_features] fields take hashes that map a feature to a strictly positive float, but got unexpected "
    "token {token}"
)  # token: START_OBJECT, START_ARRAY, VALUE_BOOLEAN, ...
LOG_ON_NEGATIVE_IMPACT: Final = (
    "Cannot use the [log] function with a field that has a negative score impact as it would trigger "
    "negative scores"
)
RANK_FEATURE_QUERY_ONE_FUNCTION: Final = "Can only specify one of [log], [saturation], [sigmoid] and [linear]"
RANK_FEATURE_QUERY_WRONG_FIELD: Final = (
    "[rank_feature] query only works on [rank_feature] fields and features of [rank_features] fields, "
    "not [{type}]"
)
NEURAL_SPARSE_WRONG_FIELD: Final = "[neural_sparse] query only works on [rank_features] fields"
MAX_FEATURE_WEIGHT: Final = np.float32(64.0)  # FeatureField.MAX_WEIGHT = Long.SIZE
FEATURE_WEIGHT_ERROR: Final = "weight must be in (0, 64.0], got: {weight}"
KNN_ZERO_VECTOR: Final = "zero vector is not supported when space type is [{space_type}]"


# --- Java float formatting ------------------------------------------------------------------------------
def java_float_str(x: float | np.floating[Any]) -> str:
    """``Float.toString(x)`` as JDK 19+ prints it (OpenSearch 2.12+ and 3.x bundle JDK 21).

    Shortest decimal that rounds back to the float (when that is one digit, the closest of the 1- and
    2-digit ones: ``Float.MIN_VALUE`` is ``1.4E-45``); plain notation for 1e-3 <= |x| < 1e7, else
    ``d.dddE<exp>``; at least one digit after the point.  Error messages and explanation descriptions
    embed floats this way.
    """
    f = F32(x)
    if np.isnan(f):
        return "NaN"
    if np.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    if f == 0:
        return "-0.0" if np.signbit(f) else "0.0"
    sign = "-" if f < 0 else ""
    a = abs(f)
    mantissa, exp_text = np.format_float_scientific(a, unique=True, trim="-").split("e")
    digits, exp = mantissa.replace(".", ""), int(exp_text)
    if len(digits) == 1:  # Java considers 2-digit decimals too and keeps the closest
        two = np.format_float_scientific(a, precision=1, unique=False)
        if F32(float(two)) == a:
            m2, e2 = two.split("e")
            if abs(float(two) - float(a)) < abs(float(mantissa + "e" + exp_text) - float(a)):
                digits, exp = m2.replace(".", ""), int(e2)
    digits = digits.rstrip("0") or "0"
    if 1e-3 <= float(a) < 1e7:
        if exp >= 0:
            whole = digits[: exp + 1].ljust(exp + 1, "0")
            frac = digits[exp + 1 :] or "0"
        else:
            whole, frac = "0", "0" * (-exp - 1) + digits
        return f"{sign}{whole}.{frac}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exp}"


def json_float(x: float | np.floating[Any]) -> float:
    """A Python float whose ``repr`` has the digits Java prints for float ``x`` (Jackson writes floats
    with ``Float.toString``).  ``np.float32(json_float(x)) == np.float32(x)`` always holds."""
    return float(java_float_str(x))


# --- SmallFloat / norms -------------------------------------------------------------------------------
def _long_to_int4(i: int) -> int:
    """SmallFloat.longToInt4: float-like encoding of a non-negative long keeping 4 significant bits."""
    if i < 0:
        raise ValueError(f"Only supports positive values, got {i}")
    num_bits = i.bit_length()
    if num_bits < 4:
        return i  # subnormal value
    shift = num_bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)  # implicit leading bit dropped; shift+1 (0 = subnormal)


def _int4_to_long(i: int) -> int:
    """SmallFloat.int4ToLong, the inverse of ``_long_to_int4`` (up to the dropped low bits)."""
    bits, shift = i & 0x07, (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


MAX_INT4: Final = _long_to_int4(JAVA_INT_MAX)  # 231
NUM_FREE_VALUES: Final = 255 - MAX_INT4  # 24: lengths below this are stored as themselves


def int_to_byte4(i: int) -> int:
    """``SmallFloat.intToByte4``: a document length as Lucene's one-byte norm (returned unsigned, 0..255).

    ``i < 24 -> i``, else ``24 + longToInt4(i - 24)``: exact below 40, then 4 significant bits, rounded
    down.  Raises ValueError for negatives (Lucene's message) and for values beyond a Java int.
    """
    i = int(i)
    if i < 0:
        raise ValueError(f"Only supports positive values, got {i}")
    if i > JAVA_INT_MAX:
        raise ValueError(f"length {i} does not fit a Java int")
    return i if i < NUM_FREE_VALUES else NUM_FREE_VALUES + _long_to_int4(i - NUM_FREE_VALUES)


def byte4_to_int(b: int) -> int:
    """``SmallFloat.byte4ToInt``: decode a norm byte (signed or unsigned, taken ``& 0xFF``)."""
    i = int(b) & 0xFF
    return i if i < NUM_FREE_VALUES else NUM_FREE_VALUES + _int4_to_long(i - NUM_FREE_VALUES)


#: ``BM25Similarity.LENGTH_TABLE[i] = SmallFloat.byte4ToInt((byte) i)``: the document length each norm
#: byte stands for (0, 1, ..., 39, 40, 42, 44, ..., 2013265944), as float32.
LENGTH_TABLE: Final[np.ndarray] = np.array([byte4_to_int(i) for i in range(256)], dtype=np.float32)
LENGTH_TABLE.setflags(write=False)


def encode_norms(lengths: np.ndarray | Sequence[int]) -> np.ndarray:
    """Vectorised ``Similarity.computeNorm``: int lengths -> uint8 norm bytes (``int_to_byte4`` each).

    ``lengths`` are the token counts with overlaps already discounted.
    """
    arr = np.asarray(lengths)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"document lengths must be integers, got dtype {arr.dtype}")
    x = arr.astype(np.int64)
    if x.size and (x.min() < 0 or x.max() > JAVA_INT_MAX):
        bad = x[(x < 0) | (x > JAVA_INT_MAX)][0]
        raise ValueError(
            f"Only supports positive values, got {bad}" if bad < 0 else f"length {bad} exceeds a Java int"
        )
    rest = np.maximum(x - NUM_FREE_VALUES, 0)
    num_bits = np.frexp(rest.astype(np.float64))[1].astype(np.int64)  # == bit_length, exact below 2**53
    shift = np.maximum(num_bits - 4, 0)
    normal = ((rest >> shift) & 0x07) | ((shift + 1) << 3)
    int4 = np.where(num_bits < 4, rest, normal)
    return np.where(x < NUM_FREE_VALUES, x, NUM_FREE_VALUES + int4).astype(np.uint8)


def decode_norms(norm_bytes: np.ndarray | Sequence[int]) -> np.ndarray:
    """Norm bytes -> the float32 lengths BM25 uses (``LENGTH_TABLE[b & 0xFF]``)."""
    return LENGTH_TABLE[np.asarray(norm_bytes).astype(np.int64) & 0xFF]


# --- FeatureField (rank_feature, rank_features, neural_sparse) --------------------------------------
#: ``FeatureField.MAX_FREQ = Float.floatToIntBits(Float.MAX_VALUE) >>> 15`` (65279)
MAX_FEATURE_FREQ: Final = struct.unpack(">I", struct.pack(">f", float(FLOAT_MAX_VALUE)))[0] >> 15


def feature_value_error(value: float, feature: str | None = None, field: str | None = None) -> str | None:
    """The message ``FeatureField.setFeatureValue`` throws for ``value`` (after the cast to float), or None.

    ``feature``/``field`` fill "for feature X on field Y" (Java prints ``null`` when absent).  For a
    rank_feature field, feature is the field's name and field is ``"_feature"``.
    """
    with np.errstate(over="ignore"):
        v = F32(value)
    where = f" for feature {feature} on field {field}"
    if not np.isfinite(v):
        return f"featureValue must be finite, got: {java_float_str(v)}{where}"
    if v < FLOAT_MIN_NORMAL:
        return (
            f"featureValue must be a positive normal float, got: {java_float_str(v)}{where}"
            f" which is less than the minimum positive normal float: {java_float_str(FLOAT_MIN_NORMAL)}"
        )
    return None


def encode_feature(value: float, feature: str | None = None, field: str | None = None) -> int:
    """The term frequency FeatureField indexes: ``Float.floatToIntBits(value) >>> 15``.

    The value is first cast to float (JSON numbers reach FeatureField as floats, so 1e39 becomes
    Infinity and 1e-46 becomes 0.0); then FeatureField's checks apply: finite, and >= Float.MIN_NORMAL
    (1.1754944E-38), which also rejects 0, negatives and subnormals.  ValueError carries Lucene's message.
    The kept 17 bits are the exponent and the top 8 mantissa bits: 9 significant bits, truncated
    (relative precision 2**-8).
    """
    error = feature_value_error(value, feature, field)
    if error:
        raise ValueError(error)
    return int(np.array(F32(value)).view(np.uint32)) >> 15


def encode_features(values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Vectorised ``encode_feature`` (int64 array); ValueError names the first value Lucene would refuse."""
    with np.errstate(over="ignore"):
        arr = np.asarray(values, dtype=np.float64).astype(np.float32)
    bad = ~np.isfinite(arr) | (arr < FLOAT_MIN_NORMAL)
    if bad.any():
        raise ValueError(feature_value_error(float(arr[bad][0])))
    return (arr.view(np.uint32) >> 15).astype(np.int64)


def rank_feature_value(value: float, positive_score_impact: bool = True) -> np.float32:
    """The float a ``rank_feature`` field hands FeatureField (RankFeatureFieldMapper.parseCreateField):
    ``value`` cast to float, replaced by ``1 / value`` (float division) when positive_score_impact is false.
    0 becomes Infinity and is then refused as not finite."""
    with np.errstate(over="ignore", divide="ignore"):
        v = F32(value)
        return v if positive_score_impact else ONE / v


def decode_feature(freq: Any) -> Any:
    """``FeatureField.decodeFeatureValue``: ``Float.intBitsToFloat(freq << 15)``; freqs above MAX_FREQ
    decode to Float.MAX_VALUE.  int -> np.float32, array -> float32 array."""
    arr = np.asarray(freq)
    if arr.size and arr.min() < 0:
        raise ValueError(f"feature frequencies are positive, got {arr.min()}")
    ints = np.minimum(arr.astype(np.int64), MAX_FEATURE_FREQ).astype(np.uint32)
    out = np.where(arr > MAX_FEATURE_FREQ, FLOAT_MAX_VALUE, (ints << np.uint32(15)).view(np.float32))
    out = out.astype(np.float32)
    return out[()] if out.ndim == 0 else out

# --- k-NN score translation ---------------------------------------------------------------------------
#: SpaceType values (k-NN SpaceType enum, without "undefined").  The translation is defined for all of
#: them; FAISS_SPACE_TYPES are the ones the faiss engine accepts (l1/linf were nmslib-only).
SPACE_TYPES: Final[tuple[str, ...]] = ("l2", "cosinesimil", "innerproduct", "l1", "linf", "hamming")
FAISS_SPACE_TYPES: Final[tuple[str, ...]] = ("l2", "cosinesimil", "innerproduct", "hamming")
