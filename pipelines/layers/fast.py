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

from typing import NamedTuple

import numpy as np

from . import _kernels
from .activation import Activation
from .base import FusedChain, private_output, register_fast
from .batchnorm import Batchnorm
from .control import Copy
from .unary import Gelu
from ._blas import blas_threads
from ._conv_taps import conv_taps
from . import _conv_train, _gelu_kernel, _global_pool, _winograd
from .conv import Convolution, _im2col, _padded_nhwc, _w_matrix, conv2d_forward, padding_amounts
from .pooling import AVERAGE, MAX, Pooling

__all__ = ["FastActivation", "FastBatchnorm", "FastPooling", "FastConvolution", "FusedConvActivation",
           "FastGelu", "FastCopy", "conv_infer"]


@register_fast("activation")
class FastActivation(Activation):
    """``activation`` with ReLU and its gradient in one pass (``_kernels.relu``, ``relu_grad``), and the
    sigmoid at inference without temporaries."""

    def forward(self, x):
        if self.which == "ReLU":
            y = _kernels.relu(np.asarray(x, dtype=np.float32))
            if y is not None:
                return (y,)
        if self.which == "sigmoid" and isinstance(x, np.ndarray) and x.dtype == np.float32:
            # the reference's 0.5 * (tanh(0.5 x) + 1), the same operations in place on one buffer
            # (in x's memory order) instead of four temporaries and a copy
            y = np.multiply(x, np.float32(0.5))
            np.tanh(y, out=y)
            y += np.float32(1.0)
            y *= np.float32(0.5)
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
    """``pooling`` with 2x2/stride-2 max pooling (and its gradient) in one pass on channel-last buffers, and
    global max and average pooling in training read along the channel-last rows, their gradients written
    channel-last (the layout the batchnorm before them reads)."""

    def _run(self, x, *, train):
        x4 = self._to_4d(x)
        h, w = x4.shape[2:]
        if train and self.is_global and self.type in (MAX, AVERAGE):
            cl = _kernels.channel_last(x4)
            if cl is not None:
                rows = cl.reshape(x4.shape[0], h * w, x4.shape[1])
                if self.type == MAX:
                    y, idx = _global_pool.global_max_train(rows)
                else:
                    y, idx = rows.mean(axis=1, dtype=np.float32), None
                return y.reshape(x.shape[:-2] + (1, 1)), (x4, ("global", idx), y, x.shape)
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
        if idx[0] == "global":
            h, w = x4.shape[2:]
            g = np.ascontiguousarray(gy, dtype=np.float32).reshape(n, c)
            gx = np.empty((n, h * w, c), dtype=np.float32)
            if idx[1] is None:  # average: every position gets g / (H W)
                gx[:] = (g / np.float32(h * w))[:, None, :]
            else:
                _global_pool.global_max_grad(g, idx[1], gx)
            return (gx.reshape(n, h, w, c).transpose(0, 3, 1, 2).reshape(x_shape),), {}
        g = gy.reshape((n, c) + gy.shape[-2:]).transpose(0, 2, 3, 1)
        gx = _kernels.maxpool2_grad(g, idx[1]).transpose(0, 3, 1, 2)
        return (gx.reshape(x_shape),), {}


def _scatter(cols, buf, stride, dilation) -> bool:
    """``_kernels.col2im_nhwc`` for C-contiguous patches; False (the NumPy loop) otherwise."""
    if not cols.flags.c_contiguous:
        return False
    _kernels.col2im_nhwc(cols, buf, stride[0], stride[1], dilation[0], dilation[1])
    return True


def _out_size(size, pads, kernel, stride, dilation):
    return tuple((n + a + b - (k - 1) * d - 1) // s + 1
                 for n, (a, b), k, s, d in zip(size, pads, kernel, stride, dilation))


#: ``conv_taps`` (one accumulating product per kernel tap) from this many input channels, when the
#: batch has at least 8 times as many output pixels as input channels or fewer output than input
#: channels (else im2col's one large product wins: measured on ResNet-18's and DenseNet-121's shapes),
#: and only while BLAS runs on one thread (``_blas``: with two, im2col's one product wins)
TAPS_MIN_CHANNELS = 16


