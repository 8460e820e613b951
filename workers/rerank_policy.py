"""What a rerank request may ask of the process that loads its model: the operator's allow-lists, params.

A request names its cross-encoder, backend and scoring params.  A name may be any folder or hub id, and each
model a process loads stays in its memory (about 80 MB for a MiniLM-L6), so the operator decides what loads:

    NIRBRIDGE_RERANK_MODELS    comma list of the models a request may name, matched as written (a name, a hub
                               id, a folder); ``DIR/*`` allows every model folder directly inside DIR (matched
                               after resolving the path: no ``..`` or symlink leads out of it).  Default:
                               the rerankers nirbridge ships (``nirbridge/reranker-*``).
                               NIRBRIDGE_PROXY_RERANK_MODEL, when set, is always allowed.
    NIRBRIDGE_RERANK_BACKENDS  comma list of the backends a request may name (default: every one of
                               ``workers.backends.BACKENDS``).  NIRBRIDGE_PROXY_RERANK_BACKEND, when set, is
                               always allowed.
    NIRBRIDGE_RERANK_CACHE     cross-encoders one process keeps loaded; the least recently used is dropped
                               first (default 4)

The proxy checks a request against its settings (a 400 naming the allowed values, connector.proxy.rerank);
the worker checks it again against its own environment before it loads anything, since it is the process
that loads.  Params (``PARAM_LIMITS``) only change how the passages are cut and batched, never the weights,
so they are not part of what a process caches (workers.cross_encoder).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from nirbridge.workers.errors import RerankRefused

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "PARAM_LIMITS",
    "PASSAGE_MODES",
    "RerankPolicy",
    "cache_size",
    "check_params",
    "shipped_rerankers",
    "worker_policy",
]

DEFAULT_CACHE_SIZE = 4
# A request's params, with the range each may take: wide enough for any reranking, narrow enough that one
# request cannot ask for a million windows per passage or one batch of a whole window.
PARAM_LIMITS: dict[str, tuple[int, int]] = {
    "max_length": (16, 512),
    "batch_size": (1, 128),
    "passage_words": (8, 512),
    "stride": (1, 512),
    "max_windows": (1, 64),
    "max_query_length": (1, 512),
}
PASSAGE_MODES = ("first", "maxp")


def shipped_rerankers() -> tuple[str, ...]:
    """The cross-encoders nirbridge ships (``nirbridge/reranker-*``, workers.shipped)."""
    from nirbridge.workers.shipped import PREFIX, SHIPPED

    return tuple(name for name in SHIPPED if name.startswith(PREFIX + "reranker-"))


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip() for part in (value or "").split(",") if part.strip()))


@dataclass(frozen=True)
class RerankPolicy:
    """The models and backends a rerank request may name (module docstring)."""

    models: tuple[str, ...]
    backends: tuple[str, ...]

    @classmethod
    def from_values(
        cls,
        models: str | None,
        backends: str | None,
        default_model: str | None = None,
        default_backend: str | None = None,
    ) -> RerankPolicy:
        """The policy of the settings' strings: comma lists, empty for the defaults; the operator's default
        model and backend (NIRBRIDGE_PROXY_RERANK_MODEL, _BACKEND) are always allowed."""
        from nirbridge.workers.backends import BACKENDS

        chosen = _split(models) or shipped_rerankers()
        if default_model:
            chosen = tuple(dict.fromkeys([default_model, *chosen]))
        allowed_backends = _split(backends) or BACKENDS
        if default_backend:
            allowed_backends = tuple(dict.fromkeys([default_backend, *allowed_backends]))
        unknown = [b for b in allowed_backends if b not in BACKENDS]
        if unknown:
            raise ValueError(
                f"NIRBRIDGE_RERANK_BACKENDS: unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}"
            )
        return cls(models=chosen, backends=tuple(allowed_backends))

    @classmethod
    def from_env(cls) -> RerankPolicy:
        return cls.from_values(
            os.environ.get("NIRBRIDGE_RERANK_MODELS"),
            os.environ.get("NIRBRIDGE_RERANK_BACKENDS"),
            os.environ.get("NIRBRIDGE_PROXY_RERANK_MODEL"),
            os.environ.get("NIRBRIDGE_PROXY_RERANK_BACKEND"),
        )

    def model(self, name: str) -> str:
        """The name to load for the requested ``name`` (a folder matched by ``DIR/*`` as its resolved path),
        or :class:`RerankRefused` naming the allowed models."""
        if name in self.models:
            return name
        for entry in self.models:
            if entry.endswith("/*"):
                folder = Path(entry[:-2]).expanduser().resolve()
                path = Path(name).expanduser().resolve()
                if path.parent == folder and (path / "config.json").is_file():
                    return str(path)
        shown = ", ".join(self.models) or "none"
        raise RerankRefused(
            f"model {name!r:.200} is not allowed here; allowed: {shown} (NIRBRIDGE_RERANK_MODELS)"
        )

    def backend(self, name: str) -> str:
        """``name`` when it is allowed, else :class:`RerankRefused` naming the allowed backends."""
        if name not in self.backends:
            raise RerankRefused(
                f"backend {name!r:.80} is not allowed here; allowed: {', '.join(self.backends)} "
                "(NIRBRIDGE_RERANK_BACKENDS)"
            )
        return name


def check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` checked against ``PARAM_LIMITS`` and ``PASSAGE_MODES``; :class:`RerankRefused` naming the
    first param that is unknown, of the wrong type or out of range."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise RerankRefused(f"params must be an object, got {type(params).__name__}")
    known = [*PARAM_LIMITS, "passage_mode"]
    checked: dict[str, Any] = {}
    for key, value in params.items():
        if key == "passage_mode":
            if value not in PASSAGE_MODES:
                modes = ", ".join(PASSAGE_MODES)
                raise RerankRefused(f"params.passage_mode must be one of {modes}, got {value!r:.40}")
        elif key in PARAM_LIMITS:
            low, high = PARAM_LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise RerankRefused(f"params.{key} must be an integer in [{low}, {high}], got {value!r:.40}")
        else:
            raise RerankRefused(f"unknown param {str(key)!r:.40}; known: {', '.join(known)}")
        checked[str(key)] = value
    return checked


def cache_size() -> int:
    """NIRBRIDGE_RERANK_CACHE (default 4, at least 1)."""
    raw = os.environ.get("NIRBRIDGE_RERANK_CACHE") or str(DEFAULT_CACHE_SIZE)
    try:
        size = int(raw)
    except ValueError:
        raise ValueError(f"NIRBRIDGE_RERANK_CACHE must be a positive integer, got {raw!r}") from None
    if size < 1:
        raise ValueError(f"NIRBRIDGE_RERANK_CACHE must be a positive integer, got {raw!r}")
    return size


@cache
def worker_policy() -> RerankPolicy:
    """The policy of this process's environment, read once (a worker's environment does not change)."""
    return RerankPolicy.from_env()
