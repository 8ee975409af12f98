"""Normalization layers: mvn, l2normalize, lrn, layerNormalization, softmaxND.

Statistics accumulate in float64 where a sum over many elements is taken.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register
from .common import nd_axis, weights_of


def mean_variance_normalize(x: np.ndarray, *, across_channels: bool, normalize_variance: bool,
                            epsilon: float) -> np.ndarray:
    """``x - mean`` (over H, W; or C, H, W when ``across_channels``), divided by
    ``sqrt(var + epsilon)`` when ``normalize_variance``."""
    axes = (-3, -2, -1) if across_channels else (-2, -1)
    x64 = x.astype(np.float64)
    centered = x64 - x64.mean(axis=axes, keepdims=True)
    if normalize_variance:
        centered /= np.sqrt((centered ** 2).mean(axis=axes, keepdims=True) + epsilon)
    return centered.astype(np.float32)


@register
class MeanVarianceNormalize(Layer):
    """Mean (and variance) normalization within each channel, or across C, H, W."""

    kind = "mvn"

    def forward(self, x):
        p = self.p
        return (mean_variance_normalize(x, across_channels=p.acrossChannels,
                                        normalize_variance=p.normalizeVariance, epsilon=p.epsilon),)


def l2_normalize(x: np.ndarray, *, epsilon: float) -> np.ndarray:
    """``x / sqrt(sum(x ** 2) + epsilon)`` with the sum over the last three axes (C, H, W)."""
    axes = tuple(range(max(1, x.ndim - 3), x.ndim))
    norm = np.sqrt((x.astype(np.float64) ** 2).sum(axis=axes, keepdims=True) + epsilon)
    return (x / norm).astype(np.float32)


@register
class L2Normalize(Layer):
    """Divide by the L2 norm of each example's C x H x W values (plus epsilon under the root)."""

    kind = "l2normalize"

    def forward(self, x):
        return (l2_normalize(x, epsilon=self.p.epsilon),)


def local_response_normalize(x: np.ndarray, *, alpha: float, beta: float, local_size: int, k: float) -> np.ndarray:
    """``x / (k + alpha / local_size * sum_j x_j ** 2) ** beta``, j over ``local_size`` neighbouring channels."""
    squares = x.astype(np.float64) ** 2
    c_axis = x.ndim - 3
    before, after = (local_size - 1) // 2, local_size // 2
    pad = [(0, 0)] * x.ndim
    pad[c_axis] = (before, after)
    cums = np.cumsum(np.pad(squares, pad), axis=c_axis)
    zero = np.zeros_like(np.take(cums, [0], axis=c_axis))
    cums = np.concatenate([zero, cums], axis=c_axis)
    n_channels = x.shape[c_axis]
    window = np.take(cums, np.arange(local_size, local_size + n_channels), axis=c_axis) - np.take(
        cums, np.arange(n_channels), axis=c_axis)
    return (x / (k + alpha / local_size * window) ** beta).astype(np.float32)


@register
class LocalResponseNormalize(Layer):
    """Local response normalization across ``localSize`` channels."""

    kind = "lrn"

    def forward(self, x):
        p = self.p
        return (local_response_normalize(x, alpha=p.alpha, beta=p.beta, local_size=int(p.localSize), k=p.k),)


@register
class LayerNormalization(Layer):
    """``gamma * (x - mean) / sqrt(var + eps) + beta``, statistics over the last ``len(normalizedShape)`` axes."""

    kind = "layerNormalization"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.layerNormalization
        shape = tuple(int(d) for d in p.normalizedShape)
        if not shape:
            raise self.error("normalizedShape is empty", "normalizedShape")
        self.shape = shape
        self.gamma = weights_of(self, "gamma", p.gamma, shape=shape)
        self.beta = weights_of(self, "beta", p.beta, shape=shape)
        self.eps = p.eps

    def forward(self, x):
        if tuple(x.shape[-len(self.shape):]) != self.shape:
            raise self.error(f"input shape {x.shape[1:]} does not end with normalizedShape {self.shape}",
                             "normalizedShape")
        axes = tuple(range(x.ndim - len(self.shape), x.ndim))
        x64 = x.astype(np.float64)
        centered = x64 - x64.mean(axis=axes, keepdims=True)
        normed = centered / np.sqrt((centered ** 2).mean(axis=axes, keepdims=True) + self.eps)
        return ((normed * self.gamma + self.beta).astype(np.float32),)


def softmax(x: np.ndarray, *, axis: int) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


@register
class SoftmaxND(Layer):
    """Softmax along the given axis."""

    kind = "softmaxND"

    def forward(self, x):
        return (softmax(x, axis=nd_axis(self.p.axis, x.ndim)),)
