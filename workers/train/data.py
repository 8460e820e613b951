"""What every trainer learns from: a corpus, queries, train and dev judgments, and first-stage candidates.

    data = TrainingData.from_beir(corpus, queries, train_qrels, dev_qrels)   # or dev held out of train
    data = data.with_candidates(ranked)          # query id -> first-stage doc ids, best first (BM25 here)
    data.hard_negatives("q1", skip_top=3, depth=50)
    data.save(Path("scifact.json.gz")); TrainingData.load(Path("scifact.json.gz"))   # train elsewhere

The judgments say which documents are relevant (grade > 0).  Hard negatives are the first stage's hits that
are not judged relevant, below the very top: the top few unjudged hits are often relevant documents nobody
judged (Qu et al., "RocketQA", 2021), so ``skip_top`` leaves them out.  ``ranked`` also gives the dev queries'
candidates, which is what a reranker re-scores when it is validated.

``save`` and ``load`` carry the whole thing (texts included) as one gzipped JSON file, so that the data can be
prepared where the cluster is and a model trained on a GPU machine that cannot reach it.

A collection without a dev split (SciFact) holds ``dev_fraction`` of its train queries out as dev, chosen by a
seeded shuffle, so that early stopping never looks at the test split.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["TrainingData", "document_text"]


def document_text(title: str | None, text: str | None) -> str:
    """A document as the encoders see it: title and text joined by a space (as enrichment does)."""
    return f"{title or ''} {text or ''}".strip()


@dataclass(frozen=True)
class TrainingData:
    """Texts and judgments for one training run (ids are strings, as in the BEIR files)."""

    corpus: Mapping[str, str]  # doc id -> "title text"
    queries: Mapping[str, str]  # query id -> text
    train: Mapping[str, tuple[str, ...]]  # train query id -> relevant doc ids (grade > 0)
    dev: Mapping[str, Mapping[str, int]]  # dev query id -> doc id -> grade
    ranked: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # query id -> first-stage doc ids
    source: Mapping[str, Any] = field(default_factory=dict)  # provenance for the model card

    @classmethod
    def from_beir(
        cls,
        corpus: Mapping[str, str],
        queries: Mapping[str, str],
        train_qrels: Mapping[str, Mapping[str, int]],
        dev_qrels: Mapping[str, Mapping[str, int]] | None = None,
        *,
        dev_fraction: float = 0.1,
        seed: int = 0,
        source: Mapping[str, Any] | None = None,
    ) -> TrainingData:
        """Keep the judged queries that have text and at least one relevant document in the corpus.

        Without ``dev_qrels``, ``dev_fraction`` of the train queries (at least one) become the dev set.
        """

        def usable(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
            kept = {}
            for qid, grades in qrels.items():
                judged = {doc: grade for doc, grade in grades.items() if doc in corpus}
                if qid in queries and any(grade > 0 for grade in judged.values()):
                    kept[qid] = judged
            return kept

        train = usable(train_qrels)
        held_out = dev_qrels is None
        if held_out:
            order = sorted(train)
            random.Random(seed).shuffle(order)
            size = max(1, round(len(order) * dev_fraction)) if len(order) > 1 else 0
            dev = {qid: train.pop(qid) for qid in order[:size]}
        else:
            dev = usable(dev_qrels)
        if not train:
            raise ValueError("no train query has text and a relevant document in the corpus")
        provenance = dict(source or {})
        provenance.update(
            train_queries=len(train),
            dev_queries=len(dev),
            dev=f"held out of train ({dev_fraction:.0%}, seed {seed})" if held_out else "dev split",
        )
        return cls(
            corpus=corpus,
            queries=queries,
            train={qid: tuple(d for d, grade in sorted(g.items()) if grade > 0) for qid, g in train.items()},
            dev=dev,
            source=provenance,
        )

    def with_candidates(self, ranked: Mapping[str, Iterable[str]], how: str = "") -> TrainingData:
        """A copy that knows each query's first-stage ranking (``how`` says which, for the model card)."""
        source = dict(self.source)
        if how:
            source["candidates"] = how
        return replace(self, ranked={qid: tuple(ids) for qid, ids in ranked.items()}, source=source)

    def relevant(self, qid: str) -> set[str]:
        """Every document judged relevant for ``qid`` (train or dev)."""
        if qid in self.train:
            return set(self.train[qid])
        return {doc for doc, grade in self.dev.get(qid, {}).items() if grade > 0}

    def hard_negatives(self, qid: str, *, skip_top: int = 3, depth: int = 50) -> list[str]:
        """The first stage's hits ranked ``skip_top`` + 1 .. ``depth`` for ``qid`` that are not judged
        relevant (best first); empty when the query has no candidates."""
        relevant = self.relevant(qid)
        return [doc for doc in self.ranked.get(qid, ())[skip_top:depth] if doc not in relevant]

    def dev_candidates(self, qid: str, depth: int = 100) -> list[str]:
        """What a reranker re-scores for dev query ``qid``: its first-stage top ``depth``."""
        return list(self.ranked.get(qid, ())[:depth])

    def save(self, path: Path) -> None:
        """Write everything (texts, judgments, candidates, provenance) to ``path`` as gzipped JSON."""
        with gzip.open(path, "wt", encoding="utf-8") as f:
            json.dump(asdict(self), f, ensure_ascii=False)

    @classmethod
    def load(cls, path: Path) -> TrainingData:
        """Read what :meth:`save` wrote; ValueError naming ``path`` when it is not such a file."""
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                raw = json.load(f)
            return cls(
                corpus=raw["corpus"],
                queries=raw["queries"],
                train={qid: tuple(docs) for qid, docs in raw["train"].items()},
                dev=raw["dev"],
                ranked={qid: tuple(docs) for qid, docs in raw.get("ranked", {}).items()},
                source=raw.get("source", {}),
            )
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path} is not training data written by TrainingData.save: {error}") from None
