"""Query encodings of concurrent proxy requests, computed in one model call.

    batcher = QueryBatcher(max_batch=32)
    vector = await batcher.encode(encoders, "dense", "statins and breast cancer")

One lane per (mode, model, backend).  A request that finds its lane idle is encoded at once, alone: a single
client waits for no timer.  Requests that arrive while the lane's model is busy wait together and go in the
next call, up to ``max_batch`` of them.  One ONNX call over eight short queries costs little more than one
over a single query (the fixed cost per call dominates: session run, thread hand-off, tokenizer setup), so
under concurrent load the encoder's throughput grows with the batch instead of queueing request by request
(``bench/proxy.py --part end-to-end`` measures dense queries with and without).  A failing batch fails each
of its requests with the same error; the lane goes on with the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .queries import QueryEncoders

__all__ = ["BATCHED_MODES", "QueryBatcher"]

BATCHED_MODES = ("sparse", "dense")


@dataclass
class _Lane:
    encode_many: Callable[[Sequence[str]], list[Any]]
    max_batch: int
    waiting: list[tuple[str, asyncio.Future[Any]]] = field(default_factory=list)
    running: bool = False
    calls: int = 0  # model calls so far, and the texts they encoded: the mean batch size
    texts: int = 0

    async def encode(self, text: str) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append((text, future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[: self.max_batch], self.waiting[self.max_batch :]
                try:
                    rows = await asyncio.to_thread(self.encode_many, [text for text, _ in batch])
                except Exception as error:  # noqa: BLE001 - handed to each request of the batch
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                self.calls += 1
                self.texts += len(batch)
                for (_, future), row in zip(batch, rows, strict=True):
                    if not future.done():  # a request cancelled meanwhile (client gone) drops its row
                        future.set_result(row)
        finally:
            self.running = False


class QueryBatcher:
    """`await encode(encoders, mode, text)`: the `sparse` weights or `dense` vector of one query, batched with
    the queries of concurrent requests (see the module docstring)."""

    def __init__(self, max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch
        self._lanes: dict[tuple[str, str, str], _Lane] = {}

    async def encode(self, encoders: QueryEncoders, mode: str, text: str) -> Any:
        if mode not in BATCHED_MODES:
            raise ValueError(f"only {', '.join(BATCHED_MODES)} queries are batched, not {mode!r}")
        key = (mode, encoders.model_of(mode), encoders.backend)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(lambda texts: encoders.many(mode, texts), self.max_batch)
        return await lane.encode(text)

    def stats(self) -> dict[str, dict[str, float]]:
        """Per lane (`mode model backend`): model calls, texts encoded, their mean batch size."""
        return {
            " ".join(key): {"calls": lane.calls, "texts": lane.texts, "mean_batch": lane.texts / lane.calls}
            for key, lane in self._lanes.items()
            if lane.calls
        }
