"""The recursion product of the recurrent layers, ``a = y @ R``, as a register-blocked compiled kernel.

Why: a text LSTM's step is a small product (``y`` ``[16, 128]`` by ``R`` ``[128, 512]``): the
BLAS SciPy ships takes some 20-25 us for it through ``np.dot`` (call, packing and threading
overhead on every one of the 50 steps), MKL about 11. Here ``R`` is packed once into panels of
``PANEL`` columns (``[P, K, PANEL]``, zero-padded) and each block of ``ROWS`` rows by one panel
is a micro-kernel written as LLVM vector IR (``_simd.Emit``: numba cannot declare SIMD registers,
and LLVM's vectorizers keep the accumulators in memory): ``ROWS x VECS`` vector accumulators, per ``k`` one
broadcast of ``y[b, k]`` and ``VECS`` loads of the panel row. Sums run over ``k`` in order with
fused multiply-adds (what a BLAS micro-kernel does), so results match BLAS to float32 rounding.
The lane count follows the host (16 with AVX-512, 8 otherwise). Every routine releases the GIL.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from ._simd import LANES, Emit

__all__ = ["LANES", "ROWS", "VECS", "PANEL", "pack", "pad", "padded", "matmul_packed"]

VECS = 2
ROWS = 8 if LANES == 16 else 4  # ROWS * VECS accumulators + VECS panel vectors fit the 32 (16) registers
PANEL = LANES * VECS


def padded(g: int) -> int:
    """Columns of a product with ``g`` columns once packed (a multiple of ``PANEL``)."""
    return -(-g // PANEL) * PANEL


def pad(v: np.ndarray) -> np.ndarray:
    """``v`` ``[G]`` zero-padded to ``[padded(G)]`` float32 (a bias for ``matmul_packed``'s ``c``)."""
    out = np.zeros(padded(v.shape[0]), np.float32)
    out[:v.shape[0]] = v
    return out


def pack(r: np.ndarray) -> np.ndarray:
    """``r`` ``[K, G]`` as ``[P, K, PANEL]`` float32 panels (``P = padded(G) / PANEL``, zero columns after G)."""
    k, g = r.shape
    full = np.zeros((k, padded(g)), np.float32)
    full[:, :g] = r
    return np.ascontiguousarray(full.reshape(k, padded(g) // PANEL, PANEL).transpose(1, 0, 2))


def _make_block(rows: int):
    """An intrinsic ``block(y, yoff, ldy, rp, roff, kk, c, coff, ldc, a, aoff, lda)``: ``rows`` rows of
    ``y`` (from element ``yoff``, row stride ``ldy``) times one panel (from element ``roff``, ``kk``
    rows of ``PANEL``), plus the same rows of ``c`` (from ``coff``, row stride ``ldc``: 0 repeats
    one row, a bias), into ``a`` (from ``aoff``, row stride ``lda``); float32, unit stride along rows."""

    @intrinsic
    def block(typingctx, y, yoff, ldy, rp, roff, kk, c, coff, ldc, a, aoff, lda):
        sig = types.void(y, yoff, ldy, rp, roff, kk, c, coff, ldc, a, aoff, lda)

        def codegen(context, builder, signature, args):
            y_, yoff_, ldy_, rp_, roff_, kk_, c_, coff_, ldc_, a_, aoff_, lda_ = args
            e = Emit(context, builder, signature)
            yd, rd, cd, ad = e.data(0, y_), e.data(3, rp_), e.data(6, c_), e.data(9, a_)
            accs = e.accumulators([[e.load(cd, coff_, builder.mul(e.int(b), ldc_), e.int(v * LANES))
                                    for v in range(VECS)] for b in range(rows)])
            e.product(accs, yd, yoff_, ldy_, rd, roff_, kk_)
            for b in range(rows):
                for v in range(VECS):
                    e.store(builder.load(accs[b][v]), ad, aoff_, builder.mul(e.int(b), lda_), e.int(v * LANES))
            return context.get_dummy_value()

        return sig, codegen

    return block


_block_rows = _make_block(ROWS)
_block_one = _make_block(1)
_JIT = dict(cache=True, nogil=True, fastmath=True, error_model="numpy")


@numba.njit(**_JIT)
def matmul_packed(y, rp, a, c, coff, ldc):
    """``a[b, :P * PANEL] = c[coff + b * ldc:][:P * PANEL] + y[b] @ R`` for every row ``b`` of ``y``, ``rp = pack(R)``.

    ``y`` ``[N, K]`` and ``a`` ``[N, >= P * PANEL]`` float32 with unit-stride rows, ``rp`` ``[P, K, PANEL]``;
    ``c`` any float32 array read flat (``ldc = 0``: one row for every ``b``, e.g. a padded bias;
    ``c`` may be ``a`` itself to accumulate). Panels outer, row blocks inner: one panel
    (``K * PANEL * 4`` bytes, 16 KB at K = 128) stays in L1 while every row block reads it.
    """
    p_count, kk, width = rp.shape
    n = y.shape[0]
    if n and ((kk > 1 and y.strides[1] != 4) or a.strides[1] != 4):
        raise ValueError("matmul_packed needs unit-stride rows")
    ldy, lda = y.strides[0] // 4, a.strides[0] // 4
    for p in range(p_count):
        roff = p * kk * width
        col = p * width
        b = 0
        while b + ROWS <= n:
            _block_rows(y, b * ldy, ldy, rp, roff, kk, c, coff + b * ldc + col, ldc, a, b * lda + col, lda)
            b += ROWS
        while b < n:
            _block_one(y, b * ldy, ldy, rp, roff, kk, c, coff + b * ldc + col, ldc, a, b * lda + col, lda)
            b += 1
