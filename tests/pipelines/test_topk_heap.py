"""The bounded top-k heap keeps exactly the best ``cap`` pairs, ties by lower index."""

import numpy as np
import pytest
from numba import njit

from pippin.pipelines.runtime.topk_heap import heap_push, heap_sort_desc


@njit
def _top(values, cap):
    hv = np.empty(cap, np.float64)
    hj = np.empty(cap, np.int64)
    size = 0
    for j in range(values.shape[0]):
        size = heap_push(hv, hj, size, cap, values[j], j)
    heap_sort_desc(hv, hj, size)
    return hv[:size], hj[:size]


@pytest.mark.parametrize("n, cap", [(0, 3), (2, 5), (50, 7), (200, 200)])
def test_matches_a_stable_sort(n, cap):
    rng = np.random.default_rng(n)
    values = rng.integers(0, 6, n).astype(np.float64)  # many ties
    got_v, got_j = _top(values, cap)
    order = sorted(range(n), key=lambda j: (-values[j], j))[:cap]
    assert got_j.tolist() == order
    assert got_v.tolist() == [values[j] for j in order]
