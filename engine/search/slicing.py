"""Sliced search: the documents a `"slice": {"id": i, "max": n, "field": f}` keeps, as OpenSearch picks them.

OpenSearch's `SliceBuilder.toFilter` on a one-shard index (the engine's only shape):
- default field `_id`: `TermsSliceQuery`, a document is in slice `id` when
  `floorMod(murmurhash3_x86_32(Uid.encodeId(_id), seed 7919), max) == id`. `Uid.encodeId` stores an
  all-digit id packed two digits a byte behind 0xfe, an unpadded URL-safe base64 id as its decoded bytes
  (behind 0xfd when the first byte is ≥ 0xfd), and any other id as 0xff + its UTF-8.
- a numeric field with doc values: `DocValuesSliceQuery`, a document is in the slice when one of its
  values `v` has `floorMod(BitMixer.mix(v), max) == id` (`mix`: hppc's Stafford variant-9 64-bit mixer
  cut to an int); documents without a value are in no slice. Doubles and floats are hashed as their
  sortable-bits long, as Lucene stores them in doc values.
With more than one shard OpenSearch first spreads slices over shards; the engine has one shard per index, so
the results match OpenSearch's for `number_of_shards: 1` (and partition the index for any setting).
"""

from __future__ import annotations

import base64
import re
import struct
import weakref
from functools import lru_cache
from typing import Any

import numpy as np

from .. import errors
from ..index.routing import murmur3_x86_32

__all__ = ["Slice", "encode_id", "id_slice_hash", "parse_slice", "slice_mask"]

TERMS_SLICE_SEED = 7919  # TermsSliceQuery.SEED
_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_BASE64_URL = re.compile(r"^[A-Za-z0-9_\-]*$")
_LAST_OF_2 = set("AQgw")
_LAST_OF_3 = set("AEIMQUYcgkosw048")


class Slice:
    """A parsed `slice` object: `id` in [0, max), `max` > 1, `field` (default `_id`)."""

    def __init__(self, id_: int, max_: int, field: str = "_id") -> None:
        self.id = id_
        self.max = max_
        self.field = field


def parse_slice(spec: Any) -> Slice | None:
    """The `slice` of a search body, validated as SliceBuilder's setters do (None when absent)."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise errors.parsing("[slice] must be an object")
    unknown = sorted(set(spec) - {"id", "max", "field"})
    if unknown:
        raise errors.parsing(f"[slice] unknown field [{unknown[0]}]")
    id_, max_ = spec.get("id", -1), spec.get("max", -1)
    for name, value in (("id", id_), ("max", max_)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise errors.parsing(f"[slice] failed to parse field [{name}]")
    field = spec.get("field", "_id")
    if not isinstance(field, str) or not field:
        raise errors.illegal_argument("field name is null or empty")
    if max_ <= 1:
        raise errors.illegal_argument("max must be greater than 1")
    if id_ < 0:
        raise errors.illegal_argument("id must be greater than or equal to 0")
    if id_ >= max_:
        raise errors.illegal_argument("max must be greater than id")
    return Slice(id_, max_, field)


def _to_int32(value: int) -> int:
    value &= _MASK32
    return value - (1 << 32) if value >= 1 << 31 else value


def _is_url_base64_without_padding(id_: str) -> bool:
    rest = len(id_) & 3
    if rest == 1:
        return False
    if rest == 2 and id_[-1] not in _LAST_OF_2:
        return False
    if rest == 3 and id_[-1] not in _LAST_OF_3:
        return False
    return bool(_BASE64_URL.match(id_))


def encode_id(id_: str) -> bytes:
    """The bytes OpenSearch indexes for an `_id` (`Uid.encodeId`)."""
    if not id_:
        raise ValueError("Ids can't be empty")
    if id_.isascii() and id_.isdigit():
        digits = [ord(c) - 48 for c in id_] + ([0x0F] if len(id_) % 2 else [])
        return bytes([0xFE] + [(digits[i] << 4) | digits[i + 1] for i in range(0, len(digits), 2)])
    if _is_url_base64_without_padding(id_):
        raw = base64.urlsafe_b64decode(id_ + "=" * (-len(id_) % 4))
        return b"\xfd" + raw if raw and raw[0] >= 0xFD else raw
    return b"\xff" + id_.encode("utf-8", "surrogatepass")


@lru_cache(maxsize=1 << 20)
def id_slice_hash(id_: str) -> int:
    """TermsSliceQuery's hash of one `_id` (cached: a sliced scan asks for the same ids page after page)."""
    return murmur3_x86_32(encode_id(id_), TERMS_SLICE_SEED)  # the one MurmurHash3 of routing


