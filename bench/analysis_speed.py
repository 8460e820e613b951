"""Analysis throughput on SciFact (title + " " + text), ``english`` and ``standard``; one JSON line.

    .venv/bin/python -m nirbridge.bench.analysis_speed [--dataset scifact] [--repeat 3] [--data-root DIR]

``cold``: a fresh analyzer and an empty stem memo, as when an index is first built (best of ``--repeat``);
``warm``: the same analyzer again, every chunk already remembered.  Rates are wall-clock; ``*_cpu_*`` divide
by this process's CPU time instead, steadier on a shared machine.  The one-off build of the Unicode tables
(on the first non-ASCII text of a process) is reported apart, as ``unicode_tables_s``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import icu

from nirbridge.engine.analysis import analyzers, base, filters, porter, standard

# the analysis modules whose internals this file probes, under the one name it used before the split
analysis = SimpleNamespace(
    **{k: v for m in (base, standard, porter, filters, analyzers) for k, v in vars(m).items()}
)

DATA_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
FRESH: dict[str, Callable[[], Callable[[str], list[str]]]] = {
    "english": analysis._english_analyzer,
    "standard": analysis._standard_analyzer,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT, help="folder of the BEIR collections")
    args = parser.parse_args()
    with (args.data_root / args.dataset / "corpus.jsonl").open(encoding="utf-8") as lines:
        docs = [f"{d['title']} {d['text']}" for d in map(json.loads, lines)]

    started = time.perf_counter()
    analysis._grammar()
    result: dict[str, object] = {
        "bench": "analysis_speed",
        "dataset": args.dataset,
        "docs": len(docs),
        "non_ascii_docs": sum(not d.isascii() for d in docs),
        "unicode_tables_s": round(time.perf_counter() - started, 3),
    }
    for name, fresh in FRESH.items():
        best = dict.fromkeys(("cold", "warm", "cold_cpu", "warm_cpu"), float("inf"))
        tokens = 0
        for _ in range(args.repeat):
            analysis._STEMS.clear()
            run = fresh()
            for phase in ("cold", "warm"):
                wall, cpu = time.perf_counter(), time.process_time()
                tokens = sum(len(run(d)) for d in docs)
                best[phase] = min(best[phase], time.perf_counter() - wall)
                best[f"{phase}_cpu"] = min(best[f"{phase}_cpu"], time.process_time() - cpu)
        result[name] = {
            "cold_docs_per_s": round(len(docs) / best["cold"]),
            "warm_docs_per_s": round(len(docs) / best["warm"]),
            "cold_cpu_docs_per_s": round(len(docs) / best["cold_cpu"]),
            "warm_cpu_docs_per_s": round(len(docs) / best["warm_cpu"]),
            "cold_us_per_doc": round(best["cold"] / len(docs) * 1e6, 1),
            "tokens": tokens,
        }
    result.update(python=platform.python_version(), icu=icu.ICU_VERSION, unicode=icu.UNICODE_VERSION)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
