"""Build Core ML neural-network specs in Python: layers, classifier labels, update settings.

A small builder for the networks Pippin's trainers need, writing Core ML 3
(specification version 4) specs under the rank-5 shape mapping: an input of shape
``(C, H, W)`` or ``(C,)`` is a ``[C, H, W]`` / ``[C, 1, 1]`` blob. The builder
tracks each blob's ``(C, H, W)`` so layer sizes follow from their inputs, and
initialises weights deterministically from ``seed`` (He-uniform for convolutions,
Glorot-uniform for dense layers, zero biases).

Examples
--------
>>> b = NetworkBuilder(inputs=[("x", (4,))], outputs=["probs"], mode="classifier", class_labels=["a", "b"])
>>> b.add_dense("fc", "x", "logits", n_out=2)
>>> b.add_softmax("sm", "logits", "probs")
>>> b.make_updatable(["fc"]); b.set_loss("categorical_cross_entropy")
>>> b.set_optimizer("sgd", learning_rate=0.01, batch_size=8); b.set_epochs(5)
>>> spec = b.spec
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ...spec import Model
from ...spec._proto import FeatureTypes_pb2, NeuralNetwork_pb2
from ..errors import PipelineError
from .base import SpecBuilder

__all__ = ["NetworkBuilder"]

_POOL_TYPES = {"max": 0, "average": 1, "avg": 1, "l2": 2}
_ACTIVATIONS = ("linear", "ReLU", "leakyReLU", "thresholdedReLU", "tanh", "scaledTanh", "sigmoid", "sigmoidHard",
                "ELU", "softsign", "softplus")


def _conv_out(n, k, s, d, padding):
    ek = (k - 1) * d + 1
    if padding == "same":
        return -(-n // s)
    a, b = padding
    return (n + a + b - ek) // s + 1


class NetworkBuilder(SpecBuilder):
    """Assemble a ``NeuralNetwork``, ``NeuralNetworkClassifier`` or ``NeuralNetworkRegressor`` spec.

    Parameters
    ----------
    inputs : list of (str, tuple of int)
        Input names and their shapes, ``(C,)`` or ``(C, H, W)``.
    outputs : list of str or (str, tuple of int)
        Names of the blobs the network outputs (for a classifier: the class
        probabilities blob, which becomes ``predictedProbabilitiesName``).
    mode : {"classifier", "regressor", None}
    class_labels : sequence of str or int, optional
        Required when ``mode="classifier"``.
    predicted_feature_name : str
        Name of a classifier's label output (and of its training target).
    seed : int
        Seed of the deterministic weight initialisation.
    """

    def __init__(self, *, inputs: Sequence[tuple[str, tuple[int, ...]]], outputs: Sequence,
                 mode: str | None = None, class_labels: Sequence | None = None,
                 predicted_feature_name: str = "classLabel", seed: int = 0):
        if mode not in (None, "classifier", "regressor"):
            raise PipelineError(f"mode={mode!r}, expected 'classifier', 'regressor' or None", where="NetworkBuilder")
        if mode == "classifier" and not class_labels:
            raise PipelineError("a classifier needs class_labels", where="NetworkBuilder")
        self._spec = Model()
        self._spec.specificationVersion = 4
        self.mode = mode
        self.rng = np.random.default_rng(seed)
        self.shapes: dict[str, tuple[int, int, int]] = {}
        self.network = {"classifier": self._spec.neuralNetworkClassifier,
                        "regressor": self._spec.neuralNetworkRegressor}.get(mode, self._spec.neuralNetwork)
        self.network.arrayInputShapeMapping = 0  # RANK5_ARRAY_MAPPING
        desc = self._spec.description
        for name, shape in inputs:
            shape = tuple(int(v) for v in shape)
            if len(shape) not in (1, 3) or min(shape) < 1:
                raise PipelineError(f"input {name!r} has shape {shape}, expected (C,) or (C, H, W)",
                                    where="NetworkBuilder")
            f = desc.input.add()
            f.name = name
            f.type.multiArrayType.shape.extend(shape)
            f.type.multiArrayType.dataType = FeatureTypes_pb2.ArrayFeatureType.FLOAT32
            self.shapes[name] = shape if len(shape) == 3 else (shape[0], 1, 1)
        self.output_names = [o if isinstance(o, str) else o[0] for o in outputs]
        if mode == "classifier":
            labels = list(class_labels)
            self.predicted_feature_name = predicted_feature_name
            is_int = all(isinstance(v, (int, np.integer)) for v in labels)
            if is_int:
                self.network.int64ClassLabels.vector.extend(int(v) for v in labels)
            else:
                self.network.stringClassLabels.vector.extend(str(v) for v in labels)
            prob = desc.output.add()
            prob.name = self.output_names[0]
            if is_int:
                prob.type.dictionaryType.int64KeyType.SetInParent()
            else:
                prob.type.dictionaryType.stringKeyType.SetInParent()
            label = desc.output.add()
            label.name = predicted_feature_name
            (label.type.int64Type if is_int else label.type.stringType).SetInParent()
            desc.predictedFeatureName = predicted_feature_name
            desc.predictedProbabilitiesName = self.output_names[0]
            self.network.labelProbabilityLayerName = self.output_names[0]
        else:
            for name in self.output_names:
                f = desc.output.add()
                f.name = name
                f.type.multiArrayType.dataType = FeatureTypes_pb2.ArrayFeatureType.FLOAT32
            if mode == "regressor":
                desc.predictedFeatureName = self.output_names[0]

    # -- helpers ------------------------------------------------------------
    def _shape(self, blob: str) -> tuple[int, int, int]:
        if blob not in self.shapes:
            raise PipelineError(f"blob {blob!r} does not exist yet; known blobs: {sorted(self.shapes)}",
                                where="NetworkBuilder")
        return self.shapes[blob]

    def add_layer(self, name: str, inputs: Sequence[str], output: str, shape) -> NeuralNetwork_pb2.NeuralNetworkLayer:
        """Append a layer of any kind: the caller fills its oneof; ``shape`` is the output's ``(C, H, W)``.

        For layer kinds without an ``add_*`` method (the backbones' front ends use unary,
        reshape, permute, reduce...). Inputs must exist; the name must be new.
        """
        return self._layer(name, inputs, output, shape)

    def _layer(self, name: str, inputs: Sequence[str], output: str, shape) -> NeuralNetwork_pb2.NeuralNetworkLayer:
        if any(layer.name == name for layer in self.network.layers):
            raise PipelineError(f"a layer named {name!r} exists already", where="NetworkBuilder")
        for blob in inputs:
            self._shape(blob)
        layer = self.network.layers.add()
        layer.name = name
        layer.input.extend(inputs)
        layer.output.append(output)
        self.shapes[output] = tuple(int(v) for v in shape)
        return layer

    def _uniform(self, limit: float, shape) -> np.ndarray:
        return self.rng.uniform(-limit, limit, size=shape).astype(np.float32)

    # -- layers -------------------------------------------------------------
    def add_dense(self, name: str, input: str, output: str, *, n_out: int, bias: bool = True,
                  weights: np.ndarray | None = None, bias_values: np.ndarray | None = None) -> None:
        """innerProduct: ``weights`` ``[n_out, n_in]`` (default Glorot-uniform) and a zero bias."""
        c, h, w = self._shape(input)
        if h != 1 or w != 1:
            raise PipelineError(f"dense layer {name!r} needs a [C, 1, 1] input, {input!r} is {[c, h, w]}; "
                                "add_flatten first", where="NetworkBuilder")
        layer = self._layer(name, [input], output, (n_out, 1, 1))
        p = layer.innerProduct
        p.inputChannels, p.outputChannels, p.hasBias = c, n_out, bias
        if weights is None:
            weights = self._uniform(math.sqrt(6.0 / (c + n_out)), (n_out, c))
        p.weights.floatValue.extend(np.asarray(weights, np.float32).reshape(n_out, c).ravel().tolist())
        if bias:
            b = np.zeros(n_out, np.float32) if bias_values is None else np.asarray(bias_values, np.float32)
            p.bias.floatValue.extend(b.reshape(n_out).tolist())

    def add_conv(self, name: str, input: str, output: str, *, n_out: int, kernel=(3, 3), stride=(1, 1),
                 dilation=(1, 1), padding="same", groups: int = 1, bias: bool = True,
                 weights: np.ndarray | None = None, bias_values: np.ndarray | None = None) -> None:
        """convolution; ``padding`` is "same", "valid" or ``(top, bottom, left, right)``;
        ``weights`` ``[n_out, C_in / groups, kH, kW]`` (default He-uniform)."""
        c, h, w = self._shape(input)
        kernel, stride, dilation = (tuple(v) if isinstance(v, (tuple, list)) else (v, v)
                                    for v in (kernel, stride, dilation))
        if c % groups or n_out % groups:
            raise PipelineError(f"groups={groups} does not divide {c} input and {n_out} output channels",
                                where=f"NetworkBuilder: {name}")
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            pads = "same"
        else:
            t, b_, l, r = padding
            pads = ((t, b_), (l, r))
        hw = [_conv_out(n, k, s, d, pads if pads == "same" else pads[i])
              for i, (n, k, s, d) in enumerate(zip((h, w), kernel, stride, dilation))]
        if min(hw) < 1:
            raise PipelineError(f"conv {name!r}: input {[c, h, w]} is smaller than its kernel", where="NetworkBuilder")
        layer = self._layer(name, [input], output, (n_out, hw[0], hw[1]))
        p = layer.convolution
        p.outputChannels, p.kernelChannels, p.nGroups, p.hasBias = n_out, c // groups, groups, bias
        p.kernelSize.extend(kernel)
        p.stride.extend(stride)
        p.dilationFactor.extend(dilation)
        if pads == "same":
            p.same.asymmetryMode = 0
        else:
            for a, b_ in pads:
                e = p.valid.paddingAmounts.borderAmounts.add()
                e.startEdgeSize, e.endEdgeSize = a, b_
        shape = (n_out, c // groups) + kernel
        if weights is None:
            fan_in = shape[1] * kernel[0] * kernel[1]
            weights = self._uniform(math.sqrt(6.0 / fan_in), shape)
        p.weights.floatValue.extend(np.asarray(weights, np.float32).reshape(shape).ravel().tolist())
        if bias:
            b = np.zeros(n_out, np.float32) if bias_values is None else np.asarray(bias_values, np.float32)
            p.bias.floatValue.extend(b.reshape(n_out).tolist())

    def add_pooling(self, name: str, input: str, output: str, *, type: str = "max", kernel=(2, 2),
                    stride=None, padding="valid", is_global: bool = False, exclude_padding: bool = True) -> None:
        """pooling: ``type`` "max", "average" or "l2"; ``padding`` "valid", "same" or "include_last_pixel"."""
        if type not in _POOL_TYPES:
            raise PipelineError(f"pooling type={type!r}, expected one of {sorted(_POOL_TYPES)}", where="NetworkBuilder")
        c, h, w = self._shape(input)
        kernel = tuple(kernel) if isinstance(kernel, (tuple, list)) else (kernel, kernel)
        stride = kernel if stride is None else (tuple(stride) if isinstance(stride, (tuple, list)) else (stride,) * 2)
        if is_global:
            hw = (1, 1)
        elif padding == "same":
            hw = tuple(-(-n // s) for n, s in zip((h, w), stride))
        elif padding == "include_last_pixel":
            hw = tuple(-(-(n - k) // s) + 1 for n, k, s in zip((h, w), kernel, stride))
        else:
            hw = tuple((n - k) // s + 1 for n, k, s in zip((h, w), kernel, stride))
        layer = self._layer(name, [input], output, (c,) + tuple(hw))
        p = layer.pooling
        p.type, p.globalPooling, p.avgPoolExcludePadding = _POOL_TYPES[type], is_global, exclude_padding
        p.kernelSize.extend(kernel)
        p.stride.extend(stride)
        if padding == "same":
            p.same.asymmetryMode = 0
        elif padding == "include_last_pixel":
            p.includeLastPixel.paddingAmounts.extend([0, 0])
        else:
            p.valid.SetInParent()

    def add_activation(self, name: str, input: str, output: str, *, kind: str = "ReLU",
                       alpha: float | None = None, beta: float | None = None) -> None:
        """activation: ``kind`` is an ``ActivationParams`` member with scalar parameters."""
        if kind not in _ACTIVATIONS:
            raise PipelineError(f"activation kind={kind!r}, expected one of {list(_ACTIVATIONS)}",
                                where="NetworkBuilder")
        layer = self._layer(name, [input], output, self._shape(input))
        msg = getattr(layer.activation, kind)
        msg.SetInParent()
        if alpha is not None:
            msg.alpha = alpha
        if beta is not None:
            msg.beta = beta

    def add_batchnorm(self, name: str, input: str, output: str, *, epsilon: float = 1e-5) -> None:
        """batchnorm with gamma 1, beta 0, mean 0, variance 1 (train it with ``fit_network``)."""
        c = self._shape(input)[0]
        p = self._layer(name, [input], output, self._shape(input)).batchnorm
        p.channels, p.epsilon = c, epsilon
        for field, value in (("gamma", 1.0), ("beta", 0.0), ("mean", 0.0), ("variance", 1.0)):
            getattr(p, field).floatValue.extend([value] * c)

    def add_flatten(self, name: str, input: str, output: str, *, channel_last: bool = False) -> None:
        """flatten ``[C, H, W]`` into ``[C*H*W, 1, 1]``."""
        c, h, w = self._shape(input)
        self._layer(name, [input], output, (c * h * w, 1, 1)).flatten.mode = int(channel_last)

    def add_concat(self, name: str, inputs: Sequence[str], output: str) -> None:
        """concat along channels; the inputs must agree on ``(H, W)``."""
        shapes = [self._shape(b) for b in inputs]
        if len({s[1:] for s in shapes}) != 1:
            raise PipelineError(f"concat {name!r}: inputs have shapes {shapes}; (H, W) must agree",
                                where="NetworkBuilder")
        layer = self._layer(name, list(inputs), output, (sum(s[0] for s in shapes),) + shapes[0][1:])
        layer.concat.SetInParent()

    def add_softmax(self, name: str, input: str, output: str) -> None:
        """softmax along channels."""
        self._layer(name, [input], output, self._shape(input)).softmax.SetInParent()

    # -- update settings ----------------------------------------------------
    def make_updatable(self, layer_names: Sequence[str]) -> None:
        """Mark these innerProduct/convolution layers (weights and biases) updatable."""
        by_name = {layer.name: layer for layer in self.network.layers}
        for name in layer_names:
            layer = by_name.get(name)
            kind = layer.WhichOneof("layer") if layer is not None else None
            if kind not in ("innerProduct", "convolution"):
                raise PipelineError(f"layer {name!r} is {kind or 'missing'}; only innerProduct and convolution "
                                    "layers can be updatable", where="NetworkBuilder")
            layer.isUpdatable = True
            params = getattr(layer, kind)
            params.weights.isUpdatable = True
            if params.hasBias:
                params.bias.isUpdatable = True
        self._spec.isUpdatable = True
        self._spec.specificationVersion = max(self._spec.specificationVersion, 4)
        if not self._spec.description.trainingInput:
            for f in self._spec.description.input:
                self._spec.description.trainingInput.add().CopyFrom(f)

    def set_loss(self, kind: str, *, input: str | None = None, target: str | None = None,
                 name: str = "loss") -> None:
        """The training loss: "categorical_cross_entropy" over the softmax output, or "mean_squared_error"."""
        if kind not in ("categorical_cross_entropy", "mean_squared_error"):
            raise PipelineError(f"loss {kind!r}, expected 'categorical_cross_entropy' or 'mean_squared_error'",
                                where="NetworkBuilder")
        params = self.network.updateParams
        del params.lossLayers[:]
        loss = params.lossLayers.add()
        loss.name = name
        input = input or self.output_names[0]
        if kind == "categorical_cross_entropy":
            target = target or (self.predicted_feature_name if self.mode == "classifier" else f"{input}_true")
            loss.categoricalCrossEntropyLossLayer.input, loss.categoricalCrossEntropyLossLayer.target = input, target
        else:
            target = target or f"{input}_true"
            loss.meanSquaredErrorLossLayer.input, loss.meanSquaredErrorLossLayer.target = input, target
        desc = self._spec.description
        keep = [f for f in desc.trainingInput if f.name in {i.name for i in desc.input}]
        del desc.trainingInput[:]
        desc.trainingInput.extend(keep)
        t = desc.trainingInput.add()
        t.name = target
        if self.mode == "classifier" and kind == "categorical_cross_entropy":
            if self.network.WhichOneof("ClassLabels") == "int64ClassLabels":
                t.type.int64Type.SetInParent()
            else:
                t.type.stringType.SetInParent()
        else:
            t.type.multiArrayType.dataType = FeatureTypes_pb2.ArrayFeatureType.FLOAT32
            shape = self.shapes.get(input)
            t.type.multiArrayType.shape.extend([shape[0]] if shape and shape[1:] == (1, 1) else list(shape or [1]))

    def set_optimizer(self, kind: str, *, learning_rate: float = 0.01, batch_size: int = 16,
                      momentum: float = 0.0, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                      batch_sizes: Sequence[int] | None = None) -> None:
        """SGD (learning rate, momentum, mini-batch size) or Adam (plus beta1, beta2, eps).

        Allowed override ranges written to the spec: learning rate [0, 1], momentum
        and betas [0, 1], eps [0, 1]; mini-batch sizes ``batch_sizes`` (default: only
        ``batch_size``).
        """
        opt = self.network.updateParams.optimizer
        if kind == "sgd":
            o = opt.sgdOptimizer
            values = {"learningRate": learning_rate, "momentum": momentum}
        elif kind == "adam":
            o = opt.adamOptimizer
            values = {"learningRate": learning_rate, "beta1": beta1, "beta2": beta2, "eps": eps}
        else:
            raise PipelineError(f"optimizer {kind!r}, expected 'sgd' or 'adam'", where="NetworkBuilder")
        for field, value in values.items():
            param = getattr(o, field)
            param.defaultValue = value
            param.range.minValue, param.range.maxValue = 0.0, 1.0
        o.miniBatchSize.defaultValue = batch_size
        o.miniBatchSize.set.values.extend(sorted(set(batch_sizes or [batch_size]) | {batch_size}))

    def set_epochs(self, epochs: int, *, allowed: Sequence[int] | None = None) -> None:
        """Default number of epochs, and the values an override may take (default: 1 to 10,000)."""
        p = self.network.updateParams.epochs
        p.defaultValue = epochs
        if allowed:
            p.set.values.extend(sorted(set(allowed) | {epochs}))
        else:
            p.range.minValue, p.range.maxValue = 1, 10000

    def set_shuffle(self, shuffle: bool = True, *, seed: int | None = None) -> None:
        """Whether update shuffles the training data each epoch, and the seed it shuffles with."""
        self.network.updateParams.shuffle.defaultValue = shuffle
        if seed is not None:
            self.network.updateParams.seed.defaultValue = seed

    def to_spec(self) -> Model:
        """A copy of the spec built so far."""
        out = Model()
        out.CopyFrom(self._spec)
        return out
