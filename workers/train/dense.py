"""`nirbridge train dense`: the bi-encoder fine-tuned DPR-style on a collection's judgments.

    summary = train_dense(data, Path("/work/models/dense-scifact"), epochs=3)

Karpukhin et al., "Dense Passage Retrieval for Open-Domain Question Answering", 2020: each batch holds
``batch_size`` (query, relevant document) pairs plus ``hard_negatives`` first-stage negatives per query
(``TrainingData.hard_negatives``: BM25 hits ranked ``skip_top`` + 1 .. ``depth`` that are not judged
relevant).  The loss is InfoNCE: softmax cross-entropy of each query's own positive among every document of
the batch (the other queries' positives and all the hard negatives), on similarities divided by
``temperature``.  A document the judgments call relevant to the query is masked out of its negatives (two
positives of one query in a batch, or a hard negative of one query that is relevant to another).

The model is the one the enrichment serves: ``workers.dense.pooled_module`` builds it from the base folder
with the base's own pooling and normalisation, so training optimises exactly the vectors that ``DenseEncoder``
computes (mean pooling + unit length for all-MiniLM-L6-v2).  AdamW with linear warm-up (10% of the steps) and
linear decay; batches in a seeded random order, each padded to its own longest text (no length sorting, so
a batch mixes short and long texts as the loss expects).

Validation after each epoch: exact dense retrieval of every dev query over a pool of candidate documents, the
union of the dev queries' BM25 top 100, scored with nDCG@10 (``validate.ndcg_at_10``).  A pool and not the
whole corpus because encoding a large corpus after every epoch costs more than the epoch itself on a CPU; the
pool holds every document BM25 would put in front of a dev query, so the measure still ranks a hard set, and
the untrained base is measured on the same pool (the baseline in the model card).  Without first-stage
candidates the pool is the whole corpus.  The best epoch is kept; training stops after ``patience`` epochs
without a better dev score.

The output is a complete sentence-transformers folder (the base's ``modules.json``, ``1_Pooling/``,
``sentence_bert_config.json``, tokenizer, with the trained weights), loadable by ``DenseEncoder``, ``nirbridge
enrich --dense PATH`` and sentence-transformers itself, plus the model card (``training.json``,
``README.md``).
"""

from __future__ import annotations

import copy
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nirbridge.workers.dense import pooled_module, read_pooling
from nirbridge.workers.models import load_tokenizer, resolve_model

from .card import write_model_card
from .data import TrainingData
from .lora import merged, with_lora
from .validate import ndcg_at_10, training_device

__all__ = ["DenseProgress", "train_dense"]

# event ("step", "dev") and what it reports: step -> {epoch, step, steps, loss}; dev -> {epoch, ndcg@10}
DenseProgress = Callable[[str, Mapping[str, float]], None]

# The base's weights are replaced by the trained ones; exports and caches of the base would be stale.
_NOT_COPIED = ("model.safetensors", "pytorch_model.bin", "README.md", "training.json", "onnx", "openvino")
_POOL_DEPTH = 100
_ENCODE_BATCH = 64


@dataclass(frozen=True)
class _Pair:
    query: str  # query id
    positive: str  # doc id judged relevant


def _check(**values: float) -> None:
    """Reject settings outside their range, naming the value (as Lucene's constructors do)."""
    positive = ("epochs", "batch_size", "learning_rate", "temperature", "max_length", "query_max_length")
    for name in positive:
        if values[name] <= 0:
            raise ValueError(f"{name} must be > 0, got {values[name]}")
    for name in ("hard_negatives", "skip_top", "lora_rank"):
        if values[name] < 0:
            raise ValueError(f"{name} must be >= 0, got {values[name]}")
    if values["depth"] <= values["skip_top"]:
        raise ValueError(f"depth must be > skip_top ({values['skip_top']}), got {values['depth']}")
    if values["patience"] < 1:
        raise ValueError(f"patience must be >= 1, got {values['patience']}")


def _batches(pairs: Sequence[_Pair], batch_size: int, rng: random.Random) -> Iterator[list[_Pair]]:
    """The pairs in a new random order, cut into batches (the last one may be smaller)."""
    order = list(pairs)
    rng.shuffle(order)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


