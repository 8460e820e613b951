"""The `nirbridge` command line (DESIGN.md lists the public contract).

Exit status: 0 success, 1 some documents failed (each one listed) or the cluster failed, 2 bad usage or an
unreachable cluster, 130 an `enrich` paused by SIGINT/SIGTERM (the same command resumes it). `--json`
prints one JSON object on the last line of stdout; progress and errors go to stderr.
"""

from __future__ import annotations

import itertools
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from .beir import BeirDataset, shipped_sample
from .cli_common import cli_settings, connect, exit_code, fail, guarded, open_dataset, print_json
from .cli_options import IndexOption, JsonOption, ProgressOption, UrlOption
from .client import cluster_error
from .config_cli import config_command
from .errors import DatasetError, NirbridgeError
from .eval_cli import eval_command
from .hash_password_cli import hash_password_command
from .ingest import IngestReport, ensure_index, ingest_documents
from .migrate_cli import migrate_app
from .observe_options import (
    LogFormatOption,
    LogLevelOption,
    MetricsHostOption,
    MetricsPortOption,
    setup_logging,
)
from .prior_cli import prior_command
from .schema import corpus_index_body
from .search import SearchResult, search_bm25
from .serve_cli import serve_command
from .status_cli import status_command
from .train_cli import train_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="nirbridge",
    help="Neural retrieval for the OpenSearch clusters you already run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
engine_app = typer.Typer(help="The embedded OpenSearch-compatible engine.", no_args_is_help=True)
app.add_typer(engine_app, name="engine")


@engine_app.command("serve")
def engine_serve(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where the engine keeps its indices.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 9200,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate (chain): serve HTTPS only.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    users: Annotated[
        Path | None,
        typer.Option("--users", help="internal_users.yml-style file (bcrypt hashes): require basic auth."),
    ] = None,
) -> None:
    """Run the embedded OpenSearch-compatible engine until interrupted."""
    if data_dir.exists() and not data_dir.is_dir():
        raise typer.BadParameter(f"not a directory: {data_dir}", param_hint="'--data-dir'")
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key, or neither", param_hint="'--tls-key'")
    try:
        from nirbridge.engine.rest.security import SecurityConfigError
        from nirbridge.engine.rest.server import serve
    except ImportError as error:
        if error.name == "nirbridge.engine.rest.server":
            fail("the embedded engine is not part of this installation (no nirbridge.engine.rest.server)", 1)
        fail(f"the embedded engine failed to load: {error}", 1)
    # the server logs at WARNING only: without these two lines a newcomer sees nothing start or stop
    scheme = "https" if tls_cert else "http"
    where = data_dir.resolve()
    typer.echo(
        f"engine: starting on {scheme}://{host}:{port}, data in {where}"
        f"{', basic auth required' if users else ''} (Ctrl-C stops it)",
        err=True,
    )
    # uvicorn shuts down on SIGINT/SIGTERM, then raises the signal again: a SIGTERM would end the process
    # before the stop line, so it becomes an exception here until the line is out, then is raised as before
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        serve(
            str(data_dir),
            host,
            port,
            tls_cert=str(tls_cert) if tls_cert else None,
            tls_key=str(tls_key) if tls_key else None,
            users_file=str(users) if users else None,
        )
    except SecurityConfigError as error:
        fail(str(error), 2)
    except (_Terminated, KeyboardInterrupt) as stop:
        typer.echo(f"engine: stopped; the data stays in {where}", err=True)
        signal.signal(signal.SIGTERM, previous)
        if isinstance(stop, _Terminated):
            signal.raise_signal(signal.SIGTERM)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    typer.echo(f"engine: stopped; the data stays in {where}", err=True)


