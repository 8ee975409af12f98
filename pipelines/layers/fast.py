"""Faster variants of reference layers, through the numba kernels of ``_kernels``.

Each class subclasses its kind's plain reference class, registers with
``@register_fast(kind)`` and is built in its place by ``network.build_layers``
(inference and training) unless ``fast=False``. A variant only takes the kernel
route for the memory layouts the kernel handles (channel-last buffers, as
convolutions write them) and otherwise calls the reference method, so it computes
the same function; ``tests/pipelines/layers/test_fast_paths.py`` checks each against
its reference on random inputs.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from .activation import Activation
from .base import register_fast
from .batchnorm import Batchnorm
from .conv import Convolution
from .pooling import MAX, Pooling

__all__ = ["FastActivation", "FastBatchnorm", "FastPooling", "FastConvolution"]


@register_fast("activation")
class FastActivation(Activation):
    """``activation`` with ReLU and its gradient in one pass (``_kernels.relu``, ``relu_grad``)."""

    def forward(self, x):
        if self.which == "ReLU":
            y = _kernels.relu(np.asarray(x, dtype=np.float32))
            if y is not None:
                return (y,)
        return super().forward(x)

    def forward_train(self, x):
        if self.which == "ReLU":
            y = _kernels.relu(np.asarray(x, dtype=np.float32))
            if y is not None:
                return (y,), (None, y, self.alpha, self.beta)
        return super().forward_train(x)

    def backward(self, cache, gy, *, need_input_grads: bool = True):
        if self.which == "ReLU":
            gx = _kernels.relu_grad(gy, cache[1])
            if gx is not None:
                return (gx,), {}
        return super().backward(cache, gy, need_input_grads=need_input_grads)


@register_fast("batchnorm")
class FastBatchnorm(Batchnorm):
    """``batchnorm`` with one-pass statistics, affine map and input gradient on channel-last buffers."""

    def _stats(self, x4):
        if _kernels.channel_last(x4) is None:
            return super()._stats(x4)
        x2 = x4.transpose(0, 2, 3, 1).reshape(-1, x4.shape[1])
        m = x2.shape[0]
        total, total_sq = _kernels.channel_sums(x2, x2)
        mean, sq = total / m, total_sq / m
        return mean, np.maximum(sq - mean * mean, 0.0), m

    def _apply(self, x4, scale, shift):
        cl = _kernels.channel_last(x4)
        if cl is None:
            return super()._apply(x4, scale, shift)
        y2 = _kernels.affine(cl.reshape(-1, x4.shape[1]), scale.reshape(-1), shift.reshape(-1))
        return y2.reshape(cl.shape).transpose(0, 3, 1, 2)

    @staticmethod
    def _both_channel_last(g4, x4):
        return _kernels.channel_last(g4) is not None and _kernels.channel_last(x4) is not None

    def _grad_sums(self, g4, x4, g2, x2):
        if not self._both_channel_last(g4, x4):
            return super()._grad_sums(g4, x4, g2, x2)
        return _kernels.channel_sums(g2, x2)

    def _input_grad(self, g4, x4, g2, x2, coefficients):
        if not self._both_channel_last(g4, x4):
            return super()._input_grad(g4, x4, g2, x2, coefficients)
        gx2 = _kernels.bn_input_grad(g2, x2, *coefficients)
        return gx2.reshape(g4.shape[0], g4.shape[2], g4.shape[3], -1).transpose(0, 3, 1, 2)


@register_fast("pooling")
class FastPooling(Pooling):
    """``pooling`` with 2x2/stride-2 max pooling (and its gradient) in one pass on channel-last buffers."""

    def _run(self, x, *, train):
        x4 = self._to_4d(x)
        h, w = x4.shape[2:]
        if (not self.is_global and self.type == MAX and self.kernel == (2, 2) and self.stride == (2, 2)
                and h % 2 == 0 and w % 2 == 0 and self._geo(h, w).pads == ((0, 0), (0, 0))):
            cl = _kernels.channel_last(x4)
            if cl is not None:
                y_cl, idx = _kernels.maxpool2_train(cl)
                y = y_cl.transpose(0, 3, 1, 2)
                return y.reshape(x.shape[:-2] + y.shape[-2:]), (x4, ("pool2", idx), y, x.shape)
        return super()._run(x, train=train)

    def backward(self, cache, gy, *, need_input_grads: bool = True):
        x4, idx, _, x_shape = cache
        if not isinstance(idx, tuple):
            return super().backward(cache, gy, need_input_grads=need_input_grads)
        n, c = x4.shape[:2]
        g = gy.reshape((n, c) + gy.shape[-2:]).transpose(0, 2, 3, 1)
        gx = _kernels.maxpool2_grad(g, idx[1]).transpose(0, 3, 1, 2)
        return (gx.reshape(x_shape),), {}


def _scatter(cols, buf, stride, dilation) -> bool:
    """``_kernels.col2im_nhwc`` for C-contiguous patches; False (the NumPy loop) otherwise."""
    if not cols.flags.c_contiguous:
        return False
    _kernels.col2im_nhwc(cols, buf, stride[0], stride[1], dilation[0], dilation[1])
    return True


@register_fast("convolution")
class FastConvolution(Convolution):
    """``convolution`` whose input gradient (and deconvolution) sums patches back in one numba pass."""

    scatter = staticmethod(_scatter)
