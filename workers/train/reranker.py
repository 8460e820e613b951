"""`nirbridge train reranker`: a cross-encoder fine-tuned on a collection's judgments, validated by reranking.

    record = train_reranker(data, Path("/work/models/reranker-scifact"), base="all-MiniLM-L6-v2", steps=300)

The model is the checkpoint ``base`` loaded as ``BertForSequenceClassification`` with one label (the score a
:class:`~nirbridge.workers.cross_encoder.CrossEncoder` reads); a ``base`` that is such a model already (a
reranker trained before) keeps its head, so a run can go on from an earlier one. Each optimiser step sees
``queries x accumulation`` groups; a group is one relevant document and ``group - 1`` negatives: the first
stage's hits ranked ``skip_top + 1 .. depth`` that are not judged relevant (``TrainingData.hard_negatives``),
topped up with random corpus documents when a query has too few (or no candidates at all, as in the tests'
quick model). The loss is the softmax cross-entropy of the relevant document within its group: the listwise
"localised contrastive estimation" of Gao et al., "Rethink Training of BERT Rerankers in Multi-Stage Retrieval
Pipeline", ECIR 2021. AdamW, linear warm-up over ``warmup`` of the steps, then linear decay; gradients clipped
at 1.

Training runs on the very model a CrossEncoder scores with (its torch-fp32 session), so pairs are tokenised
exactly as they are when serving (``only_second`` at ``max_length``, the query cut at 64 word pieces).

``head`` is where the score comes from:

    cls    the classifier on BERT's pooler over the [CLS] state (a fresh head; the usual cross-encoder)
    mean   a seventh transformer layer appended and initialised so that its [CLS] output is the LayerNorm
           of the masked mean of the sixth layer's states (query and key weights zero: uniform attention;
           values the identity; the feed-forward block adds zero).  all-MiniLM-L6-v2 was trained with mean
           pooling, never with its [CLS] state; this head starts from the pooling it knows and can learn to
           attend.  The result is a plain 7-layer ``BertForSequenceClassification``: it loads, exports and
           serves like any other.  The default: it learned faster than ``cls`` in the one comparison made
           here (below).

Validation (every ``validate_every`` steps and at the end): each dev query's first-stage top ``dev_depth``
(default 20, to keep it cheap on a CPU: 81 SciFact dev queries x 20 pairs at 128 word pieces take about 2.5
minutes on two busy cores) is reranked, and nDCG@10 is compared with the first stage's own order on the same
candidates. The best checkpoint is kept; ``patience`` validations without improvement stop the run. With no
dev candidates there is no validation and the last checkpoint is kept.

The kept model and its tokenizer are saved into ``out``; with ``export=True`` the ONNX graphs of
:mod:`nirbridge.workers.backends` (fused fp32 and dynamic int8, the ones the serving backends run) are copied
into ``out/onnx/``, and the int8 scores' Spearman correlation with fp32 on the dev pairs goes into the model
card (``training.json`` and ``README.md``, :func:`~nirbridge.workers.train.card.write_model_card`).  A
model that reranks dev worse than its first stage says so in its card.

Measured here (SciFact, dev = 81 train queries held out, BM25 top 20 reranked; BM25's own nDCG@10 on them
0.6714; two CPU cores shared with six other jobs, so a run got a fraction of them; groups of 8 with
negatives from BM25 ranks 4-50, 4 x 2 groups a step, lr 1e-4, 128 word pieces, embeddings and 2 layers
frozen):

    =================================================  ==============  ===============  ==========
    run                                                steps           dev nDCG@10      wall time
    =================================================  ==============  ===============  ==========
    cls head                                           20              0.405            19 min *
    mean head                                          20 / 40         0.440 / 0.552    35 min *
    the latter, 40 steps more (warm-up again)          60 / 80         0.579 / 0.596    30 min
    the 80-step model, 120 steps more, CPU idle        120/160/200     0.612/0.654/0.672  12 min
    =================================================  ==============  ===============  ==========

    * two runs side by side (the cls run was stopped at step 30 to give the mean run the CPU)

With the CPU to itself a step takes about 6 s (40-50 s while shared): 200 steps (about 13,000 pairs) reach
BM25's dev nDCG@10 (0.672 against 0.671), still rising; cross-encoders are usually trained on hundreds of
thousands of pairs.  int8 against fp32 on the 80-step model's first 300 dev pairs: Spearman 0.994.  The
defaults are the recipe measured above, with more steps.

On a GPU (one H100, ``device="cuda"``, bf16 autocast; the same recipe with 16 groups a step, 1500-2000 steps,
validation every 150-200) a step takes 60-80 ms and the whole run two minutes
(``scripts/train_prepared.py``, which trains from a data file prepared where the cluster is):

    ===========================================  ==========  ====================  ==========  =========
    run                                          best step   dev nDCG@10 (BM25)    first stage  wall time
    ===========================================  ==========  ====================  ==========  =========
    SciFact train, lr 1e-4                       1200        0.757                 0.671        1.9 min
    NFCorpus train, lr 1e-4                      1000        0.292                 0.304        2.0 min
    NFCorpus train, lr 3e-5, 32 groups a step    3600        0.287                 0.304        4.3 min
    SciFact + NFCorpus merged, lr 5e-5, 32 groups 900        0.325                 0.392        7.5 min
    ===========================================  ==========  ====================  ==========  =========

SciFact test, BM25's top 100 reranked (``nirbridge eval``, onnx-int8, 128 word pieces): 0.727 against BM25's
0.671, and 0.782 with ``--rerank-weight 0.5`` (the cross-encoder's and BM25's min-max normalised scores
averaged).  On NFCorpus the reranker alone stays below BM25 on dev (graded, incomplete judgments, many
relevant documents per query); the SciFact model there: 0.268 against 0.304.
"""

