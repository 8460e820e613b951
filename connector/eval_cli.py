"""`nirbridge eval`: the retrieval quality of an index on a BEIR split (registered in `connector.cli`).

    nirbridge eval --index scifact --dataset ../shared/data/scifact --split test --mode hybrid \\
        --hybrid bm25+dense --fusion rrf --depth 100 --json

The helpers it shares with the other commands (client, errors, JSON) come from `connector.cli_common`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_common import cli_settings, connect, fail, guarded, open_dataset, print_json
from .cli_options import IndexOption, JsonOption, ProgressOption, UrlOption
from .errors import DatasetError
from .eval_rerank import DEFAULT_MAX_LENGTH, EvalReranker, score_cache, trained_max_length
from .evaluate import EvalReport, evaluate
from .fusion import FUSION_METHODS
from .prior import Prior, require_prior_field
from .queries import (
    MODES,
    SPARSE_FORMS,
    TERMS_WEIGHTINGS,
    IndexFields,
    QueryBuilder,
    QueryEncoders,
    parse_hybrid,
)

__all__ = ["eval_command"]


def _choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=f"'{option}'")
    return value


def _parse_weights(text: str, modes: tuple[str, ...]) -> tuple[float, ...]:
    """`--weights 1,2`: one number >= 0 per hybrid mode."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not numbers joined by ','", param_hint="'--weights'") from None
    if len(values) != len(modes) or not all(0.0 <= v < float("inf") for v in values):
        raise typer.BadParameter(
            f"give {len(modes)} numbers >= 0 (one per mode of {'+'.join(modes)}), got {text!r}",
            param_hint="'--weights'",
        )
    return values


def _print_report(report: EvalReport, err: bool) -> None:
    how = report.mode
    if report.mode == "hybrid":
        how += f" {report.settings['hybrid']} ({report.settings['fusion']})"
    name = Path(report.dataset).name
    rerank = report.settings.get("rerank")
    speed = ""
    if rerank:
        how += (
            f", reranked by {Path(rerank['model']).name} ({rerank['backend']}, top {rerank['window']}, "
            f"weight {rerank['weight']}, max length {rerank['max_length']})"
        )
        # a cached row's speed is the cluster's, not the model's: 1,500 queries/s beside 0.9 misleads
        speed = {
            "model": "; scores from the model",
            "cache": "; scores from the cache: not the model's speed",
            "model+cache": f"; {rerank['pairs_scored']} pairs scored by the model, "
            f"{rerank['pairs_cached']} from the cache",
        }[rerank["scores_from"]]
    typer.echo(f"{report.index} / {name} {report.split}: {how}, {report.queries} queries", err=err)
    for metric, value in report.metrics.items():
        typer.echo(f"  {metric:<11} {value:.4f}", err=err)
    typer.echo(f"  {'queries/s':<11} {report.queries_per_s:.1f}  ({report.seconds:.1f} s{speed})", err=err)


def _eval_reranker(
    client: Any,
    url: str,
    index: str,
    fields: tuple[str, ...],
    model: str,
    backend: str,
    max_length: int | None,
    cache: bool,
) -> EvalReranker:
    """The cross-encoder stage, loaded now (a model that cannot load is a usage error: exit 2)."""
    from nirbridge.workers.backends import BACKENDS
    from nirbridge.workers.cross_encoder import CrossEncoder
    from nirbridge.workers.errors import ModelNotFoundError
    from nirbridge.workers.models import cache_dir

    _choice(backend, (*BACKENDS, "auto"), "--rerank-backend")
    try:
        encoder = CrossEncoder(
            model,
            backend=backend,  # type: ignore[arg-type]
            max_length=max_length or DEFAULT_MAX_LENGTH,
        )
    except ModelNotFoundError as error:
        fail(f"--rerank: {error}", 2)
    # a model carries its own default: the length it was trained and measured with (the shipped reranker:
    # 128, +0.008 nDCG@10 and ~2.4x faster than 256 on a held-out collection)
    trained = trained_max_length(encoder.path) if max_length is None else None
    if trained is not None:
        encoder = encoder.configured(max_length=trained)
    path = score_cache(encoder, cache_dir()) if cache else None
    return EvalReranker(client, url, index, encoder, fields, cache=path)


