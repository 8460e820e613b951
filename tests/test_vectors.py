"""engine.vectors: OpenSearch k-NN scores, exact and HNSW paths, tombstones, filters, persistence, errors."""

from __future__ import annotations

import numpy as np
import pytest

from nirbridge.engine.index.vectors import MAX_DISTANCE_COMPUTATIONS, SPACE_TYPES, VectorIndex


def opensearch_scores(space_type: str, data: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The k-NN plugin's (faiss engine) scores, computed independently in float64 from the raw vectors."""
    data = data.astype(np.float64)
    query = query.astype(np.float64)
    if space_type == "l2":
        return 1.0 / (1.0 + ((data - query) ** 2).sum(axis=1))
    if space_type == "cosinesimil":
        cos = data @ query / (np.linalg.norm(data, axis=1) * np.linalg.norm(query))
        return (1.0 + cos) / 2.0
    ip = data @ query
    return np.where(ip >= 0, ip + 1.0, 1.0 / (1.0 - ip))


def exact_top_k(scores: np.ndarray, ords: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((ords, -scores))[:k]
    return ords[order], scores[order]


def random_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def embedding_like(n: int, dim: int, seed: int, rank: int = 16) -> np.ndarray:
    """Vectors near a shared low-dimensional subspace, as embeddings are (HNSW finds their neighbours)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1234).standard_normal((rank, dim)).astype(np.float32)
    noise = 0.1 * rng.standard_normal((n, dim)).astype(np.float32)
    return (rng.standard_normal((n, rank)).astype(np.float32) @ basis + noise).astype(np.float32)


def record_paths(index: VectorIndex, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which search path (exact scan or HNSW) each search of ``index`` takes."""
    paths: list[str] = []
    exact, approximate = index._exact, index._approximate

    def spy_exact(*args):  # type: ignore[no-untyped-def]
        paths.append("exact")
        return exact(*args)

    def spy_approximate(*args):  # type: ignore[no-untyped-def]
        paths.append("hnsw")
        return approximate(*args)

    monkeypatch.setattr(index, "_exact", spy_exact)
    monkeypatch.setattr(index, "_approximate", spy_approximate)
    return paths


def check_against_exact(
    index: VectorIndex, data: np.ndarray, ords: np.ndarray, query: np.ndarray, k: int
) -> None:
    got_ords, got_scores = index.search(query, k)
    want_ords, want_scores = exact_top_k(opensearch_scores(index.space_type, data, query), ords, k)
    assert got_ords.dtype == np.int64 and got_scores.dtype == np.float32
    np.testing.assert_array_equal(got_ords, want_ords)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5)


# --------------------------------------------------------------------------- scores and exact equivalence


@pytest.mark.parametrize("space_type", SPACE_TYPES)
def test_small_index_equals_exact_top_k_with_opensearch_scores(space_type: str) -> None:
    data = random_vectors(500, 16, seed=1)
    ords = np.arange(10, 510, dtype=np.int64)
    index = VectorIndex(16, space_type)
    index.add(ords, data)
    assert len(index) == 500
    for query in random_vectors(20, 16, seed=2):
        check_against_exact(index, data, ords, query, k=10)


@pytest.mark.parametrize("space_type", SPACE_TYPES)
def test_hnsw_scores_are_the_exact_scores_of_the_returned_vectors(
    space_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    n, dim = 8_000, 384
    data = random_vectors(n, dim, seed=3)
    ords = np.arange(n, dtype=np.int64) * 3 + 1
    index = VectorIndex(dim, space_type)
    index.add(ords, data)
    paths = record_paths(index, monkeypatch)
    row_of = {int(o): i for i, o in enumerate(ords)}
    for query in random_vectors(10, dim, seed=4):
        got_ords, got_scores = index.search(query, 10)
        assert len(got_ords) == 10
        rows = [row_of[int(o)] for o in got_ords]
        np.testing.assert_allclose(got_scores, opensearch_scores(space_type, data[rows], query), rtol=1e-5)
        assert np.all(np.diff(got_scores) <= 0)
    assert set(paths) == {"hnsw"}


def test_innerproduct_scores_on_both_sides_of_zero() -> None:
    index = VectorIndex(2, "innerproduct")
    index.add(np.array([0, 1, 2]), np.array([[2.0, 0.0], [0.0, 0.0], [-3.0, 0.0]], dtype=np.float32))
    ords, scores = index.search(np.array([1.0, 0.0], dtype=np.float32), 3)
    np.testing.assert_array_equal(ords, [0, 1, 2])
    # ip = 2 -> 2 + 1; ip = 0 -> 0 + 1; ip = -3 -> 1 / (1 + 3)
    np.testing.assert_allclose(scores, [3.0, 1.0, 0.25], rtol=1e-6)


def test_cosinesimil_scores_and_vector_returns_the_original() -> None:
    index = VectorIndex(2, "cosinesimil")
    index.add(np.array([5, 6]), np.array([[3.0, 4.0], [-1.0, 0.0]], dtype=np.float32))
    ords, scores = index.search([1.0, 0.0], 2)
    np.testing.assert_array_equal(ords, [5, 6])
    np.testing.assert_allclose(scores, [(1 + 0.6) / 2, 0.0], atol=1e-7)
    np.testing.assert_array_equal(index.vector(5), [3.0, 4.0])


def test_ties_are_broken_by_the_smaller_ordinal() -> None:
    index = VectorIndex(2)
    index.add(np.array([9, 4, 7]), np.ones((3, 2), dtype=np.float32))
    ords, _ = index.search([1.0, 1.0], 2)
    np.testing.assert_array_equal(ords, [4, 7])


def test_fewer_candidates_than_k_and_empty_index() -> None:
    index = VectorIndex(4)
    ords, scores = index.search(np.zeros(4, dtype=np.float32), 5)
    assert ords.dtype == np.int64 and scores.dtype == np.float32 and len(ords) == 0
    index.add(np.array([1, 2]), random_vectors(2, 4, seed=5))
    ords, scores = index.search(np.zeros(4, dtype=np.float32), 5)
    assert sorted(ords.tolist()) == [1, 2] and len(scores) == 2


# --------------------------------------------------------------------------- recall


def test_recall_at_10_on_20k_random_384d_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    n, dim, k = 20_000, 384, 10
    data = np.random.default_rng(6).random((n, dim), dtype=np.float32)
    queries = np.random.default_rng(7).random((50, dim), dtype=np.float32)
    # Uniform random vectors have no low-dimensional structure and are hard for HNSW: OpenSearch's defaults
    # (m=16, ef_construction=100, ef_search=100) reach recall@10 ~0.57 here; m=32, ef_search=400 ~0.98.
    index = VectorIndex(dim, "l2", m=32, ef_construction=100, ef_search=400)
    index.add(np.arange(n), data)
    paths = record_paths(index, monkeypatch)
    hits = 0
    for query in queries:
        got, _ = index.search(query, k)
        want = np.argsort(((data - query) ** 2).sum(axis=1), kind="stable")[:k]
        hits += len(set(got.tolist()) & set(want.tolist()))
    assert set(paths) == {"hnsw"}
    assert hits / (k * len(queries)) >= 0.95


# --------------------------------------------------------------------------- tombstones


def test_removed_ordinals_are_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    n, dim = 9_000, 384
    data = embedding_like(n, dim, seed=8)
    index = VectorIndex(dim)
    index.add(np.arange(n), data)
    removed = np.arange(0, n, 3)
    index.remove(removed)
    paths = record_paths(index, monkeypatch)
    assert len(index) == n - len(removed)
    assert index.vector(0) is None and index.vector(1) is not None
    removed_set = set(removed.tolist())
    for i in range(0, n, 400):  # each query is (the vector of) a removed or a live document
        ords, _ = index.search(data[i], 10)
        assert len(ords) == 10
        assert not removed_set & set(ords.tolist())
        if i % 3:
            assert ords[0] == i
    assert set(paths) == {"hnsw"}
    small = np.zeros(n, dtype=bool)
    small[:30] = True  # 20 live + 10 removed among them
    ords, _ = index.search(data[0], 50, allowed=small)
    assert sorted(ords.tolist()) == [i for i in range(30) if i % 3]


def test_remove_then_re_add_under_a_new_ordinal_and_replace_in_place() -> None:
    index = VectorIndex(3)
    index.add(np.array([1, 2]), np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    index.remove(np.array([1, 99]))  # unknown ordinals are ignored
    index.add(np.array([3]), np.array([[1, 0, 0]], dtype=np.float32))
    ords, _ = index.search([1.0, 0.0, 0.0], 5)
    assert ords.tolist() == [3, 2]
    index.add(np.array([3]), np.array([[0, 0, 1]], dtype=np.float32))  # same live ordinal: replaced
    assert len(index) == 2
    np.testing.assert_array_equal(index.vector(3), [0, 0, 1])
    ords, scores = index.search([0.0, 0.0, 1.0], 5)
    assert ords.tolist() == [3, 2] and scores[0] == pytest.approx(1.0)


def test_compaction_after_most_rows_are_removed_keeps_everything_searchable() -> None:
    n, dim = 3_000, 8
    data = random_vectors(n, dim, seed=9)
    index = VectorIndex(dim)
    index.add(np.arange(n), data)
    index.remove(np.arange(0, 2_000))  # > 50 % tombstones: the graph is rebuilt from the live rows
    assert index._n == 1_000  # compaction happened
    assert len(index) == 1_000
    check_against_exact(index, data[2_000:], np.arange(2_000, n), data[2_500], k=10)
    np.testing.assert_array_equal(index.vector(2_999), data[2_999])
    index.remove(np.arange(n))
    assert len(index) == 0 and len(index.search(data[0], 3)[0]) == 0
    index.add(np.array([n]), data[:1])
    assert index.search(data[0], 3)[0].tolist() == [n]


# --------------------------------------------------------------------------- filters


def test_very_selective_filter_is_answered_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    n, dim = 8_000, 384
    data = random_vectors(n, dim, seed=10)
    index = VectorIndex(dim, "cosinesimil")
    index.add(np.arange(n), data)
    paths = record_paths(index, monkeypatch)
    allowed = np.zeros(n, dtype=bool)
    chosen = np.random.default_rng(11).choice(n, size=40, replace=False)
    allowed[chosen] = True
    query = random_vectors(1, dim, seed=12)[0]
    got_ords, got_scores = index.search(query, 10, allowed=allowed)
    want_ords, want_scores = exact_top_k(opensearch_scores("cosinesimil", data[chosen], query), chosen, 10)
    np.testing.assert_array_equal(got_ords, want_ords)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5)
    # fewer allowed than k: all of them come back
    few = np.zeros(n, dtype=bool)
    few[[5, 17, 7_999]] = True
    assert sorted(index.search(query, 10, allowed=few)[0].tolist()) == [5, 17, 7_999]
    assert paths == ["exact", "exact"]
    index.search(query, 10)
    assert paths[-1] == "hnsw"


def test_broad_filter_through_hnsw_respects_the_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    n, dim = 20_000, 384
    data = embedding_like(n, dim, seed=13)
    index = VectorIndex(dim, m=8, ef_construction=50)
    index.add(np.arange(n), data)
    paths = record_paths(index, monkeypatch)
    allowed = np.arange(n) % 2 == 0  # 10,000 x 384 candidates: above the exact budget
    assert allowed.sum() * dim > MAX_DISTANCE_COMPUTATIONS
    for i in (0, 1, 2, 3, 500, 501):
        ords, _ = index.search(data[i], 10, allowed=allowed)
        assert len(ords) == 10 and np.all(ords % 2 == 0)
        if i % 2 == 0:
            assert ords[0] == i
    assert set(paths) == {"hnsw"}


def test_mask_shorter_than_the_ordinal_range_means_not_allowed() -> None:
    data = random_vectors(200, 8, seed=14)
    ords = np.arange(1_000, 1_200)
    index = VectorIndex(8)
    index.add(ords, data)
    allowed = np.ones(1_100, dtype=bool)  # ordinals 1,100 .. 1,199 lie beyond its end
    got, _ = index.search(data[150], 20, allowed=allowed)
    assert len(got) == 20 and got.max() < 1_100
    assert len(index.search(data[0], 5, allowed=np.ones(10, dtype=bool))[0]) == 0


def test_filter_and_tombstones_combine() -> None:
    data = random_vectors(100, 4, seed=15)
    index = VectorIndex(4)
    index.add(np.arange(100), data)
    index.remove(np.arange(0, 100, 2))
    allowed = np.arange(100) < 10
    assert sorted(index.search(data[0], 50, allowed=allowed)[0].tolist()) == [1, 3, 5, 7, 9]


def test_filtered_hnsw_falls_back_to_exact_when_it_finds_too_few(monkeypatch: pytest.MonkeyPatch) -> None:
    n, dim = 4_000, 384
    data = random_vectors(n, dim, seed=16)
    index = VectorIndex(dim, ef_search=10)
    index.add(np.arange(n), data)
    monkeypatch.setattr(index, "_prefers_exact", lambda *args: False)
    monkeypatch.setattr(index, "_approximate", lambda *args: (np.array([0]), np.array([0.0], np.float32)))
    allowed = np.zeros(n, dtype=bool)
    allowed[100:200] = True
    got, scores = index.search(data[150], 10, allowed=allowed)
    want, _ = exact_top_k(opensearch_scores("l2", data[100:200], data[150]), np.arange(100, 200), 10)
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("space_type", SPACE_TYPES)
def test_persistence_round_trip(space_type: str) -> None:
    n, dim = 6_000, 384
    data = random_vectors(n, dim, seed=17)
    index = VectorIndex(dim, space_type, m=8, ef_construction=40, ef_search=50)
    index.add(np.arange(n) + 7, data)
    index.remove(np.array([7, 8, 9]))
    copy = VectorIndex.from_bytes(index.to_bytes())
    assert (copy.dimension, copy.space_type, copy.m, copy.ef_construction, copy.ef_search) == (
        dim,
        space_type,
        8,
        40,
        50,
    )
    assert len(copy) == len(index) == n - 3
    assert copy.vector(7) is None
    np.testing.assert_array_equal(copy.vector(10), data[3])
    for query in random_vectors(5, dim, seed=18):
        for a, b in zip(index.search(query, 10), copy.search(query, 10), strict=True):
            np.testing.assert_array_equal(a, b)
    copy.add(np.array([100_000]), data[:1])  # the restored index still takes writes
    assert copy.search(data[0], 1)[0].tolist() == [100_000]


def test_empty_round_trip_and_garbage() -> None:
    copy = VectorIndex.from_bytes(VectorIndex(3, "cosinesimil").to_bytes())
    assert len(copy) == 0 and copy.space_type == "cosinesimil"
    with pytest.raises(ValueError, match="not a VectorIndex snapshot"):
        VectorIndex.from_bytes(b"definitely not an index")


# --------------------------------------------------------------------------- errors


def test_unknown_space_type_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"hamming.*l2, cosinesimil, innerproduct"):
        VectorIndex(4, "hamming")


def test_wrong_dimension_names_the_ordinal() -> None:
    index = VectorIndex(4)
    with pytest.raises(ValueError, match=r"ordinal 3: Vector dimension mismatch. Expected: 4, Given: 5"):
        index.add(np.array([3, 4]), np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"ordinal 8: .*Expected: 4, Given: 3"):
        index.add([7, 8], [[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match=r"query: Vector dimension mismatch"):
        index.search(np.zeros(3, dtype=np.float32), 1)
    assert len(index) == 0


def test_nan_and_infinity_name_the_ordinal() -> None:
    index = VectorIndex(2)
    with pytest.raises(ValueError, match=r"ordinal 12: KNN vector values cannot be NaN"):
        index.add(np.array([11, 12]), np.array([[0.0, 1.0], [np.nan, 1.0]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"ordinal 11: KNN vector values cannot be infinity"):
        index.add(np.array([11]), np.array([[np.inf, 1.0]]))
    with pytest.raises(ValueError, match=r"query: KNN vector values cannot be NaN"):
        index.search(np.array([np.nan, 0.0]), 1)
    assert len(index) == 0  # a rejected batch adds nothing


def test_zero_vector_with_cosinesimil_is_rejected() -> None:
    index = VectorIndex(3, "cosinesimil")
    message = r"zero vector is not supported when space type is \[cosinesimil\]"
    with pytest.raises(ValueError, match="ordinal 2: " + message):
        index.add(np.array([1, 2]), np.array([[1, 0, 0], [0, 0, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match="query: " + message):
        index.search(np.zeros(3, dtype=np.float32), 1)
    VectorIndex(3, "l2").add(np.array([1]), np.zeros((1, 3), dtype=np.float32))  # fine for l2


def test_other_bad_arguments() -> None:
    index = VectorIndex(2)
    index.add(np.array([0]), np.ones((1, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search([1.0, 1.0], 0)
    with pytest.raises(ValueError, match="allowed must be a one-dimensional boolean mask"):
        index.search([1.0, 1.0], 1, allowed=np.array([0, 1]))
    with pytest.raises(ValueError, match="appears more than once"):
        index.add(np.array([5, 5]), np.ones((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="2 ordinals but 1 vectors"):
        index.add(np.array([5, 6]), np.ones((1, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="dimension must be a positive integer"):
        VectorIndex(0)


# --------------------------------------------------------------------------- int8 scan, approximate_threshold


def scan_spy(index: VectorIndex, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Per int8 scan of ``index``: whether its bound proved the top-k (False: the float32 scan answered)."""
    proved: list[bool] = []
    scan = index._scan_codes

    def spy(*args):  # type: ignore[no-untyped-def]
        found = scan(*args)
        proved.append(found is not None)
        return found

    monkeypatch.setattr(index, "_scan_codes", spy)
    return proved


@pytest.mark.parametrize("space_type", SPACE_TYPES)
def test_exact_search_through_int8_codes_equals_the_float_scan(
    space_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    n, dim = 15_000, 256  # 3.8M distance computations > MAX_DISTANCE_COMPUTATIONS: the codes are scanned
    data = embedding_like(n, dim, seed=20)
    ords = np.arange(n, dtype=np.int64) * 2 + 5
    index = VectorIndex(dim, space_type, approximate_threshold=-1)  # no graph: every search is exact
    index.add(ords[: n // 2], data[: n // 2])
    index.add(ords[n // 2 :], 3 * data[n // 2 :])  # outside the coded range: every row is re-coded
    stored = np.concatenate((data[: n // 2], 3 * data[n // 2 :]))
    assert not index.has_graph
    proved = scan_spy(index, monkeypatch)
    queries = np.concatenate((embedding_like(6, dim, seed=21), stored[[3, 9_000]]))
    for query in queries:
        check_against_exact(index, stored, ords, query, k=10)
    allowed = np.zeros(int(ords.max()) + 1, dtype=bool)
    allowed[ords] = True
    allowed[ords[::3]] = False  # 10,000 candidates x 256: still above the budget
    index.remove(ords[1::7])
    keep = ~np.isin(ords, ords[::3]) & ~np.isin(ords, ords[1::7])
    for query in queries[:3]:
        got, scores = index.search(query, 25, allowed=allowed)
        want, want_scores = exact_top_k(opensearch_scores(space_type, stored[keep], query), ords[keep], 25)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
    assert len(proved) == len(queries) + 3
    assert all(proved) if space_type != "innerproduct" else not any(proved)  # no int8 codes for it


def test_int8_scan_breaks_ties_by_the_smaller_ordinal(monkeypatch: pytest.MonkeyPatch) -> None:
    n, dim = 9_000, 256
    data = np.random.default_rng(22).random((n, dim), dtype=np.float32)
    data[5_000:5_040] = data[7]  # 41 copies of one vector: the top-20 is all ties
    index = VectorIndex(dim, approximate_threshold=-1)
    index.add(np.arange(n)[::-1].copy(), data)  # ordinals descend with the rows
    proved = scan_spy(index, monkeypatch)
    got, scores = index.search(data[7], 20)
    copies = np.concatenate(([n - 1 - 7], n - 1 - np.arange(5_000, 5_040)))
    np.testing.assert_array_equal(got, np.sort(copies)[:20])
    assert np.all(scores == 1.0) and proved == [True]


def test_approximate_threshold_builds_the_graph_when_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    n, dim = 6_000, 384
    data = embedding_like(n, dim, seed=23)
    index = VectorIndex(dim, approximate_threshold=4_000)
    index.add(np.arange(3_000), data[:3_000])
    assert not index.has_graph and index._graph.ntotal == 0
    paths = record_paths(index, monkeypatch)
    index.search(data[0], 10)
    index.add(np.arange(3_000, n), data[3_000:])  # 6,000 live rows >= 4,000: the graph is built
    assert index.has_graph
    assert index.search(data[4_500], 10)[0][0] == 4_500
    assert paths == ["exact", "hnsw"]
    never = VectorIndex(dim, approximate_threshold=-1)
    never.add(np.arange(n), data)
    copy = VectorIndex.from_bytes(never.to_bytes())  # rows without a graph survive a round trip
    assert not copy.has_graph and copy.approximate_threshold == -1 and len(copy) == n
    for a, b in zip(never.search(data[1], 10), copy.search(data[1], 10), strict=True):
        np.testing.assert_array_equal(a, b)
    copy.approximate_threshold = 0  # takes effect at the next add
    copy.add(np.array([n]), data[:1])
    assert copy.has_graph and copy._graph.ntotal == n + 1
    with pytest.raises(ValueError, match="approximate_threshold must be an integer >= -1"):
        VectorIndex(dim, approximate_threshold=-2)


# --------------------------------------------------------------------------- engine plumbing (in-process)


def test_engine_passes_ef_search_and_the_graph_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    from nirbridge.engine.node import Node
    from nirbridge.engine.search import QueryParser

    seen: list[int | None] = []
    search = VectorIndex.search

    def spy(self, query, k, allowed=None, ef_search=None):  # type: ignore[no-untyped-def]
        seen.append(ef_search)
        return search(self, query, k, allowed=allowed, ef_search=ef_search)

    monkeypatch.setattr(VectorIndex, "search", spy)
    index = Node(None).create_index("v", {
        "settings": {"index.knn": True, "index.knn.algo_param.ef_search": 64,
                     "index.knn.advanced.approximate_threshold": 3},
        "mappings": {"properties": {"vec": {"type": "knn_vector", "dimension": 2}}},
    })
    for i in range(4):
        index.index_doc(str(i), {"vec": [float(i), 1.0]})
    index.refresh()
    vectors = index.store.vectors["vec"]
    assert vectors.approximate_threshold == 3 and vectors.has_graph  # 4 rows >= 3: the graph was built
    parser = QueryParser(index.mapping)
    query = {"knn": {"vec": {"vector": [1.0, 1.0], "k": 2}}}
    assert len(parser.parse(query).run(index.searcher).mask.nonzero()[0]) == 2
    query["knn"]["vec"]["method_parameters"] = {"ef_search": 7}
    parser.parse(query).run(index.searcher)
    assert seen == [64, 7]


def test_int8_scan_fetches_by_radius_when_its_first_rows_prove_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nirbridge.engine.index.vector_scan as vectors_module

    n, dim = 12_000, 256
    data = random_vectors(n, dim, seed=24)
    centre = data[0].copy()
    noise = np.random.default_rng(26).standard_normal((500, dim)).astype(np.float32)
    data[1_000:1_500] = centre + 1e-3 * noise  # 500 rows closer to each other than the int8 coding error
    queries = np.stack([centre, centre + 1e-3 * noise[0], data[7]])
    monkeypatch.setattr(vectors_module, "_SCAN_MIN_DEPTH", 1)  # 8 k rows: too few to prove the cluster
    for space_type in ("l2", "cosinesimil"):
        index = VectorIndex(dim, space_type, approximate_threshold=-1)
        index.add(np.arange(n), data)
        ranges: list[int] = []
        range_search = index._codes.range_search

        def recording_range_search(*args, _ranges=ranges, _search=range_search, **kwargs):  # type: ignore
            _ranges.append(1)
            return _search(*args, **kwargs)

        monkeypatch.setattr(index._codes, "range_search", recording_range_search)
        for query in queries:
            for k in (1, 5):
                got = index.search(query, k)
                with monkeypatch.context() as patch:  # the same search through the float32 scan
                    patch.setattr(index, "_scan_codes", lambda *args: None)
                    want = index.search(query, k)
                for a, b in zip(got, want, strict=True):
                    np.testing.assert_array_equal(a, b)
                if space_type == "l2":  # (cosines of the cluster differ below float32's resolution)
                    check_against_exact(index, data, np.arange(n), query, k=k)
        assert len(ranges) >= 4


def test_int8_scan_with_a_selective_filter_uses_a_selector(monkeypatch: pytest.MonkeyPatch) -> None:
    n, dim = 10_000, 1_024
    data = np.random.default_rng(27).random((n, dim), dtype=np.float32)
    index = VectorIndex(dim, approximate_threshold=-1)
    index.add(np.arange(n), data)
    proved = scan_spy(index, monkeypatch)
    allowed = np.arange(n) % 4 == 1  # 2,500 x 1,024 > MAX_DISTANCE_COMPUTATIONS; under 30 % of the rows
    for query in np.random.default_rng(28).random((3, dim), dtype=np.float32):
        got, scores = index.search(query, 10, allowed=allowed)
        rows = np.flatnonzero(allowed)
        want, want_scores = exact_top_k(opensearch_scores("l2", data[rows], query), rows, 10)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
    assert proved == [True, True, True]
