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
  twice the work, but memory set by the block, whatever the catalogue. Long rows go
  through a threshold pass before the heap (``row_select``).

Written by hand because no maintained library computes *transformed* top-k
products (Jaccard needs the raw co-count and both item counts before ranking);
``implicit.nearest_neighbours.all_pairs_knn`` ranks plain dot products only and
always keeps the item itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..pipelines.runtime.topk_heap import heap_push, heap_sort_desc, worse
from .layout import relabel_transpose, rows_to_item_order  # noqa: F401  (kernels.* names kept)
from .row_select import offer_selected, use_selection

# How an accumulated value ``c`` (the weighted co-occurrence of items i and j)
# becomes a similarity; ``sa``/``sb`` are per-item statistics chosen by the caller.
MODE_DOT = 0  # c * (sa[i] * sb[j])          (cosine, tfidf, bm25, lift, cooccurrence, pearson)
MODE_JACCARD = 1  # c / (sa[i] + sa[j] - c)  (sa = item counts)
MODE_PHI = 2  # (c / n - sa[i] sa[j]) / (sb[i] sb[j])  (sa = item frequency, sb = its std)


# Which of a user's items ``_accumulate`` walks for item ``i``: all of them, or only those
# after (or before) ``i`` in the user's sorted row.
WALK_ALL = 0
WALK_AFTER = 1
WALK_BEFORE = 2
# WALK_BEFORE without ``col_pos``: the row is walked from its start until it reaches ``i`` (its items
# are sorted), so the symmetric fit needs no offsets array for it (2 bytes per interaction: 36 MB at
# 20M interactions; the accumulated pairs, their order and the table are the same).
WALK_UNTIL = 3


@njit(inline="always")
def _accumulate(i, col_ptr, col_users, col_vals, col_pos, row_ptr, row_items, row_vals, unweighted, side,
                acc, seen, touched):
    """Add ``a[u, i] * b[u, j]`` into ``acc[j]`` over the users ``u`` of ``i``; list each new ``j``
    in ``touched`` and return how many. ``col_pos`` (the CSC entry's offset in its user's CSR row)
    is read only on the sides WALK_AFTER and WALK_BEFORE."""
    n_touched = 0
    # unsigned positions: numba emits no negative-index wraparound code for them (5-15% less CPU time,
    # same results: measured 3M even, 5k and 27k items, cosine and jaccard)
    for p in range(np.uintp(col_ptr[i]), np.uintp(col_ptr[i + 1])):
        u = np.uintp(col_users[p])
        if side == WALK_ALL:
            lo, hi = np.uintp(row_ptr[u]), np.uintp(row_ptr[u + 1])
        elif side == WALK_AFTER:
            lo, hi = np.uintp(row_ptr[u]) + np.uintp(col_pos[p]) + np.uintp(1), np.uintp(row_ptr[u + 1])
        elif side == WALK_BEFORE:
            lo, hi = np.uintp(row_ptr[u]), np.uintp(row_ptr[u]) + np.uintp(col_pos[p])
        else:
            lo, hi = np.uintp(0), np.uintp(0)
        if side == WALK_UNTIL:
            n_touched = _accumulate_until(i, u, _a_val(col_vals, p, unweighted), row_ptr, row_items, row_vals,
                                          unweighted, acc, seen, touched, n_touched)
            continue
        if unweighted:  # 0/1 data: count without streaming the values; a 0 count marks "untouched"
            for q in range(lo, hi):
                j = np.uintp(row_items[q])
                touched[n_touched] = j  # branch-free (kept only when j is new): 15-25% less CPU time
                n_touched += acc[j] == 0
                acc[j] += 1
        else:
            a = col_vals[p]
            for q in range(lo, hi):
                j = np.uintp(row_items[q])
                touched[n_touched] = j
                n_touched += 1 - seen[j]
                seen[j] = 1
                acc[j] += a * row_vals[q]
    return n_touched


@njit(inline="always")
def _a_val(col_vals, p, unweighted):
    """CSC entry ``p``'s value (0/1 data stores none: 1)."""
    return np.float32(1) if unweighted else col_vals[p]


@njit(inline="always")
def _accumulate_until(i, u, a, row_ptr, row_items, row_vals, unweighted, acc, seen, touched, n_touched):
    """``_accumulate``'s step for one user ``u`` of ``i`` on the side WALK_UNTIL: ``u``'s items below ``i``."""
    lo, hi = np.uintp(row_ptr[u]), np.uintp(row_ptr[u + 1])
    ii = np.uintp(i)
    if unweighted:
        for q in range(lo, hi):
            j = np.uintp(row_items[q])
            if j >= ii:
                break
            touched[n_touched] = j
            n_touched += acc[j] == 0
            acc[j] += 1
    else:
        for q in range(lo, hi):
            j = np.uintp(row_items[q])
            if j >= ii:
                break
            touched[n_touched] = j
            n_touched += 1 - seen[j]
            seen[j] = 1
            acc[j] += a * row_vals[q]
    return n_touched


