"""SPLADE: a document (or query) as a weighted bag of vocabulary terms, for a ``rank_features`` field.

    encoder = SparseEncoder("splade-tiny", top_k=200)
    encoder.encode(["Statins and breast cancer"])   # [{"stat": 1.9, "##ins": 1.7, "cancer": 1.6, ...}]

Any BertForMaskedLM-style SPLADE checkpoint loads by name or path
(``naver/splade-cocondenser-ensembledistil``,
``opensearch-project/opensearch-neural-sparse-encoding-doc-v3-distill`` with hub access; offline here
``splade-tiny``).

Keys are the tokenizer's vocabulary strings (``"cancer"``, ``"##ins"``), never empty.  Special tokens ([CLS],
[SEP], [PAD], [MASK], [UNK]) are dropped.  Tokens that contain a dot (BERT's vocabulary has ``"."``,
``"..."``,
``"##."``) are kept by default: OpenSearch indexes them and ``neural_sparse`` (``query_tokens``) reaches
them, but a ``rank_feature`` query names its feature as ``field.key`` and OpenSearch splits that at the
*last* dot, so such a key is unreachable through ``rank_feature``; ``drop_dotted=True`` leaves them out for
such clients.

Texts longer than ``max_length`` tokens (special tokens included) are truncated at the end: the weights
describe the first ``max_length - 2`` word pieces only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nirbridge.workers.backends import Backend, Graph, bert_graph, graph_inputs, open_session, run_sorted
from nirbridge.workers.errors import check_texts
from nirbridge.workers.models import fingerprint, load_tokenizer, resolve_model

if TYPE_CHECKING:
    import torch

__all__ = ["SparseEncoder", "splade_module", "prune"]

# FeatureField refuses values below Float.MIN_NORMAL; anything smaller is no weight at all.
_FLOAT_MIN_NORMAL = float(np.finfo(np.float32).tiny)


def splade_module(path: Path) -> torch.nn.Module:
    """The masked-LM with the SPLADE max-pool as its head.

    ``w_j = max_i  m_i * log(1 + ReLU(z_ij))`` for vocabulary entry j, over token positions i with attention
    mask m_i (Formal et al., SPLADE v2, 2021, eq. 5 with max pooling).  Computed as ``log1p(max_i m_i
    ReLU(z_ij))``: log1p is increasing and log1p(0) = 0, so taking the max first is the same value with one
    log per entry instead of one per (position, entry).
    """
    import torch
    from transformers import AutoModelForMaskedLM

    def max_pool(output: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = output.logits
        masked = torch.relu(logits) * attention_mask.unsqueeze(-1).to(logits.dtype)
        return torch.log1p(masked.amax(dim=1).float())

    return bert_graph(AutoModelForMaskedLM.from_pretrained(str(path), local_files_only=True), max_pool)


def prune(row: np.ndarray, top_k: int | None, threshold: float) -> np.ndarray:
    """Positions of the weights kept: those > ``threshold`` (and >= float32's smallest normal), then the
    ``top_k`` largest, ordered by weight descending (ties by position)."""
    keep = np.flatnonzero(row > max(threshold, _FLOAT_MIN_NORMAL * 0.999))
    if top_k is not None and len(keep) > top_k:
        keep = keep[np.argpartition(-row[keep], top_k - 1)[:top_k]]
    return keep[np.lexsort((keep, -row[keep]))]


class SparseEncoder:
    """SPLADE weights per text: ``SparseEncoder(model, backend=...)`` then ``.encode(texts)``.

    ``top_k`` keeps the k largest weights per text (None: all); ``threshold`` keeps weights strictly above it;
    ``batch_size`` texts go through the model at once, sorted by length.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "splade-tiny",
        backend: Backend = "auto",
        max_length: int = 256,
        top_k: int | None = None,
        threshold: float = 0.0,
        batch_size: int = 16,
        drop_dotted: bool = False,
    ) -> None:
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be None or >= 1, got {top_k}")
        if not (math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"threshold must be a finite number >= 0, got {threshold}")
        if max_length < 3:
            raise ValueError(
                f"max_length must be >= 3 (two special tokens and a word piece), got {max_length}"
            )
        self.path = resolve_model(model)
        self.model = str(model)
        self.fingerprint = fingerprint(self.path)
        self.tokenizer = load_tokenizer(self.path)
        self.max_length = min(max_length, int(self.tokenizer.model_max_length or max_length))
        self.top_k, self.threshold, self.batch_size = top_k, float(threshold), batch_size
        names = graph_inputs(self.tokenizer)
        self.graph = Graph(self.path, "splade-max", splade_module, names)
        self.session = open_session(self.graph, backend)
        self.backend = self.session.backend
        vocab_size = len(self.tokenizer)
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
        self.vocabulary: list[str | None] = [t if t else None for t in tokens]
        dropped = set(self.tokenizer.all_special_ids)
        if drop_dotted:
            dropped |= {i for i, t in enumerate(tokens) if t and "." in t}
        self._dropped = np.array(sorted(dropped), dtype=np.int64)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids per text with special tokens, truncated to ``max_length``."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [list(x) for x in encoded["input_ids"]]

    def _run(self, texts: Sequence[object], per_row: Any, sort: bool) -> list[Any]:
        """Encode ``texts`` in length-sorted batches and turn each output row with ``per_row``."""
        ids = self.token_ids(check_texts(texts))
        pad = self.tokenizer.pad_token_id or 0
        return run_sorted(self.session, ids, pad, self.graph.input_names, self.batch_size, per_row, sort)

    def vectors(self, texts: Sequence[object], sort: bool = True) -> list[np.ndarray]:
        """The full SPLADE row (one float per vocabulary entry) of each text, before any pruning."""
        return self._run(texts, lambda _i, row: row.copy(), sort)

    def to_terms(self, row: np.ndarray) -> dict[str, float]:
        """One SPLADE row as ``{vocabulary string: weight}``: special tokens dropped, pruned, heaviest
        first."""
        row = row.copy()
        row[self._dropped[self._dropped < len(row)]] = 0.0
        row[len(self.vocabulary) :] = 0.0
        out: dict[str, float] = {}
        for j in prune(row, self.top_k, self.threshold):
            token = self.vocabulary[j]
            if token:
                out[token] = float(row[j])
        return out

    def encode(self, texts: Sequence[object], sort: bool = True) -> list[dict[str, float]]:
        """``{term: weight}`` per text, in the order given; a non-str or empty text raises
        ``BadInputError``."""
        return self._run(texts, lambda _i, row: self.to_terms(row), sort)

    def encode_query(self, text: str) -> dict[str, float]:
        """The query's weights, the same model and pruning as documents (SPLADE is symmetric); for
        ``neural_sparse.query_tokens`` or a ``bool.should`` of ``rank_feature`` ``linear`` clauses."""
        return self.encode([text])[0]
