"""The dense-accumulator scorer for item-similarity tables that reach most of the catalogue
from a typical history (for example EASE's 256 weights per item on a 5k-item catalogue).

Same contract and the same scores, bit for bit, as ``item_similarity._score_topk`` (each
score is accumulated in the same order), but a user's scores live in one plain array of
``n_items`` doubles: no per-accumulation "touched" bookkeeping, and the top ``k`` come from
one scan of that array in item order, which also covers the items scoring 0. That pays off
when a history's accumulations outnumber the catalogue, the case ``use_dense`` picks.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .topk_heap import heap_push, heap_sort_desc

__all__ = ["score_topk_dense", "use_dense"]

# dense scan when a history's accumulations reach this share of the catalogue (measured, 100k users: dense
# 0.38-0.58x the touched-list kernel at ratios 0.29-2.3, 1.15x at 0.11; see
# benchmarks/bench_similarity_grid.py --recommend), for catalogues whose score array stays in cache
DENSE_MIN_RATIO = 0.2
DENSE_MAX_ITEMS = 1 << 17


def use_dense(h_ptr, h_items, s_ptr, n_items: int) -> bool:
    """Whether the mean user's accumulations (the table row lengths of its history's items)
    reach ``DENSE_MIN_RATIO * n_items``."""
    n_users = len(h_ptr) - 1
    if n_users == 0 or n_items > DENSE_MAX_ITEMS or len(h_items) == 0:
        return False
    total = int(np.diff(s_ptr)[h_items].sum())
    return total >= DENSE_MIN_RATIO * n_items * n_users


@njit(parallel=True, nogil=True, cache=True)
def score_topk_dense(h_ptr, h_items, h_vals, s_ptr, s_items, s_vals, shift,
                     x_ptr, x_items, r_ptr, r_items, has_restrict, k, out_j, out_v):
    """``_score_topk`` with item indices throughout (no relabelling); outputs as there."""
    n_users = h_ptr.shape[0] - 1
    n_items = shift.shape[0]
    n_chunks = min(n_users, 256)
    for chunk in prange(n_chunks):
        acc = np.zeros(n_items, dtype=np.float64)
        flag = np.zeros(n_items, dtype=np.uint8)  # 2 excluded, 4 allowed, 8 already offered
        hv = np.empty(k, dtype=np.float64)
        hj = np.empty(k, dtype=np.int64)
        for u in range(chunk, n_users, n_chunks):
            for p in range(h_ptr[u], h_ptr[u + 1]):
                i = h_items[p]
                w = h_vals[p] - shift[i]
                for q in range(s_ptr[i], s_ptr[i + 1]):
                    acc[s_items[q]] += s_vals[q] * w
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
            acc[:] = 0.0
