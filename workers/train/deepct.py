"""DeepCT: a token-level regressor that learns how important each word of a document is, from its queries.

    record = train_deepct(data, Path("/work/models/deepct-scifact"), epochs=4)
    TermWeighter("/work/models/deepct-scifact").weights(["Statins and breast cancer"])

Dai & Callan, "Context-Aware Term Weighting For First Stage Passage Retrieval", SIGIR 2020.  The base
checkpoint is loaded as ``BertForTokenClassification`` with ``num_labels=1`` (a fresh linear head on every
token's contextual embedding).  The target of a word of document d is its *query term recall*

    QTR(t, d) = |{q in Q_d : t in q}| / |Q_d|

over Q_d, the train queries judged relevant to d (grade > 0).  Words are the tokenizer's pre-tokenisation
(BERT: whitespace and punctuation split, lower-cased by the uncased tokenizer's normaliser), split as
``term_weights.words_of`` splits them for enrichment.  A document word and a query word match when their
*Porter stems* are equal (PyStemmer's ``porter`` on the lower-cased word): "statins" in a document earns the
recall of queries that say "statin".  The target goes on a word's first word piece; the other pieces, special
tokens, padding and words without a letter or digit are masked out of the loss.  The loss is the mean squared
error over the unmasked pieces of the documents that have relevant queries (DeepCT trains on those only).

Validation after every epoch, on the dev judgments: the same loss on the dev queries' relevant documents, and
a retrieval check that is cheap on a CPU: every dev query ranks a pool of documents (each dev query's
first-stage top ``pool_depth`` when the data has candidates, else the dev queries' relevant documents plus
``pool_size`` random ones) by ``sum over its words w of idf(w) x weight(w, d)`` (the ``terms`` mode's
query, IDF over the pool), scored by nDCG@10.  The epoch with the best dev nDCG@10 (ties: the lower dev loss)
is kept and saved with its tokenizer and a model card.  The same nDCG with every word of the document weighing
1 (plain term matching, no model) is reported beside it as the bar the weights must clear.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nirbridge.workers.backends import graph_inputs, length_batches, pad, run_sorted
from nirbridge.workers.models import load_tokenizer, resolve_model
from nirbridge.workers.term_weights import Word, own_weights, words_of

from .card import write_model_card
from .data import TrainingData
from .validate import ndcg_at_10

__all__ = ["MATCH_FORM", "match_form", "term_recall", "train_deepct"]

MATCH_FORM = "Porter stem (PyStemmer 'porter') of the lower-cased tokenizer word"
_stemmer: Any = None


def match_form(word: str) -> str:
    """The form in which a document word and a query word are compared: the Porter stem of the lower-cased
    word."""
    global _stemmer
    if _stemmer is None:
        import Stemmer

        _stemmer = Stemmer.Stemmer("porter")
    return str(_stemmer.stemWord(word.lower()))


def term_recall(words: Sequence[str], queries: Sequence[set[str]]) -> list[float]:
    """``QTR`` of each word: the fraction of ``queries`` (each a set of match forms) that contain its match
    form."""
    if not queries:
        raise ValueError("term recall needs at least one relevant query")
    return [sum(match_form(w) in q for q in queries) / len(queries) for w in words]


def _content(word: Word) -> bool:
    return any(c.isalnum() for c in word.text)


class _Examples:
    """Documents tokenised with their per-piece targets and loss mask (1 on each content word's first
    piece)."""

    def __init__(
        self,
        tokenizer: Any,
        corpus: Mapping[str, str],
        queries: Mapping[str, str],
        relevant: Mapping[str, Sequence[str]],
        max_length: int,
    ) -> None:
        doc_ids = sorted(relevant)
        query_ids = sorted({q for qs in relevant.values() for q in qs})
        encoded_queries = tokenizer([queries[q] for q in query_ids], truncation=True, max_length=max_length)
        forms = {
            q: {match_form(w.text) for w in words_of(encoded_queries, i) if _content(w)}
            for i, q in enumerate(query_ids)
        }
        encoded = tokenizer([corpus[d] for d in doc_ids], truncation=True, max_length=max_length)
        self.ids: list[list[int]] = [list(x) for x in encoded["input_ids"]]
        self.targets: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        for i, doc in enumerate(doc_ids):
            words = [w for w in words_of(encoded, i) if _content(w)]
            target = np.zeros(len(self.ids[i]), dtype=np.float32)
            mask = np.zeros(len(self.ids[i]), dtype=np.float32)
            recall = term_recall([w.text for w in words], [forms[q] for q in relevant[doc]])
            for word, value in zip(words, recall, strict=True):
                target[word.position], mask[word.position] = value, 1.0
            self.targets.append(target)
            self.masks.append(mask)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(
        self, rows: Sequence[int], pad_id: int, names: Sequence[str]
    ) -> tuple[dict[str, Any], Any, Any]:
        """Padded model inputs, targets and mask for ``rows``, as torch tensors."""
        import torch

        arrays = pad([self.ids[r] for r in rows], pad_id, names)
        width = arrays["input_ids"].shape[1]
        target = np.zeros((len(rows), width), dtype=np.float32)
        mask = np.zeros_like(target)
        for j, r in enumerate(rows):
            target[j, : len(self.targets[r])] = self.targets[r]
            mask[j, : len(self.masks[r])] = self.masks[r]
        inputs = {n: torch.from_numpy(a) for n, a in arrays.items()}
        return inputs, torch.from_numpy(target), torch.from_numpy(mask)


def _masked_mse(predicted: Any, target: Any, mask: Any) -> Any:
    return ((predicted - target) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)


class _LiveSession:
    """The model being trained as a backend session (``run_sorted`` batches and pads for it)."""

    backend = "torch-fp32"

    def __init__(self, model: Any, names: Sequence[str]) -> None:
        self.model, self.names = model, names

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            args = {n: torch.from_numpy(inputs[n]) for n in self.names}
            return self.model(**args).logits[..., 0].float().numpy()


def _idf_ranking(
    pool: Mapping[str, Mapping[str, float]], query_words: Mapping[str, Sequence[str]], depth: int = 100
) -> dict[str, dict[str, float]]:
    """Each query's top ``depth`` of ``pool`` by ``sum_w idf(w) x weight(w, d)``, Lucene's BM25 idf over the
    pool: ``ln(1 + (N - n + 0.5) / (n + 0.5))``, n the pool documents that have w (as the terms mode)."""
    counts: dict[str, int] = {}
    for weights in pool.values():
        for word in weights:
            counts[word] = counts.get(word, 0) + 1
    total = len(pool)
    run: dict[str, dict[str, float]] = {}
    for qid, words in query_words.items():
        idf = {w: math.log(1 + (total - counts[w] + 0.5) / (counts[w] + 0.5)) for w in words if w in counts}
        scores = {
            doc: s
            for doc, weights in pool.items()
            if (s := sum(v * weights.get(w, 0.0) for w, v in idf.items()))
        }
        run[qid] = dict(sorted(scores.items(), key=lambda kv: -kv[1])[:depth])
    return run


class _DevPool:
    """The retrieval check: each dev query ranks a pool of documents by ``sum_w idf(w) x weight(w, d)``.

    The pool is the dev queries' candidates (top ``depth``) when the data has them, else ``size`` documents
    drawn at random (seeded), plus every document relevant to a dev query.
    """

    def __init__(
        self, data: TrainingData, tokenizer: Any, max_length: int, depth: int, size: int, seed: int
    ) -> None:
        pool: set[str] = set()
        for qid in data.dev:
            pool |= data.relevant(qid)
            pool.update(data.dev_candidates(qid, depth))
        candidates = any(data.ranked.get(qid) for qid in data.dev)
        if data.dev and not candidates:
            rest = sorted(set(data.corpus) - pool)
            pool.update(random.Random(seed).sample(rest, min(size, len(rest))))
        self.qrels = data.dev
        self.doc_ids = sorted(pool)
        how = f"candidates top {depth}" if candidates else f"{size} random"
        self.described = f"{len(self.doc_ids)} documents ({how} + relevant)"
        self.tokens: list[list[int]] = []
        self.words: list[list[Word]] = []
        if self.doc_ids:
            encoded = tokenizer(
                [data.corpus[d] for d in self.doc_ids], truncation=True, max_length=max_length
            )
            self.tokens = [list(x) for x in encoded["input_ids"]]
            self.words = [words_of(encoded, i) for i in range(len(self.doc_ids))]
        self.query_words: dict[str, list[str]] = {}
        for qid in data.dev:
            encoded = tokenizer([data.queries[qid]], truncation=True, max_length=max_length)
            self.query_words[qid] = list(dict.fromkeys(w.text for w in words_of(encoded, 0) if _content(w)))

    def ndcg(self, weights: Sequence[dict[str, float]]) -> float | None:
        """Dev nDCG@10 when the pool's documents weigh ``weights``; None without a pool."""
        if not self.doc_ids:
            return None
        ranked = _idf_ranking(dict(zip(self.doc_ids, weights, strict=True)), self.query_words)
        return ndcg_at_10(self.qrels, ranked)

    def uniform(self) -> float | None:
        """Dev nDCG@10 with every word of a document weighing 1 (plain term matching, no model)."""
        return self.ndcg([own_weights(words, lambda _w: 1.0) for words in self.words])

    def of_model(self, model: Any, names: Sequence[str], pad_id: int, batch_size: int) -> float | None:
        """Dev nDCG@10 with the weights ``model`` predicts (as ``TermWeighter`` turns them into weights)."""
        if not self.doc_ids:
            return None

        def own(i: int, row: np.ndarray) -> dict[str, float]:
            return own_weights(self.words[i], lambda w: max(0.0, float(row[w.position])))

        return self.ndcg(run_sorted(_LiveSession(model, names), self.tokens, pad_id, names, batch_size, own))


