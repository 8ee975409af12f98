"""Compiled kernels: the top-k rows of an item x item similarity, without the dense matrix.

Both kernels walk, for an item ``i``, the users of ``i`` (CSC of the interaction
matrix) and, for each of them, that user's items (CSR), adding ``a[u, i] * b[u, j]``
into a dense per-thread accumulator of ``n_items`` values. Only the touched
entries are then turned into similarities, thresholded and offered to bounded
min-heaps of ``top_k``.

- ``topk_symmetric`` uses that every similarity here is symmetric: each pair is
  accumulated once, by one of its two items, and offered to both items' heaps, so it
  does half the product's work. Its memory is one heap per item and thread
  (``n_threads * n_items * top_k`` entries), which the caller bounds.
- ``topk_block`` accumulates every item's row on its own, a block of items at a time:
  twice the work, but memory set by the block, whatever the catalogue.

Written by hand because no maintained library computes *transformed* top-k
products (Jaccard needs the raw co-count and both item counts before ranking);
``implicit.nearest_neighbours.all_pairs_knn`` ranks plain dot products only and
always keeps the item itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..pipelines.topk_heap import heap_push, heap_sort_desc, worse

# How an accumulated value ``c`` (the weighted co-occurrence of items i and j)
# becomes a similarity; ``sa``/``sb`` are per-item statistics chosen by the caller.
MODE_DOT = 0  # c * (sa[i] * sb[j])          (cosine, tfidf, bm25, lift, cooccurrence, pearson)
MODE_JACCARD = 1  # c / (sa[i] + sa[j] - c)  (sa = item counts)
MODE_PHI = 2  # (c / n - sa[i] sa[j]) / (sb[i] sb[j])  (sa = item frequency, sb = its std)


@njit(parallel=True, nogil=True, cache=True)
def topk_block(items, col_ptr, col_users, col_vals, row_ptr, row_items, row_vals, unweighted,
               mode, sa, sb, label, n_users, top_k, threshold, out_j, out_v, out_n):
    """Fill ``out_*[r]`` with the ``top_k`` most similar items of ``items[r]``.

    ``col_*`` is the CSC (item -> users, values ``a``) and ``row_*`` the CSR
    (user -> items, values ``b``) of the interaction matrix; with ``unweighted``
    every value is 1 and is not read. Neighbours are reported (and ties broken) by
    ``label[j]``; the diagonal is skipped, similarities below ``threshold`` are
    dropped, rows come out best first.
    """
    n_items = sa.shape[0]
    n_rows = items.shape[0]
    n_chunks = min(n_rows, 64)
    for chunk in prange(n_chunks):
        acc = np.zeros(n_items, dtype=col_vals.dtype)
        touched = np.empty(n_items, dtype=np.int32)
        seen = np.zeros(n_items, dtype=np.bool_)
        hv = np.empty(top_k, dtype=np.float64)
        hj = np.empty(top_k, dtype=np.int32)
        for r in range(chunk, n_rows, n_chunks):  # interleaved rows balance popular items
            i = items[r]
            n_touched = 0
            if unweighted:  # 0/1 data: count without streaming the values; a 0 count marks "untouched"
                for p in range(col_ptr[i], col_ptr[i + 1]):
                    u = col_users[p]
                    for q in range(row_ptr[u], row_ptr[u + 1]):
                        j = row_items[q]
                        if acc[j] == 0:
                            touched[n_touched] = j
                            n_touched += 1
                        acc[j] += 1
            else:
                for p in range(col_ptr[i], col_ptr[i + 1]):
                    u = col_users[p]
                    a = col_vals[p]
                    for q in range(row_ptr[u], row_ptr[u + 1]):
                        j = row_items[q]
                        if not seen[j]:
                            seen[j] = True
                            touched[n_touched] = j
                            n_touched += 1
                        acc[j] += a * row_vals[q]
            size = 0
            for t in range(n_touched):
                j = touched[t]
                c = acc[j]
                acc[j] = 0
                seen[j] = False
                if j == i:
                    continue
                if mode == MODE_DOT:
                    s = c * (sa[i] * sb[j])  # exactly symmetric when sa == sb
                elif mode == MODE_JACCARD:
                    s = c / (sa[i] + sa[j] - c)
                else:
                    s = (c / n_users - sa[i] * sa[j]) / (sb[i] * sb[j])
                if s >= threshold:
                    size = heap_push(hv, hj, size, top_k, s, label[j])
            heap_sort_desc(hv, hj, size)
            out_n[r] = size
            for t in range(size):
                out_j[r, t] = hj[t]
                out_v[r, t] = hv[t]


@njit(inline="always")
def _offer(hv, hj, hn, rv, rj, item, top_k, s, j):
    """Offer (s, j) to ``item``'s heap; ``rv``/``rj`` mirror full heaps' roots so most rejects
    read one contiguous array instead of the heap's cache line."""
    size = hn[item]
    if size == top_k and not worse(rv[item], rj[item], s, j):
        return
    size = heap_push(hv[item], hj[item], size, top_k, s, j)
    hn[item] = size
    if size == top_k:
        rv[item] = hv[item, 0]
        rj[item] = hj[item, 0]


