"""`nirbridge train doc2query`: a query generator learned from (document, relevant query) pairs.

    summary = train_doc2query(data, Path("/work/models/doc2query-scifact"), epochs=3)

No sequence-to-sequence checkpoint loads offline here, so the generator is built from an encoder the way
Rothe, Narayan & Severyn do it ("Leveraging Pre-trained Checkpoints for Sequence Generation Tasks", TACL
2020): a BERT2BERT ``EncoderDecoderModel`` whose encoder *and* decoder start from the same checkpoint
(all-MiniLM-L6-v2 by default).  The decoder is the BERT stack with a causal self-attention mask and fresh
cross-attention layers; its output layer is tied to its word embeddings.  The decoder starts from ``[CLS]``
and a query ends at ``[SEP]``; ``decoder_start_token_id``, ``eos_token_id`` and ``pad_token_id`` are written
into the model's configuration and generation configuration so that the saved folder generates after
reload (``AutoModelForSeq2SeqLM`` maps an ``encoder-decoder`` configuration to ``EncoderDecoderModel``).

Training is teacher forcing (Nogueira et al., "Document Expansion by Query Prediction", 2019): cross-entropy
of each query token given the document's first ``max_source_length`` word pieces and the query's previous
tokens, over every (document, query) pair of ``data.train``.  AdamW, linear warm-up over 10% of the steps and
linear decay, gradients clipped at norm 1; batches in a seeded random order, each padded to its own longest.
``freeze_encoder`` keeps the encoder as it is and trains only the decoder (its cross-attention above all);
each document's encoder states are then computed once, before the first step, and a step runs the decoder
alone: on a CPU several times faster than a full step (the encoder reads hundreds of word pieces, the decoder
a few dozen), at the price of an encoder that never adapts to the task.  ``freeze_embeddings`` keeps the
decoder's word embeddings, which are tied to its output layer: a third fewer weights for AdamW to update and
no dense 30,522-row gradient per step.  The optimiser is the fused AdamW (one kernel per step, not a dozen
element-wise passes over every weight), which on this CPU was most of a decoder-only step.

Validation: the mean token cross-entropy on the dev pairs (at most ``dev_pairs`` of them, a seeded sample)
before training and after every epoch (and where ``max_steps`` stops a run); the best state is kept.  The
saved tokenizer's ``model_max_length`` is ``max_source_length``, so the enrichment's generator reads as many
document word pieces as training did.  The model card lists the generated queries of a few dev documents
next to their real ones, sampled by the enrichment's own :class:`~nirbridge.workers.doc2query.
Doc2QueryGenerator` from the saved folder (which also proves that the folder loads and generates).

Measured here (SciFact train, 822 pairs, 97 dev pairs; a 2-core CPU shared with other jobs, load 10-18):
a full BERT2BERT step (batch 16, 256 pieces) took ~2.8 s on an idle machine; with ``--freeze-encoder
--freeze-embeddings`` 60 steps (batch 16, lr 2e-4, ~1.2 epochs) took 34 min and lowered the dev loss from
11.00 to 6.46 nats per token.  That is not enough: the samples have the shape of SciFact claims ("... is
associated with ...", "... is more effective ...") but are not yet about their document.  Train longer
(several epochs, full fine-tuning where a GPU allows) before expecting a retrieval gain.

A longer run on an idle machine (same pairs, ``--epochs 20 --learning-rate 5e-4 --max-source-length 192
--max-target-length 40``, decoder only, about 1 step/s, 29 min): dev loss 3.64 at epoch 9 (the best; 4.00 at
5, rising again to 3.7 by 12 while the train loss fell to 0.06: 822 pairs are memorised).  Its queries are
about their document's topic but garbled ("rapamycin increases the concentration of triacylglycerols ...").
Written into SciFact as ``nir_expansion`` (5 samples, Doc2Query-- keeps the best 60%), BM25 rises from 0.671
to 0.744 nDCG@10 on test, nearly all of it on the 193 test claims whose relevant abstracts train claims
also cite (0.677 -> 0.788); on the 104 whose abstracts no train claim cites, 0.666 -> 0.670.  The generator
acts as a memory of the train queries of each document, as a query log appended to documents would.
"""

from __future__ import annotations

