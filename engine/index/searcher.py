"""A point-in-time view of an index: what one refresh made visible.

A searcher never changes. The index's structures keep growing after it was taken, so every read goes through
:meth:`Searcher.posting`, which cuts postings at ``max_ord`` and drops ordinals that were dead at the refresh.
Statistics (document count and total length per field) are those of the view's live documents, as after a
Lucene force merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .postings import InvertedStore, Posting

if TYPE_CHECKING:
    from .index import DocVersion, Index


@dataclass
class Searcher:
    index: Index
    store: InvertedStore
    max_ord: int
    live: np.ndarray  # bool[max_ord]
    has_deletions: bool
    field_stats: dict[str, tuple[int, int]]  # path -> (doc_count, sum_total_term_freq)
    ord_docs: list[DocVersion]  # ord -> the document version it holds
    generation: int
    alias_filter: Any = None  # query JSON of the alias filter a search through an alias applies (None: none)
    # postings by (path, term), and what searches derive from the view (recalled / remember)
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def recalled(self, key: tuple[Any, ...], default: Any = None) -> Any:
        """What :meth:`remember` kept under ``key`` for this view (``default`` when nothing)."""
        return self._cache.get(key, default)

    def remember(self, key: tuple[Any, ...], value: Any, limit: int | None = None) -> None:
        """Keep ``value`` for the life of this view (it never changes, so nothing goes stale): what searches
        derive from it, such as BM25 legs and norm caches.  With ``limit``, only while the view's memo
        (postings included) holds fewer entries than that."""
        if limit is None or len(self._cache) < limit:
            self._cache[key] = value

    @property
    def num_docs(self) -> int:
        return int(self.live.sum()) if self.has_deletions else self.max_ord

    def posting(self, path: str, term: str) -> Posting | None:
        """The live postings of ``term`` in ``path`` as seen by this view (None when the term is absent)."""
        key = (path, term)
        if key in self._cache:
            cached: Posting | None = self._cache[key]
            return cached
        text_field = self.store.text.get(path)
        posting = text_field.postings.get(term) if text_field else None
        result = self._visible(posting)
        if len(self._cache) < 4096:
            self._cache[key] = result
        return result

    def feature_posting(self, path: str, feature: str) -> Posting | None:
        features = self.store.features.get(path)
        return self._visible(features.get(feature) if features else None)

    def _visible(self, posting: Posting | None) -> Posting | None:
        if posting is None:
            return None
        ords, freqs = posting.ords, posting.freqs
        if ords.shape[0] and ords[-1] >= self.max_ord:
            cut = int(np.searchsorted(ords, self.max_ord))
            ords, freqs = ords[:cut], freqs[:cut]
        if self.has_deletions and ords.shape[0]:
            keep = self.live[ords]
            ords, freqs = ords[keep], freqs[keep]
        if ords.shape[0] == 0:
            return None
        return Posting(ords, freqs)

    def norms(self, path: str) -> np.ndarray | None:
        text_field = self.store.text.get(path)
        if text_field is None or not text_field.has_norms:
            return None
        norms = text_field.norms.view()
        if norms.shape[0] < self.max_ord:
            norms = np.concatenate((norms, np.zeros(self.max_ord - norms.shape[0], dtype=np.uint8)))
        return norms

    def present(self, path: str) -> np.ndarray:
        """Boolean mask over ordinals of live documents having a value for ``path``."""
        grow = self.store.present.get(path)
        mask = np.zeros(self.max_ord, dtype=np.bool_)
        if grow is not None:
            view = grow.view()[: self.max_ord]
            mask[: view.shape[0]] = view
        return mask & self.live

    def numeric(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        """(ordinals, values) of the live numeric/date values of ``path``."""
        numeric = self.store.numbers.get(path)
        if numeric is None:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float64)
        ords = numeric.ords.view(numeric.count)
        values = numeric.values.view(numeric.count)
        keep = ords < self.max_ord
        ords, values = ords[keep], values[keep]
        if self.has_deletions:
            keep = self.live[ords]
            ords, values = ords[keep], values[keep]
        return ords, values

    def terms(self, path: str) -> list[str]:
        text_field = self.store.text.get(path)
        return list(text_field.postings) if text_field else []

    def doc(self, ord_: int) -> DocVersion:
        return self.ord_docs[ord_]
