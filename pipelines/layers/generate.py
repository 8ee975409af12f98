"""Layers that make tensors: constants, fills, broadcasts, ranges and random draws.

A layer without inputs makes one example; ``run_layers`` repeats it along the batch.
Random layers with ``seed >= 0`` draw from ``numpy.random.default_rng(seed)`` made
afresh on every run, so a seeded network gives the same numbers every time (Core ML's
own generator differs, so the values, not the distributions, differ from Apple's);
``seed = -1`` (coremltools' "no seed") draws fresh entropy from one generator per layer.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .base import Layer, register
from .common import align, weights_of
from .shape import shape_from_blob


@register
class LoadConstant(Layer):
    """The constant ``data`` of shape [C, H, W], as a rank-5 blob."""

    kind = "loadConstant"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        shape = tuple(int(d) for d in spec.loadConstant.shape)
        if len(shape) != 3:
            raise self.error(f"shape {list(shape)} must be [C, H, W]", "shape")
        value = weights_of(self, "data", spec.loadConstant.data, shape=shape)
        # Core ML's blob is [1, 1, C, H, W]: under rank-5 that is our [N=1, S=1, C, H, W]; under the
        # ND mapping the example itself has that rank-5 shape
        self.value = value.reshape((1, 1) + shape if not context.exact_shapes else (1, 1, 1) + shape)

    def forward(self):
        return (self.value.copy(),)


@register
class LoadConstantND(Layer):
    """The constant ``data`` of any ``shape``."""

    kind = "loadConstantND"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        shape = tuple(int(d) for d in spec.loadConstantND.shape)
        self.value = weights_of(self, "data", spec.loadConstantND.data, shape=shape)[np.newaxis]

    def forward(self):
        return (self.value.copy(),)


@register
class FillLike(Layer):
    """``value`` everywhere, in the shape of the input."""

    kind = "fillLike"

    def forward(self, x):
        return (np.full(x.shape, self.p.value, dtype=np.float32),)


@register
class FillStatic(Layer):
    """``value`` everywhere, in ``targetShape``."""

    kind = "fillStatic"

    def forward(self):
        shape = tuple(int(d) for d in self.p.targetShape)
        return (np.full((1,) + shape, self.p.value, dtype=np.float32),)


@register
class FillDynamic(Layer):
    """``value`` everywhere, in the shape held by the input."""

    kind = "fillDynamic"

    def forward(self, shape):
        return (np.full((shape.shape[0],) + shape_from_blob(shape), self.p.value, dtype=np.float32),)


def _broadcast(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    target = np.zeros((1,) + tuple(shape), dtype=bool)
    x, target = align(x, target)
    return np.ascontiguousarray(np.broadcast_to(x, np.broadcast_shapes(x.shape, target.shape)))


@register
class BroadcastToLike(Layer):
    """Broadcast the first input to the shape of the second."""

    kind = "broadcastToLike"

    def forward(self, x, like):
        return (_broadcast(x, like.shape[1:]),)


@register
class BroadcastToStatic(Layer):
    """Broadcast to ``targetShape``."""

    kind = "broadcastToStatic"

    def forward(self, x):
        return (_broadcast(x, tuple(int(d) for d in self.p.targetShape)),)


@register
class BroadcastToDynamic(Layer):
    """Broadcast the first input to the shape held by the second."""

    kind = "broadcastToDynamic"

    def forward(self, x, shape):
        return (_broadcast(x, shape_from_blob(shape)),)


def _scalar(blob) -> float:
    return float(np.asarray(blob).reshape(np.asarray(blob).shape[0], -1)[0, 0])


@register
class RangeStatic(Layer):
    """``numpy.arange(startValue, endValue, stepSizeValue)``."""

    kind = "rangeStatic"

    def forward(self, *unused):
        p = self.p
        return (np.arange(p.startValue, p.endValue, p.stepSizeValue, dtype=np.float32)[np.newaxis],)


@register
class RangeDynamic(Layer):
    """``numpy.arange(start, end, step)``: end from input 1, start and step from inputs 2, 3 or the parameters."""

    kind = "rangeDynamic"

    def forward(self, end, start=None, step=None):
        p = self.p
        lo = _scalar(start) if start is not None else p.startValue
        delta = _scalar(step) if step is not None else p.stepSizeValue
        values = np.arange(lo, _scalar(end), delta, dtype=np.float32)
        return (np.broadcast_to(values, (end.shape[0], values.size)).copy(),)


def _seeded(layer) -> np.random.Generator:
    """The generator of one run: re-seeded for ``seed >= 0``, else the layer's own unseeded one."""
    seed = int(layer.p.seed)
    if seed >= 0:
        return np.random.default_rng(seed)
    if not hasattr(layer, "_rng"):
        layer._rng = np.random.default_rng()
    return layer._rng


class _Random(Layer):
    """Base of the random layers (see the module docstring for seeding)."""

    def draw(self, rng, shape):
        raise NotImplementedError

    def forward(self, *inputs):
        p = self.p
        if self.kind.endswith("Like"):
            shape = inputs[0].shape
        elif self.kind.endswith("Static"):
            shape = (1,) + tuple(int(d) for d in p.outputShape)
        else:
            shape = (inputs[0].shape[0],) + shape_from_blob(inputs[0])
        return (self.draw(_seeded(self), shape).astype(np.float32),)


def _random_kinds(prefix, draw, doc):
    for suffix in ("Like", "Static", "Dynamic"):
        kind = prefix + suffix
        register(type(kind[0].upper() + kind[1:], (_Random,), {"kind": kind, "draw": draw, "__doc__": doc}))


_random_kinds("randomNormal", lambda self, rng, shape: rng.normal(
    self.p.mean, self.p.stdDev, shape),
    "Samples of a normal distribution (``mean``, ``stdDev``), seeded with ``seed``.")
_random_kinds("randomUniform", lambda self, rng, shape: rng.uniform(
    self.p.minVal, self.p.maxVal, shape),
    "Samples of a uniform distribution on [minVal, maxVal), seeded with ``seed``.")
_random_kinds("randomBernoulli", lambda self, rng, shape: rng.random(shape) < self.p.prob,
              "1.0 with probability ``prob``, else 0.0, seeded with ``seed``.")


def categorical_samples(x: np.ndarray, *, rng: np.random.Generator, n_samples: int, is_logits: bool,
                        eps: float, temperature: float) -> np.ndarray:
    """Draw ``n_samples`` class indices per row of the last axis (logits scaled by 1/temperature,
    or probabilities); returns [shape=(..., n_samples)]."""
    if is_logits:
        probs = special.softmax(x.astype(np.float64) / temperature, axis=-1)
    else:
        probs = np.maximum(x.astype(np.float64), eps)
        probs = probs / probs.sum(axis=-1, keepdims=True)
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(x.shape[:-1] + (n_samples,)) * cdf[..., -1:]
    return (u[..., :, np.newaxis] >= cdf[..., np.newaxis, :]).sum(axis=-1).astype(np.float32)


@register
class CategoricalDistribution(Layer):
    """``numSamples`` class indices per row, drawn from softmax(x / temperature) (or probabilities x)."""

    kind = "categoricalDistribution"

    def forward(self, x):
        p = self.p
        return (categorical_samples(x, rng=_seeded(self), n_samples=int(p.numSamples), is_logits=p.isLogits,
                                    eps=p.eps or 1e-10, temperature=p.temperature or 1.0),)
