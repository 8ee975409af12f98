"""An LSTM direction with each step's recursion product and gates fused in one vector kernel.

Why: after ``_rnn_gemm`` the product of a text LSTM's step (16 x 128 x 512) takes ~10 us, and a
separate numba pass over the gates another ~7 (LLVM vectorizes it at 256 bits on this class of
CPU and re-reads the product from memory). Here the columns are laid out per group of ``LANES``
hidden units as ``[i | f | z | o]`` (``gate_layout``), so one block of ``ROWS`` rows by one
group holds all four gates of those units in ``4 * ROWS`` vector registers when its sum over
``k`` ends; the cell and output updates then run on the registers (``_simd.Emit.tanh``: the
rational function and clamps of ``_rnn_kernels.tanh32``; the sigmoid is ``0.5 * (tanh(x / 2) + 1)``,
the halving folded into the weights). The hidden size is padded to a multiple of ``LANES`` with
zero weights (padded units stay 0). Default activations only, no peepholes, not coupled.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from ._rnn_gemm import matmul_packed
from ._simd import LANES, Emit

__all__ = ["ROWS", "CHUNK", "hidden_padded", "gate_layout", "pack_gates", "lstm_seq"]

ROWS = 4 if LANES == 16 else 2  # 4 * ROWS accumulators + 4 weight vectors + temporaries in 32 (16) registers
CHUNK = 8  #: steps whose input products are made together (one row block of ``_rnn_gemm``)


def hidden_padded(h: int) -> int:
    """The hidden size rounded up to a multiple of ``LANES``."""
    return -(-h // LANES) * LANES


def gate_layout(m: np.ndarray, h: int, rows: int | None = None) -> np.ndarray:
    """Gate columns ``[i | f | z | o]`` (``m`` ``[R, 4H]``, or a bias ``[4H]``) regrouped per ``LANES``
    units: ``[R', 4 * Hp]`` float32, column ``g * 4L + gate * L + u`` holds gate ``gate`` of unit
    ``g * L + u`` (zeros for padded units); ``rows`` pads the row count with zero rows.

    The sigmoid gates (i, f, o) are halved: the kernel's sigmoid is ``0.5 * tanh(a / 2) + 0.5`` and
    ``a / 2`` comes out of the product exactly (a power-of-two scale commutes with rounding), so the
    results are bit for bit those of the unscaled weights, one multiply per gate cheaper."""
    vector = m.ndim == 1
    m = np.asarray(m, np.float32).reshape(-1, 4, h) * np.float32([0.5, 0.5, 1.0, 0.5])[:, None]
    hp = hidden_padded(h)
    out = np.zeros((m.shape[0] if rows is None else rows, hp // LANES, 4, LANES), np.float32)
    full = np.zeros((m.shape[0], 4, hp), np.float32)
    full[:, :, :h] = m
    out[:m.shape[0]] = full.reshape(m.shape[0], 4, hp // LANES, LANES).transpose(0, 2, 1, 3)
    out = out.reshape(out.shape[0], 4 * hp)
    return out[0] if vector else out


def pack_gates(m: np.ndarray, h: int, rows: int | None = None) -> np.ndarray:
    """Gate matrices transposed side by side (``[K, 4H]``: the input weights, or the recursion ones
    with ``rows = Hp``) as ``lstm_seq``'s panels ``[Hp / L, K', 4 * L]``: per group of ``L`` units,
    its ``[i | f | z | o]`` columns for every row."""
    g = gate_layout(m, h, rows=rows)
    return np.ascontiguousarray(g.reshape(g.shape[0], -1, 4 * LANES).transpose(1, 0, 2))


def _make_block(rows: int):
    """An intrinsic ``block(y, yoff, ldy, rp, roff, kk, pre, poff, ldp, c, coff, ldc, ynew, clip)``: for
    ``rows`` rows and one group of ``LANES`` units, ``a = pre + y @ R`` (``kk`` rows of a ``4 * LANES``
    panel from element ``roff``; rows of ``y`` and ``pre`` from ``yoff`` / ``poff`` with strides
    ``ldy`` / ``ldp``), then ``c = clip(f * c + i * z)`` in place and ``ynew = tanh(c) * o`` (``c``
    and ``ynew`` share the row stride ``ldc``); float32, unit stride along rows."""

    @intrinsic
    def block(typingctx, y, yoff, ldy, rp, roff, kk, pre, poff, ldp, c, coff, ldc, ynew, clip):
        sig = types.void(y, yoff, ldy, rp, roff, kk, pre, poff, ldp, c, coff, ldc, ynew, clip)

        def codegen(context, builder, signature, args):
            y_, yoff_, ldy_, rp_, roff_, kk_, pre_, poff_, ldp_, c_, coff_, ldc_, yn_, clip_ = args
            e = Emit(context, builder, signature)
            yd, rd, pd, cd, nd = e.data(0, y_), e.data(3, rp_), e.data(6, pre_), e.data(9, c_), e.data(12, yn_)
            accs = e.accumulators([[e.load(pd, poff_, builder.mul(e.int(b), ldp_), e.int(g * LANES)) for g in range(4)]
                                   for b in range(rows)])
            e.product(accs, yd, yoff_, ldy_, rd, roff_, kk_)
            hi = e.splat(clip_)
            for b in range(rows):
                gi, gf, gz, go = (builder.load(acc) for acc in accs[b])
                row = builder.mul(e.int(b), ldc_)
                cv = e.fma(e.load(cd, coff_, row), e.sigmoid_of_double(gf),
                           builder.fmul(e.sigmoid_of_double(gi), e.tanh(gz)))
                cv = e.clamp(cv, builder.fneg(hi), hi)
                e.store(cv, cd, coff_, row)
                e.store(builder.fmul(e.tanh(cv), e.sigmoid_of_double(go)), nd, coff_, row)
            return context.get_dummy_value()

        return sig, codegen

    return block


_block_rows = _make_block(ROWS)
_block_one = _make_block(1)


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def lstm_seq(xs, wp, bias, rp, y, c, clip_c, reverse, out, col, h):
    """One LSTM direction over ``xs`` ``[N, S, I]`` (float32, C order): ``wp`` the input weights
    transposed side by side (``[I, 4H]``) in ``gate_layout``, packed by ``_rnn_gemm.pack``; ``bias``
    ``[4 * Hp]`` in ``gate_layout``; ``rp`` the recursion matrices (``[H, 4H]``) packed by
    ``pack_gates`` with ``Hp`` rows; ``y``, ``c`` ``[N, Hp]`` the initial states (padded units 0),
    updated in place to the last ones (``c`` clipped to +-``clip_c``); ``out`` ``[N, S, >= col + h]``
    gets each step's output in columns ``col:col + h`` (a bidirectional layer's two directions share
    one buffer).

    The input products are made ``CHUNK`` steps at a time (``[N, CHUNK, 4 * Hp]``, 256 KB at 16 x 128,
    stays in L2) rather than for all steps up front: after other work has flushed the caches, writing
    a 1.6 MB ``[16, 50, 512]`` array took 0.6 ms against 0.3 warm. Inside the step kernel they cost
    more (0.35 ms against 0.27: the step's panels then overflow L1).
    """
    n, s, ki = xs.shape
    groups, hp, width = rp.shape
    if n and (y.shape != c.shape or y.strides != c.strides or y.strides[1] != 4 or (ki > 1 and xs.strides[2] != 4)):
        raise ValueError("lstm_seq needs y and c alike and unit-stride rows")
    gp = groups * width
    ynew = np.empty_like(y)
    pre = np.empty((n, CHUNK, gp), np.float32)
    ldy = y.strides[0] // 4
    for first in range(0, s, CHUNK):
        span = min(CHUNK, s - first)
        lo = s - first - span if reverse else first  # the steps lo:lo + span, in the order they run
        for b in range(n):
            matmul_packed(xs[b, lo:lo + span], wp, pre[b], bias, 0, 0)
        for step in range(span):
            k = span - 1 - step if reverse else step
            t = lo + k
            for g in range(groups):
                roff, unit = g * hp * width, g * (width // 4)
                b = 0
                while b + ROWS <= n:
                    _block_rows(y, b * ldy, ldy, rp, roff, hp, pre, (b * CHUNK + k) * gp + g * width, CHUNK * gp,
                                c, b * ldy + unit, ldy, ynew, clip_c)
                    b += ROWS
                while b < n:
                    _block_one(y, b * ldy, ldy, rp, roff, hp, pre, (b * CHUNK + k) * gp + g * width, CHUNK * gp,
                               c, b * ldy + unit, ldy, ynew, clip_c)
                    b += 1
            for b in range(n):
                for j in range(hp):
                    y[b, j] = ynew[b, j]
                for j in range(h):
                    out[b, t, col + j] = ynew[b, j]
