"""The searchable structures of one index: postings, norms, doc values, features and vectors.

Documents are numbered by *ordinals* in the order a refresh made them visible (Lucene's doc ids without
merges): an updated document gets a new ordinal and its old one dies. Every structure is append-only by
ordinal, so a :class:`~nirbridge.engine.searcher.Searcher` taken at a refresh keeps seeing exactly its own
documents: it reads ordinals below its ``max_ord`` and masks the ones that were dead when it was taken.

Postings are numpy arrays (ordinals ascending, frequencies), never mutated once written, so concurrent readers
are safe without locks. A field's postings are kept as segments, one per refresh, each holding its terms'
postings back to back (grouped by one sort, no per-term work); adjacent segments are merged as they pile up,
as Lucene merges its segments, and a term's postings are its slices in each segment, in ordinal order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from .encoding import encode_norms
from .fields import ParsedDoc
from .mapping import Mapping
from .settings import KNN_DEFAULT_APPROXIMATE_THRESHOLD, IndexSettings
from .vectors import VectorIndex


class GrowArray:
    """An append-only numpy array with amortised doubling; ``view(n)`` is a zero-copy prefix."""

    def __init__(self, dtype: type | np.dtype, fill: object = 0) -> None:
        self._data = np.full(1024, fill, dtype=dtype)
        self._fill = fill
        self.size = 0

    def ensure(self, size: int) -> None:
        if size > self._data.shape[0]:
            capacity = max(size, self._data.shape[0] * 2)
            grown = np.full(capacity, self._fill, dtype=self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown  # old views keep the old buffer alive and unchanged
        self.size = max(self.size, size)

    def set(self, ords: np.ndarray, values: np.ndarray) -> None:
        if len(ords):
            self.ensure(int(ords.max()) + 1)
            self._data[ords] = values

    def view(self, size: int | None = None) -> np.ndarray:
        return self._data[: self.size if size is None else size]


@dataclass
class Posting:
    ords: np.ndarray  # int32, ascending
    freqs: np.ndarray  # float32 term frequencies (BM25) or int32 encoded feature values


class _Segment:
    """The postings of one batch of documents for one field: term ``i``'s are ``ords/freqs[offsets[i]:
    offsets[i + 1]]``, ordinals ascending; every ordinal is above those of the segments before it."""

    __slots__ = ("vocab", "offsets", "ords", "freqs")

    def __init__(self, vocab: dict[str, int], offsets: list[int], ords: np.ndarray, freqs: np.ndarray
                 ) -> None:
        self.vocab = vocab  # term -> its index, in order of first appearance
        self.offsets = offsets
        self.ords = ords
        self.freqs = freqs

    @classmethod
    def build(cls, terms: list[str], ords: np.ndarray, freqs: np.ndarray) -> _Segment:
        """From parallel (term, ordinal, freq) entries whose ordinals are non-decreasing."""
        vocab: dict[str, int] = {}
        setdefault = vocab.setdefault
        term_ids = np.fromiter([setdefault(t, len(vocab)) for t in terms], dtype=np.int64, count=len(terms))
        return cls._grouped(vocab, term_ids, ords, freqs)

    @classmethod
    def _grouped(cls, vocab: dict[str, int], term_ids: np.ndarray, ords: np.ndarray, freqs: np.ndarray
                 ) -> _Segment:
        order = np.argsort(term_ids, kind="stable")  # stable: each term's ordinals stay ascending
        offsets = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_ids, minlength=len(vocab)), out=offsets[1:])
        return cls(vocab, offsets.tolist(), ords[order], freqs[order])

    @property
    def size(self) -> int:
        return int(self.ords.shape[0])

    def merged_with(self, newer: _Segment) -> _Segment:
        """One segment holding this one's postings then ``newer``'s (whose ordinals are all above)."""
        vocab = dict(self.vocab)
        setdefault = vocab.setdefault
        newer_ids = np.fromiter([setdefault(t, len(vocab)) for t in newer.vocab], dtype=np.int64,
                                count=len(newer.vocab))
        term_ids = np.concatenate((
            np.repeat(np.arange(len(self.vocab), dtype=np.int64), np.diff(self.offsets)),
            np.repeat(newer_ids, np.diff(newer.offsets)),
        ))
        return _Segment._grouped(vocab, term_ids, np.concatenate((self.ords, newer.ords)),
                                 np.concatenate((self.freqs, newer.freqs)))


class TermPostings:
    """term -> :class:`Posting` of one field (the mapping methods a dict of postings would have), stored as
    :class:`_Segment` s: a refresh adds one without touching the others, and an older segment no larger than
    the newer one is merged with it (a binary counter: at most log2(postings) segments, each entry rewritten
    at most that many times)."""

    __slots__ = ("_segments",)

    def __init__(self) -> None:
        self._segments: list[_Segment] = []

    def add(self, segment: _Segment) -> None:
        segments = self._segments
        segments.append(segment)
        while len(segments) >= 2 and segments[-2].size <= segments[-1].size:
            newer = segments.pop()
            segments[-1] = segments[-1].merged_with(newer)

    def get(self, term: str, default: Posting | None = None) -> Posting | None:
        parts = []
        for segment in self._segments:
            i = segment.vocab.get(term)
            if i is not None:
                a, z = segment.offsets[i], segment.offsets[i + 1]
                parts.append((segment.ords[a:z], segment.freqs[a:z]))
        if not parts:
            return default
        if len(parts) == 1:
            return Posting(*parts[0])
        return Posting(np.concatenate([o for o, _ in parts]), np.concatenate([f for _, f in parts]))

    def __getitem__(self, term: str) -> Posting:
        posting = self.get(term)
        if posting is None:
            raise KeyError(term)
        return posting

    def __contains__(self, term: object) -> bool:
        return any(term in segment.vocab for segment in self._segments)

    def __iter__(self) -> Iterator[str]:
        if len(self._segments) == 1:
            return iter(self._segments[0].vocab)
        return iter(dict.fromkeys(chain.from_iterable(s.vocab for s in self._segments)))

    def __len__(self) -> int:
        if len(self._segments) == 1:
            return len(self._segments[0].vocab)
        return sum(1 for _ in self)


@dataclass
class TextField:
    """An inverted field: text (with norms) or terms (keyword/boolean: docs only, no norms)."""

    has_norms: bool
    postings: TermPostings = field(default_factory=TermPostings)
    norms: GrowArray = field(default_factory=lambda: GrowArray(np.uint8))
    lengths: GrowArray = field(default_factory=lambda: GrowArray(np.int64))


# Field types whose values are Java longs: kept as exact int64 (float64 would round values beyond 2^53).
INT64_TYPES = ("byte", "short", "integer", "long", "date", "date_nanos")


@dataclass
class NumericField:
    """Numeric and date values as flat (ordinal, value) arrays, for range and term queries.

    Integer and date types keep int64 values, compared exactly; floating types (and ``unsigned_long``, whose
    range exceeds int64) keep float64.
    """

    dtype: type = np.float64
    ords: GrowArray = field(default_factory=lambda: GrowArray(np.int32))
    values: GrowArray = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        self.values = GrowArray(self.dtype)


def _append(existing: Posting | None, new_ords: np.ndarray, new_freqs: np.ndarray) -> Posting:
    if existing is None:
        return Posting(new_ords, new_freqs)
    return Posting(np.concatenate((existing.ords, new_ords)), np.concatenate((existing.freqs, new_freqs)))


class _FlatPostings:
    """The (term, freq) pairs of one field for a batch of documents, flat, grouped by term at the end.

    Each document contributes its term dict's keys and values in bulk; one stable numpy sort then groups them
    into a :class:`_Segment` (instead of a Python list per term per document and an array per term).
    """

    __slots__ = ("terms", "freqs", "doc_ords", "doc_sizes")

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.freqs: list[int] = []
        self.doc_ords: list[int] = []
        self.doc_sizes: list[int] = []

    def add(self, ord_: int, freqs: dict[str, int]) -> None:
        self.terms.extend(freqs)
        self.freqs.extend(freqs.values())
        self.doc_ords.append(ord_)
        self.doc_sizes.append(len(freqs))

    def segment(self) -> _Segment | None:
        """The batch's postings grouped by term (None when it has no terms)."""
        if not self.terms:
            return None
        ords = np.repeat(
            np.asarray(self.doc_ords, dtype=np.int32), np.asarray(self.doc_sizes, dtype=np.int64)
        )
        return _Segment.build(self.terms, ords, np.asarray(self.freqs, dtype=np.float32))