class _Terminated(BaseException):
    """SIGTERM, raised once the engine has shut down (see engine_serve)."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated


engine_app.command("hash-password")(hash_password_command)  # a bcrypt hash for engine serve --users


def _run_ingest(
    client: OpenSearch,
    url: str,
    index: str,
    dataset: BeirDataset,
    *,
    batch_size: int,
    limit: int | None,
    progress: bool,
) -> IngestReport:
    from tqdm import tqdm

    created = guarded(lambda: ensure_index(client, url, index, corpus_index_body()))
    if created:
        typer.echo(f"created index {index}", err=True)
    total = dataset.count_documents()
    bad_lines: list[DatasetError] = []
    documents = dataset.documents(bad_lines)
    if limit is not None:
        documents = itertools.islice(documents, limit)
        total = min(total, limit)
    report = IngestReport()
    items = ingest_documents(client, index, documents, bad_lines=bad_lines, chunk_size=batch_size)
    with tqdm(total=total, unit="doc", file=sys.stderr, disable=not progress, desc=f"ingest {index}") as bar:
        for item in items:
            report.add(item)
            bar.update(1)
            if not item.ok:
                tqdm.write(f"failed: {item.id}: {item.reason}", file=sys.stderr)
    try:
        client.indices.refresh(index=index)
    except TransportError as error:
        fail(str(cluster_error(error, url, index)), 1)
    return report


@app.command()
def ingest(
    index: IndexOption,
    dataset: Annotated[Path, typer.Option("--dataset", help="A BEIR folder (corpus.jsonl, ...).")],
    url: UrlOption = None,
    json_output: JsonOption = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Documents per _bulk request.")
    ] = 500,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Index only the first N documents.")
    ] = None,
    progress: ProgressOption = None,
) -> None:
    """Load a BEIR corpus into an index (created when missing; ids kept as `_id`)."""
    beir = open_dataset(dataset)
    settings = cli_settings()
    client, resolved = connect(url, settings)
    show = sys.stderr.isatty() if progress is None else progress
    report = _run_ingest(client, resolved, index, beir, batch_size=batch_size, limit=limit, progress=show)
    summary = (
        f"indexed {report.indexed} documents into {index}, {report.failed} failed, "
        f"{report.seconds:.1f} s, {report.docs_per_s:.0f} docs/s"
    )
    typer.echo(summary, err=json_output)
    if json_output:
        print_json(report.as_json(index=index, url=resolved))
    raise typer.Exit(1 if report.failed else 0)


def _print_hits(result: SearchResult, q: str, relevant: dict[str, int] | None = None) -> None:
    typer.echo(f"{len(result.hits)} of {result.total} hits for {q!r} ({result.took_ms} ms)")
    for rank, hit in enumerate(result.hits, start=1):
        mark = ""
        if relevant is not None:
            mark = " *" if relevant.get(hit.id, 0) > 0 else "  "
        title = hit.title or hit.text
        title = title if len(title) <= 90 else title[:87] + "..."
        typer.echo(f"{rank:>3}{mark} {hit.score:8.3f}  {hit.id:<12} {title}")


@app.command()
def search(
    index: IndexOption,
    q: Annotated[str, typer.Option("--q", help="Query text.")],
    url: UrlOption = None,
    size: Annotated[int, typer.Option("--size", min=0, help="Number of hits.")] = 10,
    json_output: JsonOption = False,
) -> None:
    """BM25 search (multi_match over title and text), hits printed one per line."""
    if not q.strip():
        raise typer.BadParameter("the query text is empty", param_hint="'--q'")
    settings = cli_settings()
    client, resolved = connect(url, settings)
    result = guarded(lambda: search_bm25(client, resolved, index, q, size))
    if json_output:
        print_json({"index": index, "q": q, **result.as_json()})
    else:
        _print_hits(result, q)


@app.command()
def demo(
    queries: Annotated[int, typer.Option("--queries", min=1, help="How many sample queries to run.")] = 3,
    size: Annotated[int, typer.Option("--size", min=1, help="Hits per query.")] = 5,
    port: Annotated[int | None, typer.Option("--port", help="Engine port (default: a free one).")] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="Encoder backend (auto: the fastest measured on this machine).")
    ] = "auto",
    rerank: Annotated[
        str,
        typer.Option(
            "--rerank",
            help="Cross-encoder reranking the hybrid hits (default: the one nirbridge ships); 'none': skip.",
        ),
    ] = "",
    json_output: JsonOption = False,
) -> None:
    """The main job end to end on the embedded engine: ingest the shipped sample, enrich it, search it with
    every mode, and rerank the hybrid hits with a cross-encoder."""
    from .demo import (
        DEMO_MODES,
        RERANK_MODEL,
        RERANK_WEIGHT,
        RERANK_WINDOW,
        RERANKED,
        compare_modes,
        demo_reranker,
        enrich_sample,
    )
    from .engine_process import running_engine

    sample = shipped_sample()
    index = "nfcorpus-sample"
    say = (lambda text: typer.echo(text, err=True)) if json_output else typer.echo
    say(f"starting the embedded engine (sample: {sample.root})")
    show = sys.stderr.isatty()
    try:
        with running_engine(port=port) as engine:
            say(f"engine up at {engine.url}")
            settings = cli_settings()
            client, url = connect(engine.url, settings)
            report = _run_ingest(client, url, index, sample, batch_size=100, limit=None, progress=show)
            rate = f"{report.docs_per_s:.0f} docs/s"
            say(f"ingested {report.indexed} documents ({report.failed} failed, {rate})")
            say(f"enriching: SPLADE (nir_sparse) and all-MiniLM-L6-v2 (nir_dense), backend {backend}")
            update, close = _enrich_progress(show)
            try:
                enriched = guarded(lambda: enrich_sample(client, url, index, backend, update))
            finally:
                close()
            say(
                f"enriched {enriched.processed} documents ({enriched.failed} failed, "
                f"{enriched.docs_per_s:.1f} docs/s)"
            )
            model = rerank or RERANK_MODEL
            reranker = None
            if model != "none":
                how = f"in this process, hybrid top {RERANK_WINDOW}, weight {RERANK_WEIGHT}"
                say(f"reranker: {model} ({how})")
                reranker = guarded(lambda: demo_reranker(model, backend))
            modes = (*DEMO_MODES, RERANKED) if reranker is not None else DEMO_MODES
            shown = RERANKED if reranker is not None else "hybrid"
            qrels = sample.qrels("dev")
            searches = []
            # the queries with the most judged documents first: the ones a demo can show best
            chosen = sorted(sample.queries(), key=lambda query: -len(qrels.get(query.id, {})))[:queries]
            for query in chosen:
                ranked = guarded(
                    lambda q=query.text: compare_modes(client, url, index, q, size, backend, reranker)
                )
                relevant = qrels.get(query.id, {})
                found = {mode: sum(relevant.get(i, 0) > 0 for i, _, _ in ranked[mode]) for mode in modes}
                if not json_output:
                    what = "reranked hybrid (BM25 + dense, RRF)" if reranker else "hybrid (BM25 + dense, RRF)"
                    typer.echo(f"\n{query.text!r}: {what} top {size}")
                    for rank, (doc_id, score, title) in enumerate(ranked[shown], start=1):
                        mark = " *" if relevant.get(doc_id, 0) > 0 else "  "
                        title = title if len(title) <= 80 else title[:77] + "..."
                        typer.echo(f"{rank:>3}{mark} {score:8.4f}  {doc_id:<10} {title}")
                    counts = ", ".join(f"{mode} {found[mode]}" for mode in modes)
                    typer.echo(f"    judged relevant in the top {size}: {counts}")
                searches.append(
                    {
                        "query_id": query.id,
                        "q": query.text,
                        "relevant_in_hits": found,
                        "hits": {
                            mode: [{"id": i, "score": s} for i, s, _ in hits] for mode, hits in ranked.items()
                        },
                    }
                )
    except NirbridgeError as error:
        fail(str(error), exit_code(error))
    say("\n(* = judged relevant in NFCorpus dev qrels) engine stopped")
    if json_output:
        print_json(
            {
                "url": engine.url,
                "index": index,
                "ingest": report.as_json(),
                "enrich": enriched.as_json(),
                "searches": searches,
            }
        )
    raise typer.Exit(1 if report.failed or enriched.failed else 0)


def _parse_params(values: list[str]) -> dict[str, dict[str, Any]]:
    """`--param KIND.NAME=VALUE` (VALUE read as JSON when it is JSON, else as a string), by encoder kind."""
    params: dict[str, dict[str, Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        kind, dot, name = key.partition(".")
        if not sep or not dot or not name or kind not in ("sparse", "terms", "dense", "doc2query"):
            raise typer.BadParameter(
                f"{item!r}: expected KIND.NAME=VALUE with KIND sparse, terms, dense or doc2query",
                param_hint="'--param'",
            )
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        params.setdefault(kind, {})[name] = value
    return params


def _enrichment_spec(
    fields: str, models: dict[str, str | None], backend: str, params: dict[str, dict[str, Any]]
) -> Any:
    from nirbridge.workers.pipeline import EncoderSpec, EnrichmentSpec, SpecError

    names = [name.strip() for name in fields.split(",") if name.strip()]
    unused = sorted(set(params) - {kind for kind, model in models.items() if model})
    if unused:
        raise typer.BadParameter(
            f"parameters for {', '.join(unused)}, which is not asked for", param_hint="'--param'"
        )
    try:
        return EnrichmentSpec(
            fields=tuple(names),
            **{
                kind: EncoderSpec(model, backend, params.get(kind, {}))
                for kind, model in models.items()
                if model
            },
        )
    except SpecError as error:
        fail(f"{error} (name the encoders with --sparse, --terms, --doc2query, --dense)", 2)


def _enrich_progress(show: bool) -> tuple[Callable[[Any, int], None], Callable[[], None]]:
    """A tqdm bar over the documents to scan: documents, docs/s, ETA; and the function that closes it."""
    from tqdm import tqdm

    bars: list[Any] = []

    def update(report: Any, scanned: int) -> None:
        if not bars:
            bars.append(
                tqdm(
                    total=report.to_scan,
                    initial=report.scanned_before,
                    unit="doc",
                    file=sys.stderr,
                    disable=not show,
                    desc=f"enrich {report.target}",
                )
            )
        bar = bars[0]
        bar.set_postfix(
            enriched=report.processed, skipped=report.skipped, failed=report.failed, refresh=False
        )
        bar.update(scanned - bar.n)

    def close() -> None:
        for bar in bars:
            bar.close()

    return update, close


def _enrich_metrics(
    update: Callable[[Any, int], None], port: int | None, host: str
) -> tuple[Callable[[Any, int], None], Callable[[], None]]:
    """With a port: the job's metrics (connector.metrics) served there, kept up by the progress callback,
    and the function that stops the server. Without: `update` as it is."""
    if port is None:
        return update, lambda: None
    from .metrics import EnrichMetrics, serve_registry

    metrics = EnrichMetrics()
    try:
        server = serve_registry(port, metrics.registry, host)
    except OSError as error:
        fail(f"cannot serve metrics on {host}:{port}: {error.strerror or error}", 2)

    def both(report: Any, scanned: int) -> None:
        update(report, scanned)
        metrics.observe(report)

    return both, server.close


@app.command()
def enrich(
    ctx: typer.Context,
    index: IndexOption,
    fields: Annotated[str, typer.Option("--fields", help="Comma-separated text fields to read, in order.")],
    sparse: Annotated[
        str | None, typer.Option("--sparse", help="SPLADE model (name or path) -> nir_sparse.")
    ] = None,
    terms: Annotated[
        str | None,
        typer.Option("--terms", help="Term-weight model (DeepCT, or SPLADE on own terms) -> nir_terms."),
    ] = None,
    doc2query: Annotated[
        str | None, typer.Option("--doc2query", help="Seq2seq query generator -> nir_expansion.")
    ] = None,
    dense: Annotated[
        str | None, typer.Option("--dense", help="Bi-encoder -> nir_dense (knn_vector).")
    ] = None,
    backend: Annotated[
        str,
        typer.Option("--backend", help="auto, onnx-int8, onnx-fp32, onnx-cuda-fp16, torch-fp32, torch-bf16."),
    ] = "auto",
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", help="Encoder parameter KIND.NAME=VALUE, e.g. sparse.top_k=128 (repeatable)."
        ),
    ] = None,
    runner: Annotated[
        str, typer.Option("--runner", help="local (this process) or celery (workers on the enrich queue).")
    ] = "local",
    url: UrlOption = None,
    query: Annotated[
        str | None,
        typer.Option(
            "--query", help="Only documents matching this query (JSON), e.g. a range on a timestamp."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents per batch.")] = 32,
    slices: Annotated[int, typer.Option("--slices", min=1, help="Parallel readers (sliced scan).")] = 1,
    in_flight: Annotated[
        int, typer.Option("--in-flight", min=1, help="Batches queued for the workers at once (celery).")
    ] = 4,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for one batch (celery).")
    ] = 300.0,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="Checkpoint file (default .nirbridge/enrich-INDEX.json)."),
    ] = None,
    max_docs_per_s: Annotated[
        float | None,
        typer.Option(
            "--max-docs-per-s",
            min=0.001,
            help="Ceiling on documents written per second (live clusters); 429s halve it, clean batches "
            "win it back slowly.",
        ),
    ] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Ignore an existing checkpoint.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Report the mapping change and the documents to scan; change nothing."
        ),
    ] = False,
    json_output: JsonOption = False,
    progress: ProgressOption = None,
    log_format: LogFormatOption = None,
    log_level: LogLevelOption = None,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "127.0.0.1",
) -> None:
    """Write SPLADE, term-weight, doc2query and dense fields into an existing index (resumable).

    Ctrl-C or SIGTERM pauses: the batches in flight are written and checkpointed, the exit status is 130,
    and the same command resumes.
    """
    from .enrich import EnrichJob, EnrichOptions
    from .pause import EXIT_PAUSED, stop_on_signals
    from .runner import CeleryRunner, LocalRunner

    setup_logging(ctx, log_format, log_level)

    if runner not in ("local", "celery"):
        raise typer.BadParameter(f"{runner!r}: choose local or celery", param_hint="'--runner'")
    parsed_query: dict[str, Any] | None = None
    if query is not None:
        try:
            parsed_query = json.loads(query)
        except ValueError as error:
            raise typer.BadParameter(f"not JSON: {error}", param_hint="'--query'") from None
        if not isinstance(parsed_query, dict):
            raise typer.BadParameter("expected a JSON object (a query clause)", param_hint="'--query'")
    spec = _enrichment_spec(
        fields,
        {"sparse": sparse, "terms": terms, "doc2query": doc2query, "dense": dense},
        backend,
        _parse_params(param or []),
    )
    settings = cli_settings()
    client, resolved = connect(url, settings)
    options = guarded(
        lambda: EnrichOptions(
            index=index,
            spec=spec,
            checkpoint=checkpoint or Path(".nirbridge") / f"enrich-{index}.json",
            query=parsed_query,
            batch_size=batch_size,
            slices=slices,
            restart=restart,
            dry_run=dry_run,
            max_docs_per_s=max_docs_per_s,
        )
    )
    show = sys.stderr.isatty() if progress is None else progress
    update, close = _enrich_progress(show)
    update, stop_metrics = _enrich_metrics(update, metrics_port, metrics_host)
    chosen = LocalRunner() if runner == "local" else CeleryRunner(in_flight=in_flight, timeout=timeout)
    try:
        with chosen:
            job = EnrichJob(client, resolved, chosen, options)
            with stop_on_signals(job.request_stop):
                report = guarded(lambda: job.run(update))
    finally:
        close()
        stop_metrics()
    if dry_run:
        typer.echo(f"dry run: {report.to_scan} documents to scan in {index}", err=json_output)
        typer.echo(report.mapping_text, err=json_output)
    else:
        typer.echo(
            f"enriched {report.processed} documents of {index} (in {report.target}), "
            f"{report.skipped} skipped as current, "
            + (f"{report.skipped_empty} skipped with no text, " if report.skipped_empty else "")
            + f"{report.failed} failed, {report.seconds:.1f} s, {report.docs_per_s:.1f} docs/s",
            err=json_output,
        )
        if report.swapped_from:
            typer.echo(
                f"{index} now points at {report.target} (was {report.swapped_from}, kept; "
                f"`nirbridge migrate rollback --index {index}` points it back)",
                err=json_output,
            )
        if report.rate_cuts:
            typer.echo(
                f"the cluster answered 429: the rate was halved {report.rate_cuts} times", err=json_output
            )
        for skip in report.empty[:20]:
            typer.echo(f"skipped: {skip['id']}: {skip['reason']}", err=True)
        for failure in report.failures[:20]:
            typer.echo(f"failed: {failure['id']}: {failure['reason']}", err=True)
    if report.paused:
        typer.echo(
            f"paused: {report.processed} documents enriched so far, checkpoint {options.checkpoint}; "
            "run the same command again to resume (--restart starts over)",
            err=True,
        )
    if json_output:
        print_json(report.as_json())
    raise typer.Exit(EXIT_PAUSED if report.paused else 1 if report.failed else 0)


@app.command()
def worker(
    ctx: typer.Context,
    queues: Annotated[
        str, typer.Option("--queues", help="Comma-separated queues to consume: enrich, rerank.")
    ] = "enrich,rerank",
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Pool processes (default: one per queue).")
    ] = None,
    loglevel: Annotated[
        str | None,
        typer.Option(
            "--loglevel",
            "--log-level",
            help="debug, info, warning, error, critical (default: $NIRBRIDGE_LOG_LEVEL, else info).",
            show_default=False,
        ),
    ] = None,
    hostname: Annotated[
        str | None, typer.Option("--hostname", help="Worker node name (default nirbridge-QUEUES@host).")
    ] = None,
    log_format: LogFormatOption = None,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "127.0.0.1",
) -> None:
    """A Celery worker (broker and results: $NIRBRIDGE_BROKER_URL, $NIRBRIDGE_RESULT_BACKEND).

    With --metrics-port the workers' metrics (workers.metrics) of every pool process are served there
    (prometheus_client's multiprocess mode, workers.metrics_http)."""
    from celery import signals

    chosen, level = setup_logging(ctx, log_format, loglevel)
    signals.setup_logging.connect(lambda **_: None, weak=False)  # a receiver: Celery keeps our handler
    if metrics_port is not None:
        from nirbridge.workers.metrics_http import serve_worker_metrics

        try:
            serve_worker_metrics(metrics_port, metrics_host)
        except OSError as error:
            fail(f"cannot serve metrics on {metrics_host}:{metrics_port}: {error.strerror or error}", 2)
    from nirbridge.workers.celery_app import run_worker

    names = [name.strip() for name in queues.split(",") if name.strip()]
    try:
        # JSON logs: no banner on stdout, so that every line the worker prints parses
        status = run_worker(
            names, concurrency=concurrency, loglevel=level, hostname=hostname, quiet=chosen == "json"
        )
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--queues'") from None
    except ConnectionError as error:
        fail(str(error), 2)
    if status:  # stopped by itself on an error: a supervisor restarting on-failure must see it
        raise typer.Exit(status)


# the commands that live in modules of their own, registered after those above (help lists them in this order)
app.command("eval")(eval_command)
app.command("serve")(serve_command)  # the search proxy (connector.proxy)
app.command("status")(status_command)  # cluster, indices, broker and workers at a glance
app.command("config")(config_command)  # the settings in effect, secrets masked
app.add_typer(train_app, name="train")  # nirbridge train reranker|dense|deepct|doc2query
app.add_typer(migrate_app, name="migrate")  # nirbridge migrate rollback
app.command("prior")(prior_command)  # nirbridge prior: a document prior from judgments


HELP_WIDTH = 120  # wide enough that no command's option names or defaults are cut


def fit_help_to_pipe(stdout: Any = None) -> None:
    """When stdout is not a terminal (a pipe, CI, a file) and no width is set ($TERMINAL_WIDTH, $COLUMNS),
    draw help HELP_WIDTH wide: rich falls back to 80 columns there and cuts names (`--rerank-max-le…`)."""
    import os

    import typer.rich_utils

    stream = sys.stdout if stdout is None else stdout
    if os.environ.get("TERMINAL_WIDTH") or os.environ.get("COLUMNS") or stream.isatty():
        return
    typer.rich_utils.MAX_WIDTH = HELP_WIDTH


def main() -> None:
    """Console-script entry point."""
    fit_help_to_pipe()
    app()


if __name__ == "__main__":
    main()
