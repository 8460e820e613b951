"""Cut the demo sample (bench/sample/) out of NFCorpus, deterministically.

    python scripts/make_sample.py [--source ../shared/data/nfcorpus] [--out bench/sample]

NFCorpus is CC BY-SA 4.0 (Boteva et al., ECIR 2016), so a slice may ship with attribution; SciFact may not
(CC BY-NC). The sample keeps 20 dev queries whose judged documents are few enough to fit, every document
judged for them, and random other documents up to 300, all lines copied verbatim in the source's order.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections import defaultdict
from pathlib import Path

DOCS = 300
QUERIES = 20
SEED = 20160320  # ECIR 2016's first day: any fixed number does; this one is easy to remember


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--source", type=Path, default=root.parent / "shared" / "data" / "nfcorpus")
    parser.add_argument("--out", type=Path, default=root / "bench" / "sample")
    args = parser.parse_args()

    judged: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with open(args.source / "qrels" / "dev.tsv", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        next(reader)
        for query_id, doc_id, score in reader:
            judged[query_id].append((doc_id, score))

    query_lines = {json.loads(line)["_id"]: line for line in open(args.source / "queries.jsonl")}
    candidates = sorted(
        qid
        for qid, docs in judged.items()
        if 3 <= len(docs) <= 20 and len(json.loads(query_lines[qid])["text"].split()) >= 4
    )
    rng = random.Random(SEED)
    rng.shuffle(candidates)
    chosen: list[str] = []
    wanted_docs: set[str] = set()
    for qid in candidates:
        docs = {doc_id for doc_id, _ in judged[qid]}
        if len(chosen) < QUERIES and len(wanted_docs | docs) <= DOCS * 2 // 3:
            chosen.append(qid)
            wanted_docs |= docs

    corpus_lines = [line for line in open(args.source / "corpus.jsonl")]
    corpus_ids = [json.loads(line)["_id"] for line in corpus_lines]
    others = sorted(set(corpus_ids) - wanted_docs)
    wanted_docs |= set(rng.sample(others, DOCS - len(wanted_docs)))

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "qrels").mkdir(exist_ok=True)
    with open(args.out / "corpus.jsonl", "w") as out:
        out.writelines(
            line for doc_id, line in zip(corpus_ids, corpus_lines, strict=True) if doc_id in wanted_docs
        )
    chosen_set = set(chosen)
    with open(args.out / "queries.jsonl", "w") as out:
        out.writelines(line for qid, line in query_lines.items() if qid in chosen_set)
    with open(args.out / "qrels" / "dev.tsv", "w") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for qid in sorted(chosen_set):
            for doc_id, score in judged[qid]:
                out.write(f"{qid}\t{doc_id}\t{score}\n")
    print(f"{len(wanted_docs)} documents, {len(chosen)} queries -> {args.out}")


if __name__ == "__main__":
    main()