#: Winograd F(2x2, 3x3) (``_winograd``) for 3x3 stride-1 convolutions with at least this many input
#: and output channels. Measured per call, one thread, batch 4 (CPU ms, Winograd / im2col / taps):
#: 128 ch at 28x28 4.6 / 7.2 / 7.3, 256 at 14x14 3.5 / 6.5 / 8.8, 512 at 7x7 4.8 / 7.7 / 20; at 64
#: channels (56x56) and for 128 -> 32 (DenseNet) the taps route is as fast or faster
WINOGRAD_MIN_CHANNELS = 128


def _winograd_weights(conv, weights: np.ndarray) -> np.ndarray:
    """The transformed weights ``U`` of ``conv``, made once per weights array (made read-only, so a
    write in place fails instead of leaving ``U`` stale; training replaces weight arrays)."""
    cached = getattr(conv, "_winograd_u", None)
    if cached is None or cached[0] is not weights:
        weights.flags.writeable = False
        cached = conv._winograd_u = (weights, _winograd.weight_transform(weights))
    return cached[1]


def conv_infer(conv: Convolution, x4: np.ndarray, weights: np.ndarray, bias, clip=None) -> np.ndarray:
    """A (non-transposed) convolution ``[N, C_in, H, W] -> [N, C_out, H_out, W_out]`` at inference.

    The same function as ``conv2d_forward`` (then ``clip(lo, hi)`` when given), by the
    cheapest route: depthwise convolutions (one input channel per group, one output channel
    per input channel) through the one-pass ``_kernels.depthwise_nhwc``; other grouped ones
    as one batched product over the groups instead of a Python loop; 1x1 stride-1 kernels
    straight on the channel-last input without copying it; wide 3x3 stride-1 ones by Winograd's
    F(2x2, 3x3) (``WINOGRAD_MIN_CHANNELS``). The result is a transposed view
    of a channel-last buffer, as ``conv2d_forward`` returns.
    """
    c_out, kc, kh, kw = weights.shape
    groups = conv.groups
    pads = padding_amounts(conv.padding, conv.padding_kind, x4.shape[2:], conv._effective_kernel(), conv.stride)
    n = x4.shape[0]
    h_out, w_out = _out_size(x4.shape[2:], pads, (kh, kw), conv.stride, conv.dilation)
    if groups > 1 and kc == 1 and c_out == groups:
        b = np.zeros(c_out, np.float32) if bias is None else bias
        lo, hi = clip if clip is not None else (-np.inf, np.inf)
        y = _kernels.depthwise_nhwc(x4.transpose(0, 2, 3, 1), weights.reshape(c_out, kh * kw).T.reshape(kh, kw, c_out),
                                    b, pads, (h_out, w_out), conv.stride, conv.dilation, (lo, hi))
        return y.transpose(0, 3, 1, 2)
    if groups > 1:
        y4 = _grouped(x4, weights, bias, pads, conv.stride, conv.dilation, groups, (h_out, w_out))
    elif (kh, kw) == (1, 1) and conv.stride == (1, 1) and pads == ((0, 0), (0, 0)):
        cl = x4.transpose(0, 2, 3, 1)
        x2 = cl.reshape(-1, x4.shape[1]) if cl.flags.c_contiguous else np.ascontiguousarray(cl).reshape(-1, kc)
        y2 = x2 @ _w_matrix(weights)
        if bias is not None:
            y2 += bias
        y4 = y2.reshape(n, h_out, w_out, c_out).transpose(0, 3, 1, 2)
    elif ((kh, kw) == (3, 3) and conv.stride == (1, 1) and conv.dilation == (1, 1)
          and min(kc, c_out) >= WINOGRAD_MIN_CHANNELS):
        return _winograd.winograd_3x3(x4, _winograd_weights(conv, weights), bias, pads, (h_out, w_out), clip)
    elif kc >= TAPS_MIN_CHANNELS and (n * h_out * w_out >= 8 * kc or c_out < kc) and blas_threads() == 1:
        return conv_taps(x4, weights, bias, pads, conv.stride, conv.dilation, (h_out, w_out), clip)
    elif conv.stride == (1, 1) and c_out < x4.shape[1]:
        y4 = _shifted(x4, weights, bias, pads, conv.dilation, (h_out, w_out))
    else:
        y4, _ = conv2d_forward(x4, weights, bias, stride=conv.stride, dilation=conv.dilation, pads=pads, groups=1)
    if clip is not None:
        np.clip(y4, clip[0], clip[1], out=y4)  # in place on the channel-last buffer
    return y4


