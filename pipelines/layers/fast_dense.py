"""Faster ``innerProduct`` at inference: no axis moves, cached weight layouts, a packed kernel.

Split out of ``fast.py`` (which holds the other single-layer variants). ``FastInnerProduct``
keeps the reference's function and errors; ``tests/pipelines/layers/test_fast_paths.py``
compares it with the reference (``_case_inner_product``: layouts, ranks, bias or none,
replaced weights and biases, the packed route).
"""

from __future__ import annotations

import numpy as np

from . import _rnn_gemm
from ._blas import blas_threads
from .base import register_fast
from .dense import InnerProduct

__all__ = ["FastInnerProduct", "PACKED_MAX_WORK", "PACKED_K_BLOCK"]


#: multiply-adds below which an ``innerProduct`` takes the packed kernel even when BLAS may use more threads
PACKED_MAX_WORK = 8_000_000
#: inputs summed per packed product (see ``FastInnerProduct._product_packed``)
PACKED_K_BLOCK = 256


@register_fast("innerProduct")
class FastInnerProduct(InnerProduct):
    """``innerProduct`` at inference without moving axes: the channel axis is the last one, or
    ``-3`` followed by two unit axes, and either way ``x.reshape(-1, C_in)`` lists the vectors
    in order (about 30 us less per call, which counts in loops and small models). The product
    takes a C-ordered copy of ``W^T``, made once per weights array: OpenBLAS's transposed-operand
    route was measured at 175 us against 115 us for the zoo MLP's 32 x 512 x 512 layer. The
    copied array is made read-only, so writing into it in place fails loudly instead of leaving
    the copy stale (the training engine replaces weight arrays; it never writes into them). When
    ``C_out`` is a multiple of ``_rnn_gemm.PANEL`` and the product runs on one thread (or is small),
    it is ``_rnn_gemm.matmul_packed`` on ``W^T`` packed once (bias as the start of the sums): the zoo
    MLP's 32 x 512 x 512 layer 131 -> 92 us with the bias (two blocks of 256 inputs: ``_product_packed``),
    the transformer's 512 x 128 x 384 288 -> 246 us."""

    _wt: tuple | None = None
    _packed: tuple | None = None

    def _weights_t(self) -> np.ndarray:
        w = self.params["weights"]
        if self._wt is None or self._wt[0] is not w:
            w.flags.writeable = False
            self._wt = (w, np.ascontiguousarray(w.T))
        return self._wt[1]

    def _weights_packed(self) -> tuple[list, np.ndarray, np.ndarray]:
        """``W^T`` packed for ``_rnn_gemm.matmul_packed`` per block of ``PACKED_K_BLOCK`` inputs, the padded
        bias and a zero row, once per weights and bias array."""
        w, bias = self.params["weights"], self.params.get("bias")
        if self._packed is None or self._packed[0] is not w or self._packed[1] is not bias:
            w.flags.writeable = False
            if bias is not None:
                bias.flags.writeable = False
            zeros = np.zeros(_rnn_gemm.padded(self.n_out), np.float32)
            w_t = w.T
            blocks = [_rnn_gemm.pack(np.ascontiguousarray(w_t[k:k + PACKED_K_BLOCK]))
                      for k in range(0, self.n_in, PACKED_K_BLOCK)]
            self._packed = (w, bias, blocks, _rnn_gemm.pad(bias) if bias is not None else zeros, zeros)
        return self._packed[2:]

    def _product_packed(self, x2: np.ndarray) -> np.ndarray:
        """``x2 @ W^T + bias`` ``[M, C_out]``: one packed product per block of inputs, each block's sums added to
        the previous ones (OpenBLAS's K blocking: the same error, where one running sum over 512 terms was 1.4x
        less accurate); 32 x 512 x 512 89 us against OpenBLAS's 119."""
        blocks, start, zeros = self._weights_packed()
        x2 = np.ascontiguousarray(x2)
        y = np.empty((x2.shape[0], self.n_out), np.float32)
        _rnn_gemm.matmul_packed(x2[:, :PACKED_K_BLOCK], blocks[0], y, start, 0, 0)
        tmp = np.empty_like(y) if len(blocks) > 1 else None
        for i, packed in enumerate(blocks[1:], 1):
            _rnn_gemm.matmul_packed(x2[:, i * PACKED_K_BLOCK:(i + 1) * PACKED_K_BLOCK], packed, tmp, zeros, 0, 0)
            y += tmp
        return y

    def forward(self, x):
        x = np.asarray(x, dtype=np.float32)
        rank5 = x.ndim >= 4 and x.shape[-1] == 1 and x.shape[-2] == 1
        if x.shape[-3 if rank5 else -1] != self.n_in:
            return super().forward(x)  # the reference names the mismatch
        # few outputs: OpenBLAS's kernel for a narrow C-ordered operand sums long rows less accurately
        # (1.6e-6 against 2.7e-7 relative for 16 x 4096 x 10), and the transposed route is as fast there
        x2 = x.reshape(-1, self.n_in)
        if (self.n_out % _rnn_gemm.PANEL == 0 and x2.shape[0] and self.n_in
                and (x2.size * self.n_out < PACKED_MAX_WORK or blas_threads() == 1)):
            y = self._product_packed(x2)  # bias added as the first block's start
        else:
            y = x2 @ (self._weights_t() if self.n_out >= 32 else self.params["weights"].T)
            bias = self.params.get("bias")
            if bias is not None:
                y += bias
        return (y.reshape(x.shape[:-3] + (self.n_out, 1, 1) if rank5 else x.shape[:-1] + (self.n_out,)),)
