"""Inference chains fused into one compiled pass (swish, batchnorm -> ReLU), and ``mvn`` in one pass.

- ``activation(sigmoid) -> multiply(x, sigmoid(x))`` (the swish / SiLU coremltools writes for
  ``nn.SiLU``, 65 times in EfficientNet-B0): one pass ``x * sigmoid(x)`` in ``x``'s memory
  order instead of the sigmoid's four passes, its array and the product's pass. The sigmoid
  is the reference's ``0.5 * (tanh(x / 2) + 1)`` with ``_rnn_kernels.tanh32`` (|error| <= 3e-7;
  the kernel, ``_rnn_kernels.swish``, sits beside it: numba's cache does not see a change in
  a function another file inlines).
- ``batchnorm`` (stored statistics) ``-> activation(ReLU)`` (DenseNet's pre-activation
  units, after each concatenation): ``max(x * scale + shift, 0)`` in one pass, written
  channel-last (the convolution after it reads channel-last inputs without a copy); it reads a
  concatenation's rows in ``fast_concat``'s growing buffer in place.

- ``innerProduct -> activation(ReLU)`` (``FusedInnerProductRelu``; MLPs, transformer feed-forward
  blocks): the ReLU in place on the product's fresh buffer, one array and one call fewer.

- ``mvn`` (``FastMeanVarianceNormalize``; the layer norm of coremltools' transformers): per
  row of the normalized axes, mean and variance in float64 as the reference takes them, in
  one compiled call instead of a float64 copy and six NumPy passes.

- ``mvn -> scale`` (``FusedMvnScale``; coremltools' layer norm: the normalization, then gamma
  and beta as a ``scale`` layer): the same per-row pass writes ``m * gamma + beta``, with ``m``
  rounded to float32 first as the ``mvn`` layer's output is (one array and two passes fewer).

``network.fuse_layers`` puts the chains in place of runs whose middle blob nobody else reads;
``test_fast_paths.py`` compares each with the reference layers.
"""

from __future__ import annotations

import numba
import numpy as np

from . import fast_concat
from ._rnn_kernels import swish
from .base import FusedChain, private_output, register_fast, relu_after
from .normalization import MeanVarianceNormalize

__all__ = ["FusedSwish", "FusedBatchnormRelu", "FusedInnerProductRelu", "FastMeanVarianceNormalize", "FusedMvnScale"]

_F = np.float32
_JIT = dict(cache=True, nogil=True, fastmath=True, error_model="numpy")


@numba.njit(**_JIT)
def _affine_relu_nchw(x, scale, shift, out):
    """``x`` ``[N, C, P]`` -> ``out`` ``[N, P, C]``, in tiles of 64 pixels (reads and writes stay cached)."""
    n, c, p = x.shape
    for b in range(n):
        for p0 in range(0, p, 64):
            p1 = min(p0 + 64, p)
            for ch in range(c):
                s, t = scale[ch], shift[ch]
                for q in range(p0, p1):
                    v = x[b, ch, q] * s + t
                    out[b, q, ch] = v if v > 0 else _F(0)


@numba.njit(**_JIT)
def _affine_relu_nhwc(x, scale, shift, out):
    m, c = x.shape
    for i in range(m):
        for ch in range(c):
            v = x[i, ch] * scale[ch] + shift[ch]
            out[i, ch] = v if v > 0 else _F(0)


@numba.njit(**_JIT)
def _affine_relu_rows(x, c, scale, shift, out):
    """``x`` ``[M, capacity]`` rows whose first ``c`` columns are the values -> ``out`` ``[M, c]``."""
    for i in range(x.shape[0]):
        for ch in range(c):
            v = x[i, ch] * scale[ch] + shift[ch]
            out[i, ch] = v if v > 0 else _F(0)


def _dense_order(x: np.ndarray):
    """``(flat view in memory order, permutation)`` of a dense float32 array, or None."""
    if x.dtype != np.float32 or x.size == 0:
        return None
    perm = np.argsort([-s for s in x.strides], kind="stable")
    xp = x.transpose(perm)
    return (xp.reshape(-1), perm) if xp.flags.c_contiguous else None


