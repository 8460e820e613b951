"""The proxy's query batcher: concurrent sparse/dense queries in one model call, each encoded as alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from nirbridge.connector.errors import UsageError
from nirbridge.connector.queries import QueryEncoders
from nirbridge.connector.query_batcher import QueryBatcher

pytest.importorskip("onnxruntime")

TEXTS = [
    "statins and breast cancer",
    "vitamin D deficiency in the elderly",
    "does green tea prevent cancer",
    "omega-3 fatty acids and heart disease",
    "gut microbiome and obesity",
    "soy intake and prostate cancer risk",
    "caffeine and sleep quality",
    "mediterranean diet mortality",
] * 2


@pytest.fixture(scope="module")
def encoders() -> QueryEncoders:
    return QueryEncoders(backend="onnx-fp32")


def test_concurrent_queries_share_model_calls_and_get_their_own_encodings(encoders: QueryEncoders) -> None:
    batcher = QueryBatcher(max_batch=32)

    async def all_at_once(mode: str) -> list:
        return await asyncio.gather(*(batcher.encode(encoders, mode, text) for text in TEXTS))

    dense = asyncio.run(all_at_once("dense"))
    sparse = asyncio.run(all_at_once("sparse"))
    for text, vector, weights in zip(TEXTS, dense, sparse, strict=True):
        np.testing.assert_allclose(vector, encoders.dense(text), atol=1e-5)
        alone = encoders.sparse(text)
        assert set(weights) == set(alone)
        assert all(weights[t] == pytest.approx(alone[t], abs=1e-4) for t in alone)
    stats = batcher.stats()
    for mode in ("dense", "sparse"):
        (lane,) = [value for key, value in stats.items() if key.startswith(mode)]
        assert lane["texts"] == len(TEXTS) and lane["calls"] <= 2  # 16 requests, at most 2 model calls


def test_a_lone_query_is_encoded_at_once_and_batches_respect_max_batch(encoders: QueryEncoders) -> None:
    batcher = QueryBatcher(max_batch=3)

    async def run() -> None:
        await batcher.encode(encoders, "dense", TEXTS[0])  # alone: one call of one text
        await asyncio.gather(*(batcher.encode(encoders, "dense", text) for text in TEXTS[:7]))

    asyncio.run(run())
    (lane,) = batcher.stats().values()
    assert lane["texts"] == 8 and lane["calls"] >= 1 + 3  # 7 texts in batches of at most 3


def test_a_failing_model_fails_each_request_of_the_batch_and_the_lane_goes_on() -> None:
    batcher = QueryBatcher()
    broken = QueryEncoders(dense_model="/nonexistent/model", backend="onnx-fp32")

    async def run() -> list:
        return await asyncio.gather(
            *(batcher.encode(broken, "dense", text) for text in TEXTS[:4]), return_exceptions=True
        )

    outcomes = asyncio.run(run())
    assert all(isinstance(outcome, UsageError) for outcome in outcomes)
    assert "/nonexistent/model" in str(outcomes[0])
    with pytest.raises(ValueError, match="only sparse, dense"):
        asyncio.run(batcher.encode(broken, "bm25", "x"))
