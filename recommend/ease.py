"""EASE: learned item-item weights in closed form (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019), as an item-similarity table.

With ``G = XᵀX`` the item Gram matrix of the interactions ``X`` [shape=(n_users, n_items)]
and ``P = (G + λI)⁻¹``, the weights are ``B = I - P diag(1/diag P)`` with a zero
diagonal, i.e. ``B[i, j] = -P[i, j] / P[j, j]``. Column ``j`` of ``B`` is the ridge
regression of item ``j`` on all the other items, so a user's score is ``x @ B``: Core
ML's ``ItemSimilarityRecommender`` formula with ``sim(i -> j) = B[i, j]`` (negative
weights included). Each item's row keeps its ``top_k`` largest weights *by magnitude*,
stored best (largest signed value) first.

Exact fit (``fit_ease``), dense:

* memory: one ``n_items x n_items`` matrix, factorized and inverted in place
  (Cholesky ``?potrf`` then ``?potri``, SciPy's LAPACK), plus the kept table
  (``n_items * top_k * 12`` bytes) and a block of rows while picking it: about
  ``4 n_items²`` bytes in float32 (20k items: 1.6 GB; 60k: 14.4 GB);
* time: ``n_items³`` flops for the inverse plus ``sum_u activity_u² / 2`` multiply-adds
  for the Gram matrix (measured in ``benchmarks/bench_similarity_grid.py --ease``).
  Measured: 20k items, 3M interactions: 25.3 s and +1.58 GB peak at load 3 (2 cores; 424 s at load 11-14).
* dtype: float64 up to ``_FLOAT64_MAX_ITEMS`` items (cheap there), float32 above: on
  MovieLens 100K (3 seeds, 3 values of l2, 3 values of top_k) float32 moved precision@10 by
  at most 1e-4, and factor + inverse ran 2.8x faster (3000 items, one BLAS thread).

``cho_solve(c, I)`` against the identity gives the same ``P`` but measured 2-4x slower
than ``?potri`` from the same factor and needs a second ``n_items²`` buffer, so the
in-place Cholesky inverse is used (never a general LU inverse).

Catalogues whose dense matrix would not fit in ``_memory_budget()`` (3/4 of physical
memory) are refused; ``neighbours=m`` switches to the sparse approximation in
``ease_sparse``.

Popularity discount (``beta``, the model's ``popularity_exponent``): column ``j`` of ``B`` is
multiplied by ``pop_j ** -beta`` before the top-k (``popularity_scale``), and row ``i`` (the evidence
that having item ``i`` in a history gives) by ``pop_i ** -delta`` (the model's
``history_popularity_exponent``; a positive factor per row, so it does not change which weights a row
keeps, only how much a popular history item counts). User weighting (``alpha``,
the model's ``user_weight_exponent``): the Gram matrix is ``Xᵀ D X`` with ``D_uu ∝ n_u ** -alpha``
(``user_weighted``), so very active users weigh less in the regressions. Penalty: ``l2=None`` is
``L2_SCALE`` times the mean diagonal of that Gram matrix (``default_l2``), so it scales with the data.
The model's defaults were chosen on validation splits of MovieLens 100K's training parts
(``benchmarks/bench_ease_movielens.py``).
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from . import kernels
from .errors import RecommendError

__all__ = ["L2_GRID", "L2_SCALE", "fit_ease", "ease_dense", "select_l2", "topk_by_magnitude",
           "dense_bytes", "popularity_scale", "user_weighted", "default_l2"]

logger = logging.getLogger(__name__)

# l2="auto" tries every value (each one a Cholesky inverse of the training part's Gram matrix)
L2_GRID = (10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0)
# l2=None: λ = L2_SCALE x the Gram matrix's mean diagonal (binary data: the mean number of users per item)
# (validation on MovieLens 100K: 20-30 all within 0.001; README, "MovieLens 100K quality")
L2_SCALE = 20.0
_FLOAT64_MAX_ITEMS = 4096
_ONE_THREAD_MAX_ITEMS = 4096  # LAPACK on one BLAS thread up to here (_lapack_threads)
_ROW_BLOCK_ENTRIES = 1 << 24  # rows x n_items values ranked at once when picking top-k
_HEAP_MAX_K = 4096  # top_k up to this: compiled per-row heaps (measured 8k items, top 256: see topk_by_magnitude)
_AUTO_HOLDOUT = 0.2
_AUTO_SEED = 0
_AUTO_MAX_USERS = 20_000


def _dtype(n_items: int):
    return np.float64 if n_items <= _FLOAT64_MAX_ITEMS else np.float32


def dense_bytes(n_items: int) -> int:
    """Bytes of the exact fit's dense matrix (the dominant term of its peak memory)."""
    return n_items * n_items * np.dtype(_dtype(n_items)).itemsize


