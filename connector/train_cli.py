"""`nirbridge train reranker|dense|deepct|doc2query`: fine-tune a model offline (registered in connector.cli).

    nirbridge train dense --dataset ../shared/data/scifact --index scifact --out models/dense-scifact

Every subcommand reads a BEIR folder (`--dataset`; `--train-split`, `--dev-split`, else a held-out part of
train), takes BM25 candidates from `--index` on the cluster where it mines hard negatives (the index must hold
the dataset's corpus: `nirbridge ingest`), trains from `--base`, and writes a model folder to `--out` with a
model card (README.md) and `training.json` (data, settings, steps, wall time, dev metrics).  The options every
subcommand shares are defined here; each subcommand's own training code is in `workers/train/<model>.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from nirbridge.workers.train.data import TrainingData

from .cli_common import cli_settings, connect, guarded, open_dataset, print_json
from .cli_options import JsonOption, ProgressOption, UrlOption

__all__ = [
    "BaseOption",
    "DatasetOption",
    "DevSplitOption",
    "DeviceOption",
    "LearningRateOption",
    "LoraOption",
    "NegativeDepthOption",
    "OutOption",
    "SeedOption",
    "SkipTopOption",
    "TrainIndexOption",
    "TrainSplitOption",
    "prepare",
    "prepare_run",
    "reproducing_command",
    "training_errors",
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
DeviceOption = Annotated[
    str,
    typer.Option("--device", help="auto (CUDA where torch sees a GPU, bf16 autocast there), cpu or cuda."),
]
LoraOption = Annotated[
    int,
    typer.Option("--lora", min=0, help="LoRA rank: train low-rank adapters, not every weight (0: off)."),
]
LearningRateOption = Annotated[float, typer.Option("--learning-rate", min=0.0, help="AdamW peak rate.")]
SkipTopOption = Annotated[
    int, typer.Option("--skip-top", min=0, help="Top BM25 ranks never used as negatives.")
]
NegativeDepthOption = Annotated[
    int, typer.Option("--depth", min=1, help="Deepest BM25 rank a negative comes from.")
]


def reproducing_command(context: typer.Context) -> str:
    """The command line that reruns the running `nirbridge train` subcommand with the same settings (for
    the model card): every option as given or defaulted, flags as `--name`/`--no-name`; not `--url` (the
    cluster is the reader's own), `--json` or `--progress`."""
    import shlex

    parts = ["nirbridge", "train", str(context.info_name)]
    for param in context.command.params:
        value = context.params.get(param.name or "")
        if param.param_type_name != "option" or param.name in _NOT_REPRODUCED or value is None:
            continue
        name = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            off = max(param.secondary_opts, key=len) if param.secondary_opts else None
            parts += [name] if value else [off] if off else []
        else:
            parts.append(f"{name}={value}")
    return shlex.join(parts)


_NOT_REPRODUCED = ("url", "json_output", "progress")


@contextmanager
def training_errors() -> Iterator[None]:
    """A trainer's refusals as usage errors (exit 2): an unknown `--base`, a setting out of range."""
    from nirbridge.workers.errors import ModelNotFoundError

    try:
        yield
    except ModelNotFoundError as error:
        raise typer.BadParameter(error.reason, param_hint="'--base'") from None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


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

    from .errors import DatasetError
    from .train_data import training_data, with_bm25_candidates

    beir = open_dataset(dataset)
    try:
        data = training_data(beir, train_split=train_split, dev_split=dev_split, seed=seed)
    except DatasetError as error:
        raise typer.BadParameter(error.reason, param_hint="'--dataset'") from None
    if index is None:
        return data
    client, resolved = connect(url, cli_settings())
    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(
        total=len(data.train) + len(data.dev), desc="BM25 candidates", unit="q", disable=not show
    ) as bar:
        return guarded(
            lambda: with_bm25_candidates(client, resolved, index, data, depth=depth, progress=bar.update)
        )


def prepare_run(context: typer.Context) -> tuple[TrainingData, str, bool]:
    """What every subcommand starts from, read from its own options (`--dataset`, `--url`, `--index`,
    `--train-split`, `--dev-split`, `--seed`, `--progress`): its data (`prepare`), the command line for its
    model card, and whether to show progress bars (on a terminal unless --progress/--no-progress says)."""
    import sys

    given = context.params
    progress = given.get("progress")
    data = prepare(
        given["dataset"],
        url=given.get("url"),
        index=given.get("index"),
        train_split=given["train_split"],
        dev_split=given["dev_split"],
        seed=given["seed"],
        progress=progress,
    )
    show = sys.stderr.isatty() if progress is None else progress
    return data, reproducing_command(context), show


@train_app.command("dense")
def train_dense_command(
    context: typer.Context,
    dataset: DatasetOption,
    out: OutOption,
    url: UrlOption = None,
    index: TrainIndexOption = None,
    base: BaseOption = "all-MiniLM-L6-v2",
    train_split: TrainSplitOption = "train",
    dev_split: DevSplitOption = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the train pairs.")] = 3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Queries per batch.")] = 32,
    learning_rate: LearningRateOption = 2e-5,
    temperature: Annotated[
        float, typer.Option("--temperature", min=1e-4, help="InfoNCE temperature (similarity divisor).")
    ] = 0.05,
    max_length: Annotated[int, typer.Option("--max-length", min=8, help="Document word pieces.")] = 256,
    query_max_length: Annotated[
        int, typer.Option("--query-max-length", min=4, help="Query word pieces.")
    ] = 64,
    hard_negatives: Annotated[
        int, typer.Option("--hard-negatives", min=0, help="BM25 negatives per query in a batch.")
    ] = 1,
    skip_top: SkipTopOption = 3,
    depth: NegativeDepthOption = 50,
    lora: LoraOption = 0,
    patience: Annotated[
        int, typer.Option("--patience", min=1, help="Epochs without a better dev nDCG@10 before stopping.")
    ] = 1,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    json_output: JsonOption = False,
    progress: ProgressOption = None,
) -> None:
    """Fine-tune the bi-encoder DPR-style (in-batch + BM25 hard negatives) for `nirbridge enrich --dense`."""
    import sys
    from collections.abc import Mapping

    from tqdm import tqdm

    from nirbridge.workers.train.dense import train_dense

    if depth <= skip_top:
        raise typer.BadParameter(
            f"must be above --skip-top ({skip_top}), got {depth}", param_hint="'--depth'"
        )
    data, command, show = prepare_run(context)
    with tqdm(desc="train dense", unit="step", disable=not show) as bar:

        def report(event: str, info: Mapping[str, float]) -> None:
            if event == "step":
                bar.total = int(info["steps"])
                bar.set_postfix(epoch=int(info["epoch"]), loss=f"{info['loss']:.3f}")
                bar.update(1)
            else:
                bar.write(f"epoch {int(info['epoch'])}: dev nDCG@10 {info['ndcg@10']:.4f}", file=sys.stderr)

        with training_errors():
            summary = train_dense(
                data,
                out,
                base=base,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                temperature=temperature,
                max_length=max_length,
                query_max_length=query_max_length,
                hard_negatives=hard_negatives,
                skip_top=skip_top,
                depth=depth,
                lora_rank=lora,
                patience=patience,
                seed=seed,
                device=device,
                command=command,
                progress=report,
            )
    metrics = summary["metrics"]
    typer.echo(
        f"{out}: dev nDCG@10 {metrics['dev ndcg@10 best']:.4f} (base {metrics['dev ndcg@10 base']:.4f}), "
        f"best epoch {summary['best_epoch']} of {summary['epochs_run']}, {summary['seconds'] / 60:.1f} min",
        err=json_output,
    )
    if json_output:
        print_json(summary)


