"""Train a reranker or a bi-encoder from prepared TrainingData files, on a machine without the cluster.

    # where the cluster is: TrainingData.save() after connector.train_data.with_bm25_candidates()
    # on the GPU machine (only torch, transformers, ir-measures and this checkout needed):
    python scripts/train_prepared.py reranker --data scifact.json.gz nfcorpus.json.gz --base BASE \
        --out /tmp/reranker --shards $OUT --settings '{"steps": 3000, "queries": 32}'

Several data files are merged into one training set, every id prefixed with the file's name (``scifact/123``),
so one model learns from several collections and its dev nDCG@10 averages over all their dev queries.

``--base`` may hold ``model-fp16.safetensors`` instead of ``model.safetensors`` (a base shipped at half size);
it is widened to fp32 before training.  ``--shards`` receives the trained folder as ``files.tar`` (configs,
tokenizer, model card; files equal to the base's are left out) and the weights in fp16, cut into
``weights.safetensors.NN`` pieces of at most 15 MiB;
``cat weights.safetensors.* > model.safetensors`` and :func:`widen` put them back together.  Weights equal to
the base's (frozen embeddings) are left out of the shards and restored from the base by :func:`widen`.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tarfile
import time
from pathlib import Path

from nirbridge.workers.train.data import TrainingData

_SHARD = 15 * 2**20
_FROM_BASE = ".from-base.json"


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


def _base_weights(base: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    for name in ("model.safetensors", "model-fp16.safetensors"):
        if (base / name).exists():
            return load_file(base / name)
    return {}


def _base_key(key: str, base: dict[str, object]) -> str | None:
    """The base's name for a trained tensor: the same, or without the task model's prefix (``bert.``)."""
    for candidate in (key, key.split(".", 1)[-1]):
        if candidate in base:
            return candidate
    return None


def shard(folder: Path, base: Path, shards: Path) -> dict[str, int]:
    """Write ``folder`` into ``shards`` (see the module docstring); returns the counts of tensors written and
    left out as equal to the base."""
    from safetensors.torch import load_file, save_file

    weights = next(folder.rglob("model.safetensors"))
    base_weights = _base_weights(base)
    trained = {k: v.half().contiguous() for k, v in load_file(weights).items()}
    same = {}
    for key, value in trained.items():
        source = _base_key(key, base_weights)
        if source is not None and base_weights[source].half().equal(value):
            same[key] = source
    kept = {k: v for k, v in trained.items() if k not in same}
    shards.mkdir(parents=True, exist_ok=True)
    whole = folder.parent / f".{folder.name}-weights-fp16.safetensors"
    meta = {"weights_path": str(weights.relative_to(folder)), "from_base": json.dumps(same)}
    save_file(kept, whole, metadata=meta)
    data = whole.read_bytes()
    whole.unlink()
    for i in range(0, len(data), _SHARD):
        (shards / f"weights.safetensors.{i // _SHARD:02d}").write_bytes(data[i : i + _SHARD])
    from_base = []  # tokenizer files and the like, equal to the base's: restored from it
    with tarfile.open(shards / "files.tar", "w") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p != weights):
            relative = str(path.relative_to(folder))
            if (base / relative).is_file() and (base / relative).read_bytes() == path.read_bytes():
                from_base.append(relative)
            else:
                tar.add(path, arcname=relative)
        manifest = json.dumps(from_base).encode()
        info = tarfile.TarInfo(_FROM_BASE)
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return {"tensors written": len(kept), "tensors equal to the base": len(same)}


def widen(shards: Path, base: Path, out: Path) -> Path:
    """Rebuild the trained folder in ``out`` from ``shards`` (fp32; what was unchanged from ``base``)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(shards / "files.tar") as tar:
        tar.extractall(out, filter="data")
    for relative in json.loads((out / _FROM_BASE).read_text()):
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(base / relative, out / relative)
    (out / _FROM_BASE).unlink()
    whole = out.parent / f".{out.name}-weights-fp16.safetensors"
    whole.write_bytes(b"".join(p.read_bytes() for p in sorted(shards.glob("weights.safetensors.*"))))
    with safe_open(str(whole), "pt") as f:
        meta = f.metadata()
    weights = {k: v.float() for k, v in load_file(whole).items()}
    whole.unlink()
    base_weights = _base_weights(base)
    for key, source in json.loads(meta["from_base"]).items():
        weights[key] = base_weights[source].float()
    target = out / meta["weights_path"]
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, target)
    return out


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
        from nirbridge.workers.train.reranker import train_reranker

        record = train_reranker(
            data, args.out, base=str(base), command=" ".join(sys.argv), progress=progress, **settings
        )
    else:
        from nirbridge.workers.train.dense import train_dense

        record = train_dense(
            data, args.out, base=str(base), command=" ".join(sys.argv), progress=progress, **settings
        )
    summary = {k: record.get(k) for k in ("metrics", "seconds", "machine") if k in record}
    if args.shards:
        summary["shards"] = shard(args.out, base, args.shards)
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