def _dev_loss(model: Any, dev: _Examples, pad_id: int, names: Sequence[str], batch_size: int) -> float:
    """The masked MSE over every unmasked piece of the dev documents (not a mean of batch means)."""
    import torch

    total, count = 0.0, 0.0
    with torch.inference_mode():
        for rows in length_batches([len(x) for x in dev.ids], batch_size):
            inputs, target, mask = dev.batch(rows, pad_id, names)
            predicted = model(**inputs).logits[..., 0]
            total += float(((predicted - target) ** 2 * mask).sum())
            count += float(mask.sum())
    return total / max(count, 1.0)


def _freeze(model: Any, layers: int) -> list[Any]:
    """Freeze the embeddings and the lowest ``layers`` layers (no backward pass through them); return the
    parameters that still train."""
    stack = model.base_model.encoder.layer
    if layers > len(stack):
        raise ValueError(f"frozen_layers must be <= {len(stack)}, got {layers}")
    for module in [model.base_model.embeddings, *stack[:layers]] if layers else []:
        for parameter in module.parameters():
            parameter.requires_grad = False
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def _check(epochs: int, batch_size: int, lr: float, max_length: int, frozen_layers: int) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3 (two special tokens and a word piece), got {max_length}")
    if frozen_layers < 0:
        raise ValueError(f"frozen_layers must be >= 0, got {frozen_layers}")


