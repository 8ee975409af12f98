"""Every similarity in SIMILARITIES against a dense brute-force NumPy definition."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pippin.recommend import SIMILARITIES, item_similarity
from pippin.recommend import similarity as similarity_module


def _matrix(seed: int, *, rated: bool, n_users=60, n_items=25, density=0.2) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[:, 0] = rng.random(n_users) < 0.7  # a popular item
    mask[:, -1] = False  # an item nobody has
    mask[0, -1] = True
    values = rng.integers(1, 6, (n_users, n_items)).astype(float) if rated else np.ones((n_users, n_items))
    return sp.csr_matrix(np.where(mask, values, 0.0))


def _reference(name: str, R: np.ndarray) -> np.ndarray:
    """Independent dense definitions (see the similarity module's table)."""
    B = (R != 0).astype(float)
    C = B.T @ B
    n = np.diag(C)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "jaccard":
            return C / (n[:, None] + n[None, :] - C)
        if name == "cosine":
            norms = np.sqrt((R ** 2).sum(axis=0))
            return (R.T @ R) / np.outer(norms, norms)
        if name == "pearson":
            if np.ptp(R[R != 0]) > 0:
                means = R.sum(axis=0) / n
                Z = np.where(B > 0, R - means, 0.0)
                norms = np.sqrt((Z ** 2).sum(axis=0))
                return (Z.T @ Z) / np.outer(norms, norms)
            return np.corrcoef(B.T)
        if name in ("bm25", "tfidf"):
            A = R.T  # items x users, implicit's orientation
            n_docs = A.shape[0]
            idf = np.log(n_docs) - np.log1p((A != 0).sum(axis=0))
            if name == "bm25":
                k1, b = 1.2, 0.75
                lengths = A.sum(axis=1)
                norm = (1 - b) + b * lengths / lengths.mean()
                W = np.where(A != 0, A * (k1 + 1) / (k1 * norm[:, None] + A) * idf[None, :], 0.0)
            else:
                W = np.where(A != 0, np.sqrt(A) * idf[None, :], 0.0)
                W = W / np.sqrt((W ** 2).sum(axis=1, keepdims=True))
            return W @ W.T
        if name == "lift":
            return C / np.outer(n, n)
        if name == "cooccurrence":
            return C
    raise AssertionError(name)


def _expected_rows(name, R, top_k, threshold):
    sim = _reference(name, R)
    B = (R != 0).astype(float)
    common = (B.T @ B) > 0
    rows = []
    for i in range(R.shape[1]):
        cand = [j for j in range(R.shape[1]) if j != i and common[i, j] and np.isfinite(sim[i, j])
                and sim[i, j] >= threshold]
        cand.sort(key=lambda j: (-sim[i, j], j))
        rows.append(cand if top_k is None else cand[:top_k])
    return sim, rows


@pytest.fixture(params=["symmetric", "blocked"])
def fit_path(request, monkeypatch):
    """Run a test through both fits: the pairwise-symmetric one and the memory-bounded blocked one."""
    if request.param == "blocked":
        monkeypatch.setattr(similarity_module, "_SYMMETRIC_BUDGET", 0)
    else:  # whatever the measured rule would pick on these small matrices
        monkeypatch.setattr(similarity_module, "_SYMMETRIC_MIN_REPEATS", 0.0)
    return request.param


@pytest.mark.parametrize("rated", [False, True], ids=["binary", "rated"])
@pytest.mark.parametrize("top_k", [3, None])
@pytest.mark.parametrize("name", sorted(SIMILARITIES))
def test_matches_brute_force(name, top_k, rated, fit_path):
    X = _matrix(7, rated=rated)
    R = X.toarray()
    threshold = 0.0 if name != "pearson" else 0.01
    S, shift = item_similarity(X, similarity=name, top_k=top_k, threshold=threshold, block_size=4)
    sim, rows = _expected_rows(name, R, top_k, threshold)
    assert S.shape == (R.shape[1], R.shape[1]) and shift.shape == (R.shape[1],)
    for i, expected in enumerate(rows):
        got_j = S.indices[S.indptr[i]:S.indptr[i + 1]]
        got_v = S.data[S.indptr[i]:S.indptr[i + 1]]
        assert len(got_j) == len(expected), (i, got_j, expected)
        assert i not in got_j
        np.testing.assert_allclose(got_v, sim[i, got_j], rtol=2e-5)
        np.testing.assert_allclose(got_v, sim[i, expected], rtol=2e-5)  # same values as the true top-k
        assert np.all(np.diff(got_v) <= 1e-12)  # stored best first


@pytest.mark.parametrize("name", sorted(SIMILARITIES))
def test_block_size_does_not_change_the_result(name, fit_path):
    X = _matrix(3, rated=True, n_users=80, n_items=40)
    a, _ = item_similarity(X, similarity=name, top_k=5, threshold=0.0, block_size=1)
    b, _ = item_similarity(X, similarity=name, top_k=5, threshold=0.0, block_size=1000)
    assert (a != b).nnz == 0


def test_threshold_drops_weak_pairs():
    X = _matrix(1, rated=False)
    S, _ = item_similarity(X, similarity="jaccard", top_k=None, threshold=0.2)
    assert S.nnz and S.data.min() >= 0.2
    S0, _ = item_similarity(X, similarity="jaccard", top_k=None, threshold=0.0)
    assert S0.nnz > S.nnz


def test_pearson_shift_is_the_item_mean_for_ratings():
    X = _matrix(2, rated=True)
    _, shift = item_similarity(X, similarity="pearson", top_k=5)
    R = X.toarray()
    n = (R != 0).sum(axis=0)
    expected = np.divide(R.sum(axis=0), n, out=np.zeros(R.shape[1]), where=n > 0)
    np.testing.assert_allclose(shift, expected)
    _, shift_binary = item_similarity(_matrix(2, rated=False), similarity="pearson", top_k=5)
    assert not shift_binary.any()


@pytest.mark.parametrize("rated", [False, True], ids=["binary", "rated"])
@pytest.mark.parametrize("name", sorted(SIMILARITIES))
def test_both_fits_and_both_pair_orientations_give_identical_tables(name, rated, monkeypatch):
    X = _matrix(11, rated=rated, n_users=300, n_items=120, density=0.1)
    tables = []
    monkeypatch.setattr(similarity_module, "_SYMMETRIC_MIN_REPEATS", 0.0)
    for budget, before in ((1 << 30, False), (1 << 30, True), (0, False)):
        monkeypatch.setattr(similarity_module, "_SYMMETRIC_BUDGET", budget)
        weigh = SIMILARITIES[name]
        monkeypatch.setitem(similarity_module.SIMILARITIES, name,
                            lambda M, weigh=weigh, before=before: _oriented(weigh(M), before))
        tables.append(item_similarity(X, similarity=name, top_k=7, threshold=-1.0 if name == "pearson" else 0.0)[0])
        monkeypatch.setitem(similarity_module.SIMILARITIES, name, weigh)
    for other in tables[1:]:
        assert np.array_equal(tables[0].indptr, other.indptr) and np.array_equal(tables[0].indices, other.indices)
        assert np.array_equal(tables[0].data, other.data)  # bit for bit: each pair's value is computed once


def _oriented(weighting, before):
    weighting.partners_before = before
    return weighting


@pytest.mark.parametrize("name", sorted(SIMILARITIES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_callers_matrix_is_left_untouched(name, dtype):
    X = _matrix(5, rated=True).astype(dtype)  # float32: the weights may share X's values
    before = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    item_similarity(X, similarity=name, top_k=3)
    assert all(np.array_equal(a, b) for a, b in zip(before, (X.data, X.indices, X.indptr)))


def test_pair_repeats_counts_steps_per_distinct_partner():
    X = _matrix(13, rated=False, n_users=200, n_items=40, density=0.3)
    W = sp.csr_matrix(X, dtype=np.float32)
    B = X.toarray()
    sample = np.arange(0, 40, max(1, 40 // similarity_module._REPEAT_SAMPLE))
    steps = sum(B[B[:, i] > 0].sum() for i in sample)
    touched = sum(((B[B[:, i] > 0].sum(axis=0)) > 0).sum() for i in sample)
    assert similarity_module._pair_repeats(W, W.tocsc()) == pytest.approx(steps / touched)


def test_the_fit_path_follows_the_measured_repeats(monkeypatch):
    calls = []
    for name in ("_fit_symmetric", "_fit_blocked"):
        real = getattr(similarity_module, name)
        monkeypatch.setattr(similarity_module, name,
                            lambda *a, real=real, name=name, **k: calls.append(name) or real(*a, **k))
    X = _matrix(17, rated=False, n_users=400, n_items=20, density=0.5)  # every pair repeats ~100 times
    item_similarity(X, similarity="cosine", top_k=3)
    X_sparse = _matrix(17, rated=False, n_users=400, n_items=400, density=0.005)  # pairs seen about once
    item_similarity(X_sparse, similarity="cosine", top_k=3)
    assert calls == ["_fit_symmetric", "_fit_blocked"]
