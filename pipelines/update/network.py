"""The parts of a neural-network spec that training reads and writes.

``network_of`` finds the ``NeuralNetwork*`` message, ``layers_of`` builds its layers
and ``input_blob`` turns a batch of one input feature into its blob, both through
the runtime's own ``pipelines.layers.network`` (``build_layers``, ``array_to_blob``;
see ``pipelines/layers/__init__.py`` for the tensor layout), and ``write_back``
stores trained parameters into a copy of the spec.
"""

from __future__ import annotations

import numpy as np

from ...spec import Model
from ..errors import PipelineError
from ..layers.network import array_to_blob, build_layers, uses_exact_shapes
from ..layers.weights import write_weights

__all__ = ["network_of", "layers_of", "input_blob", "write_back", "class_labels"]

NN_KINDS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")


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


def layers_of(spec: Model, *, where: str = "<model>", fast: bool = True) -> list:
    """Every layer of ``spec``'s network, built once in spec order by ``layers.network.build_layers``.

    Layers are located as the runtime locates them: ``<where>: <kind>.layers[3](conv1)``.
    """
    nn = network_of(spec, where=where)
    return build_layers(nn.layers, prefix=f"{where}: {spec.WhichOneof('Type')}",
                        exact_shapes=uses_exact_shapes(nn),
                        spec_version=int(spec.specificationVersion), fast=fast)


def input_blob(spec: Model, name: str, values, *, where: str = "<model>") -> np.ndarray:
    """A batch ``[n_samples, *shape]`` of the multi-array input ``name``, checked against
    its declared shape, as its blob (``layers.network.array_to_blob``)."""
    feats = {f.name: f for f in list(spec.description.input) + list(spec.description.trainingInput)}
    if name not in feats:
        raise PipelineError(f"no input named {name!r}; the model takes {sorted(feats)}", where=where)
    shape = tuple(int(v) for v in feats[name].type.multiArrayType.shape)
    x = np.asarray(values, dtype=np.float32)
    if shape and x.shape[1:] != shape:
        raise PipelineError(f"input {name!r} has shape {x.shape} (with the batch axis), expected "
                            f"(n_samples, {', '.join(map(str, shape))})", where=where)
    exact = uses_exact_shapes(network_of(spec, where=where))
    return array_to_blob(name, x, exact_shapes=exact, where=where)


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