def eval_command(
    index: IndexOption,
    dataset: Annotated[Path, typer.Option("--dataset", help="A BEIR folder (queries.jsonl, qrels/).")],
    mode: Annotated[str, typer.Option("--mode", help=f"First stage: {', '.join(MODES)}.")],
    url: UrlOption = None,
    split: Annotated[str, typer.Option("--split", help="The qrels split (qrels/<split>.tsv).")] = "test",
    hybrid: Annotated[
        str, typer.Option("--hybrid", help="The modes --mode hybrid fuses, joined by '+'.")
    ] = "bm25+dense",
    fusion: Annotated[str, typer.Option("--fusion", help="Hybrid fusion: rrf (k=60) or minmax.")] = "rrf",
    depth: Annotated[
        int, typer.Option("--depth", min=1, max=10000, help="Hits fetched per query (per mode for hybrid).")
    ] = 100,
    sparse_model: Annotated[
        str | None,
        typer.Option("--sparse-model", help="SPLADE model for queries (default: the index's nir_meta)."),
    ] = None,
    dense_model: Annotated[
        str | None,
        typer.Option("--dense-model", help="Bi-encoder for queries (default: the index's nir_meta)."),
    ] = None,
    terms_model: Annotated[
        str | None,
        typer.Option("--terms-model", help="Tokenizer model for terms queries (default: the index's)."),
    ] = None,
    backend: Annotated[
        str,
        typer.Option("--backend", help="Query encoders' backend (onnx-fp32, onnx-int8, torch-fp32, auto)."),
    ] = "onnx-fp32",
    sparse_form: Annotated[
        str, typer.Option("--sparse-form", help="neural_sparse (query_tokens) or rank_feature (portable).")
    ] = "neural_sparse",
    terms_weighting: Annotated[
        str, typer.Option("--terms-weighting", help="Query word weights for terms: idf or uniform.")
    ] = "idf",
    fields: Annotated[str, typer.Option("--fields", help="Text fields BM25 searches.")] = "title,text",
    bm25_type: Annotated[
        str, typer.Option("--bm25-type", help="multi_match type: best_fields, cross_fields, most_fields.")
    ] = "best_fields",
    expansion: Annotated[
        bool | None,
        typer.Option(
            "--expansion/--no-expansion", help="BM25 also searches nir_expansion (default: when present)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Queries per _msearch.")] = 50,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N judged queries.")
    ] = None,
    rerank: Annotated[
        str | None,
        typer.Option("--rerank", help="Cross-encoder (name or folder) that re-scores the top --window hits."),
    ] = None,
    window: Annotated[int, typer.Option("--window", min=1, help="Hits the reranker re-scores.")] = 100,
    rerank_weight: Annotated[
        float,
        typer.Option(
            "--rerank-weight",
            help="Cross-encoder share of the score within the window: 1 = pure rerank, 0 = first stage; "
            "scores min-max normalised per query.",
        ),
    ] = 1.0,
    rerank_backend: Annotated[
        str, typer.Option("--rerank-backend", help="The cross-encoder's backend (auto, onnx-int8, ...).")
    ] = "auto",
    rerank_max_length: Annotated[
        int | None,
        typer.Option(
            "--rerank-max-length",
            min=16,
            max=512,
            help="Word pieces per (query, passage) (default: what the model was trained with, from its "
            f"training.json, else {DEFAULT_MAX_LENGTH}).",
            show_default=False,
        ),
    ] = None,
    score_cache: Annotated[
        bool,
        typer.Option("--score-cache/--no-score-cache", help="Keep rerank scores on disk."),
    ] = True,
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights", help="Hybrid weights, one per mode joined by ',' (e.g. 1,2); default all 1."
        ),
    ] = None,
    prior_weight: Annotated[
        float,
        typer.Option(
            "--prior-weight",
            help="Share of the document prior (nirbridge prior) in the first stage, in [0, 1]; 0 = off.",
        ),
    ] = 0.0,
    prior_field: Annotated[
        str, typer.Option("--prior-field", help="The rank_feature field holding the prior.")
    ] = "nir_prior",
    json_output: JsonOption = False,
    progress: ProgressOption = None,
) -> None:
    """nDCG@10, MRR@10 and Recall@100 of a retrieval mode on a BEIR split, and queries/s."""
    from tqdm import tqdm

    _choice(mode, MODES, "--mode")
    _choice(fusion, FUSION_METHODS, "--fusion")
    _choice(sparse_form, SPARSE_FORMS, "--sparse-form")
    _choice(terms_weighting, TERMS_WEIGHTINGS, "--terms-weighting")
    _choice(bm25_type, ("best_fields", "cross_fields", "most_fields"), "--bm25-type")
    if not 0.0 <= rerank_weight <= 1.0:  # checked here rather than with min/max: that lets NaN through
        raise typer.BadParameter(f"must be in [0, 1], got {rerank_weight}", param_hint="'--rerank-weight'")
    if not 0.0 <= prior_weight <= 1.0:
        raise typer.BadParameter(f"must be in [0, 1], got {prior_weight}", param_hint="'--prior-weight'")
    try:
        modes = parse_hybrid(hybrid) if mode == "hybrid" else (mode,)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--hybrid'") from None
    mode_weights = _parse_weights(weights, modes) if weights is not None else None
    text_fields = tuple(name.strip() for name in fields.split(",") if name.strip())
    if not text_fields:
        raise typer.BadParameter("name at least one field", param_hint="'--fields'")
    beir = open_dataset(dataset)
    try:
        beir.qrels(split)
    except DatasetError as error:
        raise typer.BadParameter(error.reason, param_hint="'--split'") from None
    settings = cli_settings()
    client, resolved = connect(url, settings)
    found = guarded(lambda: IndexFields.read(client, resolved, index))
    for one in modes:
        guarded(lambda one=one: found.require(one))
    prior = Prior(prior_weight, prior_field) if prior_weight > 0 else None
    if prior is not None:
        guarded(lambda: require_prior_field(found.types, index, prior_field))
    encoders = QueryEncoders(
        sparse_model=sparse_model or found.models.get("sparse", "splade-tiny"),
        dense_model=dense_model or found.models.get("dense", "all-MiniLM-L6-v2"),
        terms_model=terms_model or found.models.get("terms", "splade-tiny"),
        backend=backend,
    )
    builder = QueryBuilder(
        encoders,
        found,
        text_fields=text_fields,
        bm25_type=bm25_type,
        sparse_form=sparse_form,  # type: ignore[arg-type]
        terms_weighting=terms_weighting,  # type: ignore[arg-type]
        use_expansion=expansion,
    )
    reranker = None
    if rerank is not None:
        reranker = _eval_reranker(
            client, resolved, index, text_fields, rerank, rerank_backend, rerank_max_length, score_cache
        )
    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(unit="q", file=sys.stderr, disable=not show, desc=f"eval {index} {mode}") as bar:
        report = guarded(
            lambda: evaluate(
                client,
                resolved,
                index,
                beir,
                split,
                builder,
                mode,
                modes=modes,
                fusion=fusion,  # type: ignore[arg-type]
                depth=depth,
                batch_size=batch_size,
                limit=limit,
                reranker=reranker,
                window=window,
                rerank_weight=rerank_weight,
                weights=mode_weights,
                prior=prior,
                progress=bar.update,
            )
        )
    chosen = {"sparse": encoders.sparse_model, "dense": encoders.dense_model, "terms": encoders.terms_model}
    models = {kind: chosen[kind] for kind in modes if kind in chosen}
    if models:
        report.settings.update(models=models, backend=backend)
    if reranker is not None:
        report.settings["rerank"] = {
            "model": rerank,
            "backend": reranker.encoder.backend,
            "window": window,
            "weight": rerank_weight,
            "max_length": reranker.encoder.max_length,
            "pairs_scored": reranker.scored,
            "pairs_cached": reranker.cached,
            "scores_from": reranker.scores_from,
        }
    _print_report(report, err=json_output)
    if json_output:
        print_json(report.as_json())