class _BiEncoder:
    """The pooled model and its tokenizer, with the two encodings training needs."""

    def __init__(
        self, path: Path, lora_rank: int, max_length: int, query_max_length: int, device: Any
    ) -> None:
        self.path, self.device = path, device
        self.pooling = read_pooling(path)
        self.tokenizer = load_tokenizer(path / self.pooling.transformer_dir)
        self.module = pooled_module(path, self.pooling)
        if lora_rank:
            self.module.model = with_lora(self.module.model, rank=lora_rank)
        self.module.to(device)
        self.max_length, self.query_max_length = max_length, query_max_length

    def __call__(self, texts: Sequence[str], max_length: int) -> Any:
        """Unit (or unnormalised, as the base says) vectors ``[len(texts), d]``, padded to this batch."""
        import torch

        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        cuda = self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cuda and self.module.training):
            vectors = self.module(**{k: v.to(self.device) for k, v in batch.items()})
        return vectors.float()

    def encode(self, texts: Sequence[str], max_length: int) -> Any:
        """Vectors for retrieval, without gradients; batches sorted by length only to save padding."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(0)
        self.module.eval()
        with torch.no_grad():
            parts = [
                self([texts[i] for i in order[s : s + _ENCODE_BATCH]], max_length).cpu()
                for s in range(0, len(order), _ENCODE_BATCH)
            ]
            if parts:
                out = torch.empty((len(texts), parts[0].shape[1]))
                out[torch.tensor(order)] = torch.cat(parts)
        return out

    def parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        params = list(self.module.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def _hard_negatives(
    data: TrainingData, batch: Sequence[_Pair], count: int, skip_top: int, depth: int, rng: random.Random
) -> list[str]:
    """``count`` first-stage negatives per query of the batch, drawn at random from its ranks ``skip_top``
    + 1 .. ``depth`` (fewer where the query has fewer)."""
    drawn = []
    for pair in batch:
        candidates = data.hard_negatives(pair.query, skip_top=skip_top, depth=depth)
        drawn += rng.sample(candidates, min(count, len(candidates)))
    return drawn


def _dev_pool(data: TrainingData) -> list[str]:
    """The validation pool: the union of the dev queries' BM25 top 100, else the whole corpus."""
    pool = dict.fromkeys(doc for qid in data.dev for doc in data.dev_candidates(qid, _POOL_DEPTH))
    return [doc for doc in pool if doc in data.corpus] or list(data.corpus)


def _dev_ndcg(model: _BiEncoder, data: TrainingData, pool: Sequence[str]) -> float:
    """nDCG@10 of exact dense retrieval of the dev queries over ``pool``."""
    import torch

    qids = list(data.dev)
    docs = model.encode([data.corpus[doc] for doc in pool], model.max_length)
    queries = model.encode([data.queries[qid] for qid in qids], model.query_max_length)
    scores = queries @ docs.T
    top = torch.topk(scores, k=min(_POOL_DEPTH, len(pool)), dim=1)
    run = {
        qid: {pool[j]: float(s) for s, j in zip(values.tolist(), rows.tolist(), strict=True)}
        for qid, values, rows in zip(qids, top.values, top.indices, strict=True)
    }
    return ndcg_at_10(data.dev, run)


def _loss(
    model: _BiEncoder,
    data: TrainingData,
    batch: Sequence[_Pair],
    negatives: Sequence[str],
    temperature: float,
) -> Any:
    """InfoNCE over the batch: query i's label is document i (its positive); every other document of the
    batch is a negative unless judged relevant to query i."""
    import torch

    docs = [pair.positive for pair in batch] + list(negatives)
    q = model([data.queries[pair.query] for pair in batch], model.query_max_length)
    d = model([data.corpus[doc] for doc in docs], model.max_length)
    logits = q @ d.T / temperature
    relevant = [data.relevant(pair.query) for pair in batch]
    mask = torch.tensor(
        [[j != i and doc in relevant[i] for j, doc in enumerate(docs)] for i in range(len(batch))],
        device=logits.device,
    )
    logits = logits.masked_fill(mask, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(batch), device=logits.device))


