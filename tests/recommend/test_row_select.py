"""The blocked fit's threshold pass (``recommend.row_select``) keeps exactly the neighbours of
offering every touched partner to the heap: same tables bit for bit, ties included."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit

from pippin.pipelines.runtime.topk_heap import heap_push, heap_sort_desc
from pippin.recommend import row_select
from pippin.recommend import similarity as sim


@njit
def _kth(a, k):
    return row_select.kth_largest(a, a.shape[0], k)


@njit
def _selected(values, touched, label, k):
    n = values.shape[0]
    buf = np.empty(n + row_select.BLOCK, dtype=np.float64)
    buf[:n] = values
    blocks = np.empty(n + row_select.BLOCK, dtype=np.float64)
    scratch = np.empty(n + row_select.BLOCK, dtype=np.float64)
    hv = np.empty(k, dtype=np.float64)
    hj = np.empty(k, dtype=np.int32)
    size = row_select.offer_selected(buf, blocks, scratch, n, touched, label, hv, hj, k)
    heap_sort_desc(hv, hj, size)
    return hv[:size].copy(), hj[:size].copy()


@njit
def _plain(values, touched, label, k):
    hv = np.empty(k, dtype=np.float64)
    hj = np.empty(k, dtype=np.int32)
    size = 0
    for t in range(values.shape[0]):
        if values[t] > -np.inf:
            size = heap_push(hv, hj, size, k, values[t], label[touched[t]])
    heap_sort_desc(hv, hj, size)
    return hv[:size].copy(), hj[:size].copy()


@pytest.mark.parametrize("seed", range(12))
def test_kth_largest_matches_sort_with_ties_and_minus_inf(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        k = int(rng.integers(1, n + 1))
        a = rng.integers(0, int(rng.integers(1, 12)), n).astype(np.float64)
        a[rng.random(n) < 0.3] = -np.inf
        assert _kth(a.copy(), k) == np.sort(a)[::-1][k - 1]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("k", [1, 3, 16, 64])
def test_offer_selected_keeps_what_the_plain_heap_keeps(seed, k):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(row_select.SELECT_FACTOR * k, 40 * row_select.SELECT_FACTOR * k + 50))
    # few distinct values: long runs of ties decided by label; some excluded (-inf) entries
    values = rng.integers(0, int(rng.integers(1, 20)), n) / 7.0
    values[rng.random(n) < rng.random()] = -np.inf
    touched = rng.permutation(n + 5)[:n].astype(np.int32)
    label = rng.permutation(n + 5).astype(np.int32)
    got_v, got_j = _selected(values, touched, label, k)
    ref_v, ref_j = _plain(values, touched, label, k)
    assert np.array_equal(got_j, ref_j) and np.array_equal(got_v.view(np.uint64), ref_v.view(np.uint64))


def _heavy(seed, n_users=120, n_items=700):
    """0/1 data with a few users holding most of the catalogue: rows of 300+ partners and many
    ties (items met by one user only), so the threshold pass runs on most rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        size = int(rng.integers(400, 650)) if u < 4 else int(rng.integers(1, 12))
        p = 1.0 / (np.arange(n_items) + 10.0)
        rows.append(np.unique(rng.choice(n_items, size=size, p=p / p.sum())))
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    X = sp.csr_matrix((np.ones(indptr[-1]), np.concatenate(rows).astype(np.int32), indptr),
                      shape=(n_users, n_items))
    return X


@pytest.mark.parametrize("similarity", sorted(sim.SIMILARITIES))
@pytest.mark.parametrize("rated", [False, True])
@pytest.mark.parametrize("top_k", [5, 64])
def test_blocked_fit_with_selection_equals_the_plain_offer_loop(monkeypatch, similarity, rated, top_k):
    X = _heavy(3)
    if rated:
        X.data = np.random.default_rng(1).integers(1, 6, X.nnz).astype(np.float64)
    monkeypatch.setattr(sim, "_SYMMETRIC_BUDGET", 0)  # the blocked walk, which holds the threshold pass
    # threshold 0: selection on long rows; threshold -inf: the plain loop on every row. Pearson's
    # correlation can be negative, so its reference keeps the same entries by filtering after.
    S, _ = sim.item_similarity(X, similarity=similarity, top_k=top_k, threshold=0.0)
    R, _ = sim.item_similarity(X, similarity=similarity, top_k=top_k, threshold=-np.inf)
    if similarity == "pearson":
        R = _drop_below(R, 0.0)
        S = _drop_below(S, 0.0)
    assert np.array_equal(S.indptr, R.indptr) and np.array_equal(S.indices, R.indices)
    assert np.array_equal(S.data.view(np.uint64), R.data.view(np.uint64))
    long_rows = (np.asarray((X.T @ X != 0).sum(axis=1)).ravel() >= max(row_select.SELECT_MIN,
                                                                         row_select.SELECT_FACTOR * top_k))
    assert long_rows.sum() > 100  # the threshold pass really ran


def _drop_below(S, bound):
    """Rows of ``S`` (best first) with entries below ``bound`` removed, order kept."""
    keep = S.data >= bound
    counts = np.add.reduceat(keep.astype(np.int64), S.indptr[:-1]) if S.nnz else np.zeros(S.shape[0], int)
    counts[np.diff(S.indptr) == 0] = 0
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sp.csr_matrix((S.data[keep], S.indices[keep], indptr), shape=S.shape)


def test_blocked_fit_with_selection_matches_brute_force():
    X = _heavy(5)
    counts = np.asarray(X.sum(axis=0)).ravel()
    C = (X.T @ X).toarray()
    with np.errstate(invalid="ignore"):  # items nobody has: 0 / 0
        J = C / (counts[:, None] + counts[None, :] - C)
    np.fill_diagonal(J, -np.inf)
    J[C == 0] = -np.inf
    k = 16
    S, _ = sim.item_similarity(X, similarity="jaccard", top_k=k, threshold=0.0)
    for i in range(X.shape[1]):
        order = np.lexsort((np.arange(X.shape[1]), -J[i]))[:k]  # value desc, then lower item
        order = order[J[i, order] > -np.inf]
        row = slice(S.indptr[i], S.indptr[i + 1])
        assert np.array_equal(S.indices[row], order)
        np.testing.assert_allclose(S.data[row], J[i, order], rtol=1e-6)
