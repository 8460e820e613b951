"""`nirbridge train reranker|dense|deepct|doc2query`: fine-tune a model offline (registered in connector.cli).

    nirbridge train dense --dataset ../shared/data/scifact --index scifact --out models/dense-scifact

Every subcommand reads a BEIR folder (`--dataset`; `--train-split`, `--dev-split`, else a held-out part of
train), takes BM25 candidates from `--index` on the cluster where it mines hard negatives (the index must hold
the dataset's corpus: `nirbridge ingest`), trains from `--base`, and writes a model folder to `--out` with a
model card (README.md) and `training.json` (data, settings, steps, wall time, dev metrics).  The options every
subcommand shares are defined here; each subcommand's own training code is in `workers/train/<model>.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nirbridge.workers.train.data import TrainingData

from .cli_options import ProgressOption, UrlOption

__all__ = [
    "BaseOption",
    "DatasetOption",
    "DevSplitOption",
    "LoraOption",
    "OutOption",
    "SeedOption",
    "TrainIndexOption",
    "TrainSplitOption",
    "prepare",
    "train_app",
]

train_app = typer.Typer(
    help="Fine-tune the bridge's models offline from a BEIR folder's judgments.", no_args_is_help=True
)

DatasetOption = Annotated[Path, typer.Option("--dataset", help="A BEIR folder (corpus, queries, qrels/).")]
OutOption = Annotated[Path, typer.Option("--out", help="The model folder to write.")]
BaseOption = Annotated[str, typer.Option("--base", help="The checkpoint to start from (name or folder).")]
TrainIndexOption = Annotated[
    str | None,
    typer.Option("--index", help="Index holding the corpus: BM25 hard negatives, dev candidates."),
]
TrainSplitOption = Annotated[str, typer.Option("--train-split", help="The qrels split trained on.")]
DevSplitOption = Annotated[
    str | None,
    typer.Option("--dev-split", help="The qrels split validated on (default: 10% of train held out)."),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed (sampling, initialisation).")]
LoraOption = Annotated[
    int,
    typer.Option("--lora", min=0, help="LoRA rank: train low-rank adapters, not every weight (0: off)."),
]


def prepare(
    dataset: Path,
    *,
    url: UrlOption = None,
    index: str | None = None,
    train_split: str = "train",
    dev_split: str | None = None,
    depth: int = 100,
    seed: int = 0,
    progress: ProgressOption = None,
) -> TrainingData:
    """The training data of a subcommand: judgments from `dataset`, BM25 candidates from `index` when given.

    Bad datasets and splits are usage errors (exit 2), an unreachable cluster or a missing index too.
    """
    import sys

    from tqdm import tqdm

    from .cli import _connect, _guarded, _open_dataset, _settings
    from .errors import DatasetError
    from .train_data import training_data, with_bm25_candidates

    beir = _open_dataset(dataset)
    try:
        data = training_data(beir, train_split=train_split, dev_split=dev_split, seed=seed)
    except DatasetError as error:
        raise typer.BadParameter(error.reason, param_hint="'--dataset'") from None
    if index is None:
        return data
    client, resolved = _connect(url, _settings())
    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(
        total=len(data.train) + len(data.dev), desc="BM25 candidates", unit="q", disable=not show
    ) as bar:
        return _guarded(
            lambda: with_bm25_candidates(client, resolved, index, data, depth=depth, progress=bar.update)
        )
