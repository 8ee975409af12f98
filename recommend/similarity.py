"""Item-item similarities learned from a user x item interaction matrix.

Each similarity is one function in ``SIMILARITIES``: it turns the interaction
matrix ``X`` [shape=(n_users, n_items)] into a ``Weighting`` (per-interaction
weights plus how a weighted co-occurrence becomes a similarity). ``item_similarity``
then computes the sparse product ``W.T @ W`` with the compiled kernels in ``kernels``,
keeping the ``top_k`` best neighbours of each item above ``threshold``: each pair
once, offered to both items (when one heap of ``top_k`` per item and thread fits in
``_SYMMETRIC_BUDGET``), else each item's row on its own, streamed in blocks of items
so memory is set by the block size, not the catalogue. Definitions (``U_i`` = users of item ``i``, ``r_ui`` their rating,
1 without ratings):

=============  =====================================================================
jaccard        ``|U_i & U_j| / |U_i | U_j|`` on who interacted (Turi Create, Create ML)
cosine         ``sum_u r_ui r_uj / (||r_i|| ||r_j||)`` (Turi Create, Create ML)
pearson        cosine of item-mean-centred ratings, means over ``U_i`` (Turi Create);
               with constant ratings (implicit data) every centred value is 0, so it
               falls back to the Pearson correlation of the 0/1 columns over all users
bm25           dot product of implicit's ``bm25_weight`` item vectors (K1=1.2, B=0.75,
               implicit's ``BM25Recommender`` defaults)
tfidf          dot product of implicit's L2-normalized ``tfidf_weight`` item vectors
lift           ``c_ij / (c_ii c_jj)`` on 0/1 co-occurrence counts (Microsoft SAR)
cooccurrence   ``c_ij`` on 0/1 co-occurrence counts (Microsoft SAR)
=============  =====================================================================

The item itself is never its own neighbour. implicit's weighting functions are used
as they are; its ``all_pairs_knn`` is not, because it ranks untransformed dot
products and always keeps the item itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import bm25_weight, normalize, tfidf_weight

from . import kernels, weights
from .layout import Compressed as _Compressed, relabelled as _relabelled

__all__ = ["SIMILARITIES", "Weighting", "item_similarity"]

logger = logging.getLogger(__name__)

# Accumulator budget per block: rows x top_k entries of the output buffers.
_BLOCK_ENTRIES = 1 << 21
# The symmetric fit keeps one (value, id) heap of top_k per item and thread: used while
# that stays under this many bytes (27k items, K=64, 2 threads: 41 MB), else the blocked fit.
# Its offers land on randomly placed heaps: at 100k items (153 MB of heaps) and 20M interactions,
# even activity, cosine took 29.8 s CPU symmetric vs 9.2 s blocked (+468 vs +305 MB; heavy-tailed:
# 24.9 vs 24.7 s), so the budget stops short of that (it was 256 MB).
_SYMMETRIC_BUDGET = 64 << 20
_HEAP_ENTRY_BYTES = 12
# Tables up to this size are built in (n_items, top_k) buffers reordered in place (one copy of
# the table instead of three at the end of the fit); larger ones, and top_k=None, block by block.
_WHOLE_TABLE_BUDGET = 512 << 20
# The symmetric fit halves the accumulation but offers every pair to a second, randomly
# placed heap; the blocked fit accumulates twice but offers only to the row's own heap.
# Which wins depends on how often a pair repeats across users: ``_pair_repeats`` measures
# (accumulation steps / distinct partners) on a sample of items, and the symmetric fit is
# used from ``_SYMMETRIC_MIN_REPEATS`` up. Measured interleaved with implicit (load 13-18,
# K=64): at 4.6-5.9 repeats (3M interactions, even or log-normal activity, 12k-27k items)
# the blocked fit was 1.3-2.9x faster for cosine and jaccard (bm25 within 10%); the 20M
# heavy-tailed set of bench_similarity.py, where the symmetric fit was tuned, repeats more.
_SYMMETRIC_MIN_REPEATS = 8.0
_REPEAT_SAMPLE = 256


@dataclass
class Weighting:
    """What a similarity needs from ``X``.

    Attributes
    ----------
    weights : scipy.sparse.csr_matrix [shape=(n_users, n_items)]
        Weighted interactions; the co-occurrence of ``i`` and ``j`` is ``(W.T @ W)[i, j]``.
    mode : int
        ``kernels.MODE_*``: how a co-occurrence becomes a similarity.
    sa, sb : np.ndarray [shape=(n_items,)]
        Per-item statistics of that mode.
    shift : np.ndarray [shape=(n_items,)]
        Core ML's ``itemScoreAdjustment`` for each item (0 unless centring).
    partners_before : bool
        In the symmetric fit, each pair is accumulated by one of its items and offered
        to the other's heap: by the less popular item when True, else by the more
        popular one. Only speed depends on it: offers that arrive best-first are
        rejected cheaply, and which side that is depends on how the similarity scales
        with popularity (measured on the 20M benchmark set: True was 15-25% faster for
        jaccard, lift and bm25, False 25% faster for cosine, no difference otherwise).
    binary : bool
        ``weights`` is ``X`` itself and only its pattern counts (every value 1): the fit
        never copies or reads its values.
    owned : bool
        ``weights.data`` is a new array of the similarity's own (bm25, tfidf): when it is
        float32, the relabel writes the relabelled values over it instead of into a third
        copy (4 bytes per interaction off the fit's peak).
    """

    weights: sp.csr_matrix
    mode: int
    sa: np.ndarray
    sb: np.ndarray
    shift: np.ndarray
    partners_before: bool = False
    binary: bool = False
    owned: bool = False


def _ones(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float64)


def _counts(X: sp.csr_matrix) -> np.ndarray:
    return weights.item_counts(X).astype(np.float64)


def _column_norms(X: sp.csr_matrix) -> np.ndarray:
    return np.sqrt(weights.item_sums(X, squared=True))  # no float64 copies of X.data, no int64 copy of X.indices


def _inverse(values: np.ndarray) -> np.ndarray:
    out = np.zeros_like(values, dtype=np.float64)
    np.divide(1.0, values, out=out, where=values > 0)
    return out


def jaccard(X: sp.csr_matrix) -> Weighting:
    """Jaccard index of the item's user sets (ratings ignored)."""
    n = X.shape[1]
    return Weighting(X, kernels.MODE_JACCARD, _counts(X), _ones(n), np.zeros(n), partners_before=True, binary=True)


def cosine(X: sp.csr_matrix) -> Weighting:
    """Cosine of the item rating vectors."""
    inv = _inverse(_column_norms(X))
    return Weighting(X, kernels.MODE_DOT, inv, inv, np.zeros(X.shape[1]))


def pearson(X: sp.csr_matrix) -> Weighting:
    """Turi Create's Pearson similarity (centred cosine), or the 0/1 correlation for implicit data."""
    n_users, n = X.shape
    counts = _counts(X)
    if X.nnz and np.ptp(X.data) > 0:
        means = weights.item_sums(X) * _inverse(counts)
        C = X.copy()
        C.data = C.data - means[C.indices]
        inv = _inverse(_column_norms(C))
        return Weighting(C, kernels.MODE_DOT, inv, inv, means)
    freq = counts / max(n_users, 1)
    std = np.sqrt(freq * (1.0 - freq))
    std[std == 0] = np.inf  # an item everybody (or nobody) has correlates with nothing
    return Weighting(X, kernels.MODE_PHI, freq, std, np.zeros(n), binary=True)


def bm25(X: sp.csr_matrix) -> Weighting:
    """Dot product of implicit's BM25-weighted item vectors."""
    # fact: benfred/implicit:implicit/nearest_neighbours.py (BM25Recommender K1=1.2, B=0.75)
    W = weights.bm25_weights(X, K1=1.2, B=0.75, fallback=bm25_weight)  # float32, X's index arrays
    return Weighting(W, kernels.MODE_DOT, _ones(X.shape[1]), _ones(X.shape[1]), np.zeros(X.shape[1]),
                     partners_before=True, owned=True)


def tfidf(X: sp.csr_matrix) -> Weighting:
    """Dot product of implicit's normalized TF-IDF item vectors."""
    W = weights.tfidf_weights(X, fallback=lambda X: normalize(tfidf_weight(X.T)).T)  # as bm25
    return Weighting(W, kernels.MODE_DOT, _ones(X.shape[1]), _ones(X.shape[1]), np.zeros(X.shape[1]), owned=True)


def lift(X: sp.csr_matrix) -> Weighting:
    """SAR's lift: co-occurrence over the product of both item counts."""
    inv = _inverse(_counts(X))
    return Weighting(X, kernels.MODE_DOT, inv, inv, np.zeros(X.shape[1]), partners_before=True, binary=True)


def cooccurrence(X: sp.csr_matrix) -> Weighting:
    """SAR's co-occurrence count: how many users have both items."""
    n = X.shape[1]
    return Weighting(X, kernels.MODE_DOT, _ones(n), _ones(n), np.zeros(n), binary=True)


SIMILARITIES: dict[str, Callable[[sp.csr_matrix], Weighting]] = {
    "jaccard": jaccard,
    "cosine": cosine,
    "pearson": pearson,
    "bm25": bm25,
    "tfidf": tfidf,
    "lift": lift,
    "cooccurrence": cooccurrence,
}


def item_similarity(X: sp.csr_matrix, *, similarity: str = "jaccard", top_k: int | None = 64,
                    threshold: float = 0.001, block_size: int | None = None,
                    progress: bool = False) -> tuple[sp.csr_matrix, np.ndarray]:
    """The ``top_k`` nearest neighbours of every item.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix [shape=(n_users, n_items)]
        Interactions (ratings, or 1); one entry per (user, item).
    similarity : str
        A key of ``SIMILARITIES``.
    top_k : int > 0 or None
        Neighbours kept per item; ``None`` keeps all above ``threshold``.
    threshold : float
        Similarities below it are dropped (pairs with no common user never appear).
    block_size : int, optional
        Items per streamed block; peak memory grows with ``block_size * top_k``.
    progress : bool
        Draw a tqdm bar on stderr.

    Returns
    -------
    S : scipy.sparse.csr_matrix [shape=(n_items, n_items)]
        ``S[i, j]`` is ``sim(i -> j)``; each row's entries are stored best first.
    shift : np.ndarray [shape=(n_items,)]
        Each item's score adjustment (Core ML ``itemScoreAdjustment``).
    """
    n_users, n_items = X.shape
    weighting = SIMILARITIES[similarity](X)
    k = n_items - 1 if top_k is None else min(int(top_k), max(n_items - 1, 1))
    k = max(k, 1)
    # Relabel items by descending popularity so the accumulator's hot entries share
    # cache lines; neighbours are still reported (and ties broken) by original index.
    order = np.argsort(-weights.item_counts(X), kind="stable").astype(np.int32)
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items)
    source = sp.csr_matrix(weighting.weights)
    weighting.weights = None  # a weighted copy (bm25, tfidf) is not needed past the relabel
    # 0/1 data (as float32, the walks' dtype): the walks count and never read values
    unweighted = weighting.binary or (bool(source.nnz)
                                      and bool(np.all(source.data.astype(np.float32, copy=False) == 1)))
    sa = np.ascontiguousarray(weighting.sa[order], dtype=np.float64)
    sb = np.ascontiguousarray(weighting.sb[order], dtype=np.float64)
    n_parts = numba.get_num_threads()
    symmetric = weighting.mode != kernels.MODE_DOT or np.array_equal(sa, sb)
    symmetric = symmetric and n_parts * n_items * k * _HEAP_ENTRY_BYTES <= _SYMMETRIC_BUDGET
    # float32, columns by rank, rows sorted; its CSC and (for the symmetric walk only: 20M interactions,
    # 100k items, jaccard: 75 MB) each CSC entry's offset in its CSR row. Walks over partners before the
    # item need no offsets (each row is walked until the item: same speed, measured 3M and 20M log-normal
    # 5k jaccard, 3M bm25 and lift), which keeps 2 bytes per interaction off the fit's peak
    W, Wc, col_pos = _relabelled(source, rank, values=not unweighted,
                                 positions=symmetric and not weighting.partners_before, overwrite=weighting.owned)
    del source
    if symmetric and _SYMMETRIC_MIN_REPEATS > 0:
        symmetric = _pair_repeats(W, Wc) >= _SYMMETRIC_MIN_REPEATS
        col_pos = col_pos if symmetric else None  # the blocked walk never reads it
    # whole (n_items, k) buffers, reordered and packed in place, when they are small; else (top_k=None,
    # whose rows are mostly short of n_items - 1) per-block parts, concatenated and fancy-indexed
    whole = symmetric or (top_k is not None and n_items * k * _HEAP_ENTRY_BYTES <= _WHOLE_TABLE_BUDGET)
    if symmetric:
        out = _fit_symmetric(W, unweighted, weighting.mode, sa, sb, order, float(n_users), k, float(threshold),
                             n_parts, block_size, progress, similarity, weighting.partners_before, Wc, col_pos)
    else:
        out = _fit_blocked(W, unweighted, weighting.mode, sa, sb, order, float(n_users), k, float(threshold),
                           block_size, progress, similarity, Wc, whole)
    del W, Wc, col_pos
    if whole:
        S = _in_item_order(*out, order)
    else:
        counts, indices, data = out
        indptr = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        S = sp.csr_matrix((data, indices, indptr), shape=(n_items, n_items))[rank]  # rows back in item order
    logger.info("%s similarity: %d items, %d neighbour pairs", similarity, n_items, S.nnz)
    return S, np.asarray(weighting.shift, dtype=np.float64)