def _mix(value: int) -> int:
    """hppc `BitMixer.mix(long)`: Stafford variant 9 of the 64-bit finaliser, cut to a Java int."""
    z = value & _MASK64
    z = ((z ^ (z >> 32)) * 0x4CD6944C5CC20B6D) & _MASK64
    z = ((z ^ (z >> 29)) * 0xFC12C5B19D3259E9) & _MASK64
    z ^= z >> 32
    return _to_int32(z)


def _doc_value_long(value: int | float, field_type: str) -> int:
    if field_type == "double":
        bits = struct.unpack("<q", struct.pack("<d", float(value)))[0]
        return bits ^ ((bits >> 63) & 0x7FFFFFFFFFFFFFFF)  # NumericUtils.doubleToSortableLong
    if field_type == "float":
        bits = struct.unpack("<i", struct.pack("<f", float(value)))[0]
        return bits ^ ((bits >> 31) & 0x7FFFFFFF)  # NumericUtils.floatToSortableInt
    return int(value)


_DOC_VALUE_TYPES = ("byte", "short", "integer", "long", "date", "date_nanos", "double", "float")


_MASK_CACHE_SIZE = 64
# (id(view), field, slice id, max) -> (a weak reference to the view, its slice mask over every ordinal).
# A view never changes and a PIT or scroll keeps the same one from page to page: each page reuses the mask.
_masks: dict[tuple[int, str, int, int], tuple[weakref.ref[Any], np.ndarray]] = {}


def _view_mask(view: Any, mapping: Any, spec: Slice) -> np.ndarray:
    docs = view.ord_docs
    n = view.max_ord
    if spec.field == "_id":
        hashes = np.fromiter((id_slice_hash(docs[o].id) for o in range(n)), dtype=np.int64, count=n)
        return np.asarray(hashes % spec.max == spec.id)  # numpy's % on ints is floorMod, as Python's
    field = mapping.field(spec.field)
    if field is None:
        raise errors.illegal_argument(f"field {spec.field} not found")
    if field.type not in _DOC_VALUE_TYPES or field.params.get("doc_values") is False:
        raise errors.illegal_argument(f"cannot load numeric doc values on {spec.field}")
    keep = np.zeros(n, dtype=bool)
    for o in range(n):
        parsed = docs[o].parsed
        values = parsed.numbers.get(spec.field, []) if parsed is not None else []
        keep[o] = any(_mix(_doc_value_long(v, field.type)) % spec.max == spec.id for v in values)
    return keep


def slice_mask(view: Any, mapping: Any, ords: np.ndarray, spec: Slice) -> np.ndarray:
    """bool per entry of `ords`: whether that document belongs to slice `spec` of the view."""
    key = (id(view), spec.field, spec.id, spec.max)
    cached = _masks.get(key)
    if cached is not None and cached[0]() is view:
        return cached[1][ords]
    mask = _view_mask(view, mapping, spec)
    if len(_masks) >= _MASK_CACHE_SIZE:
        for stale in [k for k, (ref, _) in _masks.items() if ref() is None] or [next(iter(_masks))]:
            del _masks[stale]
    _masks[key] = (weakref.ref(view), mask)
    return mask[ords]
