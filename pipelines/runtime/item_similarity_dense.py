"""The dense-accumulator scorer for item-similarity tables that reach most of the catalogue
from a typical history (for example EASE's 256 weights per item on a 5k-item catalogue).

Same contract and the same scores, bit for bit, as ``item_similarity._score_topk`` (each
score is accumulated in the same order), but a user's scores live in one plain array of
``n_items`` doubles: no per-accumulation "touched" bookkeeping, and the top ``k`` come from
one scan of that array in item order, which also covers the items scoring 0. That pays off
when a history's accumulations outnumber the catalogue, the case ``use_dense`` picks.

Without ``restrict`` the scan is pruned: excluded items are set to -inf, the maxima of
blocks of ``BLOCK`` items give a threshold (the ``k``-th largest block maximum: at least ``k``
candidates score that much), and only blocks reaching it are offered to the heap, in item
order, so the answer is the full scan's. That needs scores free of NaN: the first pass also
flags NaN scores, and a user with one is scanned in full. ``prune=False`` always scans in full. With unsigned loop
positions (no negative-index wraparound code in the scatter loop), measured on 30,000 users,
one thread, CPU time: EASE 256 per item on 5k items 0.33-0.36 s against 0.56-0.59 s before; cosine 64
per item 0.15 s against 0.27 s (same results, tested).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .topk_heap import heap_push, heap_sort_desc

__all__ = ["score_topk_dense", "use_dense", "compact_table", "accumulations"]

# dense scan when a history's accumulations reach this share of the catalogue (measured, 100k users: dense
# 0.38-0.58x the touched-list kernel at ratios 0.29-2.3, 1.15x at 0.11, and after both kernels' 2026-12-02
# rework 1.26x at 0.10 (cosine K=64, 27k items); see
# benchmarks/bench_similarity_grid.py --recommend), for catalogues whose score array stays in cache
DENSE_MIN_RATIO = 0.2
DENSE_MAX_ITEMS = 1 << 17
BLOCK = 32  # items per block maximum when pruning the scan
RULE_SAMPLE = 1 << 16  # history entries sampled by the dense rule
COMPACT_MIN_REUSE = 32  # uint16 indices when a batch reads the table this many times over


def use_dense(h_ptr, h_items, s_ptr, n_items: int) -> bool:
    """Whether the mean user's accumulations (the table row lengths of its history's items)
    reach ``DENSE_MIN_RATIO * n_items``, estimated on at most ``RULE_SAMPLE`` evenly spaced
    history entries (both kernels give the same answers; the full count cost 23 ms, serial,
    on 100,000 users)."""
    n_users = len(h_ptr) - 1
    if n_users == 0 or n_items > DENSE_MAX_ITEMS or len(h_items) == 0:
        return False
    return accumulations(h_items, s_ptr) >= DENSE_MIN_RATIO * n_items * n_users


def accumulations(h_items, s_ptr) -> float:
    """Estimated total accumulations of the histories' entries ``h_items`` [shape=(nnz,)]."""
    step = max(len(h_items) // RULE_SAMPLE, 1)
    sample = np.asarray(h_items[::step])
    return float((s_ptr[sample + 1] - s_ptr[sample]).sum()) * len(h_items) / max(len(sample), 1)


def compact_table(s_items, n_items: int, work: float, nnz: int):
    """The table's column indices as uint16 (catalogues up to 65,536 items) for batches whose
    accumulations ``work`` reach ``COMPACT_MIN_REUSE`` times the table's ``nnz``: 10 bytes
    streamed per accumulation instead of 12, the same sums. Measured, EASE 256 per item on 5k
    items, 30,000 users, one thread, whole kernel CPU s (load 3.6-6.5): 0.35-0.41 vs 0.36-0.49
    (float32 values, tried too, gave no more)."""
    if work < COMPACT_MIN_REUSE * nnz or n_items > 1 << 16:
        return s_items
    return s_items.astype(np.uint16)


@njit(inline="always")
def _block_max(a, start):
    """(max, flag) of a[start:start + BLOCK], the max in four running lanes (half the time of one
    chain); the flag is NaN when the block holds a NaN, which disables pruning, else 0."""
    m0, m1, m2, m3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    nan = (m0 != m0) | (m1 != m1) | (m2 != m2) | (m3 != m3)
    for j in range(start + 4, start + BLOCK, 4):
        v0, v1, v2, v3 = a[j], a[j + 1], a[j + 2], a[j + 3]
        m0 = v0 if v0 > m0 else m0
        m1 = v1 if v1 > m1 else m1
        m2 = v2 if v2 > m2 else m2
        m3 = v3 if v3 > m3 else m3
        nan |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return (m2 if m2 > m0 else m0), (np.nan if nan else 0.0)


@njit(parallel=True, nogil=True, cache=True)
def score_topk_dense(h_ptr, h_items, h_vals, s_ptr, s_items, s_vals, shift,
                     x_ptr, x_items, r_ptr, r_items, has_restrict, k, out_j, out_v, prune=True):
    """``_score_topk`` with item indices throughout (no relabelling); outputs as there.
    ``prune``: unrestricted rows whose scores hold no NaN skip blocks below the threshold."""
    n_users = h_ptr.shape[0] - 1
    n_items = shift.shape[0]
    n_chunks = min(n_users, 256)
    n_blocks = (n_items + BLOCK - 1) // BLOCK
    for chunk in prange(n_chunks):
        acc = np.zeros(n_blocks * BLOCK, dtype=np.float64)
        acc[n_items:] = -np.inf  # the last block's padding never enters
        bmax = np.empty(n_blocks, dtype=np.float64)
        flag = np.zeros(n_items, dtype=np.uint8)  # 2 excluded, 4 allowed, 8 already offered
        hv = np.empty(k, dtype=np.float64)
        hj = np.empty(k, dtype=np.int64)
        for u in range(chunk, n_users, n_chunks):
            # unsigned positions: no negative-index wraparound code in the hot loop
            for p in range(np.uintp(h_ptr[u]), np.uintp(h_ptr[u + 1])):
                i = np.uintp(h_items[p])
                w = h_vals[p] - shift[i]
                for q in range(np.uintp(s_ptr[i]), np.uintp(s_ptr[i + 1])):
                    acc[np.uintp(s_items[q])] += s_vals[q] * w
            for p in range(x_ptr[u], x_ptr[u + 1]):
                flag[x_items[p]] |= 2
            size = 0
            if has_restrict[u]:
                for p in range(r_ptr[u], r_ptr[u + 1]):
                    j = r_items[p]
                    if flag[j] & 10 == 0:  # neither excluded nor offered already (repeated restrict entry)
                        flag[j] |= 8
                        size = heap_push(hv, hj, size, k, acc[j], j)
                for p in range(r_ptr[u], r_ptr[u + 1]):
                    flag[r_items[p]] = 0
            else:
                threshold = -np.inf
                if prune:
                    for p in range(x_ptr[u], x_ptr[u + 1]):
                        acc[x_items[p]] = -np.inf
                    nan_check = 0.0
                    for b in range(n_blocks):  # the k-th largest block maximum (block b as index b)
                        bmax[b], block_nan = _block_max(acc, b * BLOCK)
                        nan_check += block_nan
                        if size < k or bmax[b] > hv[0]:
                            size = heap_push(hv, hj, size, k, bmax[b], b)
                    if size == k and nan_check == nan_check:  # no NaN among the scores
                        threshold = hv[0]
                    size = 0
                if threshold > -np.inf:
                    # at least k candidates score >= threshold, and excluded items (-inf) never do
                    for b in range(n_blocks):
                        if bmax[b] < threshold:
                            continue  # none of its items can enter
                        for j in range(b * BLOCK, (b + 1) * BLOCK):
                            v = acc[j]
                            if v >= threshold and (size < k or v > hv[0]):  # equal: the kept lower index wins
                                size = heap_push(hv, hj, size, k, v, j)
                else:
                    for j in range(n_items):
                        if flag[j] == 0:
                            v = acc[j]
                            if size < k or v > hv[0]:  # equal values: the kept lower index wins
                                size = heap_push(hv, hj, size, k, v, j)
            heap_sort_desc(hv, hj, size)
            for t in range(size):
                out_j[u, t] = hj[t]
                out_v[u, t] = hv[t]
            for p in range(x_ptr[u], x_ptr[u + 1]):
                flag[x_items[p]] = 0
            acc[:n_items] = 0.0