def _shifted(x4, weights, bias, pads, dilation, out_hw):
    """Stride-1 convolution without im2col: one product per kernel tap on a shifted run of rows.

    In the padded channel-last input flattened to ``[N, Hp * Wp, C]``, the pixels tap ``(i, j)``
    reads for output ``(r, q)`` sit at ``(r + i d) * Wp + q + j d``: for all ``r`` and ``q < Wp``
    that is the contiguous run starting at ``i d Wp + j d``. So ``sum_ij run_ij @ W_ij``
    computes the output on a ``H_out x Wp`` grid (the ``Wp - W_out`` extra columns are dropped)
    without copying ``kH * kW`` patches: the memory traffic falls from ``kH kW C_in`` to
    ``kH kW C_out`` values per output pixel, hence the route for ``C_out < C_in``.
    """
    c_out, c_in, kh, kw = weights.shape
    n = x4.shape[0]
    h_out, w_out = out_hw
    buf = _padded_nhwc(x4, pads, extra=(1, 0))  # one more zero row: the last run overhangs by (kW - 1) d values
    wp = buf.shape[2]
    flat = buf.reshape(n, -1, c_in)
    length = h_out * wp
    taps = weights.transpose(2, 3, 1, 0)  # [kH, kW, C_in, C_out]
    acc = tmp = None
    for i in range(kh):
        for j in range(kw):
            start = i * dilation[0] * wp + j * dilation[1]
            run = flat[:, start:start + length]
            w = np.ascontiguousarray(taps[i, j])
            if acc is None:
                acc = np.matmul(run, w)
            else:
                tmp = np.matmul(run, w, out=tmp)
                acc += tmp
    y = acc.reshape(n, h_out, wp, c_out)[:, :, :w_out]
    y = np.ascontiguousarray(y) if bias is None else np.add(y, bias)
    return y.transpose(0, 3, 1, 2)


def _grouped(x4, weights, bias, pads, stride, dilation, groups, out_hw):
    """Grouped convolution as one ``matmul`` over a ``[groups, M, kH * kW * C_g]`` stack of patches."""
    c_out, kc, kh, kw = weights.shape
    og = c_out // groups
    cols, _ = _im2col(x4, (kh, kw), stride, dilation, pads)
    m = cols.shape[0]
    stack = cols.reshape(m, kh * kw, groups, kc).transpose(2, 0, 1, 3).reshape(groups, m, kh * kw * kc)
    w = weights.reshape(groups, og, kc, kh, kw).transpose(0, 3, 4, 2, 1).reshape(groups, kh * kw * kc, og)
    y = np.matmul(stack, w)  # [groups, M, og]
    y2 = np.ascontiguousarray(y.transpose(1, 0, 2)).reshape(m, c_out)
    if bias is not None:
        y2 += bias
    return y2.reshape(x4.shape[0], out_hw[0], out_hw[1], c_out).transpose(0, 3, 1, 2)


