"""The ``batchnorm`` layer, with its gradients and a training mode.

Core ML's definition: per channel ``c`` (axis -3 of ``[..., C, H, W]``, see the
package docstring for the tensor layout),
``y = gamma[c] * (x - mean[c]) / sqrt(variance[c] + epsilon) + beta[c]`` with the
stored ``mean``/``variance``; when ``computeMeanVar`` is set the mean and the
(biased) variance come from the input itself: over ``(H, W)`` of each example when
``instanceNormalization`` is set, else over the batch and ``(H, W)``.

Training: Core ML's update keeps batchnorm frozen (stored statistics, trainable
``gamma``/``beta`` only through the from-scratch trainer). With
``batch_statistics = True`` (set by ``pipelines.update.fit_network``) a mini-batch
is normalised with its own mean and biased variance and the stored statistics
follow ``running = (1 - momentum) * running + momentum * batch`` with the unbiased
batch variance (PyTorch's ``BatchNorm2d`` rule, momentum 0.1).
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register
from .weights import read_weights

__all__ = ["Batchnorm"]


def _channel_last_2d(x4):
    """``[N, C, H, W]`` as ``[N * H * W, C]`` (a view when the memory is channel-last, as convolutions write it)."""
    return x4.transpose(0, 2, 3, 1).reshape(-1, x4.shape[1])


def _channel_sums(a, b=None):
    """Per-channel ``sum(a)`` (or ``sum(a * b)``) of ``[M, C]`` arrays, in float64 across row chunks."""
    m, c = a.shape
    k = next(k for k in (64, 48, 32, 16, 8, 4, 2, 1) if m % k == 0 and m >= k)
    a3 = a.reshape(k, m // k, c)
    part = np.einsum("kmc->kc", a3) if b is None else np.einsum("kmc,kmc->kc", a3, b.reshape(k, m // k, c))
    return part.sum(axis=0, dtype=np.float64)


@register
class Batchnorm(Layer):
    """``batchnorm``: per-channel affine normalisation with stored or computed statistics."""

    kind = "batchnorm"
    param_names = ("gamma", "beta")
    param_fields = {"gamma": "gamma", "beta": "beta", "mean": "mean", "variance": "variance"}
    momentum = 0.1

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.batchnorm
        self.channels = int(p.channels)
        if self.channels <= 0:
            raise self.error(f"channels={self.channels}, expected > 0", "channels")
        self.epsilon = np.float32(p.epsilon)
        self.compute_mean_var = bool(p.computeMeanVar)
        self.instance = bool(p.instanceNormalization)
        shape = (self.channels,)
        for name in ("gamma", "beta"):
            self.params[name] = read_weights(getattr(p, name), shape=shape, where=f"{self.where}.batchnorm.{name}")
        self.buffers: dict[str, np.ndarray] = {}
        if not self.compute_mean_var:
            for name in ("mean", "variance"):
                self.buffers[name] = read_weights(getattr(p, name), shape=shape,
                                                  where=f"{self.where}.batchnorm.{name}")
        self.batch_statistics = False

    def _to_4d(self, x):
        if x.ndim < 4 or x.shape[-3] != self.channels:
            raise self.error(f"input {self.inputs[0]!r} has shape {x.shape[1:]}, expected [..., {self.channels}, H, W]")
        return x.reshape((-1,) + x.shape[-3:])

    def _stats(self, x4):
        """Mean and biased variance over the batch and (H, W), in one pass per moment."""
        x2 = _channel_last_2d(x4)
        m = x2.shape[0]
        mean = _channel_sums(x2) / m
        sq = _channel_sums(x2, x2) / m
        return mean, np.maximum(sq - mean * mean, 0.0), m

    def forward(self, x):
        x = np.asarray(x, dtype=np.float32)
        x4 = self._to_4d(x)
        if self.compute_mean_var:
            axes = (2, 3) if self.instance else (0, 2, 3)
            mean = x4.mean(axis=axes, keepdims=True, dtype=np.float64)
            var = x4.var(axis=axes, keepdims=True, dtype=np.float64)
            inv = 1.0 / np.sqrt(var + self.epsilon)
            scale = (self.params["gamma"][:, None, None] * inv).astype(np.float32)
            shift = (self.params["beta"][:, None, None] - mean * scale).astype(np.float32)
        else:
            scale, shift = self._affine(self.buffers["mean"], self.buffers["variance"])
        return (self._apply(x4, scale, shift).reshape(x.shape),)

    def _apply(self, x4, scale, shift):
        """``x4 * scale + shift`` per channel (keeps ``x4``'s memory order)."""
        y = x4 * scale
        y += shift
        return y

    def _affine(self, mean, var):
        inv = 1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + self.epsilon)
        scale = self.params["gamma"] * inv
        shift = self.params["beta"] - mean * scale
        return scale.astype(np.float32)[:, None, None], shift.astype(np.float32)[:, None, None]

    def forward_train(self, x):
        x = np.asarray(x, dtype=np.float32)
        x4 = self._to_4d(x)
        if not self.batch_statistics:
            if self.compute_mean_var:
                raise self.error("training through a batchnorm with computeMeanVar is not supported",
                                 "computeMeanVar")
            scale, shift = self._affine(self.buffers["mean"], self.buffers["variance"])
            return (self._apply(x4, scale, shift).reshape(x.shape),), (None, scale, None, None, x.shape)
        mean, var, m = self._stats(x4)
        inv = 1.0 / np.sqrt(var + float(self.epsilon))
        scale, shift = self._affine(mean, var)
        y = self._apply(x4, scale, shift)
        if self.buffers:
            mom = self.momentum
            self.buffers["mean"] = ((1 - mom) * self.buffers["mean"] + mom * mean).astype(np.float32)
            unbiased = var * m / max(m - 1, 1)
            self.buffers["variance"] = ((1 - mom) * self.buffers["variance"] + mom * unbiased).astype(np.float32)
        return (y.reshape(x.shape),), (x4, scale, mean, inv, x.shape)

    def backward(self, cache, gy, *, need_input_grads: bool = True):
        x4, scale, mean, inv, x_shape = cache
        g4 = gy.reshape((-1,) + gy.shape[-3:])
        if x4 is None:  # stored statistics: an affine map
            return (None if not need_input_grads else (g4 * scale).reshape(x_shape),), {}
        g2 = _channel_last_2d(g4)
        x2 = _channel_last_2d(x4)
        m = x2.shape[0]
        sum_g, sum_gx = self._grad_sums(g4, x4, g2, x2)
        grad_gamma = (sum_gx - mean * sum_g) * inv  # sum(g * xhat)
        grads = {"gamma": grad_gamma.astype(np.float32), "beta": sum_g.astype(np.float32)}
        if not need_input_grads:
            return (None,), grads
        gamma = self.params["gamma"].astype(np.float64)
        # dx = gamma * inv / m * (m g - sum_g - xhat * sum(g xhat)), written as a g + b x + c per channel
        a = gamma * inv
        b = -gamma * inv * inv * grad_gamma / m
        c = -a * sum_g / m - b * mean
        return (self._input_grad(g4, x4, g2, x2, (a, b, c)).reshape(x_shape),), grads

    def _grad_sums(self, g4, x4, g2, x2):
        """Per-channel ``(sum(g), sum(g * x))`` of the ``[M, C]`` views ``g2``, ``x2`` of ``g4``, ``x4``."""
        return _channel_sums(g2), _channel_sums(g2, x2)

    def _input_grad(self, g4, x4, g2, x2, coefficients):
        """``g * a + x * b + c`` per channel, ``[N, C, H, W]`` (the input gradient written as an affine map)."""
        a, b, c = coefficients
        gx = g4 * a.astype(np.float32)[:, None, None]
        gx += x4 * b.astype(np.float32)[:, None, None]
        gx += c.astype(np.float32)[:, None, None]
        return gx
