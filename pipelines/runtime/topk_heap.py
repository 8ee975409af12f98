"""A bounded min-heap that keeps the best ``cap`` (value, index) pairs, for numba kernels.

Written by hand because the kernels run inside ``numba.njit(parallel=True)`` loops, where
neither ``heapq`` nor ``np.argpartition`` can be called per row without allocating. The
root is the worst pair kept; ties rank by lower index first. Used by the recommender
runtime's scorer and by the similarity fit in ``pippin.recommend.kernels``.
"""

from numba import njit


@njit(inline="always")
def worse(v1, j1, v2, j2):
    """Whether (v1, j1) ranks below (v2, j2): lower value, then higher index."""
    return v1 < v2 or (v1 == v2 and j1 > j2)


@njit(inline="always")
def sift_down(hv, hj, pos, size):
    """Restore the heap below ``pos`` in ``hv[:size]``/``hj[:size]``."""
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        if child + 1 < size and worse(hv[child + 1], hj[child + 1], hv[child], hj[child]):
            child += 1
        if not worse(hv[child], hj[child], hv[pos], hj[pos]):
            return
        hv[pos], hv[child] = hv[child], hv[pos]
        hj[pos], hj[child] = hj[child], hj[pos]
        pos = child


@njit(inline="always")
def heap_push(hv, hj, size, cap, v, j):
    """Offer (v, j) to a heap of ``size`` entries holding at most ``cap``; returns the new size."""
    if size < cap:
        pos = size
        hv[pos] = v
        hj[pos] = j
        while pos > 0:
            parent = (pos - 1) // 2
            if not worse(hv[pos], hj[pos], hv[parent], hj[parent]):
                break
            hv[pos], hv[parent] = hv[parent], hv[pos]
            hj[pos], hj[parent] = hj[parent], hj[pos]
            pos = parent
        return size + 1
    if worse(hv[0], hj[0], v, j):
        hv[0] = v
        hj[0] = j
        sift_down(hv, hj, 0, size)
    return size


@njit(inline="always")
def heap_sort_desc(hv, hj, size):
    """Sort the heap's first ``size`` entries in place, best first."""
    end = size
    while end > 1:
        end -= 1
        hv[0], hv[end] = hv[end], hv[0]
        hj[0], hj[end] = hj[end], hj[0]
        sift_down(hv, hj, 0, end)
