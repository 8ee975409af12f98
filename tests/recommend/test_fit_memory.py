"""The fit's memory savings change nothing but memory: per-item counts and sums equal ``np.bincount``
bit for bit, the relabel writing over an owned float32 values array gives the same arrays, the
caller's matrix is never written, and the traced peak stays within a per-interaction budget
(``np.bincount`` of int32 indices made an int64 copy: 8 bytes per interaction on top)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from pippin.recommend import item_similarity, weights
from pippin.recommend import similarity as sim


def _csr(seed, n_rows=50, n_cols=30, density=0.3, dtype=np.float64, index_dtype=np.int32):
    m = sp.random(n_rows, n_cols, density=density, random_state=seed, format="csr", dtype=np.float64)
    m.data = (np.round(m.data * 7) + np.random.default_rng(seed).random(m.nnz)).astype(dtype)
    m.indices, m.indptr = m.indices.astype(index_dtype), m.indptr.astype(index_dtype)
    return m


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("seed", range(4))
def test_item_counts_and_sums_are_bincount(seed, dtype, index_dtype):
    X = _csr(seed, n_rows=40 + 7 * seed, n_cols=20 + 5 * seed, dtype=dtype, index_dtype=index_dtype)
    n = X.shape[1]
    counts = weights.item_counts(X)
    assert counts.dtype == np.int64 and np.array_equal(counts, np.bincount(X.indices, minlength=n))
    ref = np.bincount(X.indices, weights=X.data.astype(np.float64), minlength=n)
    assert np.array_equal(weights.item_sums(X).view(np.uint64), ref.view(np.uint64))
    ref2 = np.bincount(X.indices, weights=X.data.astype(np.float64) ** 2, minlength=n)
    assert np.array_equal(weights.item_sums(X, squared=True).view(np.uint64), ref2.view(np.uint64))


def test_item_counts_and_sums_of_an_empty_matrix():
    X = sp.csr_matrix((3, 5))
    assert np.array_equal(weights.item_counts(X), np.zeros(5, dtype=np.int64))
    assert np.array_equal(weights.item_sums(X, squared=True), np.zeros(5))


@pytest.mark.parametrize("positions", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_relabel_over_owned_values_gives_the_same_arrays(seed, positions):
    X = _csr(seed, n_rows=60 + seed, n_cols=30 + 3 * seed, dtype=np.float32)
    rank = np.random.default_rng(seed).permutation(X.shape[1]).astype(np.int64)
    W, Wc, pos = sim._relabelled(X, rank, positions=positions)
    owned = sp.csr_matrix((X.data.copy(), X.indices, X.indptr), shape=X.shape)
    W2, Wc2, pos2 = sim._relabelled(owned, rank, positions=positions, overwrite=True)
    assert np.shares_memory(W2.data, owned.data)  # written over, no third copy
    for a, b in ((W.indices, W2.indices), (W.data, W2.data), (Wc.indptr, Wc2.indptr), (Wc.indices, Wc2.indices),
                 (Wc.data, Wc2.data), (pos, pos2)):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_relabel_never_writes_values_it_does_not_own():
    X = _csr(3, dtype=np.float32)
    before = X.data.copy()
    rank = np.random.default_rng(3).permutation(X.shape[1]).astype(np.int64)
    W, _, _ = sim._relabelled(X, rank)  # overwrite not given
    assert not np.shares_memory(W.data, X.data) and np.array_equal(X.data, before)
    X64 = _csr(3)
    W, _, _ = sim._relabelled(X64, rank, overwrite=True)  # float64: cannot hold the float32 values
    assert not np.shares_memory(W.data, X64.data)


@pytest.mark.parametrize("name", list(sim.SIMILARITIES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_leaves_the_callers_matrix_alone(name, dtype):
    X = _csr(7, n_rows=80, n_cols=40, dtype=dtype)
    data, indices, indptr = X.data.copy(), X.indices.copy(), X.indptr.copy()
    item_similarity(X, similarity=name, top_k=5, threshold=0.0)
    assert np.array_equal(X.data, data) and np.array_equal(X.indices, indices) and np.array_equal(X.indptr, indptr)


# bytes per interaction the fit may hold at once (user ids above 65,536: int32 in the CSC, uint16 item ids):
# relabel 6 (+ 2 for the offsets of cosine/tfidf's symmetric walk) + 8 for bm25/tfidf's float32 values (theirs,
# relabelled over, and the CSC's); before the count kernels each had an 8-byte int64 copy of the indices on top
BUDGET = {"jaccard": 6, "cosine": 8, "bm25": 14, "tfidf": 16}


@pytest.mark.parametrize("name", sorted(BUDGET))
def test_traced_peak_within_the_per_interaction_budget(name):
    n_users, n_items, per_user = 70_000, 1_500, 25
    offsets = np.random.default_rng(0).integers(0, n_items, n_users)
    step = n_items // per_user  # per_user distinct items a row, spread over the catalogue
    indices = np.sort((offsets[:, None] + step * np.arange(per_user)[None, :]) % n_items, axis=1)
    indptr = np.arange(0, n_users * per_user + 1, per_user, dtype=np.int32)
    X = sp.csr_matrix((np.ones(indices.size), indices.ravel().astype(np.int32), indptr), shape=(n_users, n_items))
    k = 4
    # the same matrix once untraced: every kernel specialisation it needs (id widths, walk) is compiled or loaded
    # from numba's cache before tracing (a fresh install compiles them, and the compiler's memory is traced)
    item_similarity(X, similarity=name, top_k=k, threshold=0.0)
    tracemalloc.start()
    try:
        item_similarity(X, similarity=name, top_k=k, threshold=0.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    slack = 2 * n_items * k * 12 + 1.5 * 2**20  # heaps per thread, the table, small arrays
    assert peak <= BUDGET[name] * X.nnz + slack, (peak / X.nnz, BUDGET[name])
