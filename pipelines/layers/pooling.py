"""The ``pooling`` layer (max, average, L2; windowed or global), with its gradients.

Core ML's definition: each ``kernelSize`` window of ``(H, W)`` in ``[..., C, H, W]``
(see the package docstring for the tensor layout), moved by ``stride``, becomes its
maximum, mean or L2 norm ``sqrt(sum x^2)``. Padding: ``valid`` (explicit border
amounts; output ``floor((H + pads - k) / s) + 1``), ``same`` (output ``ceil(H / s)``),
or ``includeLastPixel`` (symmetric ``paddingAmounts``, output
``ceil((H + 2 pad - k) / s) + 1``, less one if the last window would start inside
the bottom padding). Padded pixels never win a max; an average divides by the
pixels inside the padded image, or only by the real pixels when
``avgPoolExcludePadding``. ``globalPooling`` pools all of ``(H, W)``.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register
from .conv import padding_amounts

__all__ = ["Pooling"]

MAX, AVERAGE, L2 = 0, 1, 2


def _empty_like_layout(x, shape, fill=None):
    """A float32 array of logical shape ``[N, C, H, W]`` stored in ``x``'s memory order (channel-last or not)."""
    n, c, h, w = shape
    if x.strides[1] < x.strides[3]:  # channel-last memory (e.g. a convolution's output)
        buf = np.empty((n, h, w, c), dtype=np.float32).transpose(0, 3, 1, 2)
    else:
        buf = np.empty(shape, dtype=np.float32)
    if fill is not None:
        buf[...] = fill
    return buf


def _taps(buf, kernel, stride, out_hw):
    """``(tap index, view [N, C, H_out, W_out])`` for each position of the pooling window."""
    ho, wo = out_hw
    for i in range(kernel[0]):  # loops over window taps only; each covers the whole batch
        for j in range(kernel[1]):
            yield i * kernel[1] + j, buf[:, :, i:i + stride[0] * (ho - 1) + 1:stride[0],
                                         j:j + stride[1] * (wo - 1) + 1:stride[1]]