from __future__ import annotations

import copy
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .card import write_model_card
from .data import TrainingData
from .validate import ndcg_at_10

if TYPE_CHECKING:
    import torch

    from nirbridge.workers.backends import Backend
    from nirbridge.workers.cross_encoder import CrossEncoder

__all__ = ["HEADS", "QUICK", "RECIPE", "Head", "train_reranker"]

Head = Literal["cls", "mean"]
HEADS: tuple[str, ...] = ("cls", "mean")
RECIPE = "listwise-bm25-negatives-v3"  # bump when the training changes: callers that cache models retrain

# The tests' and the benchmark's model: two to three minutes on two shared cores, no first stage needed
# (random negatives), no validation, no ONNX export.  A test model, not a good reranker.
QUICK: dict[str, Any] = {
    "steps": 60,
    "queries": 8,
    "accumulation": 1,
    "group": 2,
    "max_length": 128,
    "frozen_layers": 3,
    "learning_rate": 2e-4,
    "head": "cls",
    "validate_every": 0,
    "export": False,
}


def _check(**values: Any) -> None:
    """ValueError naming the first setting outside its range."""
    minimum = {
        "steps": 1,
        "queries": 1,
        "accumulation": 1,
        "group": 2,
        "max_length": 16,
        "dev_depth": 1,
        "patience": 1,
        "validate_every": 0,
        "lora_rank": 0,
        "frozen_layers": 0,
        "skip_top": 0,
    }
    for name, low in minimum.items():
        if name in values and values[name] < low:
            raise ValueError(f"{name} must be >= {low}, got {values[name]}")
    if not 0.0 < values["learning_rate"] < 1.0:
        raise ValueError(f"learning_rate must be in (0, 1), got {values['learning_rate']}")
    if not 0.0 <= values["warmup"] < 1.0:
        raise ValueError(f"warmup must be in [0, 1), got {values['warmup']}")
    if values["depth"] <= values["skip_top"]:
        raise ValueError(f"depth must be > skip_top={values['skip_top']}, got {values['depth']}")
    if values["head"] not in HEADS:
        raise ValueError(f"unknown head {values['head']!r}; choose one of {', '.join(HEADS)}")