def train_deepct(
    data: TrainingData,
    out: Path,
    *,
    base: str = "all-MiniLM-L6-v2",
    epochs: int = 4,
    batch_size: int = 16,
    lr: float = 5e-5,
    max_length: int = 256,
    seed: int = 0,
    pool_depth: int = 30,
    pool_size: int = 500,
    frozen_layers: int = 0,
    progress: bool = False,
    command: str = "",
) -> dict[str, Any]:
    """Train a DeepCT model from ``base`` on ``data``'s judgments as the module docstring says; save the best
    epoch into ``out`` (model, tokenizer, ``training.json``, ``README.md``) and return the card's record plus
    ``history`` (per epoch: train loss, dev loss, dev nDCG@10).

    ValueError for settings out of range or data without a train document that has a relevant query.
    """
    _check(epochs, batch_size, lr, max_length, frozen_layers)
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForTokenClassification, get_linear_schedule_with_warmup

    started = time.perf_counter()
    path = resolve_model(base)
    tokenizer = load_tokenizer(path)
    names = graph_inputs(tokenizer)
    pad_id = tokenizer.pad_token_id or 0
    max_length = min(max_length, int(tokenizer.model_max_length or max_length))

    def by_document(judged: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        docs: dict[str, list[str]] = {}
        for qid, relevant in judged.items():
            for doc in relevant:
                if data.corpus.get(doc, "").strip():
                    docs.setdefault(doc, []).append(qid)
        return docs

    train_docs = by_document(data.train)
    if not train_docs:
        raise ValueError("no train document has a relevant query and text: nothing to learn term recall from")
    dev_docs = by_document({qid: sorted(data.relevant(qid)) for qid in data.dev})
    train = _Examples(tokenizer, data.corpus, data.queries, train_docs, max_length)
    dev = _Examples(tokenizer, data.corpus, data.queries, dev_docs, max_length) if dev_docs else None
    pool = _DevPool(data, tokenizer, max_length, pool_depth, pool_size, seed)
    uniform = pool.uniform()

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = AutoModelForTokenClassification.from_pretrained(str(path), num_labels=1, local_files_only=True)
    trained = _freeze(model, frozen_layers)
    optimiser = torch.optim.AdamW(trained, lr=lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(train) / batch_size)
    schedule = get_linear_schedule_with_warmup(optimiser, max(1, steps // 10), steps)

    history: list[dict[str, Any]] = []
    best: tuple[float, float] | None = None
    best_state: dict[str, Any] | None = None
    with tqdm(total=steps, desc="deepct", unit="step", disable=not progress) as bar:
        for epoch in range(1, epochs + 1):
            model.train()
            order = list(range(len(train)))
            rng.shuffle(order)
            losses: list[float] = []
            for start in range(0, len(order), batch_size):
                inputs, target, mask = train.batch(order[start : start + batch_size], pad_id, names)
                loss = _masked_mse(model(**inputs).logits[..., 0], target, mask)
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trained, 1.0)
                optimiser.step()
                schedule.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses[-20:]):.4f}", refresh=False)
            model.eval()
            dev_loss = _dev_loss(model, dev, pad_id, names, batch_size) if dev is not None else None
            ndcg = pool.of_model(model, names, pad_id, batch_size)
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": float(np.mean(losses)),
                    "dev_loss": dev_loss,
                    "dev_ndcg@10": ndcg,
                }
            )
            # higher nDCG first, then lower loss; without dev data every epoch ties and the last one is kept
            key = (ndcg if ndcg is not None else 0.0, -(dev_loss if dev_loss is not None else 0.0))
            if best is None or key >= best:
                best, best_state = key, copy.deepcopy(model.state_dict())
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    chosen = max(history, key=lambda h: (h["dev_ndcg@10"] or 0.0, -(h["dev_loss"] or 0.0), h["epoch"]))
    metrics = {"best epoch": chosen["epoch"], "train loss": chosen["train_loss"]}
    if chosen["dev_loss"] is not None:
        metrics["dev loss (MSE)"] = chosen["dev_loss"]
    if chosen["dev_ndcg@10"] is not None and uniform is not None:
        metrics["dev ndcg@10 (pool, idf x weight)"] = chosen["dev_ndcg@10"]
        metrics["dev ndcg@10 (pool, uniform weights)"] = uniform
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "max_length": max_length,
        "seed": seed,
        "frozen_layers": frozen_layers,
        "target": "query term recall over the document's relevant train queries",
        "match_form": MATCH_FORM,
        "loss": "MSE on each content word's first word piece",
        "train_documents": len(train),
        "dev_documents": len(dev) if dev is not None else 0,
        "dev_pool": pool.described,
    }
    record = write_model_card(
        out,
        kind="deepct",
        base=base,
        data=data,
        settings=settings,
        metrics=metrics,
        seconds=time.perf_counter() - started,
        command=command,
        notes=f"Per-epoch history: {history}",
    )
    return {**record, "history": history}
