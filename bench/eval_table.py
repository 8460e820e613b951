"""Issue 5's table: nDCG@10 of every retrieval mode, with and without reranking, by `nirbridge` commands.

    .venv/bin/python -m nirbridge.bench.eval_table --dataset ../shared/data/scifact --split test \\
        --url http://127.0.0.1:9200 --dense models/dense-scifact --rerank models/reranker-scifact \\
        [--deepct models/deepct-scifact] [--doc2query models/doc2query-scifact] [--rows bm25,dense]

Every number comes from one `nirbridge` command that this script prints (stderr, `$ ...`) before running it,
so each can be rerun by hand.  The indices are prepared the same way, once (an index that already has the
enriched field is reused: delete it to start over):

    <prefix>            ingest; enrich --sparse splade-tiny --dense <--dense or all-MiniLM-L6-v2>
    <prefix>-d2q        ingest; enrich --doc2query <--doc2query>          (row "BM25 + doc2query")
    <prefix>-deepct     ingest; enrich --terms <--deepct>                 (row "DeepCT terms")

Rows (``--rows``, default all that the given models allow): bm25, bm25+doc2query, deepct, splade, dense,
hybrid bm25+dense (min-max), hybrid bm25+sparse (min-max), the hybrid of three (BM25, dense, SPLADE; weights
1, 2, 1); with ``--prior TRAIN_QRELS`` (``nirbridge prior`` into the base index) BM25, hybrid bm25+dense and
the hybrid of three with the document prior at 0.3; with ``--rerank`` each also reranked (window
``--window``, default 100; scores are cached per model, so rows share the pairs they have in common).  One
JSON line per row on stdout, then a Markdown table.  Long on a CPU: a cross-encoder scores some tens of pairs
per second here, and a reranked row of SciFact test is 30,000 pairs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

NIRBRIDGE = [sys.executable, "-m", "nirbridge"]

_MINMAX = ["--mode", "hybrid", "--fusion", "minmax", "--hybrid"]
# the weights and the prior weight chosen on NFCorpus train queries held out of training (README)
_THREE = [*_MINMAX, "bm25+dense+sparse", "--weights", "1,2,1"]
_PRIOR = ["--prior-weight", "0.3"]
# row name -> (index suffix, eval options, what the row needs: None, "doc2query", "deepct" or "prior")
ROWS: dict[str, tuple[str, list[str], str | None]] = {
    "bm25": ("", ["--mode", "bm25", "--no-expansion"], None),
    "bm25+doc2query": ("-d2q", ["--mode", "bm25", "--expansion"], "doc2query"),
    "deepct": ("-deepct", ["--mode", "terms"], "deepct"),
    "splade": ("", ["--mode", "sparse"], None),
    "dense": ("", ["--mode", "dense"], None),
    "hybrid bm25+dense": ("", ["--mode", "hybrid", "--hybrid", "bm25+dense", "--fusion", "minmax"], None),
    "hybrid bm25+sparse": ("", ["--mode", "hybrid", "--hybrid", "bm25+sparse", "--fusion", "minmax"], None),
    "hybrid of three": ("", [*_THREE], None),
    "bm25 + prior": ("", ["--mode", "bm25", "--no-expansion", *_PRIOR], "prior"),
    "hybrid bm25+dense + prior": ("", [*_MINMAX, "bm25+dense", *_PRIOR], "prior"),
    "hybrid of three + prior": ("", [*_THREE, *_PRIOR], "prior"),
}


def run(command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    shown = " ".join(shlex.quote(part) for part in ["nirbridge", *command[len(NIRBRIDGE) :]])
    print(f"$ {shown}", file=sys.stderr, flush=True)
    return subprocess.run(command, text=True, capture_output=True, check=check)


def has_field(url: str, index: str, field: str) -> bool:
    import httpx

    answer = httpx.get(f"{url}/{index}/_mapping", timeout=30)
    if answer.status_code == 404:
        return False
    answer.raise_for_status()
    properties = next(iter(answer.json().values()))["mappings"].get("properties", {})
    return field in properties


def prepare(args: argparse.Namespace, suffix: str, fields: list[str], enrich: list[str]) -> str:
    """The index `<prefix><suffix>` with the dataset ingested and `fields` enriched (reused when present)."""
    index = args.prefix + suffix
    common = ["--url", args.url, "--index", index]
    if not has_field(args.url, index, "text"):
        run([*NIRBRIDGE, "ingest", *common, "--dataset", str(args.dataset), "--no-progress"])
    if enrich and not all(has_field(args.url, index, field) for field in fields):
        run([*NIRBRIDGE, "enrich", *common, "--fields", "title,text", *enrich, "--no-progress", "--json"])
    return index


def evaluate(args: argparse.Namespace, index: str, options: list[str], rerank: bool) -> dict[str, Any]:
    command = [*NIRBRIDGE, "eval", "--url", args.url, "--index", index, "--dataset", str(args.dataset)]
    command += ["--split", args.split, *options, "--json", "--no-progress"]
    if rerank:
        command += ["--rerank", str(args.rerank), "--window", str(args.window)]
        command += ["--rerank-backend", args.rerank_backend, "--rerank-weight", str(args.rerank_weight)]
        if args.rerank_max_length:
            command += ["--rerank-max-length", str(args.rerank_max_length)]
    done = run(command, check=False)
    if done.returncode != 0:
        raise SystemExit(f"eval failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--prefix", default=None, help="Index name prefix (default: eval-<dataset>).")
    parser.add_argument("--dense", default="all-MiniLM-L6-v2")
    parser.add_argument("--sparse", default="splade-tiny")
    parser.add_argument("--deepct", default=None)
    parser.add_argument("--doc2query", default=None)
    parser.add_argument("--doc2query-param", action="append", default=[], help="e.g. doc2query.n=5")
    parser.add_argument("--deepct-param", action="append", default=[], help="e.g. terms.pseudo_text_scale=10")
    parser.add_argument("--prior", type=Path, default=None, help="Train qrels: nirbridge prior")
    parser.add_argument("--rerank", default=None)
    parser.add_argument("--rerank-backend", default="onnx-int8")
    parser.add_argument("--rerank-weight", type=float, default=1.0, help="eval --rerank-weight (1: pure)")
    parser.add_argument("--rerank-max-length", type=int, default=None, help="eval --rerank-max-length")
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--first-stage-only", action="store_true", help="Skip the reranked rows.")
    args = parser.parse_args(argv)
    args.prefix = args.prefix or f"eval-{args.dataset.name}"
    wanted = [row.strip() for row in args.rows.split(",") if row.strip()]
    unknown = [row for row in wanted if row not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    models = {"doc2query": args.doc2query, "deepct": args.deepct, "prior": args.prior}
    wanted = [row for row in wanted if ROWS[row][2] is None or models[ROWS[row][2]]]

    indices: dict[str, str] = {}
    if any(ROWS[row][0] == "" for row in wanted):
        # the base index holds what its rows read: nothing more for BM25 alone
        enrich: list[str] = []
        reads = [part for row in wanted if ROWS[row][0] == "" for part in ROWS[row][1]]
        if any("sparse" in part for part in reads):
            enrich += ["--sparse", args.sparse]
        if any("dense" in part for part in reads):
            enrich += ["--dense", args.dense]
        fields = [f"nir_{kind.lstrip('-')}" for kind in enrich[::2]]
        indices[""] = prepare(args, "", fields, enrich)
        if args.prior and any(ROWS[row][2] == "prior" for row in wanted):
            index = indices[""]
            if not has_field(args.url, index, "nir_prior"):
                run([*NIRBRIDGE, "prior", "--url", args.url, "--index", index, "--qrels", str(args.prior)])
    if "bm25+doc2query" in wanted:
        params = [part for value in args.doc2query_param for part in ("--param", value)]
        indices["-d2q"] = prepare(args, "-d2q", ["nir_expansion"], ["--doc2query", args.doc2query, *params])
    if "deepct" in wanted:
        params = [part for value in args.deepct_param for part in ("--param", value)]
        indices["-deepct"] = prepare(args, "-deepct", ["nir_terms"], ["--terms", args.deepct, *params])

    table: list[dict[str, Any]] = []
    for row in wanted:
        suffix, options, _ = ROWS[row]
        for rerank in (False, True) if args.rerank and not args.first_stage_only else (False,):
            report = evaluate(args, indices[suffix], options, rerank)
            line = {"row": row + (" + rerank" if rerank else ""), **report, "dataset": args.dataset.name}
            print(json.dumps(line), flush=True)
            table.append(line)
    print(f"\n| row | {args.dataset.name} {args.split} nDCG@10 | MRR@10 | R@100 |")
    print("|---|---|---|---|")
    for line in table:
        metrics = line["metrics"]
        cells = " | ".join(f"{metrics[name]:.3f}" for name in ("ndcg@10", "mrr@10", "recall@100"))
        print(f"| {line['row']} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
