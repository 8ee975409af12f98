"""Compiled step loops of the recurrent layers: one numba call per sequence.

Why: the NumPy step loops of ``_kernels`` (``lstm_sequence``, ``gru_sequence``) pay a dozen
passes and Python calls per time step; at text-model sizes (16 x 128 states) that is most of
the time. Here each step is one BLAS product (``np.dot`` with ``out``, the BLAS SciPy ships)
and one fused pass over the gates. The gate activations are the default ones only (sigmoid
gates, tanh cell): ``tanh32`` is a rational float32 approximation (Eigen's
``generic_fast_tanh_float``, |error| <= 3e-7 against ``np.tanh``; exactly +-1 beyond +-7.905,
as float32 tanh is there) that LLVM vectorizes, so it runs as fast as NumPy's SIMD tanh, and the
sigmoid is the reference's ``0.5 * (tanh(x / 2) + 1)``. ``error_model="numpy"`` keeps the
division free of Python's zero check, which would stop the vectorizer. Callers check that
the activations are the defaults and otherwise use the NumPy loops; ``test_fast_paths.py``
compares both with the reference classes.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["tanh32", "swish", "lstm_seq", "gru_seq", "gru_lbr_seq"]

_F = np.float32
_JIT = dict(cache=True, nogil=True, fastmath=True, error_model="numpy")


@numba.njit(inline="always", **_JIT)
def tanh32(x):
    """float32 tanh, rational 13/6 approximation on [-7.905, 7.905] (+-1 beyond)."""
    lim = _F(7.90531110763549805)
    v = lim if x > lim else x
    v = -lim if v < -lim else v
    x2 = v * v
    p = _F(-2.76076847742355e-16) * x2 + _F(2.00018790482477e-13)
    p = p * x2 + _F(-8.60467152213735e-11)
    p = p * x2 + _F(5.12229709037114e-08)
    p = p * x2 + _F(1.48572235717979e-05)
    p = p * x2 + _F(6.37261928875436e-04)
    p = (p * x2 + _F(4.89352455891786e-03)) * v
    q = _F(1.19825839466702e-06) * x2 + _F(1.18534705686654e-04)
    q = q * x2 + _F(2.26843463243900e-03)
    q = q * x2 + _F(4.89352518554385e-03)
    r = p / q
    r = _F(1.0) if x >= lim else r  # exactly +-1 beyond the clamp, as float32 tanh is there
    return _F(-1.0) if x <= -lim else r


@numba.njit(inline="always", **_JIT)
def _sigmoid(x):
    return _F(0.5) * (tanh32(_F(0.5) * x) + _F(1.0))


@numba.njit(**_JIT)
def swish(x, out):
    """``out = x * sigmoid(x)`` over 1-D float32 arrays (``fast_chains.FusedSwish``)."""
    for i in range(x.size):
        v = x[i]
        out[i] = v * _sigmoid(v)


@numba.njit(**_JIT)
def lstm_seq(pre, r, y, c, clip_c, reverse, out, col=0):
    """One LSTM direction (gates i, f, z, o; sigmoid, tanh, tanh; no peepholes, not coupled).

    ``pre`` ``[N, S, 4H]`` is ``x W^T + b``, ``r`` ``[H, 4H]`` the recursion matrices transposed
    side by side; ``y``, ``c`` ``[N, H]`` the initial states, updated in place to the last
    ones; ``out`` ``[N, S, >= col + H]`` receives every step's output in columns ``col:col + H`` (a
    bidirectional layer's two directions share one buffer). ``c`` is clipped to +-``clip_c``.
    """
    n, s, h4 = pre.shape
    hs = h4 // 4
    a = np.empty((n, h4), np.float32)
    for k in range(s):
        t = s - 1 - k if reverse else k
        np.dot(y, r, a)
        for b in range(n):
            for j in range(hs):
                gi = _sigmoid(a[b, j] + pre[b, t, j])
                gf = _sigmoid(a[b, hs + j] + pre[b, t, hs + j])
                gz = tanh32(a[b, 2 * hs + j] + pre[b, t, 2 * hs + j])
                go = _sigmoid(a[b, 3 * hs + j] + pre[b, t, 3 * hs + j])
                cv = c[b, j] * gf + gi * gz
                cv = clip_c if cv > clip_c else cv
                cv = -clip_c if cv < -clip_c else cv
                c[b, j] = cv
                yv = tanh32(cv) * go
                y[b, j] = yv
                out[b, t, col + j] = yv


@numba.njit(**_JIT)
def gru_seq(pre, rzr, ro, y, reverse, out):
    """Core ML's GRU (gates z, r, o; sigmoid, tanh): ``o = tanh(x W_o + (r * y) R_o + b_o)``.

    ``pre`` ``[N, S, 3H]``, ``rzr`` ``[H, 2H]`` (update and reset recursion matrices,
    transposed), ``ro`` ``[H, H]``; ``y`` ``[N, H]`` updated in place; ``out`` ``[N, S, H]``.
    """
    n, s, h3 = pre.shape
    hs = h3 // 3
    a = np.empty((n, 2 * hs), np.float32)
    rh = np.empty((n, hs), np.float32)
    o = np.empty((n, hs), np.float32)
    for k in range(s):
        t = s - 1 - k if reverse else k
        np.dot(y, rzr, a)
        for b in range(n):
            for j in range(hs):
                a[b, j] = _sigmoid(a[b, j] + pre[b, t, j])
                rh[b, j] = _sigmoid(a[b, hs + j] + pre[b, t, hs + j]) * y[b, j]
        np.dot(rh, ro, o)
        for b in range(n):
            for j in range(hs):
                z = a[b, j]
                yv = (_F(1.0) - z) * tanh32(o[b, j] + pre[b, t, 2 * hs + j]) + z * y[b, j]
                y[b, j] = yv
                out[b, t, j] = yv


@numba.njit(**_JIT)
def gru_lbr_seq(pre, u, bu, y, base, add_base, out):
    """PyTorch's GRU (gates r, z, n; the reset gate applied after the recursion product), time-major.

    ``pre`` ``[S, M, 3H]`` is ``x W^T + b_x``; ``u`` ``[H, 3H]`` and ``bu`` ``[3H]`` the
    recursion matrices transposed and their bias; ``y`` ``[M, H]`` the initial state, updated
    in place. Per step ``r = s(px_r + a_r)``, ``z = s(px_z + a_z)``, ``n = tanh(px_n + r * a_n)``
    with ``a = y U + bu``, then ``y = (1 - z) * n + z * y``, plus ``base[t]`` when ``add_base``
    (a scatter-add into a buffer that already held values); ``out`` ``[S, M, H]`` gets each ``y``.
    """
    s, m, h3 = pre.shape
    hs = h3 // 3
    a = np.empty((m, h3), np.float32)
    for t in range(s):
        np.dot(y, u, a)
        for b in range(m):
            for j in range(hs):
                r = _sigmoid(pre[t, b, j] + (a[b, j] + bu[j]))
                z = _sigmoid(pre[t, b, hs + j] + (a[b, hs + j] + bu[hs + j]))
                nv = tanh32(pre[t, b, 2 * hs + j] + r * (a[b, 2 * hs + j] + bu[2 * hs + j]))
                yv = (_F(1.0) - z) * nv + z * y[b, j]
                if add_base:
                    yv = yv + base[t, b, j]
                y[b, j] = yv
                out[t, b, j] = yv