@dataclass
class _Batch:
    """A refresh's documents converted into arrays, ready to be appended (InvertedStore._commit)."""

    max_ord: int
    text: list[tuple[str, _Segment | None]] = field(default_factory=list)
    lengths: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    terms: list[tuple[str, _Segment | None, np.ndarray, np.ndarray]] = field(default_factory=list)
    numbers: list[tuple[str, type, np.ndarray, np.ndarray]] = field(default_factory=list)
    features: list[tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]] = field(default_factory=list)
    vectors: list[tuple[str, VectorIndex, np.ndarray, np.ndarray]] = field(default_factory=list)
    present: list[tuple[str, np.ndarray]] = field(default_factory=list)


class InvertedStore:
    """All searchable structures of an index, appended to at each refresh."""

    def __init__(self, settings: IndexSettings | None = None) -> None:
        self.settings = settings  # the index's (live) settings: the k-NN graph threshold is read at each add
        self.text: dict[str, TextField] = {}
        self.numbers: dict[str, NumericField] = {}
        self.features: dict[str, dict[str, Posting]] = {}
        self.vectors: dict[str, VectorIndex] = {}
        self.present: dict[str, GrowArray] = {}
        self.max_ord = 0

    def add(self, first_ord: int, docs: list[ParsedDoc], mapping: Mapping) -> None:
        """Index ``docs`` under ordinals ``first_ord, first_ord + 1, ...``.

        All or nothing: the batch is converted into arrays first (where a value the arrays cannot hold
        raises), and only then appended to the structures, so a failing batch leaves the store as it was.
        """
        if docs:
            self._commit(self._prepare(first_ord, docs, mapping))

    def check(self, doc: ParsedDoc, mapping: Mapping) -> None:
        """Raise if ``doc`` could not be indexed (the conversion ``add`` does, without storing anything)."""
        self._prepare(self.max_ord, [doc], mapping)

    def _prepare(self, first_ord: int, docs: list[ParsedDoc], mapping: Mapping) -> _Batch:
        text_new: dict[str, _FlatPostings] = {}
        lengths: dict[str, tuple[list[int], list[int]]] = {}
        term_new: dict[str, _FlatPostings] = {}
        number_new: dict[str, tuple[list[int], list[int | float]]] = {}
        feature_new: dict[str, dict[str, tuple[list[int], list[int]]]] = {}
        vector_new: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        present_new: dict[str, list[int]] = {}
        for offset, doc in enumerate(docs):
            ord_ = first_ord + offset
            for path, (freqs, length) in doc.text.items():
                flat = text_new.get(path)
                if flat is None:
                    flat = text_new[path] = _FlatPostings()
                flat.add(ord_, freqs)
                if length:
                    ls = lengths.setdefault(path, ([], []))
                    ls[0].append(ord_)
                    ls[1].append(length)
            for path, values in doc.terms.items():
                if values:
                    flat = term_new.get(path)
                    if flat is None:
                        flat = term_new[path] = _FlatPostings()
                    flat.add(ord_, dict.fromkeys(values, 1))
            for path, numbers in doc.numbers.items():
                entry_n = number_new.setdefault(path, ([], []))
                for value in numbers:
                    entry_n[0].append(ord_)
                    entry_n[1].append(value)
            for path, feats in doc.features.items():
                by_feature = feature_new.setdefault(path, {})
                for name, encoded in feats.items():
                    entry_f = by_feature.setdefault(name, ([], []))
                    entry_f[0].append(ord_)
                    entry_f[1].append(encoded)
            for path, vector in doc.vectors.items():
                entry_v = vector_new.setdefault(path, ([], []))
                entry_v[0].append(ord_)
                entry_v[1].append(vector)
            for path in doc.present:
                present_new.setdefault(path, []).append(ord_)

        batch = _Batch(first_ord + len(docs))
        for path, flat in text_new.items():
            batch.text.append((path, flat.segment()))
        for path, (ords, lens) in lengths.items():
            ords_arr = np.asarray(ords, dtype=np.int64)
            lens_arr = np.asarray(lens, dtype=np.int64)
            batch.lengths.append((path, ords_arr, lens_arr, encode_norms(lens_arr)))
        for path, flat in term_new.items():
            # Docs-only fields: Lucene sets sumTotalTermFreq = sumDocFreq; a doc's "length" is its term count.
            batch.terms.append((path, flat.segment(), np.asarray(flat.doc_ords, dtype=np.int64),
                                np.asarray(flat.doc_sizes, dtype=np.int64)))
        for path, (ords, numbers) in number_new.items():
            nf = self.numbers.get(path)
            if nf is None:
                spec = mapping.field(path)
                integral = spec is not None and spec.type in INT64_TYPES
                dtype: type = np.int64 if integral else np.float64
            else:
                dtype = nf.dtype
            batch.numbers.append(
                (path, dtype, np.asarray(ords, dtype=np.int32), np.asarray(numbers, dtype=dtype))
            )
        for path, by_feature in feature_new.items():
            batch.features.append((path, [
                (name, np.asarray(ords, dtype=np.int32), np.asarray(encoded, dtype=np.int32))
                for name, (ords, encoded) in by_feature.items()
            ]))
        for path, (ords, vectors) in vector_new.items():
            index = self.vectors.get(path)
            if index is None:
                index = _new_vector_index(mapping, path)
            stacked = np.stack(vectors).astype(np.float32, copy=False)
            # VectorIndex.add's own checks, here, where a refusal still leaves the store untouched
            if stacked.ndim != 2 or stacked.shape[1] != index.dimension or not np.isfinite(stacked).all() or (
                index.space_type == "cosinesimil" and not np.any(stacked, axis=1).all()
            ):
                raise ValueError(f"a vector of [{path}] does not fit the field")
            batch.vectors.append((path, index, np.asarray(ords, dtype=np.int64), stacked))
        for path, ords in present_new.items():
            batch.present.append((path, np.asarray(ords, dtype=np.int64)))
        return batch

    def _commit(self, batch: _Batch) -> None:
        for path, segment in batch.text:
            tf = self.text.setdefault(path, TextField(has_norms=True))
            if segment is not None:
                tf.postings.add(segment)
        for path, ords_arr, lens_arr, norms in batch.lengths:
            tf = self.text[path]
            tf.lengths.set(ords_arr, lens_arr)
            tf.norms.set(ords_arr, norms)
        for path, segment, doc_ords, sizes in batch.terms:
            tf = self.text.setdefault(path, TextField(has_norms=False))
            if segment is not None:
                tf.postings.add(segment)
            tf.lengths.set(doc_ords, sizes)
        for path, dtype, ords_arr, values_arr in batch.numbers:
            nf = self.numbers.get(path)
            if nf is None:
                nf = self.numbers[path] = NumericField(dtype)
            start = nf.count
            nf.count += len(ords_arr)
            idx = np.arange(start, nf.count)
            nf.ords.set(idx, ords_arr)
            nf.values.set(idx, values_arr)
        for path, features in batch.features:
            store = self.features.setdefault(path, {})
            for name, ords_arr, encoded_arr in features:
                store[name] = _append(store.get(name), ords_arr, encoded_arr)
        threshold = (
            self.settings.knn_approximate_threshold if self.settings else KNN_DEFAULT_APPROXIMATE_THRESHOLD
        )
        for path, index, ords_arr, vectors_arr in batch.vectors:
            self.vectors[path] = index
            index.approximate_threshold = threshold  # dynamic in OpenSearch: applies to what is built next
            index.add(ords_arr, vectors_arr)
        for path, ords_arr in batch.present:
            self.present.setdefault(path, GrowArray(np.bool_, False)).set(
                ords_arr, np.ones(len(ords_arr), dtype=np.bool_)
            )
        self.max_ord = batch.max_ord

    def remove_vectors(self, ords: Iterable[int], docs: Iterable[ParsedDoc | None]) -> None:
        for ord_, doc in zip(ords, docs, strict=True):
            if doc is None:  # a version that was never parsed holds no vectors
                continue
            for path in doc.vectors:
                if path in self.vectors:
                    self.vectors[path].remove(np.asarray([ord_], dtype=np.int64))


def _new_vector_index(mapping: Mapping, path: str) -> VectorIndex:
    spec = mapping.field(path)
    params = spec.params if spec else {}
    method = params.get("method") or {}
    space = method.get("space_type", params.get("space_type", "l2"))
    method_params = method.get("parameters") or {}
    return VectorIndex(
        int(params["dimension"]),
        space,
        m=int(method_params.get("m", 16)),
        ef_construction=int(method_params.get("ef_construction", 100)),
    )
