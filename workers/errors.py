"""Errors raised by the model side of nirbridge (``nirbridge.workers``).

The hierarchy::

    WorkerError                     base of everything below; pickleable (Celery ships it back)
    ├── ModelNotFoundError          a model name or path that resolves to nothing (names the id; offline hint)
    ├── BackendUnavailableError     a backend whose package or execution provider is missing
    │                               (``.install`` is the exact pip command that fixes it)
    ├── BadInputError               texts that cannot be encoded; ``.failures`` lists every one as
    │                               ``InputFailure(index, reason)`` so a caller reports them per document
    ├── RerankRefused               a rerank request outside what the operator allows (a model or backend
    │                               not on the allow-lists, a param out of range): nothing was loaded
    └── DeadlineExceeded            a rerank whose caller's deadline passed: dropped before or while
                                    computing (the caller has answered without it)

Foreign errors (transformers, huggingface_hub, onnxruntime) are translated where they are raised, once, with
``raise ... from exc``.  :func:`split_valid` is the per-item check that every encoder runs before any compute:
a batch job calls it itself to encode the good texts and report the bad ones (DESIGN.md: a failing document
never stops or loses a batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "WorkerError",
    "ModelNotFoundError",
    "BackendUnavailableError",
    "BadInputError",
    "DeadlineExceeded",
    "InputFailure",
    "RerankRefused",
    "split_valid",
    "check_texts",
]


class WorkerError(Exception):
    """Base class of the errors of ``nirbridge.workers``."""


class ModelNotFoundError(WorkerError):
    """A model name or path that resolves to no model folder."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"model {name!r} not found: {reason}")
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.reason))


class BackendUnavailableError(WorkerError):
    """A backend that cannot run here; ``install`` is the command that makes it available."""

    def __init__(self, backend: str, reason: str, install: str | None = None) -> None:
        message = f"backend {backend!r} is unavailable: {reason}"
        if install:
            message += f"; install it with: {install}"
        super().__init__(message)
        self.backend = backend
        self.reason = reason
        self.install = install

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.backend, self.reason, self.install))


class RerankRefused(WorkerError, ValueError):
    """A rerank request the operator's settings do not allow; the message names the allowed values.

    One message argument only: Celery's JSON result backend rebuilds an exception from its args."""


class DeadlineExceeded(WorkerError):
    """The caller's deadline passed before the work was done: it was dropped, not finished."""


@dataclass(frozen=True)
class InputFailure:
    """One text that cannot be encoded: its position in the batch and why."""

    index: int
    reason: str


class BadInputError(WorkerError, ValueError):
    """Some texts of a batch cannot be encoded; ``failures`` names each one (index, reason)."""

    def __init__(self, failures: Sequence[InputFailure]) -> None:
        shown = "; ".join(f"text {f.index}: {f.reason}" for f in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} text(s) cannot be encoded: {shown}{more}")
        self.failures = list(failures)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.failures,))


def split_valid(texts: Sequence[object]) -> tuple[list[int], list[InputFailure]]:
    """Positions of the texts that can be encoded, and a failure for each one that cannot.

    A text must be a ``str`` with at least one non-whitespace character.  Texts longer than the encoder's
    ``max_length`` tokens are *not* failures: they are truncated (each encoder documents how).
    """
    if isinstance(texts, str):
        raise TypeError("expected a sequence of texts, got a single str (wrap it in a list)")
    good: list[int] = []
    failures: list[InputFailure] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            failures.append(InputFailure(i, f"expected a str, got {type(text).__name__}"))
        elif not text.strip():
            failures.append(InputFailure(i, "empty text"))
        else:
            good.append(i)
    return good, failures


def check_texts(texts: Sequence[object]) -> list[str]:
    """The texts as a list of str, or :class:`BadInputError` naming every one that cannot be encoded."""
    _, failures = split_valid(texts)
    if failures:
        raise BadInputError(failures)
    return list(texts)  # type: ignore[arg-type]