@train_app.command("deepct")
def train_deepct_command(
    context: typer.Context,
    dataset: DatasetOption,
    out: OutOption,
    url: UrlOption = None,
    index: TrainIndexOption = None,
    base: BaseOption = "all-MiniLM-L6-v2",
    train_split: TrainSplitOption = "train",
    dev_split: DevSplitOption = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the train documents.")] = 4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents per step.")] = 16,
    learning_rate: LearningRateOption = 5e-5,
    max_length: Annotated[int, typer.Option("--max-length", min=3, help="Document word pieces.")] = 256,
    pool_depth: Annotated[
        int, typer.Option("--pool-depth", min=1, help="BM25 top-k per dev query in the validation pool.")
    ] = 30,
    pool_size: Annotated[
        int, typer.Option("--pool-size", min=0, help="Random documents in the pool without --index.")
    ] = 500,
    frozen_layers: Annotated[
        int, typer.Option("--frozen-layers", min=0, help="Lowest transformer layers kept as they are.")
    ] = 0,
    seed: SeedOption = 0,
    json_output: JsonOption = False,
    progress: ProgressOption = None,
) -> None:
    """Train DeepCT (term weights = predicted query term recall) for `nirbridge enrich --terms`."""
    from nirbridge.workers.train.deepct import train_deepct

    data, command, show = prepare_run(context)
    with training_errors():
        record = train_deepct(
            data,
            out,
            base=base,
            epochs=epochs,
            batch_size=batch_size,
            lr=learning_rate,
            max_length=max_length,
            seed=seed,
            pool_depth=pool_depth,
            pool_size=pool_size,
            frozen_layers=frozen_layers,
            progress=show,
            command=command,
        )
    metrics = record["metrics"]
    shown = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items() if name != "best epoch")
    typer.echo(
        f"{out}: best epoch {metrics['best epoch']:.0f} of {epochs}, {shown}, "
        f"{record['seconds'] / 60:.1f} min",
        err=json_output,
    )
    if json_output:
        print_json(record)


