"""A quick cross-encoder from a BERT checkpoint and a BEIR training split: the seed of ``nirbridge train
reranker``.

    stats = train_quick_reranker("all-MiniLM-L6-v2", Path("../shared/data/scifact"), Path("/tmp/xenc"))

No trained cross-encoder can be downloaded here, so the tests and the benchmark make one: the checkpoint is
loaded as ``BertForSequenceClassification`` with ``num_labels=1`` (a fresh, randomly initialised score head on
the pretrained encoder) and trained for ``steps`` steps.  Each step takes ``queries`` training queries, and
for each one relevant document (qrels score > 0) and ``negatives`` documents drawn at random from the corpus
(not judged relevant for it), all tokenised as pairs at ``max_length`` (``only_second``).  The loss is the
softmax cross-entropy of the relevant document among its group (the listwise "localised contrastive" loss
of Gao et al., "Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline", ECIR 2021, with
random instead of retrieved negatives).  AdamW, linear warm-up over the first 10% of steps, then linear decay.

The embeddings and the lowest ``frozen_layers`` layers are not trained (their backward pass is saved).  The
defaults (60 steps of 8 x 2 pairs at 128 word pieces, 3 of 6 layers frozen) take 2-3 minutes on 2 shared
cores.  The result is a test model, not a good reranker: hard negatives from the first stage and longer
training are what the training issue adds.  Deterministic for a given seed on one machine; ``RECIPE`` names
the recipe (bump it when the training changes, so that models kept by callers are trained again).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

__all__ = ["RECIPE", "load_beir_split", "train_quick_reranker"]

RECIPE = "quick-listwise-random-negatives-v1"


def load_beir_split(
    dataset: Path, split: str = "train"
) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    """``(corpus id -> "title text", query id -> text, query id -> relevant doc ids)`` of a BEIR folder."""
    corpus: dict[str, str] = {}
    with (dataset / "corpus.jsonl").open() as fh:
        for line in fh:
            doc = json.loads(line)
            corpus[str(doc["_id"])] = f"{doc.get('title') or ''} {doc.get('text') or ''}".strip()
    queries: dict[str, str] = {}
    with (dataset / "queries.jsonl").open() as fh:
        for line in fh:
            query = json.loads(line)
            queries[str(query["_id"])] = str(query["text"])
    relevant: dict[str, list[str]] = {}
    with (dataset / "qrels" / f"{split}.tsv").open() as fh:
        next(fh)  # header
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0 and qid in queries and did in corpus:
                relevant.setdefault(qid, []).append(did)
    return corpus, queries, relevant


def train_quick_reranker(
    base: str | os.PathLike[str],
    dataset: Path,
    out: Path,
    *,
    steps: int = 60,
    queries: int = 8,
    negatives: int = 1,
    max_length: int = 128,
    frozen_layers: int = 3,
    learning_rate: float = 2e-4,
    seed: int = 0,
) -> dict[str, Any]:
    """Train a cross-encoder as the module docstring says; save it (and the tokenizer) into ``out``.

    Returns ``{"recipe", "steps", "seconds", "first_loss", "last_loss"}`` (losses averaged over the first and
    last 10 steps).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nirbridge.workers.models import resolve_model

    path = resolve_model(base)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    corpus, texts, relevant = load_beir_split(dataset, "train")
    doc_ids = sorted(corpus)
    query_ids = sorted(relevant)
    tokenizer = AutoTokenizer.from_pretrained(str(path), use_fast=True, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, local_files_only=True)
    # The embeddings and the lowest ``frozen_layers`` layers keep their pretrained weights: no gradient flows
    # through them, which saves most of the backward pass.
    for parameter in model.base_model.embeddings.parameters():
        parameter.requires_grad = False
    for layer in model.base_model.encoder.layer[:frozen_layers]:
        for parameter in layer.parameters():
            parameter.requires_grad = False
    model.train()
    trained = [q for q in model.parameters() if q.requires_grad]
    optimiser = torch.optim.AdamW(trained, lr=learning_rate, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    group = 1 + negatives
    losses: list[float] = []
    started = time.perf_counter()
    for _ in range(steps):
        firsts, seconds = [], []
        for qid in rng.sample(query_ids, queries):
            positives = relevant[qid]
            chosen = [rng.choice(positives)]
            while len(chosen) < group:
                candidate = rng.choice(doc_ids)
                if candidate not in positives and candidate not in chosen:
                    chosen.append(candidate)
            firsts += [texts[qid]] * group
            seconds += [corpus[d] for d in chosen]
        batch = tokenizer(
            firsts,
            seconds,
            truncation="longest_first",
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        logits = model(**batch).logits.view(queries, group)
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(queries, dtype=torch.long))
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    tail = max(1, min(10, steps))
    return {
        "recipe": RECIPE,
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 2),
        "first_loss": sum(losses[:tail]) / tail,
        "last_loss": sum(losses[-tail:]) / tail,
    }
