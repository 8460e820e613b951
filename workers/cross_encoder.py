"""A cross-encoder: one relevance score per (query, passage) pair, read by the model over both texts at once.

    reranker = CrossEncoder("/models/my-reranker", backend="auto")
    reranker.score("statins and breast cancer", ["Statin use ...", "Vitamin D ..."])   # float32 [2]
    reranker.rank("statins and breast cancer", passages, top_k=10)                    # [(index, score), ...]

Any BertForSequenceClassification-style checkpoint loads by name or path (with hub access
``cross-encoder/ms-marco-MiniLM-L-6-v2``; offline here the project's own, or the one the tests train).  It
runs on the backends of :mod:`nirbridge.workers.backends` (exported to ONNX there, cached, ``auto`` measured).

The score of a pair (``score_module``):

    num_labels = 1   the logit ``z``  (sentence-transformers ``CrossEncoder`` without its activation)
    num_labels = 2   ``z_1 - z_0``, the log-odds of label 1: ``softmax(z)_1 = sigmoid(z_1 - z_0)``
                     orders pairs the same way, without the saturation near 0 and 1 that turns strong
                     candidates into float32 ties

Tokenisation, as Hugging Face's ``truncation="only_second"`` at ``max_length`` (default 256 word pieces):
``[CLS] query [SEP] passage [SEP]``, segment 0 for the query and its two special tokens, 1 for the passage
and its [SEP]; the passage is cut at the end to fit.  Unlike ``only_second``, a query longer than
``max_query_length`` (default 64) word pieces is cut too, instead of failing the request: the passage then
always keeps at least ``max_length - max_query_length - 3`` word pieces.  Before tokenising, a passage is cut
to ``100 * max_length`` characters (a BERT word piece never spans more than 100 characters, so the pieces
kept are the same); a megabyte-long hit costs no more than a long abstract.

Long documents (``passage_mode``):

    first   the passage's first word pieces, as above (the usual reranking of abstracts)
    maxp    the passage is cut into windows of ``passage_words`` whitespace-separated words, each starting
            ``stride`` words after the previous one (the last window ends at the last word), at most
            ``max_windows`` of them; each window is scored as a passage and the passage keeps the maximum
            (Dai & Callan, "Deeper Text Understanding for IR with Contextual Neural Language Modeling",
            SIGIR 2019: MaxP, 150-word windows, stride 75).  Words past the last window are not read.

Batches are sorted by token length and padded only to their longest pair (``backends.run_sorted``).
"""

from __future__ import annotations

import copy
import gc
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from nirbridge.workers.backends import Backend, Graph, bert_graph, graph_inputs, open_session, run_sorted
from nirbridge.workers.errors import BadInputError, DeadlineExceeded, InputFailure
from nirbridge.workers.metrics import observe_model_load
from nirbridge.workers.models import fingerprint, load_tokenizer, resolve_model
from nirbridge.workers.rerank_policy import cache_size

if TYPE_CHECKING:
    import torch

__all__ = [
    "CrossEncoder",
    "PassageMode",
    "cached_cross_encoder",
    "check_request",
    "loaded_cross_encoders",
    "scores_agree",
    "score_module",
    "word_windows",
]

PassageMode = Literal["first", "maxp"]
PASSAGE_MODES: tuple[str, ...] = get_args(PassageMode)
_MAX_PIECE_CHARS = 100  # BERT's WordPiece turns a longer word into one [UNK]


def score_module(path: Path) -> torch.nn.Module:
    """The sequence classifier with its score head: ``[batch, 1]`` float, the logit (1 label) or the
    log-odds ``z_1 - z_0`` (2 labels); see the module docstring."""
    from transformers import AutoModelForSequenceClassification

    classifier = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
    labels = int(classifier.config.num_labels)
    if labels not in (1, 2):
        raise ValueError(f"{path}: a cross-encoder has 1 or 2 labels, this one has {labels}")

    def score(output: Any, _attention_mask: torch.Tensor) -> torch.Tensor:
        logits = output.logits.float()
        return logits[:, :1] if labels == 1 else logits[:, 1:2] - logits[:, 0:1]

    return bert_graph(classifier, score)


