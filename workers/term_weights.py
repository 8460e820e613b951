"""DeepCT-style term weights: one weight for each of the document's own words, no expansion (``nir_terms``).

    weighter = TermWeighter()                     # the stand-in below, until a trained DeepCT model exists
    weighter.weights(["Statins and breast cancer"])  # [{"statins": 1.9, "cancer": 1.6, "breast": 1.4, ...}]
    pseudo_text({"statins": 1.9, "cancer": 1.6}, scale=2)   # "statins statins statins statins cancer cancer
    cancer"

DeepCT (Dai & Callan, 2019) predicts a weight per word of the document and writes it the original way, a
pseudo-text in which each word is repeated round(weight x scale) times so that plain BM25 on any cluster
ranks by the weights.  The project's own token-level regressor comes from the training issue.  Until it
exists the documented stand-in is the SPLADE model restricted to the document's own terms: the weight of a
word is the SPLADE weight of its *first* word piece (DeepCT's rule for words split into pieces), and the
vocabulary entries that do not occur in the document (SPLADE's expansion terms) are not used.

Words are the tokenizer's pre-tokenisation (BERT: whitespace and punctuation split, lower-cased for uncased
models), the pieces of a word joined back (``"stat" + "##ins"`` -> ``"statins"``).  Words with no letter or
digit (punctuation) are left out; a word repeated in the text appears once.  Truncation as in
``SparseEncoder``
(``max_length`` word pieces).  :meth:`TermWeighter.query_terms` splits a query the same way, so a query over
``nir_terms`` names the same keys.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from nirbridge.workers.backends import Backend, run_sorted
from nirbridge.workers.errors import check_texts
from nirbridge.workers.sparse import SparseEncoder

__all__ = ["TermWeighter", "pseudo_text"]


def _words(
    tokens: Sequence[str], word_ids: Sequence[int | None], ids: Sequence[int]
) -> list[tuple[str, int]]:
    """(word, id of its first piece) per word, in text order; special tokens (word id None) skipped."""
    words: dict[int, tuple[list[str], int]] = {}
    for token, word, piece in zip(tokens, word_ids, ids, strict=True):
        if word is None:
            continue
        if word not in words:
            words[word] = ([token], piece)
        else:
            words[word][0].append(token[2:] if token.startswith("##") else token)
    return [("".join(parts), first) for parts, first in words.values()]


class TermWeighter:
    """Weights of a document's own words: ``TermWeighter(model, backend=...)`` then ``.weights(texts)``."""

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
        self.encoder = SparseEncoder(model, backend=backend, max_length=max_length, batch_size=batch_size)
        self.backend = self.encoder.backend
        self.fingerprint = self.encoder.fingerprint
        self.model = self.encoder.model

    def _split(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[tuple[str, int]]]]:
        tok = self.encoder.tokenizer
        encoded = tok(list(texts), truncation=True, max_length=self.encoder.max_length)
        ids = [list(x) for x in encoded["input_ids"]]
        words = [_words(encoded.tokens(i), encoded.word_ids(i), ids[i]) for i in range(len(ids))]
        return ids, words

    def query_terms(self, text: str) -> list[str]:
        """The query's words as documents are split (keys to look up in ``nir_terms``), without repeats."""
        _, words = self._split(check_texts([text]))
        return list(dict.fromkeys(w for w, _ in words[0] if any(c.isalnum() for c in w)))

    def weights(self, texts: Sequence[object]) -> list[dict[str, float]]:
        """``{word: weight}`` per text over the text's own words only, heaviest first; weights > 0.

        ``weight(word) = splade(text)[first_piece(word)]`` with ``splade`` as in ``sparse.splade_module``.
        """
        ids, words = self._split(check_texts(texts))
        enc = self.encoder

        def own(i: int, row: object) -> dict[str, float]:
            out: dict[str, float] = {}
            for word, first in words[i]:
                weight = float(row[first])  # type: ignore[index]
                if weight > 0 and word not in out and any(c.isalnum() for c in word):
                    out[word] = weight
            return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

        return run_sorted(
            enc.session, ids, enc.tokenizer.pad_token_id or 0, enc.graph.input_names, enc.batch_size, own
        )


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
