"""Top-k of one accumulated row of ``XᵀX`` by a threshold pass before the heap (exact).

``kernels.topk_block`` accumulates item ``i``'s co-occurrences into a dense accumulator
and lists the touched partners. Offering each of them to a bounded heap costs a root
compare and, whenever it wins, a sift; on rows whose candidates arrive worst first
(cosine: popular partners, touched first, score lowest) most offers win for a while.
With heavy-tailed user activity a few users hold thousands of items, so their items'
rows touch a large share of the catalogue (1M interactions, 100k items: 385M touched
entries, 71% of them in rows of 8k+ partners), and the offer loop took 83% of the kernel's
CPU time (cosine, 1 thread: 4.0 s, of which 0.67 s accumulating).

``offer_selected`` instead:

1. computes every touched partner's similarity into a contiguous buffer (excluded
   entries: the item itself, values below ``threshold``, NaN, become ``-inf``);
2. takes the maxima of blocks of ``bs`` values (``bs`` sized so there are at least
   ``SELECT_FACTOR * top_k`` blocks) and the ``top_k``-th largest of those maxima by
   quickselect: ``top_k`` distinct entries reach it, so it is a lower bound of the row's
   ``top_k``-th best value;
3. offers only the entries of blocks whose maximum reaches the bound, and of those only
   values reaching it, to the heap.

Every entry that can be in the row's top ``top_k`` is offered, and the heap's order is
total (value, then lower label), so the kept neighbours are those of offering every
entry: the table is the same bit for bit (checked against the plain path in
``tests/recommend/test_row_select.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..pipelines.runtime.topk_heap import heap_push

# Rows with fewer touched partners than max(SELECT_MIN, SELECT_FACTOR * top_k) take the plain
# offer loop. Measured 1M interactions, heavy-tailed, 100k items, K=64, 1 thread, CPU seconds of
# topk_block: plain 3.97-4.02 (cosine); threshold pass from 256 touched 2.19-2.31, from 2048 2.75,
# from 8192 3.55 (load 3-4).
SELECT_MIN = 256
SELECT_FACTOR = 4
BLOCK = 32


@njit(inline="always")
def kth_largest(a, n, k):
    """The ``k``-th largest of ``a[:n]`` (``1 <= k <= n``); permutes ``a[:n]`` in place.

    Quickselect with a three-way partition, so runs of equal values (ties are common:
    every partner met by one user only scores alike) cost one pass, not a quadratic one.
    Values must not be NaN.
    """
    lo, hi = 0, n  # half-open
    target = n - k  # its position in ascending order
    while hi - lo > 1:
        x, y, z = a[lo], a[(lo + hi) >> 1], a[hi - 1]
        pivot = max(min(x, y), min(max(x, y), z))  # median of three
        lt, t, gt = lo, lo, hi
        while t < gt:
            v = a[t]
            if v < pivot:
                a[t] = a[lt]
                a[lt] = v
                lt += 1
                t += 1
            elif v > pivot:
                gt -= 1
                a[t] = a[gt]
                a[gt] = v
            else:
                t += 1
        if target < lt:
            hi = lt
        elif target >= gt:
            lo = gt
        else:
            return pivot
    return a[lo]


@njit(inline="always")
def use_selection(n_touched, top_k, threshold):
    """Whether ``offer_selected`` handles a row of ``n_touched`` partners (a ``-inf`` threshold
    keeps the plain loop: ``-inf`` marks excluded entries)."""
    return n_touched >= SELECT_MIN and n_touched >= SELECT_FACTOR * top_k and threshold > -np.inf


@njit(inline="always")
def offer_selected(values, blocks, scratch, n_touched, touched, label, hv, hj, top_k):
    """Offer the entries of ``values[:n_touched]`` (similarities of partners ``touched[t]``,
    excluded ones ``-inf``) that can be among the best ``top_k`` to the empty heap ``hv``/``hj``
    (ties: lower ``label``); returns the heap's size. ``values``, ``blocks`` and ``scratch``
    hold at least ``n_touched + BLOCK`` entries; requires ``n_touched >= SELECT_FACTOR * top_k``."""
    bs = min(BLOCK, n_touched // (SELECT_FACTOR * top_k))  # >= 1; and n_blocks >= SELECT_FACTOR * top_k
    n_blocks = (n_touched + bs - 1) // bs
    for t in range(n_touched, n_blocks * bs):
        values[t] = -np.inf
    for b in range(n_blocks):
        m = values[bs * b]
        for t in range(bs * b + 1, bs * b + bs):
            v = values[t]
            m = v if v > m else m
        blocks[b] = m
        scratch[b] = m
    bound = kth_largest(scratch, n_blocks, top_k)
    size = 0
    for b in range(n_blocks):
        m = blocks[b]
        if m < bound or m == -np.inf:
            continue
        for t in range(bs * b, bs * b + bs):
            s = values[t]
            if s < bound or s == -np.inf:
                continue
            if size < top_k or s >= hv[0]:  # heap_push breaks a tie with the root by the lower label
                size = heap_push(hv, hj, size, top_k, s, label[touched[t]])
    return size
