"""The symmetric fit's walk over partners before each item gives the same tables without the
per-entry offsets (``kernels.WALK_UNTIL``: each row walked until the item) as with them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pippin.recommend import similarity as sim


def _data(seed, rated):
    rng = np.random.default_rng(seed)
    X = sp.random(300, 90, density=0.12, random_state=seed, format="csr")
    X.data = rng.integers(1, 6, X.nnz).astype(np.float64) if rated else np.ones(X.nnz)
    return X


def _symmetric(X, name, positions, k=7):
    """``_fit_symmetric`` as ``item_similarity`` runs it, with or without ``col_pos``."""
    w = sim.SIMILARITIES[name](X)
    n_items = X.shape[1]
    order = np.argsort(-np.bincount(X.indices, minlength=n_items), kind="stable").astype(np.int32)
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items)
    source = sp.csr_matrix(w.weights)
    unweighted = w.binary or bool(np.all(source.data.astype(np.float32) == 1))
    W, Wc, col_pos = sim._relabelled(source, rank, values=not unweighted, positions=positions)
    assert len(col_pos) == (X.nnz if positions else 0)
    return sim._fit_symmetric(W, unweighted, w.mode, w.sa[order].copy(), w.sb[order].copy(), order,
                              float(X.shape[0]), k, 0.0, 2, None, False, name, True, Wc, col_pos)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", ["jaccard", "bm25", "lift", "cosine"])
@pytest.mark.parametrize("rated", [False, True])
def test_walk_until_equals_walk_with_offsets(seed, name, rated):
    X = _data(seed, rated)
    with_offsets = _symmetric(X, name, positions=True)
    without = _symmetric(X, name, positions=False)
    for a, b in zip(with_offsets, without):
        assert a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))
    assert with_offsets[0].sum() > 0


@pytest.mark.parametrize("name", sorted(sim.SIMILARITIES))
def test_symmetric_fit_allocates_offsets_only_for_walks_after(monkeypatch, name):
    X = _data(9, rated=True)
    seen = {}
    relabelled = sim._relabelled

    def spy(*args, **kwargs):
        seen["positions"] = kwargs.get("positions", True)
        return relabelled(*args, **kwargs)

    monkeypatch.setattr(sim, "_relabelled", spy)
    monkeypatch.setattr(sim, "_SYMMETRIC_MIN_REPEATS", 0.0)
    S, _ = sim.item_similarity(X, similarity=name, top_k=5, threshold=0.0)
    assert seen["positions"] is (not sim.SIMILARITIES[name](X).partners_before)
    monkeypatch.setattr(sim, "_SYMMETRIC_BUDGET", 0)
    R, _ = sim.item_similarity(X, similarity=name, top_k=5, threshold=0.0)  # the blocked walk: no offsets
    assert seen["positions"] is False
    assert np.array_equal(S.indices, R.indices) and np.allclose(S.data, R.data, rtol=1e-6)
    monkeypatch.undo()