import copy
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from nirbridge.workers.models import load_tokenizer, resolve_model

from .card import write_model_card
from .data import TrainingData

__all__ = ["Doc2QueryProgress", "train_doc2query"]

# event ("step", "dev") and what it reports: step -> {epoch, step, steps, loss}; dev -> {epoch, loss}
Doc2QueryProgress = Callable[[str, Mapping[str, float]], None]

Pair = tuple[str, str]  # (doc id, query id)


def _check(settings: Mapping[str, Any]) -> None:
    """Reject settings outside their range, naming the value (as Lucene's constructors do)."""
    for name in ("epochs", "batch_size", "dev_pairs", "samples"):
        if not isinstance(settings[name], int) or settings[name] < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {settings[name]!r}")
    for name in ("max_source_length", "max_target_length"):
        if not isinstance(settings[name], int) or not 4 <= settings[name] <= 512:
            raise ValueError(f"{name} must be an integer in [4, 512], got {settings[name]!r}")
    if settings["max_steps"] is not None and (
        not isinstance(settings["max_steps"], int) or settings["max_steps"] < 1
    ):
        raise ValueError(f"max_steps must be an integer >= 1 or None, got {settings['max_steps']!r}")
    if not isinstance(settings["learning_rate"], int | float) or not 0 < settings["learning_rate"] < 1:
        raise ValueError(f"learning_rate must be in (0, 1), got {settings['learning_rate']!r}")


def _pairs(data: TrainingData, dev_pairs: int, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Every (relevant document, train query) pair; a seeded sample of at most ``dev_pairs`` dev pairs."""
    train = [(doc, qid) for qid, docs in data.train.items() for doc in docs]
    dev = [
        (doc, qid) for qid, grades in sorted(data.dev.items()) for doc, g in sorted(grades.items()) if g > 0
    ]
    if len(dev) > dev_pairs:
        dev = sorted(random.Random(seed).sample(dev, dev_pairs))
    if not dev:
        raise ValueError("no dev pair to validate on (a dev split, or enough train queries to hold out)")
    return train, dev


def _check_out(out: Path) -> None:
    """``out`` may be new, empty, or a model folder written by ``nirbridge train`` (replaced when saving)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "training.json").exists())):
        raise ValueError(f"{out} exists and is not a model folder written by nirbridge train")


