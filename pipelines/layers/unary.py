"""Elementwise functions of one blob: the legacy ``unary`` layer and Core ML 3's
elementwise unary layers (clip, ceil, floor, sign, round, exp2, trigonometric and
hyperbolic functions and their inverses, erf, gelu, clampedReLU)."""

from __future__ import annotations

import numpy as np
from scipy import special

from .base import Layer, register

SQRT, RSQRT, INVERSE, POWER, EXP, LOG, ABS, THRESHOLD = range(8)


def unary_function(x: np.ndarray, *, op: int, alpha: float, epsilon: float, shift: float, scale: float) -> np.ndarray:
    """Core ML's ``unary`` layer: ``f(scale * x + shift)`` with ``f`` one of
    sqrt, 1/sqrt(x + eps), 1/(x + eps), x**alpha, exp, log(x + eps), abs, max(x, alpha)."""
    z = np.float32(scale) * x + np.float32(shift)
    eps, a = np.float32(epsilon), np.float32(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        if op == SQRT:
            return np.sqrt(z)
        if op == RSQRT:
            return 1 / np.sqrt(z + eps)
        if op == INVERSE:
            return 1 / (z + eps)
        if op == POWER:
            return np.power(z, a)
        if op == EXP:
            return np.exp(z)
        if op == LOG:
            return np.log(z + eps)
        if op == ABS:
            return np.abs(z)
        return np.maximum(z, a)


@register
class Unary(Layer):
    """``f(scale * x + shift)`` for f in SQRT, RSQRT, INVERSE, POWER, EXP, LOG, ABS, THRESHOLD
    (epsilon 0 means 1e-6 and scale 0 means 1, as the spec defines)."""

    kind = "unary"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.unary
        if p.type > THRESHOLD:
            raise self.error(f"unknown operation {p.type}", "type")
        # fact: apple/coremltools:mlmodel/format/NeuralNetwork.proto (epsilon 0 means 1e-6, scale 0 means 1)
        self.options = dict(op=int(p.type), alpha=p.alpha, epsilon=p.epsilon or 1e-6, shift=p.shift,
                            scale=p.scale or 1.0)

    def forward(self, x):
        return (unary_function(x, **self.options).astype(np.float32),)


@register
class Clip(Layer):
    """``min(max(x, minVal), maxVal)``."""

    kind = "clip"

    def forward(self, x):
        return (np.clip(x, np.float32(self.p.minVal), np.float32(self.p.maxVal)),)


def gelu(x: np.ndarray, *, mode: int) -> np.ndarray:
    """GELU: exact ``0.5 x (1 + erf(x / sqrt 2))``, its tanh approximation (mode 1) or
    ``x * sigmoid(1.702 x)`` (mode 2)."""
    if mode == 1:
        return 0.5 * x * (1 + np.tanh(np.float32(np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x ** 3)))
    if mode == 2:
        return x * special.expit(np.float32(1.702) * x)
    return 0.5 * x * (1 + special.erf(x / np.float32(np.sqrt(2))))


@register
class Gelu(Layer):
    """Gaussian error linear unit (EXACT, TANH_APPROXIMATION or SIGMOID_APPROXIMATION)."""

    kind = "gelu"

    def forward(self, x):
        return (gelu(x, mode=int(self.p.mode)).astype(np.float32),)


@register
class ClampedReLU(Layer):
    """``min(beta, x)`` for x >= 0, ``min(beta, alpha * x)`` otherwise."""

    kind = "clampedReLU"

    def forward(self, x):
        p = self.p
        return (np.minimum(np.float32(p.beta), np.where(x >= 0, x, np.float32(p.alpha) * x)).astype(np.float32),)


def _elementwise(kind_name: str, func, doc: str) -> None:
    def forward(self, x):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return (np.asarray(func(x), dtype=np.float32),)

    attrs = {"kind": kind_name, "forward": forward, "__doc__": doc}
    register(type(kind_name[0].upper() + kind_name[1:], (Layer,), attrs))


for _kind, _func in [
    ("ceil", np.ceil), ("floor", np.floor), ("sign", np.sign), ("round", np.round), ("exp2", np.exp2),
    ("sin", np.sin), ("cos", np.cos), ("tan", np.tan), ("asin", np.arcsin), ("acos", np.arccos),
    ("atan", np.arctan), ("sinh", np.sinh), ("cosh", np.cosh), ("tanh", np.tanh), ("asinh", np.arcsinh),
    ("acosh", np.arccosh), ("atanh", np.arctanh), ("erf", special.erf),
]:
    _elementwise(_kind, _func, f"Elementwise ``{_kind}(x)``.")