def _in_item_order(out_n: np.ndarray, out_j: np.ndarray, out_v: np.ndarray, order: np.ndarray) -> sp.csr_matrix:
    """The table from top-k buffers [shape=(n_items, k)] whose row ``r`` is item ``order[r]``:
    rows moved and packed in place (``kernels.rows_to_item_order``). The CSR views the packed
    front of the buffers, or copies it when under half of them is filled."""
    n_items = out_j.shape[0]
    nnz = kernels.rows_to_item_order(out_j, out_v, out_n, order)
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(out_n, out=indptr[1:])
    indices, data = out_j.reshape(-1)[:nnz], out_v.reshape(-1)[:nnz]
    if 2 * nnz < out_j.size:
        indices, data = indices.copy(), data.copy()
    return sp.csr_matrix((data, indices, indptr), shape=(n_items, n_items))


def _kept(out_j: np.ndarray, out_v: np.ndarray, out_n: np.ndarray):
    """The filled part of each row of top-k buffers [shape=(n_rows, k)], rows concatenated:
    (indices, values)."""
    keep = np.arange(out_j.shape[1])[np.newaxis, :] < out_n[:, np.newaxis]
    return out_j[keep], out_v[keep]


def _blocks(n_items: int, block: int, progress: bool, similarity: str):
    starts = range(0, n_items, block)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"{similarity} similarity", unit="block", leave=False, disable=None)
    return starts