def _append_mean_pooling(model: Any) -> None:
    """Append a layer whose [CLS] output is LayerNorm(mean of the last layer's unmasked states); see the
    module docstring.  The pooler becomes the identity before its tanh, so the classifier starts on it."""
    import torch

    encoder, config = model.base_model.encoder, model.config
    layer = copy.deepcopy(encoder.layer[-1])
    hidden = config.hidden_size
    eye = torch.eye(hidden)
    with torch.no_grad():
        attention = layer.attention.self
        for linear in (attention.query, attention.key):  # all-zero scores: uniform over unmasked keys
            linear.weight.zero_()
            linear.bias.zero_()
        # values scaled up so the mean outweighs the [CLS] state the residual adds before the LayerNorm
        attention.value.weight.copy_(8.0 * eye)
        attention.value.bias.zero_()
        layer.attention.output.dense.weight.copy_(eye)
        layer.attention.output.dense.bias.zero_()
        layer.attention.output.LayerNorm.weight.fill_(1.0)
        layer.attention.output.LayerNorm.bias.zero_()
        layer.output.dense.weight.zero_()  # the feed-forward block adds nothing at first
        layer.output.dense.bias.zero_()
        layer.output.LayerNorm.weight.fill_(1.0)
        layer.output.LayerNorm.bias.zero_()
        model.base_model.pooler.dense.weight.copy_(eye)
        model.base_model.pooler.dense.bias.zero_()
    encoder.layer.append(layer)
    config.num_hidden_layers += 1


def _is_cross_encoder(base: Path) -> bool:
    """Whether ``base`` is already a one-logit sequence classifier (a reranker to train further)."""
    import json

    config = json.loads((base / "config.json").read_text())
    classifier = any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or ())
    return classifier and len(config.get("id2label") or {}) == 1


def _initial_model(base: Path, head: Head, scratch: Path) -> None:
    """Save ``base`` with a one-logit score head (and the tokenizer) into ``scratch``; a base that is a
    cross-encoder already keeps its own head (training goes on from it)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging

    # the warning that the score head is newly initialised is the point here, not news
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(base), num_labels=1, local_files_only=True
        )
    finally:
        logging.set_verbosity(verbosity)
    if head == "mean" and not _is_cross_encoder(base):
        _append_mean_pooling(model)
    model.save_pretrained(str(scratch))
    AutoTokenizer.from_pretrained(str(base), use_fast=True, local_files_only=True).save_pretrained(
        str(scratch)
    )


def _groups(
    data: TrainingData, qids: Sequence[str], group: int, skip_top: int, depth: int, rng: random.Random
) -> list[tuple[str, list[str]]]:
    """``(query, [positive, negative, ...])`` texts per query: hard negatives, random ones to fill."""
    docs = list(data.corpus)
    out = []
    for qid in qids:
        relevant = data.relevant(qid)
        hard = data.hard_negatives(qid, skip_top=skip_top, depth=depth)
        chosen = rng.sample(hard, min(group - 1, len(hard)))
        while len(chosen) < group - 1:
            doc = rng.choice(docs)
            if doc not in relevant and doc not in chosen:
                chosen.append(doc)
        positive = rng.choice(sorted(data.train[qid]))
        out.append((data.queries[qid], [data.corpus[doc] for doc in (positive, *chosen)]))
    return out


def _batch(encoder: CrossEncoder, groups: Sequence[tuple[str, list[str]]]) -> dict[str, torch.Tensor]:
    """The groups' pairs as torch tensors, tokenised as the serving path tokenises them."""
    import torch

    from nirbridge.workers.backends import pad

    pairs = [(query, passage) for query, passages in groups for passage in passages]
    ids, types = encoder.pair_ids(pairs)
    arrays = pad(ids, encoder.tokenizer.pad_token_id or 0, encoder.graph.input_names, types)
    return {name: torch.from_numpy(array) for name, array in arrays.items()}


def _dev_pairs(data: TrainingData, depth: int) -> list[tuple[str, str, int]]:
    """``(qid, doc id, first-stage rank)`` of every dev query's top ``depth``."""
    return [
        (qid, doc, rank)
        for qid in sorted(data.dev)
        for rank, doc in enumerate(data.dev_candidates(qid, depth))
    ]


def _ndcg(data: TrainingData, pairs: Sequence[tuple[str, str, int]], scores: Sequence[float]) -> float:
    run: dict[str, dict[str, float]] = {}
    for (qid, doc, _rank), score in zip(pairs, scores, strict=True):
        run.setdefault(qid, {})[doc] = float(score)
    return ndcg_at_10(data.dev, run)


def _score(encoder: CrossEncoder, data: TrainingData, pairs: Sequence[tuple[str, str, int]]) -> list[float]:
    texts = [(data.queries[qid], data.corpus[doc]) for qid, doc, _rank in pairs]
    return [float(s) for s in encoder.score_pairs(texts)]