def _save(model: _BiEncoder, base: Path, out: Path) -> None:
    """The base's sentence-transformers folder with the trained (LoRA-merged) transformer weights."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out, ignore=shutil.ignore_patterns(*_NOT_COPIED, ".*"))
    encoder = merged(model.module.model).to("cpu")
    encoder.save_pretrained(str(out / model.pooling.transformer_dir), safe_serialization=True)


def train_dense(
    data: TrainingData,
    out: Path,
    *,
    base: str = "all-MiniLM-L6-v2",
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    temperature: float = 0.05,
    max_length: int = 256,
    query_max_length: int = 64,
    hard_negatives: int = 1,
    skip_top: int = 3,
    depth: int = 50,
    lora_rank: int = 0,
    patience: int = 1,
    seed: int = 0,
    device: str = "auto",
    command: str = "",
    progress: DenseProgress | None = None,
) -> dict[str, Any]:
    """Fine-tune ``base`` on ``data.train``, keep the epoch with the best dev nDCG@10, write it to ``out``
    (replacing what is there) with its model card, and return the card's record plus ``best_epoch`` and
    ``parameters``.  ``device``: ``auto`` (CUDA with bf16 autocast where torch sees a GPU), ``cpu``, ``cuda``.

    ValueError for a setting out of range or data without dev queries.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    settings: dict[str, Any] = dict(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        temperature=temperature,
        max_length=max_length,
        query_max_length=query_max_length,
        hard_negatives=hard_negatives,
        skip_top=skip_top,
        depth=depth,
        lora_rank=lora_rank,
        patience=patience,
        seed=seed,
    )
    _check(**settings)
    where = training_device(device)
    settings["device"] = where.type
    if not data.dev:
        raise ValueError("no dev query to validate on (a dev split, or enough train queries to hold out)")
    started = time.monotonic()
    rng = random.Random(seed)
    torch.manual_seed(seed)
    base_path = resolve_model(base)
    model = _BiEncoder(base_path, lora_rank, max_length, query_max_length, where)
    trainable, total = model.parameters()
    pairs = [_Pair(qid, doc) for qid, docs in data.train.items() for doc in docs]
    steps_per_epoch = -(-len(pairs) // batch_size)
    optimizer = torch.optim.AdamW(
        [p for p in model.module.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.01
    )
    total_steps = steps_per_epoch * epochs
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * total_steps), total_steps)

    pool = _dev_pool(data)
    baseline = _dev_ndcg(model, data, pool)
    if progress is not None:
        progress("dev", {"epoch": 0, "ndcg@10": baseline})
    metrics = {"dev ndcg@10 base": baseline}
    best, best_epoch, best_state, step = float("-inf"), 0, None, 0
    for epoch in range(1, epochs + 1):
        model.module.train()
        for batch in _batches(pairs, batch_size, rng):
            negatives = _hard_negatives(data, batch, hard_negatives, skip_top, depth, rng)
            loss = _loss(model, data, batch, negatives, temperature)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.module.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if progress is not None:
                progress("step", {"epoch": epoch, "step": step, "steps": total_steps, "loss": loss.item()})
        score = _dev_ndcg(model, data, pool)
        metrics[f"dev ndcg@10 epoch {epoch}"] = score
        if progress is not None:
            progress("dev", {"epoch": epoch, "ndcg@10": score})
        if score > best:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(model.module.state_dict())
        elif epoch - best_epoch >= patience:
            break  # early stopping: no better dev score for `patience` epochs
    if best_state is not None:
        model.module.load_state_dict(best_state)
    metrics["dev ndcg@10 best"] = best
    _save(model, base_path, out)
    seconds = time.monotonic() - started
    how = data.source.get("candidates", "no first-stage candidates: the whole corpus")
    notes = (
        f"Dev nDCG@10 is exact dense retrieval over a pool of {len(pool)} documents (the union of the dev "
        f"queries' first-stage top {_POOL_DEPTH}; {how}), the base measured on the same pool. Best epoch: "
        f"{best_epoch} of {epoch} run. Trainable parameters: {trainable:,} of {total:,}. {len(pairs)} "
        f"(query, relevant document) pairs, {step} steps."
    )
    record = write_model_card(
        out,
        kind="dense",
        base=base,
        data=data,
        settings=settings,
        metrics=metrics,
        seconds=seconds,
        command=command,
        notes=notes,
        extra=dict(
            best_epoch=best_epoch,
            epochs_run=epoch,
            steps=step,
            pairs=len(pairs),
            dev_pool=len(pool),
            parameters={"trainable": trainable, "total": total},
        ),
    )
    return {**record, "out": str(out)}
