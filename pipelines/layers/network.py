"""Building a list of layers from the spec once, and walking it over a blob dict.

Used by ``NeuralNetworkModel`` for the top-level network and by the control-flow
layers (branch, loop) for their nested networks. See the package docstring for the
tensor layout.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import PipelineError
from .base import LAYERS, Layer, LayerContext

__all__ = ["build_layers", "run_layers", "layer_where"]


def layer_where(prefix: str, index: int, spec: Any) -> str:
    """The location string of one layer: ``<prefix>.layers[3](conv1)``."""
    return f"{prefix}.layers[{index}]({spec.name})"


def build_layers(
    layer_specs: Iterable[Any],
    *,
    prefix: str,
    exact_shapes: bool,
    spec_version: int,
    rng: np.random.Generator | None = None,
) -> list[Layer]:
    """Build one ``Layer`` per ``NeuralNetworkLayer`` message, in spec order.

    Parameters
    ----------
    layer_specs : iterable of NeuralNetworkLayer
    prefix : str
        Location of the enclosing network, e.g. ``"m.mlmodel: neuralNetwork"``.
    exact_shapes : bool
        True under Core ML 3's exact (ND) array shape mapping.
    spec_version : int
        The model's ``specificationVersion``.

    Raises
    ------
    PipelineError
        A layer's kind is not one Pippin runs (names its index, name and kind).
    SpecError
        A layer's parameters or weights are malformed.
    """
    layers = []
    for index, spec in enumerate(layer_specs):
        where = layer_where(prefix, index, spec)
        kind = spec.WhichOneof("layer")
        if kind is None:
            raise PipelineError(f"layer {spec.name!r} has no layer kind set", where=where)
        cls = LAYERS.get(kind)
        if cls is None:
            raise PipelineError(
                f"layer {index} ({spec.name!r}) is of kind {kind!r}, which Pippin does not run",
                where=where,
                hint=f"Pippin runs these {len(LAYERS)} kinds: {', '.join(sorted(LAYERS))}",
            )
        context = LayerContext(where=where, exact_shapes=exact_shapes, spec_version=spec_version, rng=rng)
        layers.append(cls(spec, context))
    return layers


def run_layers(
    layers: Sequence[Layer],
    blobs: dict[str, np.ndarray],
    *,
    optional: frozenset[str] | set[str] = frozenset(),
) -> dict[str, np.ndarray]:
    """Run ``layers`` in order over ``blobs`` (name -> array), adding each layer's outputs.

    ``blobs`` is updated in place and returned. An input named in ``optional`` (an
    optional model input that was not given) is passed as ``None``.

    Raises
    ------
    PipelineError
        A layer reads a blob that no input or earlier layer produced.
    """
    for layer in layers:
        if getattr(layer, "controls_flow", False):  # branch / loop: run nested networks on the namespace
            for name in layer.inputs:
                if name not in blobs:
                    raise PipelineError(
                        f"layer {layer.name!r} ({layer.kind}) reads blob {name!r}, which does not exist; "
                        f"blobs present: {sorted(blobs)}",
                        where=layer.where,
                    )
            layer.run_control(blobs, optional=optional)
            continue
        args = []
        for name in layer.inputs:
            value = blobs.get(name)
            if value is None and name not in optional:
                raise PipelineError(
                    f"layer {layer.name!r} ({layer.kind}) reads blob {name!r}, which does not exist; "
                    f"blobs present: {sorted(blobs)}",
                    where=layer.where,
                )
            args.append(value)
        outputs = layer(*args)
        if not layer.inputs and blobs:
            # a layer without inputs (a constant, a static fill) makes one example: repeat it
            n = next(iter(blobs.values())).shape[0]
            outputs = tuple(np.repeat(o, n, axis=0) if o.shape[0] == 1 and n != 1 else o for o in outputs)
        for name, value in zip(layer.outputs, outputs):
            blobs[name] = value
    return blobs
