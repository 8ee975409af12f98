"""Range rules for the numbers a runtime sizes arrays or loops with: strides, dilations, kernel
sizes, border amounts, scaling factors, k-NN samples.

Core ML's compiler leaves most of these unbounded; a model with a stride of 2**32 - 1 or a
dilation of 2**40 cannot run anywhere (a runtime overflows or tries to allocate exabytes),
so Pippin reports them, naming the field, and ``pipelines.load`` refuses them (rule
``nn-range``). The bounds are far above any real network: ``MAX_GEOMETRY`` for one spatial
size, stride or dilated kernel extent.
"""

from __future__ import annotations

import math

from ._report import Report

__all__ = ["check_layer_ranges", "check_finite_samples", "MAX_GEOMETRY"]

#: the largest stride, kernel size, dilated kernel extent, border or scaling factor accepted
MAX_GEOMETRY = 1 << 16

# layer kind -> repeated fields that are spatial sizes: (field, smallest allowed value)
_SPATIAL = {
    "convolution": (("stride", 1), ("dilationFactor", 1), ("kernelSize", 1), ("outputShape", 0)),
    "pooling": (("stride", 1), ("kernelSize", 1)),
    "convolution3d": (),
    "upsample": (("scalingFactor", 1),),
    "reorganizeData": (),
}
# layer kind -> scalar fields with (smallest, largest) allowed values
_SCALARS = {
    "convolution3d": (("strideDepth", 1), ("strideHeight", 1), ("strideWidth", 1), ("dilationDepth", 1),
                      ("dilationHeight", 1), ("dilationWidth", 1), ("kernelDepth", 1), ("kernelHeight", 1),
                      ("kernelWidth", 1), ("customPaddingFront", 0), ("customPaddingBack", 0),
                      ("customPaddingTop", 0), ("customPaddingBottom", 0), ("customPaddingLeft", 0),
                      ("customPaddingRight", 0)),
    "pooling3d": (("strideDepth", 1), ("strideHeight", 1), ("strideWidth", 1), ("kernelDepth", 1),
                  ("kernelHeight", 1), ("kernelWidth", 1), ("customPaddingFront", 0), ("customPaddingBack", 0),
                  ("customPaddingTop", 0), ("customPaddingBottom", 0), ("customPaddingLeft", 0),
                  ("customPaddingRight", 0)),
    "reorganizeData": (("blockSize", 1),),
}


def _check_values(values, low, path, name, report) -> None:
    for i, value in enumerate(values):
        if not low <= value <= MAX_GEOMETRY:
            report.add(path, f"{name}[{i}] is {value}, expected {low} to {MAX_GEOMETRY}", "nn-range")
            return


def _borders(params, kind, report) -> None:
    """``valid.paddingAmounts.borderAmounts`` of a convolution or pooling layer."""
    if params.WhichOneof(_PADDING_ONEOF[kind]) != "valid":
        return
    for i, border in enumerate(params.valid.paddingAmounts.borderAmounts):
        for edge in ("startEdgeSize", "endEdgeSize"):
            value = getattr(border, edge)
            if value > MAX_GEOMETRY:
                report.add(f"{kind}.valid.paddingAmounts.borderAmounts[{i}].{edge}",
                           f"{edge} is {value}, expected at most {MAX_GEOMETRY}", "nn-range")


_PADDING_ONEOF = {"convolution": "ConvolutionPaddingType", "pooling": "PoolingPaddingType"}


def check_layer_ranges(layer, kind: str, report: Report) -> None:
    """Spatial sizes of one layer in range; ``report`` is already at the layer's path."""
    if kind not in _SPATIAL and kind not in _SCALARS:
        return
    params = getattr(layer, kind)
    for name, low in _SPATIAL.get(kind, ()):
        if kind == "pooling" and params.globalPooling:
            continue  # a global pooling ignores its stride and kernel (coremltools writes 0s there)
        _check_values(list(getattr(params, name)), low, f"{kind}.{name}", name, report)
    for name, low in _SCALARS.get(kind, ()):
        value = getattr(params, name)
        if value and not low <= value <= MAX_GEOMETRY:  # 0 is the proto default: Core ML's default applies
            report.add(f"{kind}.{name}", f"{name} is {value}, expected {low} to {MAX_GEOMETRY}", "nn-range")
    if kind == "convolution":
        kernel = list(params.kernelSize) or [3, 3]
        dilation = list(params.dilationFactor) or [1, 1]
        for i, (k, d) in enumerate(zip(kernel, dilation)):
            if 1 <= k <= MAX_GEOMETRY and 1 <= d <= MAX_GEOMETRY and (k - 1) * d + 1 > MAX_GEOMETRY:
                report.add(f"{kind}.dilationFactor", f"kernelSize[{i}] {k} dilated by {d} spans "
                           f"{(k - 1) * d + 1} values, expected at most {MAX_GEOMETRY}", "nn-range")
    if kind in _PADDING_ONEOF:
        _borders(params, kind, report)


def check_finite_samples(samples, path: str, report: Report) -> None:
    """Every value of a k-NN index finite (distances to NaN or infinity are undefined)."""
    for i, sample in enumerate(samples):
        # one C-level sum per sample: NaN and infinities propagate, and float32 values cannot
        # add up to an overflow in float64
        if not math.isfinite(sum(sample.vector)):
            bad = next(v for v in sample.vector if not math.isfinite(v))
            report.add(f"{path}[{i}]", f"sample holds {bad!r}, expected finite values", "knn-index")
            return