@train_app.command("reranker")
def train_reranker_command(
    context: typer.Context,
    dataset: DatasetOption,
    out: OutOption,
    url: UrlOption = None,
    index: TrainIndexOption = None,
    base: BaseOption = "all-MiniLM-L6-v2",
    train_split: TrainSplitOption = "train",
    dev_split: DevSplitOption = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimiser steps (at most).")] = 300,
    queries: Annotated[int, typer.Option("--queries", min=1, help="Query groups per forward pass.")] = 4,
    accumulation: Annotated[
        int, typer.Option("--accumulation", min=1, help="Forward passes per optimiser step.")
    ] = 2,
    group: Annotated[int, typer.Option("--group", min=2, help="1 relevant + group-1 negatives.")] = 8,
    skip_top: SkipTopOption = 3,
    depth: NegativeDepthOption = 50,
    learning_rate: LearningRateOption = 1e-4,
    warmup: Annotated[float, typer.Option("--warmup", help="Share of the steps spent warming up.")] = 0.1,
    max_length: Annotated[int, typer.Option("--max-length", min=16, help="Pair word pieces.")] = 128,
    head: Annotated[
        str, typer.Option("--head", help="Score head: cls or mean (see workers.train).")
    ] = "mean",
    frozen_layers: Annotated[
        int, typer.Option("--frozen-layers", min=0, help="Lowest layers (and embeddings) kept fixed.")
    ] = 2,
    lora: LoraOption = 0,
    validate_every: Annotated[
        int, typer.Option("--validate-every", min=0, help="Steps between dev validations (0: at the end).")
    ] = 20,
    patience: Annotated[
        int, typer.Option("--patience", min=1, help="Validations without improvement before stopping.")
    ] = 3,
    dev_depth: Annotated[
        int, typer.Option("--dev-depth", min=1, help="BM25 candidates reranked per dev query.")
    ] = 20,
    export: Annotated[
        bool, typer.Option("--export/--no-export", help="ONNX fp32 + int8 in OUT/onnx.")
    ] = True,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    json_output: JsonOption = False,
    progress: ProgressOption = None,
) -> None:
    """Fine-tune a cross-encoder (listwise loss, BM25 hard negatives) for the proxy's `rerank`."""
    import sys
    from typing import Any

    from tqdm import tqdm

    from nirbridge.workers.train.reranker import train_reranker

    data, command, show = prepare_run(context)
    with tqdm(total=steps, desc="train reranker", unit="step", disable=not show) as bar:

        def report(info: dict[str, Any]) -> None:
            if "loss" in info:
                bar.set_postfix(loss=f"{info['loss']:.3f}")
                bar.update(1)
            else:
                bar.write(f"step {info['step']}: dev nDCG@10 {info['dev ndcg@10']:.4f}", file=sys.stderr)

        with training_errors():
            record = train_reranker(
                data,
                out,
                base=base,
                steps=steps,
                queries=queries,
                accumulation=accumulation,
                group=group,
                skip_top=skip_top,
                depth=depth,
                learning_rate=learning_rate,
                warmup=warmup,
                max_length=max_length,
                head=head,  # type: ignore[arg-type]
                frozen_layers=frozen_layers,
                lora_rank=lora,
                validate_every=validate_every,
                patience=patience,
                dev_depth=dev_depth,
                export=export,
                seed=seed,
                device=device,
                command=command,
                progress=report,
            )
    metrics = record["metrics"]
    shown = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    typer.echo(f"{out}: {shown}, {record['seconds'] / 60:.1f} min", err=json_output)
    if metrics.get("dev ndcg@10", 1.0) <= metrics.get("first stage dev ndcg@10", 0.0):
        typer.echo("warning: on dev this model reranks worse than BM25 alone (see README.md)", err=True)
    if json_output:
        print_json(record)