@register_fast("activation", "multiply")
class FusedSwish(FusedChain):
    """``s = sigmoid(x)`` -> ``multiply(x, s)`` (either order) as one pass."""

    kind = "fusedSwish"

    def __init__(self, act, mul):
        self.act, self.mul = act, mul
        self._span(act, mul)

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float32)
        dense = _dense_order(x)
        if dense is None:
            x = np.ascontiguousarray(x)
            dense = (x.reshape(-1), np.arange(x.ndim))
        flat, perm = dense
        out = np.empty_like(flat)
        swish(flat, out)
        shape = tuple(x.shape[i] for i in perm)
        return (out.reshape(shape).transpose(np.argsort(perm)),)

    @classmethod
    def match(cls, layers, index, keep, reads):
        act = layers[index]
        mul = layers[index + 1] if index + 1 < len(layers) else None
        if not (act.kind == "activation" and getattr(act, "which", None) == "sigmoid" and mul is not None
                and mul.kind == "multiply" and len(mul.inputs) == 2 and private_output(act, keep, reads)
                and sorted(mul.inputs) == sorted([act.inputs[0], act.outputs[0]])
                and act.inputs[0] != act.outputs[0]):
            return None
        return cls(act, mul), 2


@register_fast("batchnorm", "activation")
class FusedBatchnormRelu(FusedChain):
    """``batchnorm`` with stored statistics -> ReLU as one pass, the result channel-last."""

    kind = "fusedBatchnormRelu"

    def __init__(self, bn, relu):
        self.bn, self.relu = bn, relu
        self._span(bn, relu)

    def __call__(self, x):
        bn = self.bn
        x = np.asarray(x, dtype=np.float32)
        x4 = bn._to_4d(x)
        scale, shift = bn._affine(bn.buffers["mean"], bn.buffers["variance"])
        scale, shift = np.ascontiguousarray(scale.reshape(-1)), np.ascontiguousarray(shift.reshape(-1))
        n, c, h, w = x4.shape
        out = np.empty((n, h, w, c), np.float32)
        cl = x4.transpose(0, 2, 3, 1)
        grown = fast_concat.rows(x)  # a dense block's concatenation: rows of a wider buffer
        if grown is not None and grown[1] == c and grown[0].shape[0] == n * h * w:
            _affine_relu_rows(grown[0], c, scale, shift, out.reshape(-1, c))
        elif cl.flags.c_contiguous:
            _affine_relu_nhwc(cl.reshape(-1, c), scale, shift, out.reshape(-1, c))
        else:
            _affine_relu_nchw(np.ascontiguousarray(x4).reshape(n, c, h * w), scale, shift, out.reshape(n, h * w, c))
        return (out.transpose(0, 3, 1, 2).reshape(x.shape),)

    @classmethod
    def match(cls, layers, index, keep, reads):
        bn, relu = layers[index], relu_after(layers, index)
        if not (bn.kind == "batchnorm" and not bn.compute_mean_var and relu is not None
                and private_output(bn, keep, reads)):
            return None
        return cls(bn, relu), 2


@register_fast("innerProduct", "activation")
class FusedInnerProductRelu(FusedChain):
    """``innerProduct`` -> ReLU: the product's fresh output ``[..., C_out]`` clipped in place with the
    reference's ``np.maximum(y, 0)`` (the same bits, NaN kept), one array and one layer call fewer."""

    kind = "fusedInnerProductRelu"

    def __init__(self, dense, relu):
        self.dense, self.relu = dense, relu
        self._span(dense, relu)
        self.params = dense.params  # the runtime's work estimate reads the weights here

    def __call__(self, x):
        (y,) = self.dense.forward(x)  # a new array (the product, or the reference's contiguous copy)
        np.maximum(y, _F(0), out=y)
        return (y,)

    @classmethod
    def match(cls, layers, index, keep, reads):
        dense, relu = layers[index], relu_after(layers, index)
        if not (dense.kind == "innerProduct" and relu is not None and private_output(dense, keep, reads)
                and not getattr(dense, "controls_flow", False)):
            return None
        return cls(dense, relu), 2