def scores_agree(rows: np.ndarray, reference: np.ndarray) -> bool:
    """``choose_auto``'s gate for scores (the cosine of one-number rows is only their sign): every score
    within ``0.1 * max(1, max |reference|)`` of the reference's.  On the tests' model (probe scores up to 2.7)
    onnx-int8 (``u8u8``) is within 0.044 of torch-fp32 on the probe, onnx-fp32 within 1e-5."""
    a, b = np.ravel(rows), np.ravel(reference)
    tolerance = 0.1 * max(1.0, float(np.abs(b).max(initial=0.0)))
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= tolerance))


def word_windows(text: str, words: int, stride: int, max_windows: int) -> list[str]:
    """``text`` as windows of ``words`` whitespace-separated words, ``stride`` apart, at most
    ``max_windows`` (the last full window ends at the text's last word when the text is longer than one)."""
    tokens = text.split()
    if len(tokens) <= words:
        return [text]
    starts = list(range(0, len(tokens) - words, stride))[:max_windows]
    if len(starts) < max_windows:
        starts.append(len(tokens) - words)
    return [" ".join(tokens[s : s + words]) for s in starts]


def check_request(query: object, passages: object) -> list[str]:
    """The passages as a list of str; ``BadInputError`` naming every passage that is not a str, or the
    query when it is not a non-empty str.  An empty passage is fine: it gets the score of an empty text."""
    if not isinstance(query, str) or not query.strip():
        raise BadInputError([InputFailure(-1, f"the query must be a non-empty str, got {query!r:.60}")])
    if isinstance(passages, str) or not isinstance(passages, Sequence):
        kind = type(passages).__name__
        raise BadInputError([InputFailure(-1, f"passages must be a list of str, got {kind}")])
    failures = [
        InputFailure(i, f"expected a str, got {type(p).__name__}")
        for i, p in enumerate(passages)
        if not isinstance(p, str)
    ]
    if failures:
        raise BadInputError(failures)
    return list(passages)  # type: ignore[arg-type]


def _check_options(options: dict[str, Any]) -> None:
    """ValueError naming the first scoring option out of its range (the constructor's keywords)."""
    if options["passage_mode"] not in PASSAGE_MODES:
        raise ValueError(
            f"unknown passage_mode {options['passage_mode']!r}; choose one of {', '.join(PASSAGE_MODES)}"
        )
    if options["batch_size"] < 1:
        raise ValueError(f"batch_size must be >= 1, got {options['batch_size']}")
    if not 1 <= options["stride"] <= options["passage_words"]:
        raise ValueError(
            f"stride must be in [1, passage_words={options['passage_words']}], got {options['stride']}"
        )
    if options["max_windows"] < 1:
        raise ValueError(f"max_windows must be >= 1, got {options['max_windows']}")
    top = options["max_length"] - 4
    if not 1 <= options["max_query_length"] <= top:
        raise ValueError(
            f"max_query_length must be in [1, max_length - 4 = {top}], got {options['max_query_length']}"
        )


