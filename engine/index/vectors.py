"""Storage and k-NN search behind one ``knn_vector`` field of one index.

A :class:`VectorIndex` holds the vectors of one (index, ``knn_vector`` field) pair in a faiss HNSW graph
(``IndexHNSWFlat``), the way OpenSearch's k-NN plugin does with its ``faiss`` engine. Documents are named by
integer *ordinals* that the engine assigns (int64, increasing); the graph numbers its rows 0, 1, 2, ... and a
row → ordinal array translates between the two.

Space types and scores (OpenSearch k-NN plugin, faiss engine)
-------------------------------------------------------------
The score of a hit is the plugin's translation of the raw faiss distance, from
``org.opensearch.knn.index.SpaceType#scoreTranslation`` and the faiss overrides in
``org.opensearch.knn.index.engine.faiss.Faiss#SCORE_TRANSLATIONS`` (opensearch-project/k-NN):

- ``l2``: faiss returns the *squared* L2 distance ``d``; ``L2.scoreTranslation(d) = 1 / (1 + d)``.
- ``cosinesimil``: vectors and query are L2-normalised and searched with inner product, so faiss returns
  ``cos``; the faiss override calls ``COSINESIMIL.scoreTranslation(1 - cos)`` and that is
  ``max((2 - (1 - cos)) / 2, 0) = (1 + cos) / 2``.
- ``innerproduct``: faiss returns ``ip``; the override calls ``INNER_PRODUCT.scoreTranslation(-ip)``, which is
  ``1 / (1 + (-ip))`` for ``-ip >= 0`` and ``-(-ip) + 1`` otherwise, i.e. ``ip + 1`` if ``ip >= 0`` else
  ``1 / (1 - ip)``.

Validation mirrors the plugin's messages: ``KNNValidationUtil`` rejects NaN ("KNN vector values cannot be
NaN") and infinite values ("KNN vector values cannot be infinity"), a wrong length ("Vector dimension
mismatch. Expected: D, Given: G"), and ``SpaceType.COSINESIMIL.validateVector`` rejects an all-zero vector,
both at index time and as a query ("zero vector is not supported when space type is [cosinesimil]"). Here each
message is prefixed with the ordinal (or "query") it concerns and raised as ``ValueError``.

Exact or approximate (the rule)
-------------------------------
Candidates are the live (not removed) ordinals that ``allowed`` permits: ``c`` of them among the graph's ``r``
rows (removed rows included), selectivity ``p = c / r``. HNSW runs with ``ef = ceil(max(ef_search, k) / p)``,
because a filtered HNSW search finds the filtered top-k about as well as an unfiltered one finds the
top-(k/p): scaling ``ef`` by ``1/p`` keeps filtered recall at the unfiltered level (measured on 100k x 384
vectors with m=16, ef_search=100: recall@10 0.81 unfiltered; with a 10 % filter 0.67 at ef 100, 0.98 at
ef 1000). The search is answered by *exact* search over the candidates instead when

0. the rows have no HNSW graph (see "When the graph is built" below), or
1. ``c <= k``, or
2. ``c * dimension <= MAX_DISTANCE_COMPUTATIONS`` (2,048,000, the plugin's default
   ``KNNConstants.MAX_DISTANCE_COMPUTATIONS``: 5,333 candidates at 384 dimensions), or
3. ``c <= ef * m``: HNSW computes roughly ``ef * m`` distances per query (faiss ``hnsw_stats.ndis`` measured
   0.5 to 1.5 times that), each as dear as one in a scan, so scanning the candidates is no dearer and exact.
   With ``r = 100,000``, ``m = 16``, ``ef_search = 100`` this makes filters under ~12 % exact.

Rule 0 is the plugin's ``index.knn.advanced.approximate_threshold``, rules 1 and 2 are its efficient filtering
(``KNNWeight#isFilteredExactSearchPreferred``); rule 3 and the ``ef`` scaling are ours (the plugin passes
``ef_search`` unchanged). Otherwise HNSW searches with the candidates as a faiss ``IDSelectorBitmap`` in
``SearchParametersHNSW``: the graph still routes through removed and filtered-out nodes, it only never returns
them. If HNSW returns fewer than ``min(k, c)`` hits, the search is redone exactly, as the plugin does
(``isFilteredExactSearchRequireAfterANNSearch``). Unfiltered searches follow the same rule, so small indexes
are always searched exactly. Every path computes the final distances with faiss's own kernels
(``fvec_L2sqr`` / ``fvec_inner_product``) over the stored float32 vectors, so a document gets the same score
whichever path found it, and the score is the exact distance of the returned vector.

When the graph is built (``approximate_threshold``)
---------------------------------------------------
OpenSearch's dynamic index setting ``index.knn.advanced.approximate_threshold`` (default 15,000 in the plugin)
is the number of vectors a segment must hold before the plugin builds its HNSW graph; smaller segments are
searched exactly, ``0`` always builds, ``-1`` never does. Here the whole field is one segment:
``approximate_threshold`` (constructor argument and settable property; the class's default is ``0``, the
engine passes the index setting) decides at each :meth:`add` whether the graph is (brought) up to date: it is
when the live rows reach the threshold, or once a graph has been started. Rows added while no graph is wanted
are kept in faiss's flat storage only (adding them costs almost nothing), and the graph over all rows is built
by the first :meth:`add` that reaches the threshold. Search uses HNSW only when every row is in the graph.

Exact search: an int8 scan with a proven bound, then float32 re-ranking: see :mod:`.vector_scan`.

Removal and compaction
----------------------
``remove`` tombstones rows; when tombstones exceed ``COMPACT_FRACTION`` (50 %) of the graph's rows the graph
is rebuilt from the live vectors (amortised: a rebuild of ``L`` live rows follows at least ``L`` removals).

Storage
-------
faiss's flat storage inside the HNSW index *is* the float32 copy used for exact search and for ``vector()``
with ``l2`` and ``innerproduct`` (it is kept once, not twice); it may hold more rows than the graph has nodes
(rows added while no graph is wanted). With ``cosinesimil`` faiss holds the normalised vectors, so the
original vectors are kept alongside for ``vector()``. The int8 codes of the exact scan are derived data: they
are not persisted but re-coded on load and after compaction.

All public methods take one lock, so one instance may be shared between threads.
"""

