"""Bi-encoder embeddings for a ``knn_vector`` field, pooled and normalised as the model's own config says.

    encoder = DenseEncoder("all-MiniLM-L6-v2")
    encoder.encode(["Statins and breast cancer"])   # float32 [1, 384], unit length
    encoder.dimension, encoder.space_type             # 384, "innerproduct"

The sentence-transformers layout is read from the folder: ``modules.json`` names the modules; the ``Pooling``
module's ``config.json`` gives the pooling modes (cls, mean, max, mean_sqrt_len; several are concatenated in
that order, as sentence-transformers does); a ``Normalize`` module means unit-length output;
``sentence_bert_config.json``
gives ``max_seq_length``.  A plain Hugging Face encoder without ``modules.json`` gets mean pooling, no
normalisation.

``space_type``: for normalised output, ``innerproduct``.  On unit vectors the inner product *is* the cosine,
so the ranking equals ``cosinesimil``'s, the index skips a normalisation, and every OpenSearch k-NN engine
supports it (faiss had no cosine before k-NN 2.19).  Unnormalised models take the similarity their
``config_sentence_transformers.json`` names (``cosine`` -> ``cosinesimil``, ``dot`` -> ``innerproduct``,
``euclidean`` -> ``l2``), ``cosinesimil`` when it names none.

Texts longer than ``max_length`` tokens are truncated at the end (all-MiniLM-L6-v2: 256 word pieces).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nirbridge.workers.backends import Backend, Graph, bert_graph, graph_inputs, open_session, run_sorted
from nirbridge.workers.errors import check_texts
from nirbridge.workers.models import fingerprint, load_tokenizer, resolve_model

if TYPE_CHECKING:
    import torch

__all__ = ["DenseEncoder", "PoolingConfig", "read_pooling", "pooled_module"]

_MODES = ("cls", "mean", "max", "mean_sqrt_len")
_SPACES = {"cosine": "cosinesimil", "dot": "innerproduct", "euclidean": "l2", "manhattan": "l1"}


@dataclass(frozen=True)
class PoolingConfig:
    """How token vectors become one sentence vector (from the model's sentence-transformers files)."""

    modes: tuple[str, ...] = ("mean",)
    normalize: bool = False
    max_seq_length: int | None = None
    similarity: str | None = None
    transformer_dir: str = ""

    @property
    def name(self) -> str:
        return "pool-" + "+".join(self.modes) + ("-norm" if self.normalize else "")


def read_pooling(path: Path) -> PoolingConfig:
    """The pooling modes, normalisation, max length and similarity declared in a sentence-transformers
    folder."""
    modules_file = path / "modules.json"
    if not modules_file.exists():
        return PoolingConfig()
    modules = json.loads(modules_file.read_text())
    modes: tuple[str, ...] = ("mean",)
    normalize, transformer_dir = False, ""
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            config = json.loads((path / module["path"] / "config.json").read_text())
            modes = tuple(
                m
                for m in _MODES
                if config.get(f"pooling_mode_{m}_tokens" if m not in ("cls",) else "pooling_mode_cls_token")
            )
            if config.get("pooling_mode_lasttoken") or config.get("pooling_mode_weightedmean_tokens"):
                raise ValueError(f"{path}: pooling mode not supported here: {config}")
        elif kind == "Normalize":
            normalize = True
        elif kind == "Transformer":
            transformer_dir = module.get("path", "")
    bert_config = path / transformer_dir / "sentence_bert_config.json"
    max_seq = json.loads(bert_config.read_text()).get("max_seq_length") if bert_config.exists() else None
    st_config = path / "config_sentence_transformers.json"
    similarity = json.loads(st_config.read_text()).get("similarity_fn_name") if st_config.exists() else None
    return PoolingConfig(modes or ("mean",), normalize, max_seq, similarity, transformer_dir)


def pooled_module(path: Path, pooling: PoolingConfig) -> torch.nn.Module:
    """The encoder with its pooling head.

    mean: ``sum_i m_i h_i / max(sum_i m_i, 1e-9)``; mean_sqrt_len: ``sum_i m_i h_i / sqrt(sum_i m_i)``;
    max: ``max_i h_i`` over unmasked positions (masked ones set to -1e9); cls: ``h_0``; several modes are
    concatenated.  Normalize: ``v / max(||v||_2, 1e-12)`` (sentence-transformers ``Normalize``, i.e.
    ``torch.nn.functional.normalize``).
    """
    import torch
    from transformers import AutoModel

    def pool(output: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = output.last_hidden_state.float()
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        parts = []
        for mode in pooling.modes:
            if mode == "cls":
                parts.append(hidden[:, 0])
            elif mode == "max":
                parts.append(torch.where(mask > 0, hidden, torch.full_like(hidden, -1e9)).amax(dim=1))
            else:
                total = (hidden * mask).sum(dim=1)
                count = mask.sum(dim=1)
                parts.append(total / count.clamp(min=1e-9) if mode == "mean" else total / count.sqrt())
        vector = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if pooling.normalize:
            vector = torch.nn.functional.normalize(vector, p=2, dim=1)
        return vector

    encoder = AutoModel.from_pretrained(str(path / pooling.transformer_dir), local_files_only=True)
    return bert_graph(encoder, pool)


class DenseEncoder:
    """Sentence embeddings: ``DenseEncoder(model, backend=...)`` then ``.encode(texts)`` -> float32 ``[n,
    d]``."""

    def __init__(
        self,
        model: str | os.PathLike[str] = "all-MiniLM-L6-v2",
        backend: Backend = "auto",
        max_length: int | None = None,
        batch_size: int = 32,
    ) -> None:
        self.path = resolve_model(model)
        self.model = str(model)
        self.fingerprint = fingerprint(self.path)
        self.pooling = read_pooling(self.path)
        self.tokenizer = load_tokenizer(self.path / self.pooling.transformer_dir)
        limit = int(self.tokenizer.model_max_length or 512)
        if limit > 100_000:  # tokenizers without a declared limit report a huge sentinel
            limit = 512
        self.max_length = min(max_length or self.pooling.max_seq_length or limit, limit)
        if self.max_length < 3:
            raise ValueError(f"max_length must be >= 3, got {self.max_length}")
        self.batch_size = batch_size
        names = graph_inputs(self.tokenizer)
        pooling = self.pooling
        self.graph = Graph(
            self.path, pooling.name, lambda p: pooled_module(p, pooling), names, int8="u8s8-7bit"
        )
        self.session = open_session(self.graph, backend)
        self.backend = self.session.backend
        config = json.loads((self.path / self.pooling.transformer_dir / "config.json").read_text())
        self.dimension = int(config["hidden_size"]) * len(self.pooling.modes)

    @property
    def normalized(self) -> bool:
        return self.pooling.normalize

    @property
    def space_type(self) -> str:
        """The ``knn_vector`` space type for this model (see the module docstring)."""
        if self.pooling.normalize:
            return "innerproduct"
        return _SPACES.get(self.pooling.similarity or "cosine", "cosinesimil")

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [list(x) for x in encoded["input_ids"]]

    def encode(self, texts: Sequence[object], sort: bool = True) -> np.ndarray:
        """float32 ``[len(texts), dimension]`` in the order given; a non-str or empty text raises
        ``BadInputError`` (``errors.split_valid`` separates them first)."""
        ids = self.token_ids(check_texts(texts))
        if not ids:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows = run_sorted(
            self.session,
            ids,
            self.tokenizer.pad_token_id or 0,
            self.graph.input_names,
            self.batch_size,
            lambda _i, row: row,
            sort,
        )
        return np.ascontiguousarray(np.stack(rows), dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """One query's vector, float32 ``[dimension]``."""
        return self.encode([text])[0]