class CrossEncoder:
    """Scores (query, passage) pairs: ``CrossEncoder(model, backend=...)``, then ``.score(query,
    passages)``."""

    def __init__(
        self,
        model: str | os.PathLike[str],
        backend: Backend = "auto",
        *,
        max_length: int = 256,
        batch_size: int = 32,
        passage_mode: PassageMode = "first",
        passage_words: int = 150,
        stride: int = 75,
        max_windows: int = 16,
        max_query_length: int = 64,
    ) -> None:
        options = {
            "max_length": max_length,
            "batch_size": batch_size,
            "passage_mode": passage_mode,
            "passage_words": passage_words,
            "stride": stride,
            "max_windows": max_windows,
            "max_query_length": max_query_length,
        }
        _check_options(options)  # before loading: a bad option fails at once
        self.path = resolve_model(model)
        self.model = str(model)
        self.fingerprint = fingerprint(self.path)
        self.tokenizer = load_tokenizer(self.path)
        limit = int(self.tokenizer.model_max_length or 512)
        self._limit = 512 if limit > 100_000 else limit  # no declared limit: a huge sentinel
        self._set_options(options)
        config = json.loads((self.path / "config.json").read_text())
        self.num_labels = int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)
        names = graph_inputs(self.tokenizer)
        head = "xenc-logit" if self.num_labels == 1 else "xenc-logodds"
        # int8 recipe: on a first test model u8u8 scores were within 0.18 (mean 0.065) of onnx-fp32's over 48
        # SciFact pairs at 256 word pieces, u8s8-7bit (the dense encoder's) within 0.36 (mean 0.21), the
        # scores' standard deviation 0.78; u8u8 is also the faster of the two here (ONNX Runtime, AVX2).
        self.graph = Graph(self.path, head, score_module, names, int8="u8u8", agree=scores_agree)
        self.session = open_session(self.graph, backend)
        self.backend = self.session.backend

    def _set_options(self, options: dict[str, Any]) -> None:
        self.options = dict(options)
        self.max_length = min(int(options["max_length"]), self._limit)
        self.max_query_length = min(int(options["max_query_length"]), self.max_length - 4)
        self.batch_size = int(options["batch_size"])
        self.passage_mode: PassageMode = options["passage_mode"]
        self.passage_words = int(options["passage_words"])
        self.stride = int(options["stride"])
        self.max_windows = int(options["max_windows"])

    def configured(self, **params: Any) -> CrossEncoder:
        """This model with other scoring options (``PARAMS``, the constructor's keywords): a copy that shares
        the loaded tokenizer and session, so options cost no memory."""
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise ValueError(f"unknown cross-encoder params {unknown}; known: {', '.join(PARAMS)}")
        options = {**self.options, **params}
        if options == self.options:
            return self
        _check_options(options)
        twin = copy.copy(self)
        twin._set_options(options)
        return twin

    # --- tokenisation -------------------------------------------------------------------------------------

    def _pieces(self, texts: Sequence[str], limit: int) -> list[list[int]]:
        cut = [t[: limit * _MAX_PIECE_CHARS] for t in texts]
        encoded = self.tokenizer(cut, add_special_tokens=False, truncation=True, max_length=limit)[
            "input_ids"
        ]
        return [list(x) for x in encoded]

    def pair_ids(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]]]:
        """Word-piece ids and segment ids of each pair, truncated as the module docstring says."""
        queries = list(dict.fromkeys(q for q, _ in pairs))
        query_ids = dict(zip(queries, self._pieces(queries, self.max_query_length), strict=True))
        passages = self._pieces([p for _, p in pairs], self.max_length)
        ids: list[list[int]] = []
        types: list[list[int]] = []
        for (query, _), passage in zip(pairs, passages, strict=True):
            q = query_ids[query]
            p = passage[: self.max_length - len(q) - 3]
            ids.append(self._joined(q, p))
            types.append([0] * (len(q) + 2) + [1] * (len(p) + 1))
        return ids, types

    def _joined(self, q: list[int], p: list[int]) -> list[int]:
        """``[CLS] q [SEP] p [SEP]``, the BERT pair (transformers 5 tokenizers no longer build it)."""
        tokenizer = self.tokenizer
        return [tokenizer.cls_token_id, *q, tokenizer.sep_token_id, *p, tokenizer.sep_token_id]

    # --- scoring ------------------------------------------------------------------------------------------

    def _run(self, pairs: Sequence[tuple[str, str]], sort: bool, deadline: float | None) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        ids, types = self.pair_ids(pairs)

        def in_time(done: int, total: int) -> None:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(
                    f"the deadline passed after {done} of {total} batches ({len(pairs)} pairs): dropped"
                )

        rows = run_sorted(
            self.session,
            ids,
            self.tokenizer.pad_token_id or 0,
            self.graph.input_names,
            self.batch_size,
            lambda _i, row: float(row[0]),
            sort,
            type_ids=types,
            before_batch=in_time,
        )
        return np.asarray(rows, dtype=np.float32)

    def score_pairs(
        self, pairs: Sequence[tuple[str, str]], sort: bool = True, deadline: float | None = None
    ) -> np.ndarray:
        """float32 score per ``(query, passage)`` pair, in the order given (``passage_mode`` applies).

        ``deadline``: a ``time.monotonic()`` instant; when it passes, :class:`DeadlineExceeded` is raised
        before the next batch of ``batch_size`` pairs (a caller that has given up gets no more compute)."""
        for query, passage in pairs:
            check_request(query, [passage])
        if self.passage_mode == "first":
            return self._run(list(pairs), sort, deadline)
        owners: list[int] = []
        windows: list[tuple[str, str]] = []
        for i, (query, passage) in enumerate(pairs):
            for window in word_windows(passage, self.passage_words, self.stride, self.max_windows):
                windows.append((query, window))
                owners.append(i)
        scores = self._run(windows, sort, deadline)
        best = np.full(len(pairs), -np.inf, dtype=np.float32)
        np.maximum.at(best, np.asarray(owners, dtype=np.int64), scores)
        return best

    def score(
        self, query: str, passages: Sequence[str], sort: bool = True, deadline: float | None = None
    ) -> np.ndarray:
        """float32 score of each passage for ``query``, in the order given; ``BadInputError`` for a
        non-str passage or an empty query; ``DeadlineExceeded`` when ``deadline`` passes (``score_pairs``)."""
        checked = check_request(query, passages)
        return self.score_pairs([(query, p) for p in checked], sort, deadline)

    def rank(self, query: str, passages: Sequence[str], top_k: int | None = None) -> list[tuple[int, float]]:
        """``(index, score)`` of the passages, best first (ties keep the given order), the first ``top_k``."""
        scores = self.score(query, passages)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [(int(i), float(scores[i])) for i in order]