class _Seq2Seq:
    """BERT2BERT from ``base`` with its tokenizer, the pairs' token ids and the loss of a batch."""

    def __init__(self, base: Path, max_source_length: int, max_target_length: int) -> None:
        import torch
        from transformers import EncoderDecoderModel, GenerationConfig
        from transformers import logging as hf_logging

        self.torch = torch
        self.tokenizer = load_tokenizer(base)
        tok = self.tokenizer
        missing = [n for n in ("cls_token_id", "sep_token_id", "pad_token_id") if getattr(tok, n) is None]
        if missing:
            raise ValueError(
                f"{base}: the tokenizer has no {', '.join(missing)} (a BERT-style base is needed)"
            )
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "cross-attention newly initialized" is the point, not a warning
        try:
            self.model = EncoderDecoderModel.from_encoder_decoder_pretrained(
                str(base), str(base), local_files_only=True
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        special = dict(
            decoder_start_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
            pad_token_id=tok.pad_token_id,
        )
        for name, value in special.items():
            setattr(self.model.config, name, value)
        self.model.generation_config = GenerationConfig(**special, max_new_tokens=max_target_length)
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.docs: dict[str, list[int]] = {}
        self.queries: dict[str, list[int]] = {}
        self.states: dict[str, Any] = {}  # doc id -> encoder states, when the encoder is frozen

    def tokenize(self, data: TrainingData, pairs: Sequence[Pair]) -> None:
        """The token ids of every document and query in ``pairs`` (each text once)."""
        docs = sorted({doc for doc, _ in pairs} - set(self.docs))
        queries = sorted({qid for _, qid in pairs} - set(self.queries))
        if docs:
            encoded = self.tokenizer(
                [data.corpus[d] for d in docs], truncation=True, max_length=self.max_source_length
            )
            self.docs.update(zip(docs, encoded["input_ids"], strict=True))
        if queries:
            encoded = self.tokenizer(
                [data.queries[q] for q in queries], truncation=True, max_length=self.max_target_length
            )
            self.queries.update(zip(queries, encoded["input_ids"], strict=True))

    def loss(self, batch: Sequence[Pair]) -> tuple[Any, int]:
        """Mean token cross-entropy of ``batch`` and the number of target tokens it averages over.

        The labels are the query's pieces after ``[CLS]`` (ending with ``[SEP]``, the EOS); the model shifts
        them right behind ``decoder_start_token_id`` for the decoder's input.
        """
        torch, pad_id = self.torch, self.tokenizer.pad_token_id
        sources = [self.docs[doc] for doc, _ in batch]
        targets = [self.queries[qid][1:] for _, qid in batch]
        width = max(map(len, sources))
        input_ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in sources])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sources])
        length = max(map(len, targets))
        labels = torch.tensor([t + [-100] * (length - len(t)) for t in targets])
        if self.states:  # frozen encoder: its states were computed once (``freeze``)
            from transformers.modeling_outputs import BaseModelOutput

            states = [self.states[doc] for doc, _ in batch]
            padded = torch.nn.utils.rnn.pad_sequence(states, batch_first=True)
            encoded = BaseModelOutput(last_hidden_state=padded)
            out = self.model(encoder_outputs=encoded, attention_mask=mask, labels=labels)
        else:
            out = self.model(input_ids=input_ids, attention_mask=mask, labels=labels)
        return out.loss, sum(map(len, targets))

    def freeze(self, batch_size: int = 32) -> None:
        """Freeze the encoder and compute each document's states once: a step then runs the decoder only."""
        torch, pad_id = self.torch, self.tokenizer.pad_token_id
        encoder = self.model.encoder.requires_grad_(False).eval()
        order = sorted(self.docs, key=lambda doc: len(self.docs[doc]))
        with torch.no_grad():  # not inference_mode: these states are inputs to steps that backpropagate
            for start in range(0, len(order), batch_size):
                docs = order[start : start + batch_size]
                rows = [self.docs[doc] for doc in docs]
                width = max(map(len, rows))
                ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])
                mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
                hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                self.states.update(
                    (doc, hidden[i, : len(r)].clone())
                    for i, (doc, r) in enumerate(zip(docs, rows, strict=True))
                )

    def dev_loss(self, pairs: Sequence[Pair], batch_size: int) -> float:
        """Mean cross-entropy per target token over ``pairs`` (dropout off)."""
        self.model.eval()
        total, tokens = 0.0, 0
        with self.torch.inference_mode():
            for start in range(0, len(pairs), batch_size):
                loss, count = self.loss(pairs[start : start + batch_size])
                total += float(loss) * count
                tokens += count
        self.model.train()
        return total / tokens

    def save(self, out: Path) -> None:
        self.model.save_pretrained(str(out), safe_serialization=True)
        self.tokenizer.model_max_length = self.max_source_length  # the generator reads what training read
        self.tokenizer.save_pretrained(str(out))


def _batches(pairs: Sequence[Pair], batch_size: int, rng: random.Random) -> Iterator[list[Pair]]:
    """The pairs in a new random order, cut into batches (the last one may be smaller)."""
    order = list(pairs)
    rng.shuffle(order)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _samples(out: Path, data: TrainingData, dev: Sequence[Pair], count: int, n: int) -> list[dict[str, Any]]:
    """Generated next to real queries for the first ``count`` dev documents, by the enrichment's generator."""
    from nirbridge.workers.doc2query import Doc2QueryGenerator

    docs = list(dict.fromkeys(doc for doc, _ in dev))[:count]
    generator = Doc2QueryGenerator(out, "auto", n=n)
    generated = generator.generate([data.corpus[d] for d in docs])
    return [
        {
            "doc": doc,
            "text": data.corpus[doc][:200],
            "real": [data.queries[q] for d, q in dev if d == doc],
            "generated": queries,
        }
        for doc, queries in zip(docs, generated, strict=True)
    ]


def _sample_notes(samples: Sequence[Mapping[str, Any]]) -> str:
    lines = ["Generated queries (top-10 sampling, seed 0) for dev documents, next to their real queries:", ""]
    for sample in samples:
        lines.append(f"- `{sample['doc']}` {sample['text'][:120]}...")
        lines += [f"    - real: {q}" for q in sample["real"]]
        lines += [f"    - generated: {q}" for q in sample["generated"]]
    return "\n".join(lines)