def _memory_budget() -> int:
    return int(0.75 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_fits(n_items: int) -> None:
    """Raise ``RecommendError`` when the exact fit's dense matrix exceeds the memory budget."""
    need, budget = dense_bytes(n_items), _memory_budget()
    if need > budget:
        raise RecommendError(
            f"exact EASE over {n_items} items needs a dense {n_items}x{n_items} matrix of "
            f"{need / 2**30:.1f} GiB, more than the {budget / 2**30:.1f} GiB this machine can give it",
            where="similarity='ease'",
            hint="set neighbours=256 (sparse approximation: each item's weights over its 256 top "
                 "co-occurring items) or reduce the catalogue")


def popularity_scale(X: sp.csr_matrix, beta: float) -> np.ndarray | None:
    """Column weights ``pop_j ** -beta`` [shape=(n_items,)], ``pop_j`` the number of users with item ``j``
    (at least 1); ``None`` when ``beta == 0``.

    Scaling column ``j`` of ``B`` divides every user's score for item ``j`` by ``pop_j ** beta``: the
    popularity discount of RP3beta (Paudel et al., "Updatable, accurate, diverse, and scalable
    recommendations for interactive applications", TiiS 2016) applied to EASE's weights. The table
    stays an item-item table, so the exported model scores it with Core ML's own formula.
    """
    if not beta:
        return None
    pop = np.maximum(np.diff(sp.csc_matrix(X).indptr), 1).astype(np.float64)
    return pop ** -float(beta)


def user_weighted(X: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """``X`` [shape=(n_users, n_items)] with row ``u`` multiplied by ``sqrt(w_u)``, ``w_u = n_u ** -alpha``
    (``n_u``: the user's number of interactions), the ``w_u`` rescaled so that ``sum_u w_u n_u = nnz(X)``;
    ``X`` itself when ``alpha == 0``.

    Its Gram matrix is ``Xᵀ D X`` with ``D = diag(w)``: the ridge regressions behind EASE's weights become
    weighted least squares in which each very active user counts less (``alpha = 1``: every user's
    squared error summed over items counts about the same). The rescaling keeps ``trace(XᵀDX)`` equal to
    ``trace(XᵀX)`` on 0/1 data, so a penalty ``l2`` means the same with or without weighting.
    """
    if not alpha:
        return X
    X = sp.csr_matrix(X, dtype=np.float64)
    n_u = np.diff(X.indptr)
    w = np.maximum(n_u, 1).astype(np.float64) ** -float(alpha)
    w *= X.nnz / max(float((w * n_u).sum()), 1e-300)
    return sp.csr_matrix((X.data * np.repeat(np.sqrt(w), n_u), X.indices, X.indptr), shape=X.shape)


def default_l2(diagonal: np.ndarray) -> float:
    """``l2=None``: ``L2_SCALE`` times the mean of the Gram matrix's diagonal [shape=(n_items,)] (0/1 data:
    the mean number of users per item), so the penalty grows with the data as the Gram matrix does."""
    return float(L2_SCALE * max(float(np.mean(diagonal)), 1e-12))


def gram(X: sp.csr_matrix, dtype) -> np.ndarray:
    """The upper triangle (diagonal included) of ``XᵀX`` as a dense C-ordered array
    [shape=(n_items, n_items)]; the strict lower triangle is 0."""
    n_items = X.shape[1]
    X = sp.csr_matrix(X, dtype=np.float64)
    X.sort_indices()
    position_dtype = np.int32 if X.nnz < 2**31 else np.int64
    pos = sp.csr_matrix((np.arange(X.nnz, dtype=position_dtype), X.indices, X.indptr), shape=X.shape).tocsc()
    G = np.zeros((n_items, n_items), dtype=dtype)
    kernels.gram_upper(pos.indptr, pos.indices, pos.data, X.data[pos.data].astype(dtype), X.indptr, X.indices,
                       X.data.astype(dtype), G)
    return G


def _lapack_threads(n_items: int):
    """One BLAS thread for the factor and inverse up to ``_ONE_THREAD_MAX_ITEMS`` items, the library's
    default above. Measured (2 cores shared, load 2-3, ``ease_dense`` on a 3% dense Gram matrix): 1,682
    items 0.15-0.30 s on one thread against 2.2-8.7 s on two, 3,000: 0.45-0.56 s against 4.1-5.5 s,
    4,096: 1.2 s against 9.6-14 s; two OpenBLAS threads wait on each other at every block of the
    factorization, and on a busy machine one of them is often descheduled. The 20k-item fit keeps both."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas") if n_items <= _ONE_THREAD_MAX_ITEMS else nullcontext()


def ease_dense(G: np.ndarray, l2: float, *, overwrite: bool = False) -> np.ndarray:
    """EASE weights ``B`` [shape=(n_items, n_items)] from the upper triangle of ``G = XᵀX``.

    With ``overwrite`` the factorization and inverse run in ``G``'s own memory (and
    ``B`` is ``G``); otherwise ``G`` is copied first.

    Raises
    ------
    RecommendError
        ``G + l2 I`` is not positive definite (``l2 <= 0`` on a rank-deficient Gram matrix).
    """
    B = G if overwrite else G.copy()
    B[np.diag_indices_from(B)] += l2
    potrf, potri = (lapack.dpotrf, lapack.dpotri) if B.dtype == np.float64 else (lapack.spotrf, lapack.spotri)
    # B is C-ordered: its transpose is the Fortran-ordered view LAPACK takes without a copy,
    # and "lower" there is B's upper triangle, the one the Gram kernel filled.
    with _lapack_threads(B.shape[0]):
        c, info = potrf(B.T, lower=1, clean=0, overwrite_a=1)
        if info == 0:
            c, info = potri(c, lower=1, overwrite_c=1)
    if info != 0:
        raise RecommendError(f"XᵀX + l2 I is not positive definite with l2={l2!r} (LAPACK info {info})",
                             where="l2", hint="use a larger l2 (> 0)")
    if not np.shares_memory(c, B):  # only if LAPACK's wrapper had to copy
        B[...] = c.T
    kernels.mirror_upper(B)  # P = (G + l2 I)^-1, both triangles
    d = B.diagonal().copy()
    B *= (-1.0 / d)[np.newaxis, :].astype(B.dtype)  # B[i, j] = -P[i, j] / P[j, j]
    B[np.diag_indices_from(B)] = 0.0
    return B


def topk_by_magnitude(B: np.ndarray, top_k: int | None, threshold: float) -> sp.csr_matrix:
    """Each row's ``top_k`` largest ``|B[i, j]|`` (ties: lower ``j``), dropping ``|B| < threshold``
    and zeros, stored by decreasing signed value (ties: lower ``j``) [shape=(n_items, n_items)] float64."""
    n = B.shape[0]
    k = n if top_k is None else min(int(top_k), n)
    if 0 < k <= _HEAP_MAX_K:  # compiled per-row heaps: one pass over B, no partition or sort of whole rows
        out_j = np.empty((n, k), dtype=np.int32)
        out_v = np.empty((n, k), dtype=np.float64)
        counts = np.empty(n, dtype=np.int64)
        kernels.topk_abs_rows(B, k, float(threshold), out_j, out_v, counts)
        keep = np.arange(k)[np.newaxis, :] < counts[:, np.newaxis]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return sp.csr_matrix((out_v[keep], out_j[keep], indptr), shape=(n, n))
    block = max(1, _ROW_BLOCK_ENTRIES // max(n, 1))
    counts = np.zeros(n, dtype=np.int64)
    parts_j, parts_v = [], []
    for start in range(0, n, block):
        rows = np.abs(B[start:start + block])
        keep = (rows >= threshold) & (rows > 0)
        if k < n:  # the k largest magnitudes; among equal ones at the cut, the lowest j
            cut = np.partition(rows, n - k, axis=1)[:, n - k][:, np.newaxis]
            above = rows > cut
            ties = rows == cut
            room = k - above.sum(axis=1, keepdims=True)
            keep &= above | (ties & (np.cumsum(ties, axis=1) <= room))
        r, j = np.nonzero(keep)
        v = B[start:start + block][r, j].astype(np.float64)
        order = np.lexsort((j, -v, r))
        counts[start:start + rows.shape[0]] = np.bincount(r, minlength=rows.shape[0])
        parts_j.append(j[order].astype(np.int32))
        parts_v.append(v[order])
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((np.concatenate(parts_v), np.concatenate(parts_j), indptr), shape=(n, n))


def _split(X: sp.csr_matrix, fraction: float, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Each user's interactions split at random: ``round(fraction * n_u)`` held out (train, held out)."""
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(X)
    n_u = np.diff(X.indptr)
    rows = np.repeat(np.arange(X.shape[0]), n_u)
    key = rng.random(X.nnz)
    order = np.lexsort((key, rows))  # within each row, a random order
    rank = np.empty(X.nnz, dtype=np.int64)
    rank[order] = np.arange(X.nnz) - np.repeat(X.indptr[:-1], n_u)
    held = rank < np.round(fraction * n_u)[rows]
    coo = X.tocoo()
    make = lambda m: sp.csr_matrix((coo.data[m], (coo.row[m], coo.col[m])), shape=X.shape)  # noqa: E731
    return make(~held), make(held)


def _scaled(B: np.ndarray, scale, row_scale=None) -> np.ndarray:
    """``B`` with column ``j`` multiplied by ``scale[j]`` and row ``i`` by ``row_scale[i]``, in place
    (None: unchanged)."""
    if scale is not None:
        B *= scale.astype(B.dtype)[np.newaxis, :]
    if row_scale is not None:
        B *= row_scale.astype(B.dtype)[:, np.newaxis]
    return B


def _dense_tables(train: sp.csr_matrix, grid, top_k, threshold, beta=0.0, alpha=0.0, delta=0.0):
    G = gram(user_weighted(train, alpha), _dtype(train.shape[1]))
    scale, row_scale = popularity_scale(train, beta), popularity_scale(train, delta)
    for l2 in grid:
        yield float(l2), topk_by_magnitude(_scaled(ease_dense(G, float(l2)), scale, row_scale), top_k, threshold)


def select_l2(X: sp.csr_matrix, *, grid=L2_GRID, top_k: int | None, threshold: float,
              k: int = 10, tables=None, beta: float = 0.0, alpha: float = 0.0,
              delta: float = 0.0) -> tuple[float, dict]:
    """``l2="auto"``: the grid value with the best precision@``k`` on a validation split.

    Each user's interactions are split at random (seed 0): 20% held out, the rest is
    ``X_train``; every ``l2`` of ``grid`` is fitted on ``X_train`` by ``tables(X_train, grid,
    top_k, threshold, beta, alpha, delta)`` (a generator of ``(l2, table)``; default: the exact fit), with the
    same ``top_k``/``threshold``/popularity exponents ``beta`` and ``delta``/user weight exponent ``alpha`` as
    the final model, and scored on up to 20,000 users with held-out items (their training items
    excluded). Ties go to the smaller ``l2``.

    Returns
    -------
    l2 : float
    scores : dict
        ``{l2: precision@k}`` over the grid.
    """
    from ..pipelines.runtime.item_similarity import recommend_topk
    from .evaluate import precision_at_k

    train, held = _split(X, _AUTO_HOLDOUT, _AUTO_SEED)
    users = np.flatnonzero(np.diff(held.indptr) > 0)
    if len(users) == 0:
        raise RecommendError("l2='auto' needs users with at least 3 interactions to validate on", where="l2")
    if len(users) > _AUTO_MAX_USERS:
        users = np.sort(np.random.default_rng(_AUTO_SEED).choice(users, _AUTO_MAX_USERS, replace=False))
    hist, truth = train[users], held[users]
    scores = {}
    for l2, S in (tables or _dense_tables)(train, grid, top_k, threshold, beta, alpha, delta):
        ids, _ = recommend_topk(hist, S, np.zeros(X.shape[1]), k=k, exclude=hist)
        scores[float(l2)] = precision_at_k(ids, truth, k)
        logger.info("ease l2=%g: validation precision@%d %.4f", l2, k, scores[float(l2)])
    best = max(scores, key=lambda v: (scores[v], -v))
    return best, scores


def fit_ease(X: sp.csr_matrix, *, l2, top_k: int | None, threshold: float,
             beta: float = 0.0, alpha: float = 0.0, delta: float = 0.0) -> tuple[sp.csr_matrix, float, dict]:
    """Exact EASE table of ``X`` [shape=(n_users, n_items)], fitted on ``user_weighted(X, alpha)``'s Gram
    matrix, column ``j`` scaled by ``popularity_scale(X, beta)[j]`` and row ``i`` by
    ``popularity_scale(X, delta)[i]`` before each row's ``top_k`` are picked.
    ``l2``: a number, ``"auto"`` (``select_l2``) or ``None`` (``default_l2`` of the Gram matrix).

    Returns
    -------
    S : scipy.sparse.csr_matrix [shape=(n_items, n_items)]
        ``sim(i -> j) = B[i, j]``, each row's ``top_k`` largest magnitudes, best first.
    l2 : float
        The penalty used (chosen on a validation split when ``l2="auto"``).
    scores : dict
        ``{l2: validation precision@10}`` when ``l2="auto"``, else empty.
    """
    n_items = X.shape[1]
    check_fits(n_items)
    scores = {}
    if isinstance(l2, str):
        l2, scores = select_l2(X, top_k=top_k, threshold=threshold, beta=beta, alpha=alpha, delta=delta)
    G = gram(user_weighted(X, alpha), _dtype(n_items))
    if l2 is None:
        l2 = default_l2(G.diagonal())
    B = _scaled(ease_dense(G, float(l2), overwrite=True), popularity_scale(X, beta), popularity_scale(X, delta))
    S = topk_by_magnitude(B, top_k, threshold)
    del G, B
    logger.info("ease: %d items, l2=%g, %d weights kept", n_items, l2, S.nnz)
    return S, float(l2), scores