@njit(inline="always")
def _similarity(mode, c, i, j, sa, sb, n_users):
    """The similarity of items ``i`` and ``j`` from their accumulated co-occurrence ``c``."""
    if mode == MODE_DOT:
        return c * (sa[i] * sb[j])  # exactly symmetric when sa == sb
    if mode == MODE_JACCARD:
        return c / (sa[i] + sa[j] - c)
    return (c / n_users - sa[i] * sa[j]) / (sb[i] * sb[j])


@njit(parallel=True, nogil=True, cache=True)
def topk_block(items, col_ptr, col_users, col_vals, row_ptr, row_items, row_vals, unweighted,
               mode, sa, sb, label, n_users, top_k, threshold, out_j, out_v, out_n):
    """Fill ``out_*[r]`` with the ``top_k`` most similar items of ``items[r]``.

    ``col_*`` is the CSC (item -> users, values ``a``) and ``row_*`` the CSR
    (user -> items, values ``b``) of the interaction matrix; with ``unweighted``
    every value is 1 and is not read. Neighbours are reported (and ties broken) by
    ``label[j]``; the diagonal is skipped, similarities below ``threshold`` are
    dropped, rows come out best first. Rows touching at least max(256, 4 * top_k) partners
    offer the heap only what can make their top ``top_k`` (``row_select.offer_selected``:
    the same neighbours, bit for bit).
    """
    n_items = sa.shape[0]
    n_rows = items.shape[0]
    n_chunks = min(n_rows, 64)
    for chunk in prange(n_chunks):
        acc = np.zeros(n_items, dtype=col_vals.dtype)
        touched = np.empty(n_items + 1, dtype=np.int32)  # + 1: the branch-free write
        seen = np.zeros(n_items, dtype=np.uint8)
        hv = np.empty(top_k, dtype=np.float64)
        hj = np.empty(top_k, dtype=np.int32)
        values = np.empty(n_items + 33, dtype=np.float64)  # row_select's buffers
        blocks = np.empty(n_items + 33, dtype=np.float64)
        scratch = np.empty(n_items + 33, dtype=np.float64)
        for r in range(chunk, n_rows, n_chunks):  # interleaved rows balance popular items
            i = items[r]
            # WALK_ALL never reads col_pos, so col_users stands in for it
            n_touched = _accumulate(i, col_ptr, col_users, col_vals, col_users, row_ptr, row_items, row_vals,
                                    unweighted, WALK_ALL, acc, seen, touched)
            size = 0
            if use_selection(n_touched, top_k, threshold):  # long rows: a threshold pass before the heap
                for t in range(n_touched):
                    j = touched[t]
                    c = acc[j]
                    acc[j] = 0
                    if not unweighted:
                        seen[j] = 0
                    s = _similarity(mode, c, i, j, sa, sb, n_users)
                    values[t] = s if (s >= threshold and j != i) else -np.inf  # NaN fails s >= threshold
                size = offer_selected(values, blocks, scratch, n_touched, touched, label, hv, hj, top_k)
                n_touched = 0  # done: skip the plain loop
            for t in range(n_touched):
                j = touched[t]
                c = acc[j]
                acc[j] = 0
                if not unweighted:  # 0/1 data marks nothing in seen
                    seen[j] = 0
                if j == i:
                    continue
                s = _similarity(mode, c, i, j, sa, sb, n_users)
                # the root check first: most candidates stop here without reading label[j]
                if s >= threshold and (size < top_k or s >= hv[0]):
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
    ``p`` (item ``i``, user ``u``) sits in ``u``'s CSR row (offset from its start), whose items are sorted, so
    the walk starts right after ``i`` (with ``partners_before``, the row's items before ``i``: an empty
    ``col_pos`` walks each row from its start until ``i``). Thread part ``t`` owns heaps ``heap_*[t]``
    [shape=(n_parts, n_items, top_k)]; ``merge_heaps`` combines them.
    """
    n_items = sa.shape[0]
    n_parts = heap_v.shape[0]
    top_k = heap_v.shape[2]
    side = WALK_AFTER
    if partners_before:  # without offsets (an empty col_pos), walk each row until i
        side = WALK_BEFORE if col_pos.shape[0] else WALK_UNTIL
    for part in prange(n_parts):
        acc = np.zeros(n_items, dtype=col_vals.dtype)
        touched = np.empty(n_items + 1, dtype=np.int32)  # + 1: the branch-free write
        seen = np.zeros(n_items, dtype=np.uint8)
        hv, hj, hn, rv, rj = heap_v[part], heap_j[part], heap_n[part], root_v[part], root_j[part]
        for i in range(start + part, stop, n_parts):  # interleaved rows balance popular items
            n_touched = _accumulate(i, col_ptr, col_users, col_vals, col_pos, row_ptr, row_items, row_vals,
                                    unweighted, side, acc, seen, touched)
            li = label[i]
            for t in range(n_touched):
                j = touched[t]
                c = acc[j]
                acc[j] = 0
                if not unweighted:  # 0/1 data marks nothing in seen
                    seen[j] = 0
                s = _similarity(mode, c, i, j, sa, sb, n_users)
                if s >= threshold:  # root checks first: most offers stop there without reading label[j]
                    if hn[i] < top_k or s >= rv[i]:
                        _offer(hv, hj, hn, rv, rj, i, top_k, s, label[j])
                    if hn[j] < top_k or s >= rv[j]:
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


@njit(parallel=True, nogil=True, cache=True)
def gram_upper(col_ptr, col_users, col_pos, col_vals, row_ptr, row_items, row_vals, G):
    """Add the upper triangle (diagonal included) of ``XᵀX`` into the dense ``G`` [shape=(n_items, n_items)].

    ``col_*``/``row_*`` are the CSC and CSR of ``X`` as in ``topk_symmetric`` (rows' items
    sorted, ``col_pos[p]`` the CSR position of CSC entry ``p``). Row ``i`` of ``G`` is
    written only by the thread that owns item ``i``: no two threads touch the same row.
    """
    n_items = G.shape[0]
    n_chunks = min(n_items, 256)
    for chunk in prange(n_chunks):
        for i in range(chunk, n_items, n_chunks):  # interleaved rows balance popular items
            g = G[i]
            for p in range(col_ptr[i], col_ptr[i + 1]):
                u = col_users[p]
                a = col_vals[p]
                for q in range(col_pos[p], row_ptr[u + 1]):
                    g[row_items[q]] += a * row_vals[q]


@njit(parallel=True, nogil=True, cache=True)
def mirror_upper(G):
    """Copy the upper triangle of the square ``G`` onto its lower triangle, in place."""
    n = G.shape[0]
    n_chunks = min(n, 256)
    for chunk in prange(n_chunks):
        for i in range(chunk, n, n_chunks):
            for j in range(i):
                G[i, j] = G[j, i]


@njit(parallel=True, nogil=True, cache=True)
def walk_counts(items, col_ptr, col_users, row_ptr, row_items, n_items):
    """For each of ``items``: how many (user, partner) steps its row of ``XᵀX`` takes and how many
    distinct partners it touches, as two arrays [shape=(len(items),)] (the fit's cost model)."""
    n = items.shape[0]
    steps = np.zeros(n, dtype=np.int64)
    touched = np.zeros(n, dtype=np.int64)
    n_chunks = min(n, 64)
    for chunk in prange(n_chunks):
        seen = np.zeros(n_items, dtype=np.int64)  # r + 1 where item r's walk has been: no clearing pass
        for r in range(chunk, n, n_chunks):
            i = items[r]
            count = 0
            for p in range(col_ptr[i], col_ptr[i + 1]):
                u = col_users[p]
                steps[r] += row_ptr[u + 1] - row_ptr[u]
                for q in range(row_ptr[u], row_ptr[u + 1]):
                    j = row_items[q]
                    if seen[j] != r + 1:
                        seen[j] = r + 1
                        count += 1
            touched[r] = count
    return steps, touched


@njit(parallel=True, nogil=True, cache=True)
def topk_abs_rows(B, k, threshold, out_j, out_v, out_n):
    """Each row of the dense ``B`` [shape=(n, n)]: its ``k`` largest ``|B[i, j]|`` (ties: lower
    ``j``), skipping zeros and ``|B| < threshold``, written to ``out_j[i]``/``out_v[i]``
    [shape=(n, k)] by decreasing signed value (ties: lower ``j``); ``out_n[i]`` counts them."""
    n = B.shape[0]
    for i in prange(n):
        hv = np.empty(k, dtype=np.float64)
        hj = np.empty(k, dtype=np.int64)
        size = 0
        for j in range(B.shape[1]):
            a = abs(B[i, j])
            if a == 0 or a < threshold:
                continue
            if size == k and worse(np.float64(a), j, hv[0], hj[0]):
                continue
            size = heap_push(hv, hj, size, k, np.float64(a), j)
        cols = np.sort(hj[:size])
        vals = np.empty(size, dtype=np.float64)
        for t in range(size):
            vals[t] = B[i, cols[t]]
        order = np.argsort(-vals, kind="mergesort")  # stable: equal values keep the lower j first
        for t in range(size):
            out_j[i, t] = cols[order[t]]
            out_v[i, t] = vals[order[t]]
        out_n[i] = size