from __future__ import annotations

import io
import json
import math
import threading
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

import faiss
import numpy as np

from .vector_scan import MAX_DISTANCE_COMPUTATIONS, ExactScan

__all__ = [
    "COMPACT_FRACTION",
    "DEFAULT_APPROXIMATE_THRESHOLD",
    "MAX_DISTANCE_COMPUTATIONS",
    "SPACE_TYPES",
    "VectorIndex",
]

SPACE_TYPES: tuple[str, ...] = ("l2", "cosinesimil", "innerproduct")


#: Rebuild the graph when removed rows exceed this fraction of its rows.
COMPACT_FRACTION = 0.5

#: OpenSearch's default ``index.knn.advanced.approximate_threshold`` (what the engine passes when the index
#: setting is absent; the class itself defaults to 0, always build the graph).
DEFAULT_APPROXIMATE_THRESHOLD = 15_000


_FORMAT = "nirbridge.engine.vectors/2"  # /2: approximate_threshold, rows without a graph ("vectors")
_FORMAT_V1 = "nirbridge.engine.vectors/1"
_EMPTY_ORDS = np.empty(0, dtype=np.int64)
_EMPTY_SCORES = np.empty(0, dtype=np.float32)


class VectorIndex(ExactScan):
    """The vectors of one ``knn_vector`` field, searchable by HNSW (faiss) with OpenSearch's scores."""

    _live_bits: np.ndarray | None  # the live rows packed for IDSelectorBitmap, until the next write

    def __init__(
        self,
        dimension: int,
        space_type: str = "l2",
        m: int = 16,
        ef_construction: int = 100,
        ef_search: int = 100,
        approximate_threshold: int = 0,
    ) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int | np.integer) or dimension < 1:
            raise ValueError(f"dimension must be a positive integer, got {dimension!r}")
        if space_type not in SPACE_TYPES:
            raise ValueError(
                f"Unable to find space: {space_type} . Valid values are: [{', '.join(SPACE_TYPES)}]"
            )
        for name, value, low in (
            ("m", m, 2),
            ("ef_construction", ef_construction, 1),
            ("ef_search", ef_search, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self._dimension = int(dimension)
        self._space_type = space_type
        self._m = int(m)
        self._ef_construction = int(ef_construction)
        self._ef_search = int(ef_search)
        self._approximate_threshold = _as_threshold(approximate_threshold)
        self._metric = faiss.METRIC_L2 if space_type == "l2" else faiss.METRIC_INNER_PRODUCT
        self._lock = threading.RLock()
        # int8 codes for exact scans (l2 and cosinesimil; an inner product has no bound of this kind here)
        self._codes = None
        if space_type != "innerproduct":
            self._codes = faiss.IndexScalarQuantizer(
                self._dimension, faiss.ScalarQuantizer.QT_8bit_direct, faiss.METRIC_L2
            )
        self._lo, self._scale, self._err_max = 0.0, 1.0, 0.0
        self._reset(self._new_graph(), _EMPTY_ORDS, np.empty(0, dtype=bool), self._empty_originals())

    # ------------------------------------------------------------------ properties

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def space_type(self) -> str:
        return self._space_type

    @property
    def m(self) -> int:
        return self._m

    @property
    def ef_construction(self) -> int:
        return self._ef_construction

    @property
    def ef_search(self) -> int:
        return self._ef_search

    @property
    def approximate_threshold(self) -> int:
        """Live rows needed before the HNSW graph is built (0: always, -1: never); applies at the next add."""
        return self._approximate_threshold

    @approximate_threshold.setter
    def approximate_threshold(self, value: int) -> None:
        value = _as_threshold(value)
        with self._lock:
            self._approximate_threshold = value

    @property
    def has_graph(self) -> bool:
        """Whether every row is in the HNSW graph (otherwise every search is exact)."""
        with self._lock:
            return self._graph.ntotal == self._n > 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._row_of)

    def __repr__(self) -> str:
        return (
            f"VectorIndex(dimension={self._dimension}, space_type={self._space_type!r}, m={self._m}, "
            f"ef_construction={self._ef_construction}, ef_search={self._ef_search}, "
            f"approximate_threshold={self._approximate_threshold}, live={len(self)})"
        )

    # ------------------------------------------------------------------ writes

    def add(self, ords: np.ndarray | Sequence[int], vectors: np.ndarray | Sequence[Sequence[float]]) -> None:
        """Index ``vectors[i]`` under ordinal ``ords[i]``; one faiss add for the whole batch.

        The batch is validated first and is added entirely or not at all. An ordinal that is already live is
        replaced (its old row is removed). Raises ``ValueError`` naming the first offending ordinal.
        """
        ords_arr = _as_ordinals(ords)
        if len(ords_arr) == 0:
            if len(vectors) != 0:
                raise ValueError(f"add got 0 ordinals but {len(vectors)} vectors")
            return
        data = self._as_matrix(vectors, ords_arr)
        if len(np.unique(ords_arr)) != len(ords_arr):
            values, counts = np.unique(ords_arr, return_counts=True)
            raise ValueError(f"ordinal {int(values[counts > 1][0])}: appears more than once in one add")
        self._check_finite(data, ords_arr)
        if self._space_type == "cosinesimil":
            norms = np.sqrt(np.einsum("ij,ij->i", data, data, dtype=np.float64))
            zero = np.flatnonzero(norms == 0.0)
            if len(zero):
                raise ValueError(
                    f"ordinal {int(ords_arr[zero[0]])}: zero vector is not supported when space type is "
                    "[cosinesimil]"
                )
            stored = (data / norms[:, None]).astype(np.float32)
        else:
            stored = data
        stored = np.ascontiguousarray(stored, dtype=np.float32)
        with self._lock:
            start = self._n
            end = start + len(ords_arr)
            if self._graph.ntotal == start and self._wants_graph(end - self._dead):
                self._graph.add(stored)  # storage and graph nodes together
            else:
                self._storage().add(stored)  # rows only: the graph (if wanted) is brought up to date below
            self._code_rows(start)
            replaced = [row for row in map(self._row_of.get, ords_arr.tolist()) if row is not None]
            if replaced:
                self._live[replaced] = False
                self._dead += len(replaced)
            self._ensure_capacity(end)
            self._ords[start:end] = ords_arr
            self._live[start:end] = True
            if self._originals is not None:
                self._originals[start:end] = data
            self._row_of.update(zip(ords_arr.tolist(), range(start, end), strict=True))
            self._n = end
            self._live_bits = None
            self._maybe_compact()
            self._update_graph()

    def remove(self, ords: np.ndarray | Iterable[int]) -> None:
        """Tombstone these ordinals (unknown or already removed ones are ignored)."""
        ords_arr = _as_ordinals(ords)
        with self._lock:
            rows = [
                row
                for row in map(self._row_of.pop, ords_arr.tolist(), [None] * len(ords_arr))
                if row is not None
            ]
            if not rows:
                return
            self._live[rows] = False
            self._dead += len(rows)
            self._live_bits = None
            self._maybe_compact()

    # ------------------------------------------------------------------ reads

    def vector(self, ord: int) -> np.ndarray | None:
        """The vector indexed under ``ord`` (a float32 copy), or None when it is not live."""
        with self._lock:
            row = self._row_of.get(int(ord))
            if row is None:
                return None
            if self._originals is not None:
                return self._originals[row].copy()
            return self._stored_view()[row].copy()

    def search(
        self,
        query: np.ndarray | Sequence[float],
        k: int,
        allowed: np.ndarray | None = None,
        ef_search: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` live ordinals (int64) and their OpenSearch scores (float32), best first.

        ``allowed`` is an optional boolean mask indexed by ordinal; ordinals beyond its end are not allowed.
        Fewer than ``k`` hits come back when fewer candidates exist. Ties are broken by the smaller ordinal.
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        if ef_search is None:
            ef = self._ef_search
        elif isinstance(ef_search, bool) or not isinstance(ef_search, int | np.integer) or ef_search < 1:
            raise ValueError(f"ef_search must be a positive integer, got {ef_search!r}")
        else:
            ef = int(ef_search)
        q = self._as_query(query)
        if allowed is not None:
            allowed = np.asarray(allowed)
            if allowed.dtype != np.bool_ or allowed.ndim != 1:
                raise ValueError(
                    f"allowed must be a one-dimensional boolean mask indexed by ordinal, got dtype "
                    f"{allowed.dtype} with shape {allowed.shape}"
                )
        with self._lock:
            n = self._n
            if n == 0:
                return _EMPTY_ORDS.copy(), _EMPTY_SCORES.copy()
            if allowed is None:
                mask = self._live[:n] if self._dead else None
                count = n - self._dead
            else:
                ords = self._ords[:n]
                mask = np.zeros(n, dtype=bool)
                inside = ords < len(allowed)
                mask[inside] = allowed[ords[inside]]
                mask &= self._live[:n]
                count = int(np.count_nonzero(mask))
            if count == 0:
                return _EMPTY_ORDS.copy(), _EMPTY_SCORES.copy()
            filtered = allowed is not None and count < n
            if not filtered and count == n:
                mask = None  # every row is a candidate (the engine's usual all-visible mask): no selector
            ef = min(math.ceil(max(ef, k) * n / count), count)
            if self._prefers_exact(count, k, ef):
                rows, raw = self._exact(q, k, mask)
            else:
                rows, raw = self._approximate(q, k, ef, self._selector_bits(mask, filtered))
                if len(rows) < min(k, count):
                    rows, raw = self._exact(q, k, mask)
            hits = self._ords[rows]
        scores = self._translate(raw)
        order = np.lexsort((hits, -scores))
        return hits[order], scores[order]

    def _prefers_exact(self, count: int, k: int, ef: int) -> bool:
        """The module docstring's rule: scan ``count`` candidates rather than search HNSW with ``ef``."""
        return (
            self._graph.ntotal < self._n
            or count <= k
            or count * self._dimension <= MAX_DISTANCE_COMPUTATIONS
            or count <= ef * self._m
        )

    # ------------------------------------------------------------------ persistence

    def to_bytes(self) -> bytes:
        """Snapshot of parameters, graph, vectors and tombstones (an uncompressed ``.npz``, no pickle)."""
        with self._lock:
            n = self._n
            header = {
                "format": _FORMAT,
                "dimension": self._dimension,
                "space_type": self._space_type,
                "m": self._m,
                "ef_construction": self._ef_construction,
                "ef_search": self._ef_search,
                "approximate_threshold": self._approximate_threshold,
                "rows": n,
            }
            arrays: dict[str, Any] = {
                "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                "ords": self._ords[:n],
                "live": self._live[:n],
            }
            if self._graph.ntotal == n:
                arrays["graph"] = faiss.serialize_index(self._graph)
            else:  # rows without a graph (faiss cannot serialise a graph shorter than its storage)
                arrays["graph"] = faiss.serialize_index(self._new_graph())
                arrays["vectors"] = self._stored_view()
            if self._originals is not None:
                arrays["originals"] = self._originals[:n]
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> VectorIndex:
        """An index from :meth:`to_bytes` output; ``ValueError`` if ``data`` is not such a snapshot."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                header = json.loads(archive["header"].tobytes().decode())
                if not isinstance(header, dict) or header.get("format") not in (_FORMAT, _FORMAT_V1):
                    raise ValueError("unknown format")
                ords = archive["ords"].astype(np.int64, copy=True)
                live = archive["live"].astype(bool, copy=True)
                graph_bytes = archive["graph"]
                vectors = archive["vectors"] if "vectors" in archive.files else None
                originals = (
                    archive["originals"].astype(np.float32, copy=True)
                    if "originals" in archive.files
                    else None
                )
            index = cls(
                header["dimension"],
                header["space_type"],
                m=header["m"],
                ef_construction=header["ef_construction"],
                ef_search=header["ef_search"],
                approximate_threshold=header.get("approximate_threshold", 0),
            )
            rows = int(header["rows"])
            graph = faiss.deserialize_index(graph_bytes)  # already the concrete class; it owns the index
            if not isinstance(graph, faiss.IndexHNSWFlat) or graph.metric_type != index._metric:
                raise ValueError("the graph is not an HNSW graph of this space type")
            if vectors is not None:
                if graph.ntotal != 0 or vectors.shape != (rows, index.dimension):
                    raise ValueError("rows stored both in and beside the graph")
                faiss.downcast_index(graph.storage).add(np.ascontiguousarray(vectors, dtype=np.float32))
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a VectorIndex snapshot: {exc}") from exc
        stored_rows = faiss.downcast_index(graph.storage).ntotal
        if stored_rows != rows or len(ords) != rows or len(live) != rows or graph.d != index.dimension:
            raise ValueError("not a VectorIndex snapshot: graph, ordinals and tombstones disagree")
        if (originals is None) != (index.space_type != "cosinesimil"):
            raise ValueError("not a VectorIndex snapshot: original vectors missing or unexpected")
        index._reset(graph, ords, live, originals)
        return index

    # ------------------------------------------------------------------ internals

    def _new_graph(self) -> faiss.IndexHNSWFlat:
        graph = faiss.IndexHNSWFlat(self._dimension, self._m, self._metric)
        graph.hnsw.efConstruction = self._ef_construction
        graph.hnsw.efSearch = self._ef_search
        return graph

    def _empty_originals(self) -> np.ndarray | None:
        if self._space_type != "cosinesimil":
            return None
        return np.empty((0, self._dimension), dtype=np.float32)

    def _reset(
        self, graph: faiss.IndexHNSWFlat, ords: np.ndarray, live: np.ndarray, originals: np.ndarray | None
    ) -> None:
        self._graph = graph
        self._ords = ords
        self._live = live
        self._originals = originals
        self._n = len(ords)
        rows = np.flatnonzero(live)
        self._row_of: dict[int, int] = dict(zip(ords[rows].tolist(), rows.tolist(), strict=True))
        self._dead = self._n - len(rows)
        self._live_bits = None
        self._code_rows(0)

    def _ensure_capacity(self, needed: int) -> None:
        capacity = len(self._ords)
        if needed <= capacity:
            return
        new_capacity = max(needed, 2 * capacity, 1024)
        ords = np.empty(new_capacity, dtype=np.int64)
        ords[: self._n] = self._ords[: self._n]
        live = np.zeros(new_capacity, dtype=bool)
        live[: self._n] = self._live[: self._n]
        self._ords, self._live = ords, live
        if self._originals is not None:
            originals = np.empty((new_capacity, self._dimension), dtype=np.float32)
            originals[: self._n] = self._originals[: self._n]
            self._originals = originals

    def _maybe_compact(self) -> None:
        if self._dead == 0 or self._dead <= COMPACT_FRACTION * self._n:
            return
        rows = np.flatnonzero(self._live[: self._n])
        stored = self._stored_view()[rows]  # fancy indexing copies out of faiss's buffer
        graph = self._new_graph()
        if len(rows) and self._wants_graph(len(rows)):
            graph.add(stored)
        elif len(rows):
            faiss.downcast_index(graph.storage).add(stored)
        originals = self._originals[rows] if self._originals is not None else None
        self._reset(graph, self._ords[rows], np.ones(len(rows), dtype=bool), originals)

    def _wants_graph(self, live: int) -> bool:
        """The approximate_threshold rule for ``live`` rows; a graph once started is kept up to date."""
        threshold = self._approximate_threshold
        return self._graph.ntotal > 0 or threshold == 0 or 0 < threshold <= live

    def _update_graph(self) -> None:
        """Put the rows that are only in faiss's storage into the graph, if the threshold wants a graph."""
        start, n = self._graph.ntotal, self._n
        if start == n or not self._wants_graph(n - self._dead):
            return
        pending = self._stored_view()[start:n].copy()
        self._storage().remove_ids(faiss.IDSelectorRange(start, n))  # IndexHNSW.add adds storage and nodes
        self._graph.add(pending)

    def _selector_bits(self, mask: np.ndarray | None, filtered: bool) -> np.ndarray | None:
        """``mask`` packed for ``IDSelectorBitmap``; the live rows' bitmap is cached until the next write."""
        if mask is None:
            return None
        if filtered:
            return np.packbits(mask, bitorder="little")
        if self._live_bits is None:
            self._live_bits = np.packbits(mask, bitorder="little")
        return self._live_bits

    def _approximate(
        self, q: np.ndarray, k: int, ef: int, bits: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # in faiss, not in its stubs
        params.efSearch = ef
        selector = None
        if bits is not None:  # `bits` and `selector` stay referenced until the search returns
            selector = faiss.IDSelectorBitmap(self._n, faiss.swig_ptr(bits))
            params.sel = selector
        distances, labels = self._graph.search(q[None, :], k, params=params)
        del selector
        found = labels[0] >= 0
        return labels[0][found], distances[0][found]

    def _translate(self, raw: np.ndarray) -> np.ndarray:
        raw = raw.astype(np.float32, copy=False)
        one = np.float32(1.0)
        if self._space_type == "l2":
            return (one / (one + raw)).astype(np.float32)
        if self._space_type == "cosinesimil":
            return np.maximum((one + raw) / np.float32(2.0), np.float32(0.0)).astype(np.float32)
        with np.errstate(divide="ignore"):
            return np.where(raw >= 0, raw + one, one / (one - raw)).astype(np.float32)

    def _as_matrix(self, vectors: np.ndarray | Sequence[Sequence[float]], ords: np.ndarray) -> np.ndarray:
        d = self._dimension
        if not isinstance(vectors, np.ndarray):
            rows = list(vectors)
            if len(rows) != len(ords):
                raise ValueError(f"add got {len(ords)} ordinals but {len(rows)} vectors")
            for ordinal, row in zip(ords.tolist(), rows, strict=True):
                given = np.shape(row)
                if len(given) != 1 or given[0] != d:
                    shown = given[0] if len(given) == 1 else given
                    raise ValueError(
                        f"ordinal {ordinal}: Vector dimension mismatch. Expected: {d}, Given: {shown}"
                    )
            vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), d)
        if vectors.ndim == 1 and len(ords) == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a [n, {d}] array, got shape {vectors.shape}")
        if vectors.shape[0] != len(ords):
            raise ValueError(f"add got {len(ords)} ordinals but {vectors.shape[0]} vectors")
        if vectors.shape[1] != d and len(ords):
            raise ValueError(
                f"ordinal {int(ords[0])}: Vector dimension mismatch. Expected: {d}, Given: {vectors.shape[1]}"
            )
        if not np.issubdtype(vectors.dtype, np.number) or np.iscomplexobj(vectors):
            raise ValueError(f"vectors must hold real numbers, got dtype {vectors.dtype}")
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _check_finite(self, data: np.ndarray, ords: np.ndarray) -> None:
        finite = np.isfinite(data).all(axis=1)
        if finite.all():
            return
        first = int(np.flatnonzero(~finite)[0])
        what = "NaN" if np.isnan(data[first]).any() else "infinity"
        raise ValueError(f"ordinal {int(ords[first])}: KNN vector values cannot be {what}")

    def _as_query(self, query: np.ndarray | Sequence[float]) -> np.ndarray:
        q = np.asarray(query)
        if q.ndim == 2 and q.shape[0] == 1:
            q = q[0]
        if q.ndim != 1:
            raise ValueError(f"query must be one vector of {self._dimension} values, got shape {q.shape}")
        if q.shape[0] != self._dimension:
            raise ValueError(
                f"query: Vector dimension mismatch. Expected: {self._dimension}, Given: {q.shape[0]}"
            )
        if not np.issubdtype(q.dtype, np.number) or np.iscomplexobj(q):
            raise ValueError(f"query must hold real numbers, got dtype {q.dtype}")
        q = np.ascontiguousarray(q, dtype=np.float32)
        if not np.isfinite(q).all():
            what = "NaN" if np.isnan(q).any() else "infinity"
            raise ValueError(f"query: KNN vector values cannot be {what}")
        if self._space_type == "cosinesimil":
            norm = float(np.sqrt(np.dot(q.astype(np.float64), q.astype(np.float64))))
            if norm == 0.0:
                raise ValueError("query: zero vector is not supported when space type is [cosinesimil]")
            q = (q / norm).astype(np.float32)
        return q


def _as_threshold(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < -1:
        raise ValueError(f"approximate_threshold must be an integer >= -1, got {value!r}")
    return int(value)


def _as_ordinals(ords: np.ndarray | Iterable[int]) -> np.ndarray:
    arr = np.asarray(ords if isinstance(ords, np.ndarray) else list(ords))
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"ordinals must be one-dimensional, got shape {arr.shape}")
    if len(arr) == 0:
        return _EMPTY_ORDS
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ordinals must be integers, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"ordinal {int(arr[arr < 0][0])}: ordinals must be >= 0")
    return arr.astype(np.int64, copy=False)
