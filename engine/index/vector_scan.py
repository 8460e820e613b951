"""Exact k-NN search over the stored vectors of one field: an int8 scan with a proven bound, then float32
re-ranking (:class:`ExactScan`, the part of :class:`~.vectors.VectorIndex` that answers exactly).

With ``l2`` and ``cosinesimil``, exact search over more than ``MAX_DISTANCE_COMPUTATIONS / dimension``
candidates does not scan the float32 vectors (``n x d x 4`` bytes: ~10 ms for 100k x 384 on one core here) but
an int8 copy of them: faiss ``IndexScalarQuantizer`` with ``QT_8bit_direct`` and ``METRIC_L2``, whose kernel
computes integer distances between byte codes (4 x fewer bytes, ~3 ms). Every stored value ``x`` is coded as
``c = round((x - lo) / scale)``, clipped to 0..255, with one ``lo`` and ``scale`` for the whole field (the
range of the values seen; re-coded with 1/8 headroom on each side when a batch falls outside it), and the
largest coding error ``E = max_i ||x_i - (lo + scale c_i)||`` is kept. The query is coded the same way, with
its own error ``e_q`` (the kernel would otherwise truncate it to bytes itself). The scan returns the ``R``
best rows by coded distance (``R = max(8k, 256)``) and their float32 distances are computed. By the triangle
inequality every row outside the ``R`` is at least ``scale sqrt(a_R) - E - e_q`` away from the query (``a_R``:
the ``R``-th coded squared distance, an exact integer); for unit vectors (cosinesimil) distance and inner
product are tied by ``|q - x|^2 = 2 - 2 <q, x>``. When that bound is strictly worse than the ``k``-th best of
the ``R`` (with a small margin for float32 rounding), no row outside them can enter the top-k, ties included,
and they give the answer. Otherwise a second pass (faiss ``range_search`` on the codes) fetches every row
whose coded distance is within ``(d_k + E + e_q) / scale`` (``d_k``: the ``k``-th best distance among the
``R``, at least the true one), which contains the true top-k and its ties, and re-ranks those; if they are
more than an eighth of the candidates the float32 scan answers instead. Candidates that are at least 30 % of
the rows (tombstones, broad filters) are picked out of the returned rows, with ``R`` scaled by ``rows /
candidates`` (the bound holds for all rows, so for the candidates too); fewer are passed to the scan as a
faiss ``IDSelectorBitmap``, which costs a test per row but skips the others' distances. So the results are
those of the float32 scan, bit for bit; only the time differs. Measured with 100 queries on 100k x 384
vectors: uniform, low-rank and Gaussian data, ``l2`` and ``cosinesimil``, k = 10 and 100, the first pass
proved the top-k in every case but one (Gaussian, cosinesimil, k = 100: half the queries took the second pass,
~900 rows). The codes cost ``n x d`` bytes. ``innerproduct`` has no such bound for an L2 scan (row norms
differ) and faiss's byte kernel has no usable inner product (it truncates negative query values), so it keeps
the float32 scan.
"""

from __future__ import annotations

import math
from typing import Any, cast

import faiss
import numpy as np

#: Exact search when candidates x dimension is at most this (OpenSearch k-NN ``KNNConstants``).
MAX_DISTANCE_COMPUTATIONS = 2_048_000

#: The int8 scan re-ranks the ``max(8 k, _SCAN_MIN_DEPTH)`` best coded rows (module docstring).
_SCAN_MIN_DEPTH = 256
#: Margin for float32 rounding in the int8 scan's bound (relative for l2, absolute for cosine similarity).
_BOUND_SLACK = 1e-5
_CODE_CHUNK = 4096


