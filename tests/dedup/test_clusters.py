"""Union-find against scipy's connected components; exact groups, band buckets, survivor rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline.dedup import clusters as cl


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two labelings describe the same sets (labels may differ)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("seed", range(6))
def test_union_find_equals_scipy_connected_components(seed):
    rng = np.random.default_rng(seed)
    n = 2_000
    edges = rng.integers(0, n, size=(int(n * rng.uniform(0.2, 1.2)), 2))
    uf = cl.UnionFind(n)
    for part in np.array_split(edges, 5):  # merged batch by batch, like bands
        uf.union(part)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    roots = uf.roots()
    assert same_partition(roots, labels)
    assert (roots <= np.arange(n)).all() and (roots[roots] == roots).all()  # root = smallest
    assert uf.same(edges).all()


def test_union_find_long_chain_and_star():
    n = 10_000
    chain = np.stack([np.arange(1, n), np.arange(n - 1)], axis=1)[::-1].copy()
    uf = cl.UnionFind(n)
    uf.union(chain)
    assert (uf.roots() == 0).all()
    star = cl.UnionFind(n)
    star.union(np.stack([np.full(n - 1, n - 1), np.arange(n - 1)], axis=1))
    assert (star.roots() == 0).all()


def test_survivor_rule_reference_then_longest_then_first():
    # documents 0-1 come from a reference run; all six are one cluster except 5.
    length = np.array([10, 50, 80, 80, 90, 1000])
    rank = cl.priority_ranks(length, reference_size=2)
    roots = np.array([0, 0, 0, 0, 0, 5])
    assert cl.survivors(roots, rank).tolist() == [1, 1, 1, 1, 1, 5]  # longest reference document
    rank = cl.priority_ranks(length, reference_size=0)
    assert cl.survivors(np.array([0, 0, 2, 2, 0, 5]), rank).tolist() == [4, 4, 2, 2, 4, 5]
    # 2 and 3 tie on length: the earlier one wins
    assert cl.survivors(np.array([0, 1, 2, 2, 4, 5]), rank).tolist() == [0, 1, 2, 2, 4, 5]


def test_exact_edges_point_at_the_preferred_copy():
    exact = np.array([7, 3, 7, 7, 3, 9], dtype=np.uint64)
    rank = cl.priority_ranks(np.array([5, 5, 9, 9, 5, 5]), reference_size=0)
    edges = {tuple(e) for e in cl.exact_edges(exact, rank).tolist()}
    assert edges == {(2, 0), (2, 3), (1, 4)}  # 2: longest of key 7; 1: first of key 3


def test_band_edges_bucket_the_eligible_and_skip_reference_pairs():
    keys = np.array([5, 5, 5, 8, 5, 8, 1], dtype=np.uint64)
    eligible = np.array([True, True, True, True, False, True, True])
    edges = cl.band_edges(keys, eligible, reference_size=2)
    assert {tuple(e) for e in edges.tolist()} == {(0, 2), (3, 5)}  # (0, 1): both reference


def test_statuses():
    roots = np.array([0, 0, 0, 3, 4, 4])
    survivor = np.array([1, 1, 1, 3, 5, 5])
    exact = np.array([1, 1, 2, 3, 4, 4], dtype=np.uint64)
    status = cl.statuses(roots, survivor, exact).tolist()
    assert status == [
        cl.EXACT_DUPLICATE,
        cl.SURVIVOR,
        cl.NEAR_DUPLICATE,
        cl.KEEP,
        cl.EXACT_DUPLICATE,
        cl.SURVIVOR,
    ]
