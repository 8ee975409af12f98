"""Per-layer parameter rules: input/output counts and weight sizes of the common layers.

fact: apple/coremltools:mlmodel/src/Validation/NeuralNetwork/NeuralNetworkLayerValidator.cpp
(validateInnerProductLayer, validateConvolutionLayer, validateBatchnormLayer,
validateActivation, ...: counts and weight sizes). Only the layers Pippin's exports and
runtime use are checked in depth; every other layer gets the graph rules only.
"""

from __future__ import annotations

from ._report import Report

__all__ = ["check_layer_params", "weight_count"]

# (min inputs, max inputs, min outputs, max outputs); -1 = no upper bound
_COUNTS = {
    "innerProduct": (1, 1, 1, 1), "batchnorm": (1, 1, 1, 1), "activation": (1, 1, 1, 1),
    "pooling": (1, 1, 1, 1), "softmax": (1, 1, 1, 1), "flatten": (1, 1, 1, 1),
    "reshape": (1, 1, 1, 1), "permute": (1, 1, 1, 1), "padding": (1, 1, 1, 1),
    "l2normalize": (1, 1, 1, 1), "unary": (1, 1, 1, 1), "softmaxND": (1, 1, 1, 1),
    "convolution": (1, 2, 1, 1), "concat": (1, -1, 1, 1), "add": (1, -1, 1, 1),
    "multiply": (1, -1, 1, 1), "split": (1, 1, 1, -1), "copy": (1, 1, 1, 1),
    "flattenTo2D": (1, 1, 1, 1), "squeeze": (1, 1, 1, 1), "expandDims": (1, 1, 1, 1),
}


def weight_count(weights) -> int | None:
    """How many values a ``WeightParams`` holds, or ``None`` when quantized/mixed."""
    kinds = [len(weights.floatValue) > 0, len(weights.float16Value) > 0,
             len(weights.rawValue) > 0, len(weights.int8RawValue) > 0]
    if sum(kinds) > 1:
        return None
    if kinds[0]:
        return len(weights.floatValue)
    if kinds[1]:
        return len(weights.float16Value) // 2
    if kinds[2] or kinds[3]:
        return None
    return 0


def _mixed(weights, path, report):
    kinds = sum([len(weights.floatValue) > 0, len(weights.float16Value) > 0,
                 len(weights.rawValue) > 0, len(weights.int8RawValue) > 0])
    if kinds > 1:
        report.add(path, "weights are stored in more than one of floatValue, float16Value, "
                   "rawValue, int8RawValue", "nn-weights")
        return True
    if len(weights.float16Value) % 2:
        report.add(path, f"float16Value has {len(weights.float16Value)} bytes, expected an even "
                   "number", "nn-weights")
        return True
    return False


def _expect(weights, expected, path, report, what):
    if _mixed(weights, path, report):
        return
    got = weight_count(weights)
    if got is not None and got != expected:
        report.add(path, f"{got} values, expected {expected} ({what})", "nn-weights")


def _check_counts(layer, kind, report):
    lo_in, hi_in, lo_out, hi_out = _COUNTS[kind]
    n_in, n_out = len(layer.input), len(layer.output)
    if n_in < lo_in or (hi_in >= 0 and n_in > hi_in):
        want = str(lo_in) if lo_in == hi_in else (f"{lo_in} or more" if hi_in < 0 else f"{lo_in} to {hi_in}")
        report.add("input", f"{kind} layer has {n_in} inputs, expected {want}", "nn-layer")
    if n_out < lo_out or (hi_out >= 0 and n_out > hi_out):
        want = str(lo_out) if lo_out == hi_out else (f"{lo_out} or more" if hi_out < 0 else f"{lo_out} to {hi_out}")
        report.add("output", f"{kind} layer has {n_out} outputs, expected {want}", "nn-layer")


def _inner_product(p, report):
    n = p.inputChannels * p.outputChannels
    _expect(p.weights, n, "innerProduct.weights", report,
            f"inputChannels {p.inputChannels} x outputChannels {p.outputChannels}")
    if p.hasBias:
        _expect(p.bias, p.outputChannels, "innerProduct.bias", report, "outputChannels")
    elif weight_count(p.bias):
        report.add("innerProduct.bias", "bias values are given but hasBias is false", "nn-weights")
    if p.inputChannels <= 0 or p.outputChannels <= 0:
        report.add("innerProduct", f"inputChannels {p.inputChannels} and outputChannels "
                   f"{p.outputChannels}, expected both positive", "nn-weights")


def _convolution(layer, p, report):
    if p.WhichOneof("ConvolutionPaddingType") is None:
        report.add("convolution", "no padding type set, expected valid or same", "nn-layer")
    if p.isDeconvolution and len(layer.input) != 1:
        report.add("input", "a deconvolution takes its weights from the model, not as a second "
                   "input", "nn-layer")
    if p.hasBias and len(layer.input) != 1:
        report.add("convolution.hasBias", "a convolution with weights as an input cannot have a "
                   "static bias", "nn-layer")
    groups = p.nGroups or 1
    if p.outputChannels <= 0 or p.kernelChannels <= 0:
        report.add("convolution", f"outputChannels {p.outputChannels} and kernelChannels "
                   f"{p.kernelChannels}, expected both positive", "nn-weights")
        return
    if p.outputChannels % groups:
        report.add("convolution.nGroups", f"outputChannels {p.outputChannels} is not divisible "
                   f"by nGroups {groups}", "nn-weights")
        return
    kh, kw = (list(p.kernelSize) + [3, 3])[:2] if len(p.kernelSize) else (3, 3)
    if len(layer.input) == 1:
        # fact: apple/coremltools:mlmodel/src/Validation/NeuralNetwork/NeuralNetworkLayerValidator.cpp
        # (validateConvolutionLayer: only a deconvolution divides the weight count by nGroups)
        n = p.outputChannels * p.kernelChannels * kh * kw
        rule = f"outputChannels {p.outputChannels} x kernelChannels {p.kernelChannels} x kernel {kh}x{kw}"
        if p.isDeconvolution:
            n //= groups
            rule += f" / nGroups {groups}"
        _expect(p.weights, n, "convolution.weights", report, rule)
    if p.hasBias:
        _expect(p.bias, p.outputChannels, "convolution.bias", report, "outputChannels")


def _batchnorm(p, report):
    for name in ("gamma", "beta") + (() if p.computeMeanVar else ("mean", "variance")):
        _expect(getattr(p, name), p.channels, f"batchnorm.{name}", report, f"channels {p.channels}")


def _pooling(p, report):
    if p.WhichOneof("PoolingPaddingType") is None:
        report.add("pooling", "no padding type set, expected valid, same or "
                   "includeLastPixel", "nn-layer")


def _activation(p, report):
    which = p.WhichOneof("NonlinearityType")
    if which is None:
        report.add("activation", "activation has no nonlinearity type set", "nn-layer")


def check_layer_params(layer, kind: str, report: Report) -> None:
    """Counts and weight sizes of one layer; ``report`` is already at the layer's path."""
    if kind in _COUNTS:
        _check_counts(layer, kind, report)
    params = getattr(layer, kind)
    if kind == "innerProduct":
        _inner_product(params, report)
    elif kind == "convolution":
        _convolution(layer, params, report)
    elif kind == "batchnorm":
        _batchnorm(params, report)
    elif kind == "activation":
        _activation(params, report)
    elif kind == "pooling":
        _pooling(params, report)
