"""The fit's layout steps (relabel + transposes in one pass, tables reordered in place) give
exactly what the plain scipy steps give."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pippin.recommend import kernels, layout
from pippin.recommend import similarity as sim


def _random_csr(seed, n_rows=40, n_cols=25, density=0.3):
    m = sp.random(n_rows, n_cols, density=density, random_state=seed, format="csr")
    m.data = np.round(m.data * 7) + 1
    return m


@pytest.mark.parametrize("seed", range(8))
def test_relabel_transpose_is_relabel_sort_and_tocsc(seed):
    X = _random_csr(seed, n_rows=60 + seed, n_cols=30 + 3 * seed)
    rank = np.random.default_rng(seed).permutation(X.shape[1]).astype(np.int64)
    W, Wc, col_pos = sim._relabelled(X, rank)
    ref = sp.csr_matrix((X.data.astype(np.float32), rank[X.indices], X.indptr), shape=X.shape)
    ref.sort_indices()
    assert np.array_equal(W.indptr, ref.indptr) and np.array_equal(W.indices, ref.indices)
    assert W.data.dtype == np.float32 and np.array_equal(W.data, ref.data)
    assert len(W.indices) == X.nnz
    refc = ref.tocsc()
    assert np.array_equal(Wc.indptr, refc.indptr) and np.array_equal(Wc.indices, refc.indices)
    assert np.array_equal(Wc.data, refc.data)
    # col_pos: where each CSC entry sits in its user's CSR row (offset from the row's start)
    rows_of = np.repeat(np.arange(W.shape[0]), np.diff(W.indptr))
    cols_of_csc = np.repeat(np.arange(W.shape[1]), np.diff(Wc.indptr))
    pos = W.indptr[Wc.indices] + col_pos.astype(np.int64)
    assert np.array_equal(rows_of[pos], Wc.indices) and np.array_equal(W.indices[pos], cols_of_csc)
    assert col_pos.dtype == np.uint16 and (col_pos < np.diff(W.indptr)[Wc.indices]).all()
    assert np.shares_memory(W.indptr, X.indptr) or np.array_equal(W.indptr, X.indptr)
    assert X.data.dtype == np.float64  # the caller's matrix is left alone


@pytest.mark.parametrize("seed", range(6))
def test_rows_to_item_order_is_a_fancy_row_index(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 50)), int(rng.integers(1, 9))
    out_j = rng.integers(0, 100, (n, k)).astype(np.int32)
    out_v = rng.random((n, k))
    out_n = rng.integers(0, k + 1, n).astype(np.int64)
    order = rng.permutation(n).astype(np.int32)  # row r belongs to item order[r]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    keep = np.arange(k)[np.newaxis, :] < out_n[:, np.newaxis]
    indptr = np.concatenate([[0], np.cumsum(out_n)])
    ref = sp.csr_matrix((out_v[keep], out_j[keep], indptr), shape=(n, 100))[rank]
    S = sim._in_item_order(out_n, out_j, out_v, order)
    assert np.array_equal(S.indptr, ref.indptr) and np.array_equal(S.indices, ref.indices)
    assert np.array_equal(S.data, ref.data)


@pytest.mark.parametrize("similarity", ["cosine", "jaccard", "bm25", "pearson"])
@pytest.mark.parametrize("top_k", [3, None])
def test_whole_buffers_and_block_parts_give_the_same_table(monkeypatch, similarity, top_k):
    X = _random_csr(7, n_rows=200, n_cols=60, density=0.15)
    monkeypatch.setattr(sim, "_SYMMETRIC_MIN_REPEATS", 1e9)  # the blocked walk
    a = sim.item_similarity(X, similarity=similarity, top_k=top_k, threshold=0.0)[0]
    monkeypatch.setattr(sim, "_WHOLE_TABLE_BUDGET", 0)
    b = sim.item_similarity(X, similarity=similarity, top_k=top_k, threshold=0.0)[0]
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)


def test_binary_similarities_never_copy_values():
    X = _random_csr(3)
    for name in ("jaccard", "lift", "cooccurrence", "pearson"):
        w = sim.SIMILARITIES[name](sp.csr_matrix(X > 0, dtype=np.float64))
        assert w.binary and w.weights.nnz == X.nnz
    W, Wc, _ = sim._relabelled(X, np.arange(X.shape[1]), values=False)
    assert len(W.data) == 0 and len(Wc.data) == 0 and len(W.indices) == X.nnz
    assert kernels.MODE_JACCARD == sim.jaccard(X).mode


def test_id_widths():
    assert layout.id_dtype(1 << 16) == np.uint16 and layout.id_dtype((1 << 16) + 1) == np.int32
    assert layout.id_dtype(2**31 - 1) == np.int32 and layout.id_dtype(2**31) == np.int64


@pytest.mark.parametrize("similarity", ["cosine", "jaccard", "bm25", "tfidf"])
@pytest.mark.parametrize("walk_budget", [0, 1 << 40])  # blocked, symmetric
def test_uint16_and_int32_ids_give_the_same_table(similarity, walk_budget, monkeypatch):
    # uint16 ids up to 65,536 users / items; padding past that (empty users, empty items) switches
    # to int32 ids without changing any similarity of the real items
    monkeypatch.setattr(sim, "_SYMMETRIC_BUDGET", walk_budget)
    monkeypatch.setattr(sim, "_SYMMETRIC_MIN_REPEATS", 0.0)
    X = _random_csr(3, n_rows=300, n_cols=80, density=0.2)
    S, shift = sim.item_similarity(X, similarity=similarity, top_k=10, threshold=0.0)
    n_users, n_items = 70_000, 66_000
    indptr = np.concatenate([X.indptr, np.full(n_users - X.shape[0], X.indptr[-1])])
    wide = sp.csr_matrix((X.data, X.indices, indptr), shape=(n_users, n_items))
    assert layout.id_dtype(n_users) == np.int32 and layout.id_dtype(n_items) == np.int32
    Sw, _ = sim.item_similarity(wide, similarity=similarity, top_k=10, threshold=0.0)
    if similarity in ("bm25", "tfidf"):  # their weights depend on the user count: compare the layout only
        assert np.array_equal(Sw.indptr[:81], S.indptr)
        return
    top = Sw[:80, :80]
    assert Sw.nnz == S.nnz and np.array_equal(top.indptr, S.indptr) and np.array_equal(top.indices, S.indices)
    assert np.array_equal(top.data, S.data)


@pytest.mark.parametrize("seed", range(12))
def test_bm25_and_tfidf_weights_are_implicits_bit_for_bit(seed):
    # recommend/weights.py computes implicit's weights in one pass, sharing X's index arrays
    from implicit.nearest_neighbours import bm25_weight, normalize, tfidf_weight

    from pippin.recommend import weights

    rng = np.random.default_rng(seed)
    X = sp.random(int(rng.integers(1, 200)), int(rng.integers(1, 120)), density=rng.random() * 0.3,
                  random_state=seed, format="csr")
    X.data = np.round(X.data * 5) + 1 if seed % 2 else X.data * 10 ** rng.uniform(-3, 3, X.nnz)
    for ours, theirs in ((weights.bm25_weights(X, K1=1.2, B=0.75, fallback=None), bm25_weight(X.T, K1=1.2, B=0.75).T),
                         (weights.tfidf_weights(X, fallback=None), normalize(tfidf_weight(X.T)).T)):
        ref = sp.csr_matrix(theirs)
        ref.sort_indices()
        assert ours.dtype == np.float32 and np.shares_memory(ours.indices, X.indices)
        assert np.array_equal(ours.indptr, ref.indptr) and np.array_equal(ours.indices, ref.indices)
        assert np.array_equal(ours.data, ref.data.astype(np.float32))


def test_weights_fall_back_to_implicit_for_other_inputs():
    from pippin.recommend import weights

    X = _random_csr(1).astype(np.float32)  # not float64: implicit's own functions
    calls = []
    weights.bm25_weights(X, K1=1.2, B=0.75, fallback=lambda M, **kw: calls.append(kw) or sp.coo_matrix(M))
    assert calls == [{"K1": 1.2, "B": 0.75}]
