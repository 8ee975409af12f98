"""Inference fast path: a convolution, the stored-statistics batchnorm after it and an
optional ReLU run as one convolution.

``FusedConvBatchnormRelu`` registers as the override of the chain
``convolution -> batchnorm`` (``@register_fast``); ``network.fuse_layers(layers, keep)``
puts it in place of each such chain (with the ReLU after it, when there is one) whose
intermediate blobs nobody else reads. The plain ``Convolution``/``Batchnorm``/
``Activation`` classes stay the reference (``tests/pipelines/layers/test_fast_paths.py``
compares the two). Batchnorm folds into the weights exactly as its definition
says: ``y = scale[c] * conv(x)[c] + shift[c]`` is the convolution with weights
``scale[c] * W[c]`` and bias ``scale[c] * b[c] + shift[c]``. The folded weights are
computed on every call (they are small) so a model trained in place never runs stale
weights. Training never uses this path.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import FusedChain, Layer, private_output, register_fast
from .conv import conv2d_forward, padding_amounts

__all__ = ["FusedConvBatchnormRelu"]


@register_fast("convolution", "batchnorm")
class FusedConvBatchnormRelu(FusedChain):
    """``convolution`` -> ``batchnorm`` (stored statistics) [-> ``ReLU``] as one convolution."""

    kind = "fusedConvBatchnormRelu"

    def __init__(self, conv: Layer, bn: Layer, relu: Layer | None):
        self.conv, self.bn, self.relu = conv, bn, relu
        self._span(conv, relu or bn)

    def __call__(self, x):
        conv, bn = self.conv, self.bn
        x = np.asarray(x, dtype=np.float32)
        x4 = conv._to_4d(x)
        scale, shift = bn._affine(bn.buffers["mean"], bn.buffers["variance"])
        scale, shift = scale.reshape(-1), shift.reshape(-1)
        weights = conv.params["weights"] * scale[:, None, None, None]
        bias = shift if "bias" not in conv.params else conv.params["bias"] * scale + shift
        pads = padding_amounts(conv.padding, conv.padding_kind, x4.shape[2:], conv._effective_kernel(), conv.stride)
        y4, _ = conv2d_forward(x4, weights.astype(np.float32), bias.astype(np.float32), stride=conv.stride,
                               dilation=conv.dilation, pads=pads, groups=conv.groups)
        if self.relu is not None:
            np.maximum(y4, 0, out=y4)  # in place on the channel-last buffer
        return (y4.reshape(x.shape[:-3] + y4.shape[1:]),)

    @classmethod
    def match(cls, layers: Sequence[Layer], index: int, keep: set,
              reads) -> tuple["FusedConvBatchnormRelu", int] | None:
        """The fused layer for the chain starting at ``layers[index]`` and how many layers it replaces, or None.

        ``keep`` names blobs that must still be produced (model outputs); ``reads`` counts
        the layers reading each blob.
        """
        conv = layers[index]
        bn = layers[index + 1] if index + 1 < len(layers) else None
        if not (conv.kind == "convolution" and not conv.deconv and bn is not None
                and bn.kind == "batchnorm" and not bn.compute_mean_var and bn.inputs == conv.outputs
                and bn.channels == conv.c_out and private_output(conv, keep, reads)):
            return None
        relu = layers[index + 2] if index + 2 < len(layers) else None
        if relu is not None and _is_relu(relu) and relu.inputs == bn.outputs and private_output(bn, keep, reads):
            return cls(conv, bn, relu), 3
        return cls(conv, bn, None), 2


def _is_relu(layer):
    return layer.kind == "activation" and layer.which == "ReLU"
