"""The parts of a neural-network spec that training reads and writes.

``network_of`` finds the ``NeuralNetwork*`` message, ``build_layers`` builds its
layers from the registry, ``input_blob`` turns a batch of one input feature into
its blob (see ``pipelines/layers/__init__.py`` for the tensor layout), and
``write_back`` stores trained parameters into a copy of the spec.
"""

from __future__ import annotations

import importlib

import numpy as np

from ...spec import Model
from ..errors import PipelineError
from ..layers import LAYERS, LayerContext
from ..layers.weights import write_weights

__all__ = ["network_of", "build_layers", "input_blob", "write_back", "class_labels"]

_MY_LAYERS = ("dense", "conv", "pooling", "batchnorm", "activation", "softmax", "flatten", "concat")
NN_KINDS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")


def _register_all() -> None:
    for name in _MY_LAYERS:
        importlib.import_module(f"..layers.{name}", __package__)
    try:  # the runtime's full layer set, when present
        importlib.import_module("..neural_network", __package__)
    except ModuleNotFoundError:
        pass


def network_of(spec: Model, *, where: str = "<model>"):
    """The ``NeuralNetwork``/``NeuralNetworkClassifier``/``NeuralNetworkRegressor`` message of ``spec``."""
    kind = spec.WhichOneof("Type")
    if kind not in NN_KINDS:
        raise PipelineError(f"model kind {kind!r} is not a neural network; expected one of {list(NN_KINDS)}",
                            where=where)
    return getattr(spec, kind)


def class_labels(spec: Model) -> list | None:
    """A classifier's labels in order, else None."""
    if spec.WhichOneof("Type") != "neuralNetworkClassifier":
        return None
    nn = spec.neuralNetworkClassifier
    which = nn.WhichOneof("ClassLabels")
    return list(getattr(nn, which).vector) if which else None


def build_layers(spec: Model, *, where: str = "<model>") -> list:
    """Build every layer of the network once, in spec order."""
    _register_all()
    nn = network_of(spec, where=where)
    exact = int(nn.arrayInputShapeMapping) == 1
    layers = []
    for i, layer in enumerate(nn.layers):
        kind = layer.WhichOneof("layer")
        lw = f"{where}: {spec.WhichOneof('Type')}.layers[{i}]({layer.name})"
        if kind not in LAYERS:
            raise PipelineError(f"layer {layer.name!r} has kind {kind!r}, which Pippin does not run",
                                where=lw, hint=f"runs: {', '.join(sorted(LAYERS))}")
        ctx = LayerContext(where=lw, exact_shapes=exact, spec_version=int(spec.specificationVersion))
        layers.append(LAYERS[kind](layer, ctx))
    return layers


def input_blob(spec: Model, name: str, values, *, where: str = "<model>") -> np.ndarray:
    """A batch ``[N, *shape]`` of the multi-array input ``name`` as its blob.

    Rank-5 mapping: ``(C,)`` -> ``[N, 1, C, 1, 1]``, ``(C, H, W)`` -> ``[N, 1, C, H, W]``;
    exact mapping: unchanged.
    """
    feats = {f.name: f for f in list(spec.description.input) + list(spec.description.trainingInput)}
    if name not in feats:
        raise PipelineError(f"no input named {name!r}; the model takes {sorted(feats)}", where=where)
    shape = tuple(int(v) for v in feats[name].type.multiArrayType.shape)
    x = np.asarray(values, dtype=np.float32)
    if shape and x.shape[1:] != shape:
        raise PipelineError(f"input {name!r} has shape {x.shape} (with the batch axis), expected "
                            f"(n_samples, {', '.join(map(str, shape))})", where=where)
    if int(network_of(spec, where=where).arrayInputShapeMapping) == 1:
        return x
    rest = x.shape[1:]
    if len(rest) == 1:
        return x.reshape(x.shape[0], 1, rest[0], 1, 1)
    if len(rest) == 3:
        return x.reshape(x.shape[0], 1, *rest)
    raise PipelineError(f"input {name!r} has rank {len(rest)}; the rank-5 mapping takes (C,) or (C, H, W)",
                        where=where)


def write_back(spec: Model, layers, *, only: set[tuple[str, str]] | None = None) -> Model:
    """A copy of ``spec`` with the parameters (and batchnorm statistics) of ``layers`` stored in it.

    ``only``: the ``(layer name, parameter)`` pairs to write (default: all).
    """
    out = Model()
    out.CopyFrom(spec)
    nn = network_of(out)
    by_name = {layer.name: layer for layer in nn.layers}
    for layer in layers:
        fields = getattr(layer, "param_fields", {})
        values = dict(layer.params)
        values.update(getattr(layer, "buffers", {}))
        target = getattr(by_name[layer.name], layer.kind)
        for key, arr in values.items():
            if key in fields and (only is None or (layer.name, key) in only):
                write_weights(getattr(target, fields[key]), arr)
    return out
