"""Global max pooling along channel-last rows, for training (``fast.FastPooling``).

Why: the reference reduces ``[N, C, H * W]`` views of a channel-last buffer (stride ``C`` along the
reduced axis) twice in training (``argmax``, then ``max``) and writes its gradient ``[N, C, H, W]``
C-contiguous, which the batchnorm before it then copies back to channel-last. Here one pass over
the rows ``[N, H * W, C]`` (the channel loop is the vector loop) gives both, and the gradient is
written channel-last.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["global_max_train", "global_max_grad"]


@numba.njit(cache=True, nogil=True)
def _global_max(x, y, idx):
    n, m, c = x.shape
    for b in range(n):
        for k in range(c):
            y[b, k] = x[b, 0, k]
            idx[b, k] = 0
        for p in range(1, m):
            for k in range(c):
                v = x[b, p, k]
                if v > y[b, k]:  # strict: the first maximum wins
                    y[b, k] = v
                    idx[b, k] = p


def global_max_train(rows: np.ndarray):
    """Global max pooling of channel-last rows ``[N, H * W, C]``: ``(y [N, C], argmax [N, C] int32)``."""
    n, _, c = rows.shape
    y = np.empty((n, c), dtype=np.float32)
    idx = np.empty((n, c), dtype=np.int32)
    _global_max(np.ascontiguousarray(rows, dtype=np.float32), y, idx)
    return y, idx


@numba.njit(cache=True, nogil=True)
def global_max_grad(g, idx, out):
    """``out [N, H * W, C]`` = ``g [N, C]`` at each argmax, 0 elsewhere (the gradient of ``global_max_train``)."""
    n, m, c = out.shape
    for b in range(n):
        for p in range(m):
            for k in range(c):
                out[b, p, k] = 0
        for k in range(c):
            out[b, idx[b, k], k] = g[b, k]
