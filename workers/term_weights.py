"""DeepCT term weights: one weight for each of the document's own words, no expansion (``nir_terms``).

    weighter = TermWeighter("/work/models/deepct-scifact")   # trained by `nirbridge train deepct`
    weighter.weights(["Statins and breast cancer"])  # [{"statins": 0.61, "cancer": 0.44, ...}]
    pseudo_text({"statins": 1.9, "cancer": 1.6}, scale=2)   # "statins statins statins statins cancer ..."

DeepCT (Dai & Callan, 2019) predicts a weight per word of the document and writes it the original way, a
pseudo-text in which each word is repeated round(weight x scale) times so that plain BM25 on any cluster
ranks by the weights.  Which model runs is read from the folder's ``config.json``:

- a token regressor (``*ForTokenClassification`` with one label, as ``nirbridge train deepct`` writes it):
  DeepCT proper.  The model predicts one value per word piece; the weight of a word is the prediction on its
  *first* word piece (DeepCT's rule for words split into pieces), clipped at 0, and for a word that occurs
  more than once the largest over its occurrences.
- anything else (a ``*ForMaskedLM`` SPLADE checkpoint; the default ``splade-tiny``): the documented stand-in,
  the SPLADE model restricted to the document's own terms.  The weight of a word is the SPLADE weight of its
  first word piece; the vocabulary entries that do not occur in the document (SPLADE's expansion terms) are
  not used.

Words are the tokenizer's pre-tokenisation (BERT: whitespace and punctuation split, lower-cased for uncased
models), the pieces of a word joined back (``"stat" + "##ins"`` -> ``"statins"``).  Words with no letter or
digit (punctuation) are left out; a word repeated in the text appears once.  Truncation at ``max_length``
word pieces (special tokens included).  :meth:`TermWeighter.query_terms` splits a query the same way, so a
query over ``nir_terms`` names the same keys.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from nirbridge.workers.backends import Backend, Graph, bert_graph, graph_inputs, open_session, run_sorted
from nirbridge.workers.errors import check_texts
from nirbridge.workers.models import fingerprint, load_tokenizer, resolve_model
from nirbridge.workers.sparse import SparseEncoder

if TYPE_CHECKING:
    import torch

__all__ = [
    "DeepCTEncoder",
    "TermWeighter",
    "Word",
    "deepct_module",
    "is_token_regressor",
    "own_weights",
    "pseudo_text",
    "words_of",
]


class Word(NamedTuple):
    """One occurrence of a word: its text, the id of its first word piece and that piece's position."""

    text: str
    piece: int
    position: int


def words_of(encoding: Any, row: int) -> list[Word]:
    """The words of text ``row`` of a fast tokenizer's batch encoding, one per occurrence, in text order.

    Special tokens (word id None) are skipped; the pieces of a word are joined without BERT's ``##``.
    """
    ids = encoding["input_ids"][row]
    parts: dict[int, tuple[list[str], int, int]] = {}
    for position, (token, word) in enumerate(zip(encoding.tokens(row), encoding.word_ids(row), strict=True)):
        if word is None:
            continue
        if word not in parts:
            parts[word] = ([token], int(ids[position]), position)
        else:
            parts[word][0].append(token.removeprefix("##"))
    return [Word("".join(pieces), first, position) for pieces, first, position in parts.values()]


def own_weights(words: Sequence[Word], value: Callable[[Word], float]) -> dict[str, float]:
    """``{word: max over its occurrences of value(occurrence)}``, words with a letter or digit and a weight
    > 0 only, heaviest first (ties by word)."""
    out: dict[str, float] = {}
    for word in words:
        if any(c.isalnum() for c in word.text):
            out[word.text] = max(out.get(word.text, 0.0), float(value(word)))
    return dict(sorted(((w, v) for w, v in out.items() if v > 0), key=lambda kv: (-kv[1], kv[0])))


def is_token_regressor(path: str | os.PathLike[str]) -> bool:
    """True when the folder's ``config.json`` names a token classifier with one label (a DeepCT model).

    ValueError for a token classifier with several labels (a tagger, e.g. NER, is no term weighter).
    """
    config = json.loads((Path(path) / "config.json").read_text())
    architectures = config.get("architectures") or []
    if not any(str(name).endswith("ForTokenClassification") for name in architectures):
        return False
    labels = config.get("num_labels", len(config.get("id2label") or {}) or 2)
    if labels != 1:
        raise ValueError(
            f"{path}: {architectures[0]} with {labels} labels is a token tagger, not a term-weight "
            "regressor (DeepCT models have num_labels=1)"
        )
    return True


