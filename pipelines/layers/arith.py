"""Elementwise arithmetic between blobs: the legacy layers (add, multiply, average, max,
min, scale, bias, dot) and Core ML 3's broadcastable, comparison and logical layers.

Broadcasting follows NumPy's rules on the example tensors (``common.align`` keeps the
batch axis first). Comparison and logical layers output 1.0 for true, 0.0 for false.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register
from .common import align, to_float, weights_of


def _reduce_inputs(op, inputs, alpha):
    if len(inputs) == 1:
        return op(inputs[0], np.float32(alpha))
    arrays = align(*inputs)
    out = arrays[0]
    for a in arrays[1:]:
        out = op(out, a)
    return out


class _Variadic(Layer):
    op = staticmethod(np.add)
    use_alpha = False

    def forward(self, *inputs):
        alpha = getattr(self.p, "alpha", 0.0) if self.use_alpha else None
        if len(inputs) == 1 and alpha is None:
            return (to_float(inputs[0]).copy(),)
        return (to_float(_reduce_inputs(self.op, [to_float(x) for x in inputs], alpha)),)


@register
class Add(_Variadic):
    """Sum of the inputs (broadcast); a single input gets ``alpha`` added."""

    kind = "add"
    use_alpha = True


@register
class Multiply(_Variadic):
    """Product of the inputs (broadcast); a single input is multiplied by ``alpha``."""

    kind = "multiply"
    op = staticmethod(np.multiply)
    use_alpha = True


@register
class Max(_Variadic):
    """Elementwise maximum of the inputs."""

    kind = "max"
    op = staticmethod(np.maximum)


@register
class Min(_Variadic):
    """Elementwise minimum of the inputs."""

    kind = "min"
    op = staticmethod(np.minimum)


@register
class Average(Layer):
    """Elementwise mean of the inputs."""

    kind = "average"

    def forward(self, *inputs):
        arrays = align(*[to_float(x) for x in inputs])
        return (to_float(sum(arrays[1:], arrays[0]) / np.float32(len(arrays))),)


def _chw_param(layer, field, weight_params, shape):
    """A [1], [C] or [C, H, W] parameter, shaped to broadcast over the last three axes."""
    shape = tuple(int(d) for d in shape) or (1,)
    values = weights_of(layer, field, weight_params, shape=shape)
    if len(shape) == 1:
        return values.reshape(-1, 1, 1)
    if len(shape) == 3:
        return values
    raise layer.error(f"shape {list(shape)} must be [1], [C] or [C, H, W]", field)


@register
class Scale(Layer):
    """``y = scale * x (+ bias)``; scale and bias of shape [1], [C] or [C, H, W]."""

    kind = "scale"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.scale
        self.scale = _chw_param(self, "scale", p.scale, p.shapeScale)
        self.bias = _chw_param(self, "bias", p.bias, p.shapeBias) if p.hasBias else None

    def forward(self, x):
        y = x * self.scale
        return (y + self.bias if self.bias is not None else y,)


@register
class Bias(Layer):
    """``y = x + bias``; bias of shape [1], [C] or [C, H, W]."""

    kind = "bias"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.bias = _chw_param(self, "bias", spec.bias.bias, spec.bias.shape)

    def forward(self, x):
        return (x + self.bias,)


def dot_product(a: np.ndarray, b: np.ndarray, *, cosine: bool) -> np.ndarray:
    """Dot product (or cosine similarity) along the channel axis (-3), kept as size 1."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)  # float64 accumulation
    out = (a64 * b64).sum(axis=-3, keepdims=True)
    if cosine:
        out /= np.sqrt((a64 ** 2).sum(axis=-3, keepdims=True) * (b64 ** 2).sum(axis=-3, keepdims=True))
    return out.astype(np.float32)


@register
class Dot(Layer):
    """Dot product of two vectors along C (or their cosine similarity); output has C = 1."""

    kind = "dot"

    def forward(self, a, b):
        return (dot_product(a, b, cosine=self.p.cosineSimilarity),)


class _Binary(Layer):
    op = staticmethod(np.add)

    def forward(self, a, b):
        a, b = align(to_float(a), to_float(b))
        return (to_float(self.op(a, b)),)


def _make_binary(kind_name, func, doc):
    attrs = {"kind": kind_name, "op": staticmethod(func), "__doc__": doc}
    cls = type(kind_name[0].upper() + kind_name[1:], (_Binary,), attrs)
    return register(cls)


def _floor_div(a, b):
    return np.floor(a / b)


def _mod(a, b):
    return a - np.floor(a / b) * b


for _kind, _func, _doc in [
    ("addBroadcastable", np.add, "``a + b`` with NumPy broadcasting."),
    ("subtractBroadcastable", np.subtract, "``a - b`` with NumPy broadcasting."),
    ("multiplyBroadcastable", np.multiply, "``a * b`` with NumPy broadcasting."),
    ("divideBroadcastable", np.divide, "``a / b`` with NumPy broadcasting."),
    ("floorDivBroadcastable", _floor_div, "``floor(a / b)`` with NumPy broadcasting."),
    ("modBroadcastable", _mod, "``a - floor(a / b) * b`` (sign of b) with NumPy broadcasting."),
    ("powBroadcastable", np.power, "``a ** b`` with NumPy broadcasting."),
    ("maxBroadcastable", np.maximum, "Elementwise ``max(a, b)`` with NumPy broadcasting."),
    ("minBroadcastable", np.minimum, "Elementwise ``min(a, b)`` with NumPy broadcasting."),
]:
    _make_binary(_kind, _func, _doc)


class _Compare(Layer):
    op = staticmethod(np.equal)

    def forward(self, a, b=None):
        if b is None:
            b = np.float32(self.p.alpha)
        else:
            a, b = align(a, b)
        return (self.op(a, b).astype(np.float32),)


for _kind, _func in [
    ("equal", np.equal), ("notEqual", np.not_equal), ("lessThan", np.less),
    ("lessEqual", np.less_equal), ("greaterThan", np.greater), ("greaterEqual", np.greater_equal),
]:
    register(type(_kind[0].upper() + _kind[1:], (_Compare,), {
        "kind": _kind, "op": staticmethod(_func),
        "__doc__": f"1.0 where ``{_func.__name__}(a, b)`` holds, else 0.0; one input compares with ``alpha``.",
    }))


class _Logical(Layer):
    op = staticmethod(np.logical_and)

    def forward(self, *inputs):
        arrays = align(*[np.asarray(x) != 0 for x in inputs])
        out = arrays[0]
        for a in arrays[1:]:
            out = self.op(out, a)
        return (out.astype(np.float32),)


for _kind, _func in [("logicalAnd", np.logical_and), ("logicalOr", np.logical_or), ("logicalXor", np.logical_xor)]:
    register(type(_kind[0].upper() + _kind[1:], (_Logical,), {
        "kind": _kind, "op": staticmethod(_func),
        "__doc__": f"``{_func.__name__}`` of the inputs (non-zero is true), as 1.0/0.0.",
    }))


@register
class LogicalNot(Layer):
    """1.0 where the input is zero, else 0.0."""

    kind = "logicalNot"

    def forward(self, x):
        return ((x == 0).astype(np.float32),)
