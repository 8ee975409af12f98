"""The dense-accumulator scorer (``pipelines/runtime/item_similarity_dense``) gives the
touched-list kernel's answers bit for bit, and ``recommend_topk`` picks it for dense tables."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pippin.pipelines.runtime import item_similarity_dense as dense_module
from pippin.pipelines.runtime.item_similarity import recommend_topk


def _case(seed):
    rng = np.random.default_rng(seed)
    n_items, n_users = int(rng.integers(1, 60)), int(rng.integers(1, 40))
    S = sp.random(n_items, n_items, density=rng.random(), random_state=seed, format="csr")
    S.data = np.round(S.data * 4) / 4 - 0.5  # ties, zeros and negative weights
    H = sp.random(n_users, n_items, density=rng.random() * 0.5, random_state=seed + 1000, format="csr")
    H.data = np.round(H.data * 3)
    shift = np.round(rng.random(n_items)) * 0.5 if seed % 2 else np.zeros(n_items)
    X = sp.random(n_users, n_items, density=0.2, random_state=seed + 2000, format="csr") if seed % 3 else H
    R = has = None
    if seed % 4 == 0:  # restrict lists in item order, with repeated entries
        rows = [np.sort(rng.choice(n_items, int(rng.integers(0, n_items + 3)))) for _ in range(n_users)]
        R = sp.csr_matrix((np.ones(sum(map(len, rows))), np.concatenate(rows).astype(np.int32),
                           np.concatenate([[0], np.cumsum([len(r) for r in rows])])), shape=(n_users, n_items))
        has = rng.random(n_users) < 0.7
    return H, S, shift, X, R, has, int(rng.integers(1, n_items + 5))


@pytest.mark.parametrize("seed", range(0, 120))
def test_dense_scorer_matches_the_touched_list_kernel(seed):
    H, S, shift, X, R, has, k = _case(seed)
    a = recommend_topk(H, S, shift, k=k, exclude=X, restrict=R, has_restrict=has, dense=False)
    b = recommend_topk(H, S, shift, k=k, exclude=X, restrict=R, has_restrict=has, dense=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_the_rule_picks_dense_for_tables_reaching_the_catalogue(monkeypatch):
    H = sp.random(50, 1000, density=0.02, random_state=1, format="csr")  # 20 items per user
    wide = sp.random(1000, 1000, density=0.05, random_state=2, format="csr")  # 50 per item: 1000 per user
    narrow = sp.random(1000, 1000, density=0.002, random_state=3, format="csr")  # 2 per item: 40 per user
    assert dense_module.use_dense(H.indptr, H.indices, wide.indptr, 1000)
    assert not dense_module.use_dense(H.indptr, H.indices, narrow.indptr, 1000)
    calls = []
    monkeypatch.setattr("pippin.pipelines.runtime.item_similarity.score_topk_dense",
                        lambda *args: calls.append(1))
    recommend_topk(H, wide, np.zeros(1000), k=5)
    recommend_topk(H, narrow, np.zeros(1000), k=5)
    assert calls == [1]


@pytest.mark.parametrize("seed", range(0, 40))
def test_pruned_scan_matches_the_full_scan_on_many_blocks(seed):
    # catalogues of many 32-item blocks, where the block-maximum threshold skips most of them
    rng = np.random.default_rng(seed)
    n_items, n_users = int(rng.integers(33, 700)), int(rng.integers(1, 30))
    S = sp.random(n_items, n_items, density=rng.random() * 0.3, random_state=seed, format="csr")
    S.data = np.round(S.data * 8) / 8 - (0.5 if seed % 2 else 0.0)  # ties; all positive on even seeds
    H = sp.random(n_users, n_items, density=rng.random() * 0.2, random_state=seed + 1, format="csr")
    H.data = np.round(H.data * 3) + 1
    shift = np.zeros(n_items) if seed % 3 else np.round(rng.random(n_items)) * 0.5
    X = H if seed % 5 else sp.random(n_users, n_items, density=0.5, random_state=seed + 2, format="csr")
    k = int(rng.choice([1, 3, 10, n_items - 1, n_items + 2]))
    a = recommend_topk(H, S, shift, k=k, exclude=X, dense=False)
    b = recommend_topk(H, S, shift, k=k, exclude=X, dense=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_scores_with_nan_are_scanned_in_full():
    # a NaN score (inf * 0, inf - inf, a NaN weight) disables the pruning for that user only
    S = sp.csr_matrix(np.array([[0.0, np.inf, 1.0, 0.5], [np.nan, 0.0, 2.0, 0.1], [1.0, 1.0, 0.0, -np.inf],
                                [0.2, 0.3, 0.4, 0.0]]))
    H = sp.csr_matrix(np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 2.0],
                                [1.0, 0.0, 1.0, 0.0]]))
    z = np.zeros(5, dtype=np.int32)
    # and one over three blocks whose second candidate scores NaN: a full scan keeps it (with k=3)
    wide = np.zeros((4, 70))
    wide[:, 40:46] = np.arange(6) + 1.0
    wide[3, 1] = np.nan
    S = sp.csr_matrix(np.hstack([S.toarray(), np.zeros((4, 66))]) + wide)
    S = sp.csr_matrix(np.vstack([S.toarray(), np.zeros((66, 70))]))
    H = sp.csr_matrix((H.data, H.indices, H.indptr), shape=(4, 70))
    z = np.zeros(5, dtype=np.int32)
    for k in (1, 2, 3):
        a = np.full((4, k), -1), np.full((4, k), -np.inf)  # the unpruned scan, run directly
        dense_module.score_topk_dense(H.indptr, H.indices, H.data, S.indptr, S.indices, S.data, np.zeros(70),
                                      H.indptr, H.indices, z, z[:0], np.zeros(4, dtype=bool), k, *a, False)
        b = recommend_topk(H, S, np.zeros(70), k=k, exclude=H, dense=True)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1], equal_nan=True)


@pytest.mark.parametrize("seed", range(0, 30, 3))
def test_uint16_table_indices_give_the_same_answers(seed, monkeypatch):
    # batches that read the table many times over stream uint16 column indices (same sums)
    H, S, shift, X, R, has, k = _case(seed)
    a = recommend_topk(H, S, shift, k=k, exclude=X, restrict=R, has_restrict=has, dense=True)
    monkeypatch.setattr(dense_module, "COMPACT_MIN_REUSE", 0)
    seen = []
    real = dense_module.compact_table
    monkeypatch.setattr("pippin.pipelines.runtime.item_similarity.compact_table",
                        lambda *args: seen.append(real(*args).dtype) or real(*args))
    b = recommend_topk(H, S, shift, k=k, exclude=X, restrict=R, has_restrict=has, dense=True)
    assert seen == [np.uint16]
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_compact_table_keeps_wide_catalogues_and_small_batches_as_they_are():
    idx = np.arange(10, dtype=np.int32)
    assert dense_module.compact_table(idx, 70_000, 1e9, 10).dtype == np.int32  # above uint16's range
    assert dense_module.compact_table(idx, 100, 10.0, 10).dtype == np.int32  # read once: not worth a copy
    assert dense_module.compact_table(idx, 100, 1e9, 10).dtype == np.uint16


def test_the_rule_samples_long_histories(monkeypatch):
    s_ptr = np.arange(0, 4 * 101, 4)  # every row 4 long: any sample gives the exact total
    h_items = np.arange(1000) % 100
    assert dense_module.accumulations(h_items, s_ptr) == 4000.0
    monkeypatch.setattr(dense_module, "RULE_SAMPLE", 7)
    assert dense_module.accumulations(h_items, s_ptr) == 4000.0
