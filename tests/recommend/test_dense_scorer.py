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