def deepct_module(path: Path) -> torch.nn.Module:
    """The token regressor with its prediction per word piece as the row: ``[batch, length]``, 0 on
    padding."""
    from transformers import AutoModelForTokenClassification

    def per_piece(output: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = output.logits[..., 0]
        return logits.float() * attention_mask.to(logits.dtype)

    model = AutoModelForTokenClassification.from_pretrained(str(path), local_files_only=True)
    return bert_graph(model, per_piece)


class DeepCTEncoder:
    """A DeepCT token regressor on a backend: ``.session.run`` gives one prediction per word piece."""

    def __init__(
        self, model: str | os.PathLike[str], backend: Backend, max_length: int, batch_size: int
    ) -> None:
        if max_length < 3:
            raise ValueError(
                f"max_length must be >= 3 (two special tokens and a word piece), got {max_length}"
            )
        self.path = resolve_model(model)
        self.model = str(model)
        self.fingerprint = fingerprint(self.path)
        self.tokenizer = load_tokenizer(self.path)
        self.max_length = min(max_length, int(self.tokenizer.model_max_length or max_length))
        self.batch_size = batch_size
        self.graph = Graph(self.path, "deepct-token", deepct_module, graph_inputs(self.tokenizer))
        self.session = open_session(self.graph, backend)
        self.backend = self.session.backend


class TermWeighter:
    """Weights of a document's own words: ``TermWeighter(model, backend=...)`` then ``.weights(texts)``.

    ``kind`` says which rule applies: ``"deepct"`` (a token regressor) or ``"splade"`` (the stand-in).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "splade-tiny",
        backend: Backend = "auto",
        max_length: int = 256,
        batch_size: int = 16,
        pseudo_text_scale: float | None = None,
    ) -> None:
        if pseudo_text_scale is not None and not (math.isfinite(pseudo_text_scale) and pseudo_text_scale > 0):
            raise ValueError(f"pseudo_text_scale must be a finite number > 0, got {pseudo_text_scale}")
        # when set, the pipeline also writes pseudo_text(weights, scale) into nir_terms_text
        self.pseudo_text_scale = pseudo_text_scale
        self.kind: Literal["deepct", "splade"] = (
            "deepct" if is_token_regressor(resolve_model(model)) else "splade"
        )
        self.encoder: DeepCTEncoder | SparseEncoder = (
            DeepCTEncoder(model, backend, max_length, batch_size)
            if self.kind == "deepct"
            else SparseEncoder(model, backend=backend, max_length=max_length, batch_size=batch_size)
        )
        self.backend = self.encoder.backend
        self.fingerprint = self.encoder.fingerprint
        self.model = self.encoder.model

    def _split(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[Word]]]:
        encoded = self.encoder.tokenizer(list(texts), truncation=True, max_length=self.encoder.max_length)
        ids = [list(x) for x in encoded["input_ids"]]
        return ids, [words_of(encoded, i) for i in range(len(ids))]

    def query_terms(self, text: str) -> list[str]:
        """The query's words as documents are split (keys to look up in ``nir_terms``), without repeats."""
        _, words = self._split(check_texts([text]))
        return list(dict.fromkeys(w.text for w in words[0] if any(c.isalnum() for c in w.text)))

    def weights(self, texts: Sequence[object]) -> list[dict[str, float]]:
        """``{word: weight}`` per text over the text's own words only, heaviest first; weights > 0.

        DeepCT: ``weight(word) = max(0, max over occurrences o of prediction[first_piece_position(o)])``.
        Stand-in: ``weight(word) = splade(text)[first_piece(word)]`` with ``splade`` as in
        ``sparse.splade_module``.
        """
        ids, words = self._split(check_texts(texts))
        enc = self.encoder
        if self.kind == "deepct":
            # the row is one prediction per position: a word's value is its first piece's, clipped at 0
            def own(i: int, row: Any) -> dict[str, float]:
                return own_weights(words[i], lambda w: max(0.0, float(row[w.position])))
        else:
            # the row is one SPLADE weight per vocabulary entry
            def own(i: int, row: Any) -> dict[str, float]:
                return own_weights(words[i], lambda w: float(row[w.piece]))

        pad_id = enc.tokenizer.pad_token_id or 0
        return run_sorted(enc.session, ids, pad_id, enc.graph.input_names, enc.batch_size, own)


def pseudo_text(weights: dict[str, float], scale: float) -> str:
    """DeepCT's pseudo-document: each term repeated ``round(weight x scale)`` times (half rounds up),
    space-joined
    in the order of ``weights``; terms that round to 0 are left out.

    With BM25 over this text a term's frequency is its scaled weight (Dai & Callan, 2020, "Context-aware term
    weighting for first stage passage retrieval", section 3: TF_DeepCT = round(y_hat x 100)).
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale}")
    parts: list[str] = []
    for term, weight in weights.items():
        if not term or any(c.isspace() for c in term):
            raise ValueError(f"term {term!r} is empty or contains whitespace: it would not stay one token")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight of {term!r} must be a finite number >= 0, got {weight}")
        count = math.floor(weight * scale + 0.5)
        parts.extend([term] * count)
    return " ".join(parts)
