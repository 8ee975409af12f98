"""EASE for catalogues too large for the dense matrix: each item's weights solved over
its ``m`` top co-occurring items only.

Column ``j`` of the exact EASE matrix is the ridge regression of item ``j`` on every
other item: ``B[-j, j] = (G[-j, -j] + λI)⁻¹ G[-j, j]`` with ``G = XᵀX`` (Steck 2019,
the diagonal constraint). The approximation restricts the regressors to ``N(j)``, the
``m`` items that share the most users with ``j`` (its top co-occurring items, found by
the similarity kernels without the dense matrix):

    B[N(j), j] = (G[N, N] + λI)⁻¹ G[N, j],   B[i, j] = 0 for i outside N(j)

``G`` is kept sparse (only co-occurring pairs), so ``G[N, N]`` is exact and positive
definite; with ``m >= n_items - 1`` and every pair of items co-occurring, the result is
the exact fit's. Each row ``i`` of
the table then keeps its ``top_k`` largest magnitudes, as in the exact fit.

Cost: the sparse Gram matrix (``12 * nnz(XᵀX)`` bytes, ``sum_u activity_u²``
multiply-adds), then per item an ``m x m`` Cholesky solve (``n_items * m³ / 3`` flops,
``m² log`` lookups) and ``n_items * m * 24`` bytes of weights: nothing grows with
``n_items²`` except the co-occurring pairs. Measured against the exact fit in
``tests/recommend/test_ease.py`` (MovieLens 100K) and by
``benchmarks/bench_similarity_grid.py --ease``.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from .ease import default_l2, popularity_scale, select_l2, user_weighted
from .similarity import item_similarity

__all__ = ["fit_ease_sparse", "sparse_gram"]

logger = logging.getLogger(__name__)


def sparse_gram(X: sp.csr_matrix, m: int, alpha: float = 0.0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``G = Xᵀ D X`` (``ease.user_weighted(X, alpha)``'s Gram matrix) over co-occurring pairs and each
    item's ``m`` top co-occurring items (by unweighted counts).

    Returns
    -------
    G : scipy.sparse.csr_matrix [shape=(n_items, n_items)]
        Indices sorted, diagonal included.
    T : scipy.sparse.csr_matrix [shape=(n_items, n_items)]
        Row ``j``: ``N(j)``, ascending (the ``m`` largest co-occurrence counts, ties to the
        lower item: ``item_similarity(..., similarity="cooccurrence")``).
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    Xw = user_weighted(X, alpha)
    G = sp.csr_matrix(Xw.T.tocsr() @ Xw)
    G.sort_indices()
    T, _ = item_similarity(X, similarity="cooccurrence", top_k=m, threshold=0.0)
    T = sp.csr_matrix(T)
    T.sort_indices()
    return G, T


@njit(parallel=True, nogil=True, cache=True)
def _solve_columns(t_ptr, t_idx, g_ptr, g_idx, g_val, l2, out):
    """``out[t_ptr[j]:t_ptr[j+1]]`` = the ridge weights of item ``j`` over its neighbours
    ``t_idx[...]`` (ascending), with ``G[N, N]`` looked up in ``G``'s sorted rows."""
    n = t_ptr.shape[0] - 1
    n_chunks = min(n, 256)
    for chunk in prange(n_chunks):
        for j in range(chunk, n, n_chunks):
            lo, hi = t_ptr[j], t_ptr[j + 1]
            size = hi - lo
            if size == 0:
                continue
            nbrs = t_idx[lo:hi]
            A = np.zeros((size, size))
            for a in range(size):
                row = g_idx[g_ptr[nbrs[a]]:g_ptr[nbrs[a] + 1]]
                vals = g_val[g_ptr[nbrs[a]]:g_ptr[nbrs[a] + 1]]
                if row.shape[0] <= 4 * size:  # short row: merge two sorted lists
                    p, b = 0, 0
                    while p < row.shape[0] and b < size:
                        if row[p] < nbrs[b]:
                            p += 1
                        elif row[p] > nbrs[b]:
                            b += 1
                        else:
                            A[a, b] = vals[p]
                            p += 1
                            b += 1
                else:  # long row: binary search each neighbour
                    found = np.searchsorted(row, nbrs)
                    for b in range(size):
                        if found[b] < row.shape[0] and row[found[b]] == nbrs[b]:
                            A[a, b] = vals[found[b]]
                A[a, a] += l2
            row = g_idx[g_ptr[j]:g_ptr[j + 1]]
            found = np.searchsorted(row, nbrs)
            rhs = np.zeros(size)
            for a in range(size):  # G[N(j), j] = G[j, N(j)]
                if found[a] < row.shape[0] and row[found[a]] == nbrs[a]:
                    rhs[a] = g_val[g_ptr[j] + found[a]]
            L = np.linalg.cholesky(A)
            for a in range(size):  # L Lᵀ w = rhs: forward, then back substitution
                acc = rhs[a]
                for b in range(a):
                    acc -= L[a, b] * rhs[b]
                rhs[a] = acc / L[a, a]
            for a in range(size - 1, -1, -1):
                acc = rhs[a]
                for b in range(a + 1, size):
                    acc -= L[b, a] * rhs[b]
                rhs[a] = acc / L[a, a]
            out[lo:hi] = rhs