class ExactScan:
    """Exact search for :class:`~.vectors.VectorIndex`: the flat float32 storage, its int8 codes, scans."""

    # set by VectorIndex
    _dimension: int
    _metric: int
    _n: int
    _ords: np.ndarray
    _graph: Any  # faiss.IndexHNSWFlat
    _codes: Any  # faiss.IndexScalarQuantizer, None for innerproduct
    _lo: float
    _scale: float
    _err_max: float

    def _storage(self) -> faiss.IndexFlat:
        return cast(faiss.IndexFlat, faiss.downcast_index(self._graph.storage))

    def _stored_view(self) -> np.ndarray:
        """The float32 vectors inside faiss's flat storage (a view: valid until the next add)."""
        storage = self._storage()
        n = storage.ntotal
        if n == 0:
            return np.empty((0, self._dimension), dtype=np.float32)
        return faiss.rev_swig_ptr(storage.get_xb(), n * self._dimension).reshape(n, self._dimension)

    def _exact(self, q: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The exact top-k rows among ``mask`` (None: all rows) and their raw faiss distances."""
        count = self._n if mask is None else int(np.count_nonzero(mask))
        if count * self._dimension > MAX_DISTANCE_COMPUTATIONS:
            found = self._scan_codes(q, k, mask, count)
            if found is not None:
                return found
        return self._scan_floats(q, k, mask)

    def _scan_floats(
        self, q: np.ndarray, k: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(mask) if mask is not None else np.arange(self._n, dtype=np.int64)
        rows = rows.astype(np.int64, copy=False)
        return self._top_k(rows, self._distances(q, rows), k)

    def _scan_codes(
        self, q: np.ndarray, k: int, mask: np.ndarray | None, count: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Exact top-k through the int8 codes and the error bound (module docstring); None: not worth it."""
        depth = max(8 * k, _SCAN_MIN_DEPTH)
        if self._codes is None or depth * 8 > count:
            return None
        # A faiss selector costs a test per row: a mask that admits most rows (tombstones, broad filters) is
        # applied to the returned rows instead, which are then ``1 / selectivity`` times more.
        post_filter = mask is not None and count * 10 >= self._n * 3
        if post_filter:
            depth = math.ceil(depth * self._n / count)
        params = bits = selector = None
        if mask is not None and not post_filter:  # `bits`, `selector` stay referenced during the searches
            bits = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(self._n, faiss.swig_ptr(bits))
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]  # stubs lack the wrapper's kwargs
        lo, scale = self._lo, self._scale
        # faiss's QT_8bit_direct kernel truncates the query to bytes: code it ourselves, exactly, and count
        # its coding error too. The coded distance is an exact integer; the coded query and row lie within
        # ``query_error`` and ``E`` of the true ones, so (triangle inequality) their distance does too.
        q64 = q.astype(np.float64)
        coded_query = np.clip(np.rint((q64 - lo) / scale), 0, 255)
        query_error = float(np.sqrt(((q64 - (lo + scale * coded_query)) ** 2).sum()))
        error = (self._err_max + query_error) * (1.0 + 1e-3) + scale * 1e-3
        coded_query = coded_query.astype(np.float32)[None, :]
        coded, rows = self._codes.search(coded_query, depth, params=params)
        coded, rows = coded[0], rows[0]
        if post_filter and mask is not None:  # (post_filter implies a mask)
            rows = rows[mask[rows]]
            if len(rows) < k:
                return None
        raw = self._distances(q, rows)
        # The k-th best of these rows, as an L2 distance: an upper bound of the true k-th best's.
        if self._metric == faiss.METRIC_L2:
            kth = math.sqrt(max(float(np.partition(raw, k - 1)[k - 1]), 0.0)) * (1 + _BOUND_SLACK)
        else:  # cosinesimil: unit vectors, so |q - x|^2 = 2 - 2 <q, x> (norms are 1 within float rounding)
            kth_ip = float(-np.partition(-raw, k - 1)[k - 1])
            kth = math.sqrt(max(2.0 - 2.0 * kth_ip, 0.0) + _BOUND_SLACK)
        # Every row outside these ``depth`` is at least this far from q:
        outside = scale * math.sqrt(max(float(coded[-1]), 0.0)) * (1 - _BOUND_SLACK) - error
        if outside <= kth:  # not proven: fetch every row whose coded distance allows it to reach the k-th
            radius = ((kth + error) / scale) ** 2 * (1 + _BOUND_SLACK) + 1.0
            _, _, rows = self._codes.range_search(coded_query, radius, params=params)
            if post_filter and mask is not None:
                rows = rows[mask[rows]]
            if len(rows) * 8 > count:
                return None
            raw = self._distances(q, rows)
        del selector, bits
        return self._top_k(rows, raw, k)

    def _distances(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Raw faiss distances (squared L2 or inner product) of ``q`` to these rows, float32."""
        count = len(rows)
        raw = np.empty(count, dtype=np.float32)
        xb = self._storage().get_xb()
        kernel = (
            faiss.fvec_L2sqr_by_idx  # type: ignore[attr-defined]  # in faiss, not in its stubs
            if self._metric == faiss.METRIC_L2
            else faiss.fvec_inner_products_by_idx  # type: ignore[attr-defined]
        )
        kernel(faiss.swig_ptr(raw), faiss.swig_ptr(q), xb, faiss.swig_ptr(rows), self._dimension, 1, count)
        return raw

    def _top_k(self, rows: np.ndarray, raw: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best of these rows; everything tied with the k-th best, then the smaller ordinals win."""
        key = raw if self._metric == faiss.METRIC_L2 else -raw
        count = len(rows)
        if k < count:
            top = np.flatnonzero(key <= np.partition(key, k - 1)[k - 1])
        else:
            top = np.arange(count)
        top = top[np.lexsort((self._ords[rows[top]], key[top]))[:k]]
        return rows[top], raw[top]

    def _code_rows(self, start: int) -> None:
        """Give rows ``start..n`` their int8 codes; re-code every row when they leave the coded range."""
        if self._codes is None:
            return
        view = self._stored_view()
        n = len(view)
        if start < n:
            low, high = float(view[start:].min()), float(view[start:].max())
            if start == 0 or low < self._lo or high > self._lo + 255.0 * self._scale:
                if start > 0:  # widen the range with headroom, so that growing data re-codes rarely
                    low, high = min(low, self._lo), max(high, self._lo + 255.0 * self._scale)
                    low, high = low - (high - low) / 8, high + (high - low) / 8
                self._lo, self._scale = low, ((high - low) / 255.0 if high > low else 1.0)
                start = 0
        if start == 0:
            self._codes.reset()
            self._err_max = 0.0
        for begin in range(start, n, _CODE_CHUNK):
            block = view[begin : begin + _CODE_CHUNK].astype(np.float64)
            codes = np.clip(np.rint((block - self._lo) / self._scale), 0, 255)
            error = np.sqrt(((block - (self._lo + self._scale * codes)) ** 2).sum(axis=1)).max()
            self._err_max = max(self._err_max, float(error))
            self._codes.add_sa_codes(np.ascontiguousarray(codes, dtype=np.uint8))