@njit(parallel=True, nogil=True, cache=True)
def topk_symmetric(start, stop, col_ptr, col_users, col_pos, col_vals, row_ptr, row_items, row_vals,
                   unweighted, mode, sa, sb, label, n_users, threshold, heap_v, heap_j, heap_n, root_v, root_j,
                   partners_before):
    """Offer every pair ``(i, j > i)`` with ``start <= i < stop`` to both items' heaps.

    Every similarity here is symmetric (``sim(i, j) == sim(j, i)``), so each pair's
    co-occurrence is accumulated once, from its lower-ranked item, and offered to both
    rows: half the product's work of ``topk_block``. ``col_pos[p]`` is where CSC entry
    ``p`` (item ``i``, user ``u``) sits in ``u``'s CSR row, whose items are sorted, so
    the walk starts right after ``i``. Thread part ``t`` owns heaps ``heap_*[t]``
    [shape=(n_parts, n_items, top_k)]; ``merge_heaps`` combines them.
    """
    n_items = sa.shape[0]
    n_parts = heap_v.shape[0]
    top_k = heap_v.shape[2]
    for part in prange(n_parts):
        acc = np.zeros(n_items, dtype=col_vals.dtype)
        touched = np.empty(n_items, dtype=np.int32)
        seen = np.zeros(n_items, dtype=np.bool_)
        hv, hj, hn, rv, rj = heap_v[part], heap_j[part], heap_n[part], root_v[part], root_j[part]
        for i in range(start + part, stop, n_parts):  # interleaved rows balance popular items
            n_touched = 0
            if unweighted:
                for p in range(col_ptr[i], col_ptr[i + 1]):
                    u = col_users[p]
                    lo, hi = (row_ptr[u], col_pos[p]) if partners_before else (col_pos[p] + 1, row_ptr[u + 1])
                    for q in range(lo, hi):
                        j = row_items[q]
                        if acc[j] == 0:
                            touched[n_touched] = j
                            n_touched += 1
                        acc[j] += 1
            else:
                for p in range(col_ptr[i], col_ptr[i + 1]):
                    u = col_users[p]
                    a = col_vals[p]
                    lo, hi = (row_ptr[u], col_pos[p]) if partners_before else (col_pos[p] + 1, row_ptr[u + 1])
                    for q in range(lo, hi):
                        j = row_items[q]
                        if not seen[j]:
                            seen[j] = True
                            touched[n_touched] = j
                            n_touched += 1
                        acc[j] += a * row_vals[q]
            li = label[i]
            for t in range(n_touched):
                j = touched[t]
                c = acc[j]
                acc[j] = 0
                seen[j] = False
                if mode == MODE_DOT:
                    s = c * (sa[i] * sa[j])
                elif mode == MODE_JACCARD:
                    s = c / (sa[i] + sa[j] - c)
                else:
                    s = (c / n_users - sa[i] * sa[j]) / (sb[i] * sb[j])
                if s >= threshold:
                    _offer(hv, hj, hn, rv, rj, i, top_k, s, label[j])
                    _offer(hv, hj, hn, rv, rj, j, top_k, s, li)


@njit(parallel=True, nogil=True, cache=True)
def merge_heaps(heap_v, heap_j, heap_n, out_j, out_v, out_n):
    """Each item's best ``top_k`` over the thread parts' heaps, best first, into ``out_*``
    [shape=(n_items, top_k)] and ``out_n`` [shape=(n_items,)]."""
    n_parts, n_items, top_k = heap_v.shape
    for i in prange(n_items):
        hv = out_v[i]
        hj = out_j[i]
        size = 0
        for part in range(n_parts):
            for t in range(heap_n[part, i]):
                size = heap_push(hv, hj, size, top_k, heap_v[part, i, t], heap_j[part, i, t])
        heap_sort_desc(hv, hj, size)
        out_n[i] = size
