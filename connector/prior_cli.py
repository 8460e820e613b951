"""`nirbridge prior`: write a document prior learned from judgments into an index (see `connector.cli`).

    nirbridge prior --index nfcorpus --qrels ../shared/data/nfcorpus/qrels/train.tsv [--field nir_prior]
    nirbridge eval --index nfcorpus ... --prior-weight 0.3       # use it at query time (the proxy: "prior")

The judgments are a qrels TSV (`query-id  corpus-id  score`, BEIR's layout); clicks fit the same file, one
line per (query, clicked document). Only the training judgments belong here: the queries a prior is
evaluated on must not be in its file (see `connector.prior`).

Exit status: 0 written (documents the index lacks are counted as missing, not an error), 1 some documents
failed, 2 bad usage (an unreadable file, a field that exists with another type, an unreachable cluster).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_common import cli_settings, connect, fail, guarded, print_json
from .cli_options import JsonOption, UrlOption

__all__ = ["prior_command"]


def prior_command(
    index: Annotated[str, typer.Option("--index", help="Index (or alias) to write the prior into.")],
    qrels: Annotated[
        Path, typer.Option("--qrels", help="Judgments: a qrels TSV (query-id, corpus-id, score).")
    ],
    url: UrlOption = None,
    field: Annotated[str, typer.Option("--field", help="The rank_feature field to write.")] = "nir_prior",
    min_grade: Annotated[
        int, typer.Option("--min-grade", min=1, help="Lowest grade that counts as an answer.")
    ] = 1,
    json_output: JsonOption = False,
) -> None:
    """Count the judged queries each document answers; write log(1+n)/log(1+max n) as a rank_feature."""
    from .beir import read_qrels
    from .prior import prior_values, write_prior

    judged = guarded(lambda: read_qrels(qrels))
    try:
        values = prior_values(judged, min_grade)
    except ValueError as error:
        raise typer.BadParameter(f"{qrels}: {error}", param_hint="'--qrels'") from None
    client, resolved = connect(url, cli_settings())
    report = guarded(lambda: write_prior(client, resolved, index, values, field))
    summary = (
        f"{index}.{field}: {report.written} documents written from {len(judged)} queries"
        f"{' (mapping added)' if report.mapping_added else ''}; {report.missing} judged documents not in the "
        f"index; {report.failed} failed"
    )
    typer.echo(summary, err=json_output)
    if json_output:
        print_json(report.as_json())
    if report.failed:
        fail(f"{report.failed} documents were not written (first: {report.failures[0].reason})", 1)