@train_app.command("doc2query")
def train_doc2query_command(
    context: typer.Context,
    dataset: DatasetOption,
    out: OutOption,
    base: BaseOption = "all-MiniLM-L6-v2",
    train_split: TrainSplitOption = "train",
    dev_split: DevSplitOption = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the train pairs.")] = 3,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps (any epoch).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Pairs per batch.")] = 16,
    learning_rate: LearningRateOption = 5e-5,
    max_source_length: Annotated[
        int, typer.Option("--max-source-length", min=4, max=512, help="Document word pieces read.")
    ] = 256,
    max_target_length: Annotated[
        int, typer.Option("--max-target-length", min=4, max=512, help="Query word pieces, [CLS] [SEP] too.")
    ] = 48,
    freeze_encoder: Annotated[
        bool, typer.Option("--freeze-encoder", help="Train the decoder only (encoder states computed once).")
    ] = False,
    freeze_embeddings: Annotated[
        bool, typer.Option("--freeze-embeddings", help="Keep the decoder's word embeddings (= output layer).")
    ] = False,
    dev_pairs: Annotated[
        int, typer.Option("--dev-pairs", min=1, help="Dev (document, query) pairs validated on, at most.")
    ] = 500,
    seed: SeedOption = 0,
    json_output: JsonOption = False,
    progress: ProgressOption = None,
) -> None:
    """Train a query generator (BERT2BERT from --base) for `nirbridge enrich --doc2query`.

    It learns from (document, relevant query) pairs alone, so it needs no cluster: there is no --index.
    """
    import sys
    from collections.abc import Mapping

    from tqdm import tqdm

    from nirbridge.workers.train.doc2query import train_doc2query

    data, command, show = prepare_run(context)
    with tqdm(desc="train doc2query", unit="step", disable=not show) as bar:

        def report(event: str, info: Mapping[str, float]) -> None:
            if event == "step":
                bar.total = int(info["steps"])
                bar.set_postfix(epoch=int(info["epoch"]), loss=f"{info['loss']:.3f}")
                bar.update(1)
            elif show:
                bar.write(f"epoch {int(info['epoch'])}: dev loss {info['loss']:.4f}", file=sys.stderr)

        with training_errors():
            record = train_doc2query(
                data,
                out,
                base=base,
                epochs=epochs,
                max_steps=max_steps,
                batch_size=batch_size,
                learning_rate=learning_rate,
                max_source_length=max_source_length,
                max_target_length=max_target_length,
                freeze_encoder=freeze_encoder,
                freeze_embeddings=freeze_embeddings,
                dev_pairs=dev_pairs,
                seed=seed,
                command=command,
                progress=report,
            )
    metrics = record["metrics"]
    typer.echo(
        f"{out}: dev loss {metrics['dev loss best']:.4f} (untrained {metrics['dev loss base']:.4f}), "
        f"best epoch {record['best_epoch']} of {record['epochs_run']}, {record['seconds'] / 60:.1f} min",
        err=json_output,
    )
    if json_output:
        print_json(record)
