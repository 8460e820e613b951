"""A small real cross-encoder for the tests: all-MiniLM-L6-v2 with a fresh score head, briefly trained.

The training itself is ``nirbridge.workers.train.reranker.train_reranker`` with its ``QUICK`` preset (random
negatives, no validation, no export; the trainer of ``nirbridge train reranker``, which the benchmark uses
too); here is only where its output lives.  Training takes two to three minutes on two shared cores, so the
model is kept between test sessions under ``NIRBRIDGE_TEST_MODELS`` (default
``~/.cache/nirbridge/test-models``) in a folder named by a hash of the trainer's recipe name (``RECIPE``), its
settings and the base model's fingerprint: a change to any of them trains anew.  The ONNX exports of that
model are cached beside it (``cache/``), for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

__all__ = ["models_dir", "trained_cross_encoder", "train_or_reuse"]

BASE = "all-MiniLM-L6-v2"


def models_dir() -> Path:
    root = os.environ.get("NIRBRIDGE_TEST_MODELS") or Path.home() / ".cache" / "nirbridge" / "test-models"
    return Path(root)


def train_or_reuse(dataset: Path, base: str = BASE, **overrides: Any) -> Path:
    """The folder of the cross-encoder ``train_reranker(..., **QUICK)`` makes from ``dataset``, trained
    once."""
    from nirbridge.connector.beir import BeirDataset
    from nirbridge.connector.train_data import training_data
    from nirbridge.workers.models import fingerprint, resolve_model
    from nirbridge.workers.train import reranker

    kwargs = {**reranker.QUICK, **overrides}
    recipe = json.dumps(
        {
            "kwargs": kwargs,
            "base": fingerprint(resolve_model(base)),
            "dataset": dataset.name,
            "recipe": reranker.RECIPE,
        },
        sort_keys=True,
    )
    folder = models_dir() / f"xenc-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if (folder / "config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".training-"))
    try:
        reranker.train_reranker(training_data(BeirDataset.open(dataset)), scratch, base=base, **kwargs)
        try:
            os.rename(scratch, folder)  # atomic: a concurrent session sees the whole model or none
        except OSError:
            if not (folder / "config.json").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


@pytest.fixture(scope="session")
def trained_cross_encoder(scifact_dir: Path) -> Path:
    """The path of the tests' cross-encoder (BertForSequenceClassification, num_labels=1)."""
    return train_or_reuse(scifact_dir)
