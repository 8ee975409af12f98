"""Compiled step loops of the GRU layers and the input projection of the recurrent layers.

Why: the NumPy step loops of ``_kernels`` (``gru_sequence``) pay a dozen passes and Python calls
per time step; at text-model sizes (16 x 128 states) that is most of the time. Here each step is
one recursion product (``_rnn_gemm.matmul_packed`` on matrices packed once by
``_rnn_gemm.pack``, the input products of the step as the accumulators' start: 2.5x faster than
``np.dot`` at 16 x 128 x 512) and one fused pass over the gates; ``project`` makes the input
products of all steps in one packed product. The LSTM's loop is ``_lstm_step.lstm_seq`` (gates on
the product's registers). The gate activations are the default ones only (sigmoid gates, tanh
cell): ``tanh32`` is a rational float32 approximation (Eigen's ``generic_fast_tanh_float``,
|error| <= 3e-7 against ``np.tanh``; exactly +-1 beyond +-7.905, as float32 tanh is there) that
LLVM vectorizes, and the sigmoid is the reference's ``0.5 * (tanh(x / 2) + 1)``.
``error_model="numpy"`` keeps the division free of Python's zero check, which would stop the
vectorizer. Callers check that the activations are the defaults and otherwise use the NumPy
loops; ``test_fast_paths.py`` compares both with the reference classes.
"""

from __future__ import annotations

import numba
import numpy as np

from ._rnn_gemm import matmul_packed

__all__ = ["tanh32", "swish", "project", "gru_seq", "gru_lbr_seq"]

_F = np.float32
CHUNK = 8  #: steps whose input products gru_lbr_seq makes together
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
def project(xs, wp, bias, out):
    """``out[m, :Gp] = xs[m] @ W + bias`` for ``xs`` ``[M, I]``, ``wp = pack(W)`` (``W`` ``[I, G]``), ``bias``
    ``[Gp]`` zero-padded, ``out`` ``[M, Gp]`` (``Gp = padded(G)``): the input projection of every step."""
    matmul_packed(xs, wp, out, bias, 0, 0)


@numba.njit(**_JIT)
def gru_seq(pre, rzp, rop, y, reverse, out):
    """Core ML's GRU (gates z, r, o; sigmoid, tanh): ``o = tanh(x W_o + (r * y) R_o + b_o)``.

    ``pre`` ``[N, S, P2 + P1]``: ``x W + b`` of the update and reset gates in columns ``:2H`` and of
    the output gate from column ``P2 = padded(2H)`` (``P1 = padded(H)``); ``rzp`` the update and
    reset recursion matrices (``[H, 2H]``, transposed) and ``rop`` the output one (``[H, H]``),
    packed; ``y`` ``[N, H]`` updated in place; ``out`` ``[N, S, H]``.
    """
    n, s, gp = pre.shape
    hs = y.shape[1]
    p2 = rzp.shape[0] * rzp.shape[2]
    a = np.empty((n, p2), np.float32)
    rh = np.empty((n, hs), np.float32)
    o = np.empty((n, rop.shape[0] * rop.shape[2]), np.float32)
    for k in range(s):
        t = s - 1 - k if reverse else k
        matmul_packed(y, rzp, a, pre, t * gp, s * gp)
        for b in range(n):
            for j in range(hs):
                a[b, j] = _sigmoid(a[b, j])
                rh[b, j] = _sigmoid(a[b, hs + j]) * y[b, j]
        matmul_packed(rh, rop, o, pre, t * gp + p2, s * gp)
        for b in range(n):
            for j in range(hs):
                z = a[b, j]
                yv = (_F(1.0) - z) * tanh32(o[b, j]) + z * y[b, j]
                y[b, j] = yv
                out[b, t, j] = yv


@numba.njit(**_JIT)
def gru_lbr_seq(xs, wp, bias, up, bup, y, base, add_base, out):
    """PyTorch's GRU (gates r, z, n; the reset gate applied after the recursion product), time-major.

    ``xs`` ``[S, M, I]`` (unit stride along ``I``); ``wp`` the input weights transposed (``[I, 3H]``,
    gates r, z, n side by side) packed by ``_rnn_gemm.pack`` and ``bias`` their bias zero-padded to
    ``padded(3H)``; ``up`` / ``bup`` the same for the recursion matrices and their bias; ``y``
    ``[M, H]`` the initial state, updated in place. Per step ``r = s(px_r + a_r)``,
    ``z = s(px_z + a_z)``, ``n = tanh(px_n + r * a_n)`` with ``px = x W + b`` and ``a = bu + y U``,
    then ``y = (1 - z) * n + z * y``, plus ``base[t]`` when ``add_base`` (a scatter-add into a buffer
    that already held values); ``out`` ``[S, M, H]`` gets each ``y``. The input products are made
    ``CHUNK`` steps at a time into a buffer that stays in cache (see ``_lstm_step.lstm_seq``).
    """
    s, m, _ = xs.shape
    hs = y.shape[1]
    gp = bup.shape[0]
    a = np.empty((m, gp), np.float32)
    pre = np.empty((CHUNK, m, gp), np.float32)
    for first in range(0, s, CHUNK):
        span = min(CHUNK, s - first)
        for k in range(span):
            matmul_packed(xs[first + k], wp, pre[k], bias, 0, 0)
        for k in range(span):
            t = first + k
            matmul_packed(y, up, a, bup, 0, 0)
            for b in range(m):
                for j in range(hs):
                    r = _sigmoid(pre[k, b, j] + a[b, j])
                    z = _sigmoid(pre[k, b, hs + j] + a[b, hs + j])
                    nv = tanh32(pre[k, b, 2 * hs + j] + r * a[b, 2 * hs + j])
                    yv = (_F(1.0) - z) * nv + z * y[b, j]
                    if add_base:
                        yv = yv + base[t, b, j]
                    y[b, j] = yv
                    out[t, b, j] = yv
