"""batchedMatmul: matrix products over the last two axes, or with a stored weight matrix."""

from __future__ import annotations

import numpy as np

from .base import Layer, register
from .common import align, weights_of


@register
class BatchedMatmul(Layer):
    """Two inputs: ``a @ b`` over the last two axes (leading axes broadcast; 1-D operands
    promoted as in NumPy; optional transposes). One input: ``a @ W + bias`` with
    ``W`` [X1, X2] stored column-major. With ``int8DynamicQuantize`` the int8 weights are
    dequantized and the product is taken in float32 (Core ML also quantizes the input)."""

    kind = "batchedMatmul"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.batchedMatmul
        self.weights = self.bias = None
        if len(spec.input) == 1:
            x1, x2 = int(p.weightMatrixFirstDimension), int(p.weightMatrixSecondDimension)
            self.weights = weights_of(self, "weights", p.weights, shape=(x2, x1)).T.copy()
            if p.hasBias:
                self.bias = weights_of(self, "bias", p.bias, shape=(x2,))

    def forward(self, a, b=None):
        p = self.p
        if b is None:
            y = a @ self.weights
            return (y + self.bias if self.bias is not None else y,)
        if a.ndim == 2:
            a = a[:, np.newaxis, :]
            squeeze_rows = True
        else:
            squeeze_rows = False
        squeeze_cols = b.ndim == 2
        if squeeze_cols:
            b = b[:, :, np.newaxis]
        if p.transposeA:
            a = np.swapaxes(a, -1, -2)
        if p.transposeB:
            b = np.swapaxes(b, -1, -2)
        a, b = align(a, b)
        y = np.matmul(a, b)
        if squeeze_cols:
            y = y[..., 0]
        elif squeeze_rows:
            y = y[..., 0, :]
        return (y.astype(np.float32),)
