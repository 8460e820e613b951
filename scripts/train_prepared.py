"""Train a reranker or a bi-encoder from prepared TrainingData files, on a machine without the cluster.

    # where the cluster is: TrainingData.save() after connector.train_data.with_bm25_candidates()
    # on the GPU machine (only torch, transformers, ir-measures and this checkout needed):
    python scripts/train_prepared.py reranker --data scifact.json.gz nfcorpus.json.gz --base BASE \
        --out /tmp/reranker --shards $OUT --settings '{"steps": 3000, "queries": 32}'

Several data files are merged into one training set, every id prefixed with the file's name (``scifact/123``),
so one model learns from several collections and its dev nDCG@10 averages over all their dev queries.

``--base`` may hold ``model-fp16.safetensors`` instead of ``model.safetensors`` (a base shipped at half size);
it is widened to fp32 before training.  ``--shards`` receives the trained folder as its delta on the base
(``workers.shipped.pack_delta``: the trained tensors in fp16, the files that differ, what the base gives):
the small files in ``files.tar``, the weights cut into ``weights.safetensors.NN`` pieces of at most 15 MiB,
so that they fit what a GPU machine lets come back.  :func:`widen` rebuilds the fp32 folder from them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from nirbridge.workers.train.data import TrainingData

_SHARD = 15 * 2**20


def merge(paths: list[Path]) -> TrainingData:
    """One TrainingData from several, ids prefixed by each file's name (``scifact/``)."""
    if len(paths) == 1:
        return TrainingData.load(paths[0])
    corpus, queries, train, dev, ranked, sources = {}, {}, {}, {}, {}, {}
    for path in paths:
        data = TrainingData.load(path)
        name = path.name.split(".")[0].removesuffix("-train")
        tag = f"{name}/".__add__
        corpus.update({tag(k): v for k, v in data.corpus.items()})
        queries.update({tag(k): v for k, v in data.queries.items()})
        train.update({tag(q): tuple(map(tag, docs)) for q, docs in data.train.items()})
        dev.update({tag(q): {tag(d): g for d, g in grades.items()} for q, grades in data.dev.items()})
        ranked.update({tag(q): tuple(map(tag, docs)) for q, docs in data.ranked.items()})
        sources[name] = dict(data.source)
    source = {"merged": sources, "train_queries": len(train), "dev_queries": len(dev)}
    return TrainingData(corpus, queries, train, dev, ranked, source)


def fp32_base(base: Path, scratch: Path) -> Path:
    """``base`` itself, or a copy with its fp16 weights widened to fp32."""
    half = base / "model-fp16.safetensors"
    if not half.exists():
        return base
    from safetensors.torch import load_file, save_file

    shutil.copytree(
        base, scratch, ignore=shutil.ignore_patterns("model-fp16.safetensors"), dirs_exist_ok=True
    )
    save_file({k: v.float().contiguous() for k, v in load_file(half).items()}, scratch / "model.safetensors")
    return scratch


def name_base(out: Path, used: Path, given: Path) -> None:
    """Name ``given`` as the base in the model card of ``out`` where training read the copy ``used``."""
    if used == given:
        return
    record = out / "training.json"
    card = json.loads(record.read_text(encoding="utf-8"))
    card["base"] = str(given)
    record.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    readme = out / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace(str(used), str(given)), encoding="utf-8")


def shard(folder: Path, base: Path, shards: Path) -> dict[str, int]:
    """Write ``folder`` into ``shards`` as its delta on ``base`` (``workers.shipped.pack_delta``): the delta's
    small files in ``files.tar``, its fp16 weights cut into pieces.  Returns pack_delta's counts."""
    from nirbridge.workers.shipped import DELTA_WEIGHTS, pack_delta

    delta = shards / ".delta"
    counts = pack_delta(folder, str(base), delta)
    data = (delta / DELTA_WEIGHTS).read_bytes()
    for i in range(0, len(data), _SHARD):
        (shards / f"weights.safetensors.{i // _SHARD:02d}").write_bytes(data[i : i + _SHARD])
    with tarfile.open(shards / "files.tar", "w") as tar:
        for path in sorted(p for p in delta.rglob("*") if p.is_file() and p.name != DELTA_WEIGHTS):
            tar.add(path, arcname=str(path.relative_to(delta)))
    shutil.rmtree(delta)
    return counts


def widen(shards: Path, base: Path, out: Path) -> Path:
    """Rebuild the trained folder in ``out`` from ``shards`` (fp32; what was unchanged from ``base``)."""
    from nirbridge.workers.shipped import DELTA_MANIFEST, DELTA_WEIGHTS, materialize

    delta = Path(tempfile.mkdtemp(prefix=".delta-", dir=out.parent))
    try:
        with tarfile.open(shards / "files.tar") as tar:
            tar.extractall(delta, filter="data")
        pieces = sorted(shards.glob("weights.safetensors.*"))
        (delta / DELTA_WEIGHTS).write_bytes(b"".join(p.read_bytes() for p in pieces))
        manifest = json.loads((delta / DELTA_MANIFEST).read_text())
        manifest["base"] = str(base)  # the base as this machine has it
        (delta / DELTA_MANIFEST).write_text(json.dumps(manifest))
        return materialize(delta, out)
    finally:
        shutil.rmtree(delta, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=["reranker", "dense"])
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shards", type=Path)
    parser.add_argument("--settings", default="{}", help="trainer keyword arguments as JSON")
    args = parser.parse_args(argv)
    settings = json.loads(args.settings)
    data = merge(args.data)
    base = fp32_base(args.base, args.out.parent / f".{args.out.name}-base")
    started = time.perf_counter()

    def progress(*event: object) -> None:
        last = event[-1]
        if isinstance(last, dict) and (
            "dev ndcg@10" in last or "ndcg@10" in last or last.get("step", 1) % 100 == 0
        ):
            print(json.dumps({"t": round(time.perf_counter() - started, 1), **last}), flush=True)

    if args.task == "reranker":
        from nirbridge.workers.train.reranker import train_reranker as train
    else:
        from nirbridge.workers.train.dense import train_dense as train
    try:
        command = " ".join(sys.argv)
        record = train(data, args.out, base=str(base), command=command, progress=progress, **settings)
        name_base(args.out, base, args.base)
        summary = {k: record.get(k) for k in ("metrics", "seconds", "machine") if k in record}
        if args.shards:
            summary["shards"] = shard(args.out, base, args.shards)
    finally:
        if base != args.base:  # the fp32 copy fp32_base() made of a half-size base
            shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