# --- one model per (model, backend) and process: what a worker or the proxy keeps loaded --------------------

_lock = threading.Lock()
# least recently used first; params are not part of the key: they share one loaded model (``configured``)
_loaded: OrderedDict[tuple[str, str], CrossEncoder] = OrderedDict()
_loads: dict[tuple[str, str], int] = {}
PARAMS = (
    "max_length",
    "batch_size",
    "passage_mode",
    "passage_words",
    "stride",
    "max_windows",
    "max_query_length",
)


def cached_cross_encoder(
    model: str, backend: str = "auto", params: dict[str, Any] | None = None
) -> CrossEncoder:
    """The process's :class:`CrossEncoder` for ``(model, backend)``, loaded on first use, with ``params``.

    ``params`` are :class:`CrossEncoder`'s keyword arguments (``PARAMS``); an unknown one is a ValueError.
    They only change how passages are cut and batched, so every params of one model share its one load.  At
    most ``NIRBRIDGE_RERANK_CACHE`` models (default 4) stay loaded: loading one more drops the least recently
    used.  The lock is held while loading: two requests for a cold model load it once.  Which models a
    request may name is the caller's check (workers.rerank_policy): this cache loads what it is given.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ValueError(f"unknown cross-encoder params {unknown}; known: {', '.join(PARAMS)}")
    key = (model, backend)
    with _lock:
        encoder = _loaded.get(key)
        if encoder is None:
            limit = cache_size()
            if len(_loaded) >= limit:
                while len(_loaded) >= limit:
                    _loaded.popitem(last=False)  # before loading: never more than the limit at once
                gc.collect()  # a dropped model's tensors sit in reference cycles: free them before the load
            started = time.perf_counter()
            encoder = CrossEncoder(model, backend)  # type: ignore[arg-type]
            observe_model_load("cross-encoder", model, time.perf_counter() - started)
            _loaded[key] = encoder
            _loads[key] = _loads.get(key, 0) + 1
        else:
            _loaded.move_to_end(key)
    return encoder.configured(**params)


def loaded_cross_encoders() -> list[dict[str, Any]]:
    """The cross-encoders this process holds: model, backend asked and running, fingerprint, loads."""
    with _lock:
        return [
            {
                "kind": "cross-encoder",
                "model": model,
                "backend": backend,
                "running_on": encoder.backend,
                "fingerprint": encoder.fingerprint,
                "loads": _loads[(model, backend)],
            }
            for (model, backend), encoder in _loaded.items()
        ]