def _table(X: sp.csr_matrix, m: int, l2: float, top_k, threshold, grams=None, beta=0.0,
           alpha=0.0, delta=0.0) -> sp.csr_matrix:
    G, T = grams if grams is not None else sparse_gram(X, m, alpha)
    w = np.empty(T.nnz)
    from threadpoolctl import threadpool_limits

    # numba's threads each factorize small matrices: BLAS threads on top only contend
    # (measured: a 256x256 Cholesky 0.9 ms on one BLAS thread, 179 ms with two under load)
    with threadpool_limits(limits=1, user_api="blas"):
        _solve_columns(T.indptr.astype(np.int64), T.indices.astype(np.int64), G.indptr.astype(np.int64),
                       G.indices.astype(np.int64), G.data, float(l2), w)
    # column j of B holds row j of T: sim(i -> j) = w at (i, j)
    n = X.shape[1]
    cols = np.repeat(np.arange(n), np.diff(T.indptr))
    scale = popularity_scale(X, beta)
    if scale is not None:
        w *= scale[cols]
    row_scale = popularity_scale(X, delta)
    if row_scale is not None:
        w *= row_scale[T.indices]
    B = sp.csr_matrix((w, (T.indices, cols)), shape=(n, n))
    return _topk_rows(B, top_k, threshold)


def _topk_rows(B: sp.csr_matrix, top_k, threshold) -> sp.csr_matrix:
    """``topk_by_magnitude`` for a sparse ``B``: each row's ``top_k`` largest ``|B|`` (ties: lower j),
    ``|B| >= threshold`` and non-zero, stored by decreasing value (ties: lower j)."""
    n = B.shape[0]
    B = sp.csr_matrix(B)
    B.sort_indices()
    r = np.repeat(np.arange(n), np.diff(B.indptr))
    j, v = B.indices.astype(np.int64), B.data
    keep = (np.abs(v) >= threshold) & (v != 0)
    r, j, v = r[keep], j[keep], v[keep]
    if top_k is not None:
        order = np.lexsort((j, -np.abs(v), r))
        r, j, v = r[order], j[order], v[order]
        start = np.searchsorted(r, np.arange(n))
        rank = np.arange(len(r)) - start[r]
        keep = rank < top_k
        r, j, v = r[keep], j[keep], v[keep]
    order = np.lexsort((j, -v, r))
    r, j, v = r[order], j[order], v[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return sp.csr_matrix((v, j.astype(np.int32), indptr), shape=(n, n))


def fit_ease_sparse(X: sp.csr_matrix, *, l2, neighbours: int, top_k: int | None,
                    threshold: float, beta: float = 0.0, alpha: float = 0.0,
                    delta: float = 0.0) -> tuple[sp.csr_matrix, float, dict]:
    """The approximate EASE table of ``X`` [shape=(n_users, n_items)] (Gram matrix of
    ``ease.user_weighted(X, alpha)``, columns scaled by ``ease.popularity_scale(X, beta)``, rows by
    ``ease.popularity_scale(X, delta)``); ``l2`` as in
    ``ease.fit_ease`` (``None``: ``ease.default_l2`` of the Gram matrix's diagonal); same returns."""
    X = sp.csr_matrix(X, dtype=np.float64)
    m = min(int(neighbours), max(X.shape[1] - 1, 1))
    scores = {}
    if isinstance(l2, str):
        def tables(train, grid, top_k, threshold, beta, alpha, delta):
            grams = sparse_gram(train, m, alpha)
            for value in grid:
                yield float(value), _table(train, m, value, top_k, threshold, grams, beta, delta=delta)

        l2, scores = select_l2(X, top_k=top_k, threshold=threshold, tables=tables, beta=beta, alpha=alpha,
                               delta=delta)
    grams = sparse_gram(X, m, alpha)
    if l2 is None:
        l2 = default_l2(grams[0].diagonal())
    S = _table(X, m, float(l2), top_k, threshold, grams, beta=beta, delta=delta)
    logger.info("ease (sparse, %d neighbours): %d items, l2=%g, %d weights kept", m, X.shape[1], l2, S.nnz)
    return S, float(l2), scores