def _fit_symmetric(W, unweighted, mode, sa, sb, label, n_users, k, threshold, n_parts, block_size, progress,
                   similarity, partners_before, Wc, col_pos):
    """Each co-occurring pair accumulated once and offered to both items (``kernels.topk_symmetric``).

    Returns counts [shape=(n_items,)] and the top-k buffers [shape=(n_items, k)] (indices,
    values), row ``r`` for item ``label[r]``, each row best first.
    """
    n_items = W.shape[1]
    heap_v = np.empty((n_parts, n_items, k), dtype=np.float64)
    heap_j = np.empty((n_parts, n_items, k), dtype=np.int32)
    heap_n = np.zeros((n_parts, n_items), dtype=np.int64)
    root_v = np.empty((n_parts, n_items), dtype=np.float64)
    root_j = np.empty((n_parts, n_items), dtype=np.int32)
    # popular items (low ranks) walk the most: smaller blocks keep the progress bar honest
    block = block_size or max(1, -(-n_items // 20))
    for start in _blocks(n_items, block, progress, similarity):
        kernels.topk_symmetric(start, min(start + block, n_items), Wc.indptr, Wc.indices, col_pos, Wc.data,
                               W.indptr, W.indices, W.data, unweighted, mode, sa, sb, label, n_users, threshold,
                               heap_v, heap_j, heap_n, root_v, root_j, partners_before)
    out_j = np.empty((n_items, k), dtype=np.int32)
    out_v = np.empty((n_items, k), dtype=np.float64)
    out_n = np.zeros(n_items, dtype=np.int64)
    kernels.merge_heaps(heap_v, heap_j, heap_n, out_j, out_v, out_n)
    del heap_v, heap_j
    return out_n, out_j, out_v


def _pair_repeats(W: _Compressed, Wc: _Compressed) -> float:
    """Accumulation steps per distinct co-occurring partner, over every ``n_items / 256``-th item
    by popularity rank (items are relabelled most popular first)."""
    n_items = W.shape[1]
    items = np.arange(0, n_items, max(1, n_items // _REPEAT_SAMPLE), dtype=np.int64)
    steps, touched = kernels.walk_counts(items, Wc.indptr, Wc.indices, W.indptr, W.indices, n_items)
    return float(steps.sum()) / max(float(touched.sum()), 1.0)


def _fit_blocked(W, unweighted, mode, sa, sb, label, n_users, k, threshold, block_size, progress, similarity,
                 Wc, whole=False):
    """Every item's row accumulated on its own, a block of items at a time (``kernels.topk_block``).
    ``whole``: into (n_items, k) buffers, returned as ``_fit_symmetric`` does; else each block's
    kept entries are concatenated (counts, indices, values), so memory beyond the kept
    neighbours is bounded by the block whatever the catalogue size."""
    n_items = W.shape[1]
    block = block_size or max(1, min(n_items, _BLOCK_ENTRIES // k, max(2048, -(-n_items // 20))))
    if whole and not (block_size or progress):
        block = max(n_items, 1)  # one call: each call's threads allocate and clear n_items-long scratch arrays
    counts = np.zeros(n_items, dtype=np.int64)
    if whole:
        all_j = np.empty((n_items, k), dtype=np.int32)
        all_v = np.empty((n_items, k), dtype=np.float64)
    parts_j, parts_v = [], []
    for start in _blocks(n_items, block, progress, similarity):
        items = np.arange(start, min(start + block, n_items), dtype=np.int32)
        rows = slice(start, start + len(items))
        out_j = all_j[rows] if whole else np.empty((len(items), k), dtype=np.int32)
        out_v = all_v[rows] if whole else np.empty((len(items), k), dtype=np.float64)
        out_n = counts[rows]
        kernels.topk_block(items, Wc.indptr, Wc.indices, Wc.data, W.indptr, W.indices, W.data, unweighted,
                           mode, sa, sb, label, n_users, k, threshold, out_j, out_v, out_n)
        if whole:
            continue
        kept_j, kept_v = _kept(out_j, out_v, out_n)
        parts_j.append(kept_j)
        parts_v.append(kept_v)
    if whole:
        return counts, all_j, all_v
    indices = np.concatenate(parts_j) if parts_j else np.zeros(0, dtype=np.int32)
    values = np.concatenate(parts_v) if parts_v else np.zeros(0)
    return counts, indices, values