def _encoder(path: Path, backend: Backend, max_length: int) -> CrossEncoder:
    """A CrossEncoder over ``path`` at ``max_length``; the query keeps its usual 64 pieces where they fit."""
    from nirbridge.workers.cross_encoder import CrossEncoder

    return CrossEncoder(path, backend, max_length=max_length, max_query_length=min(64, max_length - 4))


def _export(out: Path, encoder_pairs: Sequence[tuple[str, str]], max_length: int) -> dict[str, float]:
    """Export ``out`` through the serving backends (fused fp32, int8), copy the graphs into ``out/onnx``, and
    return the int8 scores' Spearman correlation with fp32 on ``encoder_pairs``."""
    from scipy.stats import spearmanr

    from nirbridge.workers.models import cache_dir

    fp32, int8 = _encoder(out, "onnx-fp32", max_length), _encoder(out, "onnx-int8", max_length)
    metrics: dict[str, float] = {}
    if encoder_pairs:
        a, b = fp32.score_pairs(encoder_pairs), int8.score_pairs(encoder_pairs)
        metrics["int8 vs fp32 spearman (dev pairs)"] = float(spearmanr(a, b).statistic)
        metrics["int8 vs fp32 max abs diff"] = float(abs(a - b).max())
    # open_session caches exports under cache_dir()/onnx/<graph key>; the key hashes the folder, which the
    # copies change, so the cache is seeded under the new key too: the first load of `out` exports nothing.
    before = cache_dir() / "onnx" / fp32.graph.key
    (out / "onnx").mkdir(exist_ok=True)
    shutil.copy2(before / "model-opt.onnx", out / "onnx" / "model-fp32.onnx")
    shutil.copy2(before / "model-int8.onnx", out / "onnx" / "model-int8.onnx")
    after = cache_dir() / "onnx" / fp32.graph.key
    if after != before and not after.exists():
        shutil.copytree(before, after)
    return metrics