@register_fast("convolution")
class FastConvolution(Convolution):
    """``convolution`` whose inference takes ``conv_infer``'s routes (depthwise kernel, batched
    groups, copy-free 1x1) and whose input gradient (and deconvolution) sums patches back in one
    numba pass."""

    scatter = staticmethod(_scatter)

    def forward(self, x):
        if self.deconv:
            return super().forward(x)
        x = np.asarray(x, dtype=np.float32)
        y4 = conv_infer(self, self._to_4d(x), self.params["weights"], self.params.get("bias"))
        return (y4.reshape(x.shape[:-3] + y4.shape[1:]),)

    def forward_train(self, x):
        """Ungrouped convolutions other than 2-channel ones take ``_conv_train``'s routes."""
        if self.deconv or self.groups != 1 or self.kernel_channels == 2:
            return super().forward_train(x)
        x = np.asarray(x, dtype=np.float32)
        x4 = self._to_4d(x)
        pads = padding_amounts(self.padding, self.padding_kind, x4.shape[2:], self._effective_kernel(), self.stride)
        out_hw = _out_size(x4.shape[2:], pads, self.kernel, self.stride, self.dilation)
        y4, xp = _conv_train.forward_train(x4, self.params["weights"], self.params.get("bias"), stride=self.stride,
                                           dilation=self.dilation, pads=pads, out_hw=out_hw)
        return (y4.reshape(x.shape[:-3] + y4.shape[1:]),), _PaddedInput(xp, x4.shape, pads, x.shape)

    def backward(self, cache, gy, *, need_input_grads: bool = True):
        if not isinstance(cache, _PaddedInput):
            return super().backward(cache, gy, need_input_grads=need_input_grads)
        gx, gw, gb = _conv_train.backward(gy.reshape((-1,) + gy.shape[-3:]), cache.xp, cache.x4_shape,
                                          self.params["weights"], stride=self.stride, dilation=self.dilation,
                                          pads=cache.pads, need_input_grads=need_input_grads)
        grads = {"weights": gw}
        if "bias" in self.params:
            grads["bias"] = gb
        return (None if gx is None else gx.reshape(cache.x_shape),), grads


class _PaddedInput(NamedTuple):
    """What ``FastConvolution.forward_train`` keeps for backward (``_conv_train.forward_train``'s ``kept``)."""

    xp: np.ndarray
    x4_shape: tuple
    pads: tuple
    x_shape: tuple


def _clip_bounds(layer):
    """``(lo, hi)`` when ``layer`` is a ReLU activation or a clip layer, else None."""
    if layer.kind == "activation" and getattr(layer, "which", None) == "ReLU":
        return (np.float32(0), np.float32(np.inf))
    if layer.kind == "clip":
        return (np.float32(layer.p.minVal), np.float32(layer.p.maxVal))
    return None


@register_fast("convolution", "clip")
@register_fast("convolution", "activation")
class FusedConvActivation(FusedChain):
    """``convolution`` -> ReLU ``activation`` or ``clip`` as one convolution whose output is clipped
    in place (inside the depthwise kernel, or on the product's buffer)."""

    kind = "fusedConvActivation"

    def __init__(self, conv, act, bounds):
        self.conv, self.act, self.bounds = conv, act, bounds
        self._span(conv, act)

    def __call__(self, x):
        conv = self.conv
        x = np.asarray(x, dtype=np.float32)
        y4 = conv_infer(conv, conv._to_4d(x), conv.params["weights"], conv.params.get("bias"), self.bounds)
        return (y4.reshape(x.shape[:-3] + y4.shape[1:]),)

    @classmethod
    def match(cls, layers, index, keep, reads):
        """The fused layer for a convolution at ``layers[index]`` read only by the ReLU/clip after it."""
        conv = layers[index]
        act = layers[index + 1] if index + 1 < len(layers) else None
        if not (conv.kind == "convolution" and not conv.deconv and act is not None and act.inputs == conv.outputs
                and private_output(conv, keep, reads)):
            return None
        bounds = _clip_bounds(act)
        return None if bounds is None else (cls(conv, act, bounds), 2)


@register_fast("gelu")
class FastGelu(Gelu):
    """``gelu`` (exact mode) in one vectorized compiled pass (``_gelu_kernel.gelu_exact``: ``x Phi(x)``
    through ``erfc`` in float64, within one float32 ulp everywhere; about 1 ns per value where the
    scalar ``math.erf`` loop it replaces took 5 to 15 ns); the approximations as the reference."""

    def forward(self, x):
        if int(self.p.mode) != 0:
            return super().forward(x)
        return (_gelu_kernel.gelu_exact(x),)


@register_fast("copy")
class FastCopy(Copy):
    """``copy`` without copying: no layer writes into its inputs (each returns new arrays), so
    the output may be the input array itself. Loops converted by coremltools copy their whole
    state blobs back every iteration (a GRU's output sequence: two copies per step)."""

    def forward(self, x):
        return (np.asarray(x, dtype=np.float32),)