class _Geometry:
    """Padding, output size and per-window divisors of one pooling layer for one input size."""

    def __init__(self, layer, h, w):
        k, s = layer.kernel, layer.stride
        if layer.padding_kind == "includeLastPixel":
            amounts = list(layer.padding.paddingAmounts) or [0, 0]
            ph, pw = int(amounts[0]), int(amounts[1])
            out = []
            for n, kk, ss, pp in zip((h, w), k, s, (ph, pw)):
                o = -(-(n + 2 * pp - kk) // ss) + 1
                if pp and (o - 1) * ss >= n + pp:
                    o -= 1
                out.append(o)
            self.pads = ((ph, ph), (pw, pw))
        else:
            self.pads = padding_amounts(layer.padding, layer.padding_kind, (h, w), k, s)
            out = [(n + a + b - kk) // ss + 1 for n, (a, b), kk, ss in zip((h, w), self.pads, k, s)]
        self.out = tuple(out)
        if min(self.out) < 1:
            raise layer.error(f"input of {h}x{w} is smaller than the {k[0]}x{k[1]} pooling window", "kernelSize")
        (pt, pb), (pl, pr) = self.pads
        # buffer large enough for every window (includeLastPixel windows may overhang the padding)
        self.buf_hw = (max(h + pt + pb, (out[0] - 1) * s[0] + k[0]), max(w + pl + pr, (out[1] - 1) * s[1] + k[1]))
        self.count = None
        if layer.type == AVERAGE:
            inside = np.zeros((1, 1) + self.buf_hw, dtype=np.float32)
            if layer.exclude_padding:
                inside[:, :, pt:pt + h, pl:pl + w] = 1
            else:
                inside[:, :, :h + pt + pb, :w + pl + pr] = 1
            count = sum(view for _, view in _taps(inside, k, s, self.out))[0, 0]
            self.count = np.maximum(count, 1.0).astype(np.float32)

    def padded(self, x, fill):
        n, c, h, w = x.shape
        (pt, _), (pl, _) = self.pads
        if self.buf_hw == (h, w):
            return x
        buf = _empty_like_layout(x, (n, c) + self.buf_hw, fill)
        buf[:, :, pt:pt + h, pl:pl + w] = x
        return buf


@register
class Pooling(Layer):
    """``pooling``: max, average or L2 over windows of ``(H, W)``, or over all of it (global)."""

    kind = "pooling"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.pooling
        self.type = int(p.type)
        if self.type not in (MAX, AVERAGE, L2):
            raise self.error(f"type={self.type} is not MAX (0), AVERAGE (1) or L2 (2)", "type")
        self.is_global = bool(p.globalPooling)
        self.kernel = tuple(int(v) for v in p.kernelSize) or (1, 1)
        self.stride = tuple(int(v) for v in p.stride) or (1, 1)
        if not self.is_global and (len(self.kernel) != 2 or len(self.stride) != 2 or min(self.kernel + self.stride) < 1):
            raise self.error(f"kernelSize={list(self.kernel)}, stride={list(self.stride)}; expected two positive "
                             "integers each", "kernelSize")
        self.padding_kind = p.WhichOneof("PoolingPaddingType")
        self.padding = getattr(p, self.padding_kind) if self.padding_kind else None
        self.exclude_padding = bool(p.avgPoolExcludePadding)
        self._geometry: dict[tuple[int, int], _Geometry] = {}

    def _geo(self, h, w):
        if (h, w) not in self._geometry:
            self._geometry[(h, w)] = _Geometry(self, h, w)
        return self._geometry[(h, w)]

    def _to_4d(self, x):
        if x.ndim < 4:
            raise self.error(f"input {self.inputs[0]!r} has shape {x.shape[1:]}, expected [..., C, H, W]")
        return x.reshape((-1,) + x.shape[-3:])

    def forward(self, x):
        y, _ = self._run(np.asarray(x, dtype=np.float32), train=False)
        return (y,)

    def forward_train(self, x):
        y, cache = self._run(np.asarray(x, dtype=np.float32), train=True)
        return (y,), cache

    def _run(self, x, *, train):
        x4 = self._to_4d(x)
        n, c, h, w = x4.shape
        if self.is_global:
            flat = x4.reshape(n, c, h * w)
            if self.type == MAX:
                idx = flat.argmax(axis=2)[..., None] if train else None
                y = flat.max(axis=2)
            elif self.type == AVERAGE:
                idx, y = None, flat.mean(axis=2)
            else:
                idx, y = None, np.sqrt(np.einsum("ncq,ncq->nc", flat, flat))
            return y.reshape(x.shape[:-2] + (1, 1)), (x4, idx, y, x.shape)
        geo = self._geo(h, w)
        k, s = self.kernel, self.stride
        buf = geo.padded(x4, -np.inf if self.type == MAX else 0.0)
        idx = None
        taps = _taps(buf, k, s, geo.out)
        _, first = next(taps)
        y = np.array(first, dtype=np.float32, order="K")
        if self.type == MAX:
            if train:
                idx = np.zeros(y.shape, dtype=np.uint8)
            for t, view in taps:
                if train:
                    np.copyto(idx, np.uint8(t), where=view > y)  # strict: the first maximum wins
                np.maximum(y, view, out=y)
        elif self.type == AVERAGE:
            for _, view in taps:
                y += view
            y /= geo.count
        else:
            y *= y
            for _, view in taps:
                y += view * view
            np.sqrt(y, out=y)
        return y.reshape(x.shape[:-2] + geo.out), (x4, idx, y, x.shape)

    def backward(self, cache, gy, *, need_input_grads: bool = True):
        x4, idx, y, x_shape = cache
        n, c, h, w = x4.shape
        if self.is_global:
            g = gy.reshape(n, c, 1)
            if self.type == MAX:
                gx = np.zeros((n, c, h * w), dtype=np.float32)
                np.put_along_axis(gx, idx, g, axis=2)
            elif self.type == AVERAGE:
                gx = np.broadcast_to(g / np.float32(h * w), (n, c, h * w))
            else:
                gx = x4.reshape(n, c, h * w) * (g / np.maximum(y.reshape(n, c, 1), 1e-30))
            return (np.ascontiguousarray(gx).reshape(x_shape),), {}
        geo = self._geo(h, w)
        k, s = self.kernel, self.stride
        g = gy.reshape(n, c, *geo.out)
        (pt, _), (pl, _) = geo.pads
        gbuf = _empty_like_layout(x4, (n, c) + geo.buf_hw, 0.0)
        if self.type == MAX:
            zero = np.float32(0)
            for t, view in _taps(gbuf, k, s, geo.out):
                view += np.where(idx == t, g, zero)
        elif self.type == AVERAGE:
            share = g / geo.count
            for _, view in _taps(gbuf, k, s, geo.out):
                view += share
        else:
            share = g / np.maximum(y, np.float32(1e-30))
            xbuf = geo.padded(x4, 0.0)
            for (_, view), (_, xv) in zip(_taps(gbuf, k, s, geo.out), _taps(xbuf, k, s, geo.out)):
                view += xv * share
        gx = gbuf[:, :, pt:pt + h, pl:pl + w]
        return (gx.reshape(x_shape),), {}