def train_reranker(
    data: TrainingData,
    out: Path,
    *,
    base: str = "all-MiniLM-L6-v2",
    steps: int = 300,
    queries: int = 4,
    accumulation: int = 2,
    group: int = 8,
    skip_top: int = 3,
    depth: int = 50,
    learning_rate: float = 1e-4,
    warmup: float = 0.1,
    max_length: int = 128,
    head: Head = "mean",
    frozen_layers: int = 2,
    lora_rank: int = 0,
    validate_every: int = 20,
    patience: int = 3,
    dev_depth: int = 20,
    export: bool = True,
    seed: int = 0,
    device: str = "auto",
    max_seconds: float | None = None,
    command: str = "",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train as the module docstring says; save the best checkpoint, its ONNX graphs and the model card into
    ``out``.  ``device`` is ``auto`` (CUDA where torch sees a GPU, there with bf16 autocast; else the CPU
    in fp32), ``cpu`` or ``cuda``.  ``max_seconds`` ends training after that much wall time (then it
    validates and keeps the best checkpoint as usual).  ``progress`` gets a dict after every step (``step``,
    ``loss``) and validation (``dev ndcg@10``).  Returns the card's record (``training.json``): settings,
    metrics, wall time.

    ValueError for a setting out of range; the base model's errors (ModelNotFoundError) pass through.
    """
    settings = {
        "recipe": RECIPE,
        "base": base,
        "steps": steps,
        "queries": queries,
        "accumulation": accumulation,
        "effective batch (groups)": queries * accumulation,
        "group": group,
        "skip_top": skip_top,
        "depth": depth,
        "learning_rate": learning_rate,
        "warmup": warmup,
        "max_length": max_length,
        "head": head,
        "frozen_layers": frozen_layers,
        "lora_rank": lora_rank,
        "validate_every": validate_every,
        "patience": patience,
        "dev_depth": dev_depth,
        "seed": seed,
    }
    _check(**settings)
    import torch

    from nirbridge.workers.models import resolve_model

    from .lora import merged, with_lora
    from .validate import training_device

    where = training_device(device)
    settings["device"] = where.type

    started = time.perf_counter()
    rng = random.Random(seed)
    torch.manual_seed(seed)
    scratch = Path(tempfile.mkdtemp(prefix=".reranker-", dir=out.parent if out.parent.exists() else None))
    try:
        _initial_model(resolve_model(base), head, scratch)
        encoder = _encoder(scratch, "torch-fp32", max_length)
        encoder.session.to(where)
        model = encoder.session.module.model  # the classifier the encoder scores with: trained in place
        bert = model.base_model
        for parameter in bert.embeddings.parameters():
            parameter.requires_grad = frozen_layers == 0
        for layer in bert.encoder.layer[:frozen_layers]:
            for parameter in layer.parameters():
                parameter.requires_grad = False
        if lora_rank:
            trainable = ("classifier", "pooler") + (("layer.6",) if head == "mean" else ())
            model = with_lora(model, rank=lora_rank, trainable=trainable)
        trained = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(trained, lr=learning_rate, weight_decay=0.01)
        ramp = max(1, round(steps * warmup))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: min((s + 1) / ramp, max(0.0, (steps - s) / max(1, steps - ramp)))
        )
        dev = _dev_pairs(data, dev_depth)
        metrics: dict[str, float] = {}
        if dev:
            metrics["first stage dev ndcg@10"] = _ndcg(data, dev, [-rank for _q, _d, rank in dev])
        history: list[dict[str, float]] = []
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        stale = 0
        train_qids = sorted(data.train)
        losses: list[float] = []

        def validate(step: int) -> bool:
            """Record dev nDCG@10 at ``step``; keep the weights if best; False when patience runs out."""
            nonlocal best, stale
            model.eval()
            ndcg = _ndcg(data, dev, _score(encoder, data, dev))
            history.append({"step": step, "dev ndcg@10": round(ndcg, 4)})
            if progress is not None:
                progress({"step": step, "dev ndcg@10": ndcg})
            if best is None or ndcg > best[0]:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best, stale = (ndcg, step, state), 0
            else:
                stale += 1
            return stale < patience

        step = 0
        for step in range(1, steps + 1):
            model.train()
            optimiser.zero_grad()
            total = 0.0
            for _ in range(accumulation):
                chosen = rng.sample(train_qids, min(queries, len(train_qids)))
                groups = _groups(data, chosen, group, skip_top, depth, rng)
                inputs = {k: v.to(where) for k, v in _batch(encoder, groups).items()}
                with torch.autocast(where.type, dtype=torch.bfloat16, enabled=where.type == "cuda"):
                    logits = model(**inputs).logits.view(len(groups), group)
                # the positive is first in each group
                target = torch.zeros(len(groups), dtype=torch.long, device=where)
                loss = torch.nn.functional.cross_entropy(logits.float(), target) / accumulation
                loss.backward()
                total += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimiser.step()
            schedule.step()
            losses.append(total)
            if progress is not None:
                progress({"step": step, "loss": total})
            if dev and validate_every and step % validate_every == 0 and not validate(step):
                break
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                break
        if dev and (not validate_every or step % validate_every):
            validate(step)
        if best is not None:
            model.load_state_dict(best[2])
            metrics["dev ndcg@10"] = best[0]
            settings["best step"] = best[1]
        settings["steps run"] = step
        tail = max(1, min(10, len(losses)))
        metrics["first loss"] = sum(losses[:tail]) / tail
        metrics["last loss"] = sum(losses[-tail:]) / tail
        model = merged(model).eval().to("cpu")
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out))
        encoder.tokenizer.save_pretrained(str(out))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if export:
        sample = [(data.queries[q], data.corpus[d]) for q, d, _rank in dev[:300]]
        metrics.update(_export(out, sample, max_length))
    notes = ""
    if "dev ndcg@10" in metrics and metrics["dev ndcg@10"] <= metrics["first stage dev ndcg@10"]:
        notes = (
            f"On dev this model reranks worse than its first stage ({metrics['dev ndcg@10']:.4f} vs "
            f"{metrics['first stage dev ndcg@10']:.4f} nDCG@10 over the top {dev_depth}): do not serve it."
        )
    record = write_model_card(
        out,
        kind="reranker",
        base=base,
        data=data,
        settings={**settings, "validation": history},
        metrics=metrics,
        seconds=time.perf_counter() - started,
        command=command,
        notes=notes,
    )
    return record