def train_doc2query(
    data: TrainingData,
    out: Path,
    *,
    base: str = "all-MiniLM-L6-v2",
    epochs: int = 3,
    max_steps: int | None = None,
    batch_size: int = 16,
    learning_rate: float = 5e-5,
    max_source_length: int = 256,
    max_target_length: int = 48,
    freeze_encoder: bool = False,
    freeze_embeddings: bool = False,
    dev_pairs: int = 500,
    samples: int = 5,
    seed: int = 0,
    command: str = "",
    progress: Doc2QueryProgress | None = None,
) -> dict[str, Any]:
    """Train BERT2BERT from ``base`` on ``data``'s (document, train query) pairs, keep the state with the
    lowest dev loss, write it to ``out`` (replacing a model folder written there before) with its model card,
    and return the card's record plus ``best_epoch``, ``steps``, ``pairs`` and ``samples``.

    ``max_steps`` stops training early (across epochs).  ValueError for a setting out of range, a base
    without BERT's special tokens, or data without dev pairs; ModelNotFoundError for an unknown base.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    settings: dict[str, Any] = dict(
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        freeze_encoder=freeze_encoder,
        freeze_embeddings=freeze_embeddings,
        dev_pairs=dev_pairs,
        samples=samples,
        seed=seed,
    )
    _check(settings)
    train, dev = _pairs(data, dev_pairs, seed)
    _check_out(out)
    started = time.monotonic()
    rng = random.Random(seed)
    torch.manual_seed(seed)  # the fresh cross-attention and output transform
    model = _Seq2Seq(resolve_model(base), max_source_length, max_target_length)
    model.tokenize(data, [*train, *dev])
    if freeze_encoder:
        model.freeze()
    if freeze_embeddings:  # the decoder's word embeddings, which are also its output layer (tied)
        model.model.decoder.get_input_embeddings().requires_grad_(False)
    trainable = [p for p in model.model.parameters() if p.requires_grad]
    total_steps = -(-len(train) // batch_size) * epochs
    total_steps = min(total_steps, max_steps) if max_steps else total_steps
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.01, fused=True)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * total_steps), total_steps)

    def validate(epoch: int) -> float:
        loss = model.dev_loss(dev, batch_size)
        if progress is not None:
            progress("dev", {"epoch": epoch, "loss": loss})
        return loss

    metrics = {"dev loss base": validate(0)}
    best, best_epoch, best_state, step, epoch = float("inf"), 0, None, 0, 0
    model.model.train()
    while step < total_steps:
        epoch += 1
        for batch in _batches(train, batch_size, rng):
            loss, _ = model.loss(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if progress is not None:
                progress("step", {"epoch": epoch, "step": step, "steps": total_steps, "loss": loss.item()})
            if step >= total_steps:
                break
        score = validate(epoch)
        metrics[f"dev loss epoch {epoch}"] = score
        if score < best:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(model.model.state_dict())
    if best_state is not None:
        model.model.load_state_dict(best_state)
    metrics["dev loss best"] = best
    if out.exists():
        shutil.rmtree(out)
    model.save(out)
    seconds = time.monotonic() - started
    shown = _samples(out, data, dev, samples, n=5)
    trainable_count = sum(p.numel() for p in trainable)
    notes = (
        f"BERT2BERT (Rothe et al., 2020): encoder and decoder from `{base}`, cross-attention fresh"
        f"{', encoder frozen' if freeze_encoder else ''}"
        f"{', decoder word embeddings frozen' if freeze_embeddings else ''}. Dev loss is the mean "
        f"cross-entropy per query token on {len(dev)} dev pairs. Best epoch: {best_epoch} of {epoch} "
        f"run; {step} steps over {len(train)} "
        f"(document, query) pairs. Trainable parameters: {trainable_count:,}.\n\n{_sample_notes(shown)}"
    )
    record = write_model_card(
        out,
        kind="doc2query",
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
            pairs=len(train),
            dev_pairs=len(dev),
            samples=shown,
        ),
    )
    return {**record, "out": str(out)}