@numba.njit(cache=True, nogil=True)
def _mvn_rows(x, epsilon, scale_variance, out):
    rows, length = x.shape
    for i in range(rows):
        total = 0.0
        for j in range(length):
            total += np.float64(x[i, j])
        mean = total / length
        sq = 0.0
        for j in range(length):
            d = np.float64(x[i, j]) - mean
            sq += d * d
        inv = 1.0 / np.sqrt(sq / length + epsilon) if scale_variance else 1.0
        for j in range(length):
            out[i, j] = (np.float64(x[i, j]) - mean) * inv


@register_fast("mvn")
class FastMeanVarianceNormalize(MeanVarianceNormalize):
    """``mvn`` as one compiled pass per row (float64 statistics, as the reference)."""

    def forward(self, x):
        p = self.p
        x = np.asarray(x, dtype=np.float32)
        k = 3 if p.acrossChannels else 2
        if x.ndim < k + 1:
            return super().forward(x)
        flat = np.ascontiguousarray(x).reshape(-1, int(np.prod(x.shape[-k:])))
        out = np.empty(flat.shape, np.float32)
        _mvn_rows(flat, float(p.epsilon), bool(p.normalizeVariance), out)
        return (out.reshape(x.shape),)


@numba.njit(cache=True, nogil=True, fastmath={"contract", "reassoc"})
def _mvn_scale_rows(x, epsilon, scale_variance, gamma, beta, out):
    """``_mvn_rows`` then ``out = m * gamma[i % G] + beta[i % G]`` with ``m`` the float32 normalized row."""
    rows, length = x.shape
    groups = gamma.shape[0]
    for i in range(rows):
        total = 0.0
        for j in range(length):
            total += np.float64(x[i, j])
        mean = total / length
        sq = 0.0
        for j in range(length):
            d = np.float64(x[i, j]) - mean
            sq += d * d
        inv = 1.0 / np.sqrt(sq / length + epsilon) if scale_variance else 1.0
        g = i % groups
        for j in range(length):
            m = np.float32((np.float64(x[i, j]) - mean) * inv)
            out[i, j] = m * gamma[g, j] + beta[g, j]


@register_fast("mvn", "scale")
class FusedMvnScale(FusedChain):
    """``mvn`` -> ``scale`` (gamma, beta broadcast over the last three axes) as one compiled pass per row."""

    kind = "fusedMvnScale"

    def __init__(self, mvn, scale):
        self.mvn, self.scale = mvn, scale
        self._span(mvn, scale)

    def __call__(self, x):
        p = self.mvn.p
        x = np.asarray(x, dtype=np.float32)
        k = 3 if p.acrossChannels else 2
        gamma = self.scale.scale
        beta = self.scale.bias if self.scale.bias is not None else np.zeros((1, 1, 1), np.float32)
        try:
            if x.ndim < 4:
                raise ValueError("rank")
            chw = x.shape[-3:]
            gamma = np.broadcast_to(gamma, chw).reshape(-1 if k == 2 else 1, int(np.prod(chw[3 - k:])))
            beta = np.broadcast_to(beta, chw).reshape(gamma.shape)
        except ValueError:  # shapes the layers name in their own errors
            return self.scale(*self.mvn(x))
        flat = np.ascontiguousarray(x).reshape(-1, gamma.shape[1])
        out = np.empty(flat.shape, np.float32)
        _mvn_scale_rows(flat, float(p.epsilon), bool(p.normalizeVariance), np.ascontiguousarray(gamma, np.float32),
                        np.ascontiguousarray(beta, np.float32), out)
        return (out.reshape(x.shape),)

    @classmethod
    def match(cls, layers, index, keep, reads):
        mvn = layers[index]
        scale = layers[index + 1] if index + 1 < len(layers) else None
        if not (mvn.kind == "mvn" and scale is not None and scale.kind == "scale"
                and scale.inputs == mvn.outputs and private_output(mvn, keep, reads)):
            return None
        return cls(mvn, scale), 2
