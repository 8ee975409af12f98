"""Compiled kernel: top-k rows of an item x item similarity, one block of items at a time.

For each item ``i`` of a block the kernel walks the users of ``i`` (CSC of the
interaction matrix) and, for each of them, that user's items (CSR), adding
``a[u, i] * b[u, j]`` into a dense per-thread accumulator of ``n_items`` values.
Only the touched entries are then turned into similarities, thresholded and kept
in a bounded min-heap of ``top_k``. The dense item x item matrix never exists:
memory is one accumulator per thread plus ``block x top_k`` outputs.

Written by hand because no maintained library computes *transformed* top-k
products (Jaccard needs the raw co-count and both item counts before ranking);
``implicit.nearest_neighbours.all_pairs_knn`` ranks plain dot products only and
always keeps the item itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..pipelines.topk_heap import heap_push, heap_sort_desc

# How an accumulated value ``c`` (the weighted co-occurrence of items i and j)
# becomes a similarity; ``sa``/``sb`` are per-item statistics chosen by the caller.
MODE_DOT = 0  # c * sa[i] * sb[j]            (cosine, tfidf, bm25, lift, cooccurrence, pearson)
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
                    s = c * sa[i] * sb[j]
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
