"""The ``Layer`` contract and the registry of layer kinds.

One class per ``NeuralNetworkLayer.layer`` oneof member, registered with
``@register``. The runtime builds every layer once at load (``__init__`` reads the
proto parameters and turns weights into NumPy arrays of their final shape and
dtype, raising ``SpecError`` for missing or ill-sized ones) and then only calls
``forward`` on arrays. See the package docstring for the tensor layout.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from ...spec.errors import SpecError

LAYERS: dict[str, type["Layer"]] = {}

_SKIPPED_MESSAGES = ("WeightParams", "NeuralNetwork")


def plain_params(message: Any) -> SimpleNamespace:
    """A proto message as nested ``SimpleNamespace``/tuple/scalar values (enums as ints).

    ``WeightParams`` and nested ``NeuralNetwork`` fields become None: layers read those
    themselves, once, at load.
    """
    values = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        is_message = field.type == field.TYPE_MESSAGE
        if is_message and field.message_type.name in _SKIPPED_MESSAGES:
            values[field.name] = None
        elif field.is_repeated:
            values[field.name] = tuple(plain_params(v) for v in value) if is_message else tuple(value)
        else:
            values[field.name] = plain_params(value) if is_message else value
    return SimpleNamespace(**values)


def register(cls: type["Layer"]) -> type["Layer"]:
    """Class decorator: add ``cls`` to ``LAYERS`` under ``cls.kind``."""
    if not getattr(cls, "kind", None):
        raise TypeError(f"{cls.__name__} has no 'kind'")
    if cls.kind in LAYERS and LAYERS[cls.kind] is not cls:
        raise TypeError(f"layer kind {cls.kind!r} registered twice ({LAYERS[cls.kind].__name__}, {cls.__name__})")
    LAYERS[cls.kind] = cls
    return cls


class Layer:
    """One Core ML neural-network layer, ready to run.

    Subclasses set ``kind`` (the oneof member name, e.g. ``"innerProduct"``) and
    implement ``forward``. Layers whose weights can be trained also implement
    ``forward_train``/``backward`` and expose ``params`` (see ``pipelines.update``).

    Parameters
    ----------
    spec : NeuralNetworkLayer
        The layer's proto message.
    context : LayerContext
        What the layer may need to know about its network: ``where`` (the field
        path used in errors), ``exact_shapes`` (True under Core ML 3's ND mapping),
        ``spec_version``.
    """

    kind: ClassVar[str] = ""
    min_spec_version: ClassVar[int] = 1
    #: parameter names a trainer may update, e.g. ("weights", "bias")
    param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: Any, context: "LayerContext"):
        self.spec = spec
        #: the layer's own parameters as plain Python values (read once here, so ``forward``
        #: never touches protobuf); weights and nested networks are left out (None)
        which = spec.WhichOneof("layer") if hasattr(spec, "WhichOneof") else None
        self.p = plain_params(getattr(spec, which)) if which and which == self.kind else None
        self.name = spec.name
        self.inputs = list(spec.input)
        self.outputs = list(spec.output)
        self.context = context
        self.params: dict[str, np.ndarray] = {}

    @property
    def where(self) -> str:
        return self.context.where

    def error(self, message: str, field: str | None = None, hint: str | None = None) -> SpecError:
        """A ``SpecError`` located at this layer (and ``field`` inside it)."""
        where = self.where if field is None else f"{self.where}.{self.kind}.{field}"
        return SpecError(message, where=where, hint=hint)

    def forward(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        """Compute the layer's outputs from its inputs (arrays with the batch on axis 0)."""
        raise NotImplementedError

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        """``forward`` plus the contract every layer keeps: one array per declared output,
        float32, with the batch size of its inputs (a layer without inputs makes one example)."""
        outputs = self.forward(*inputs)
        if not isinstance(outputs, tuple) or len(outputs) != len(self.outputs):
            raise AssertionError(
                f"{type(self).__name__} returned {type(outputs).__name__} of "
                f"{len(outputs) if isinstance(outputs, tuple) else '?'} outputs, expected {len(self.outputs)}"
            )
        sizes = [a.shape[0] for a in inputs if a is not None]
        n = max(sizes) if sizes else None
        for name, out in zip(self.outputs, outputs):
            if not isinstance(out, np.ndarray) or out.dtype != np.float32:
                raise AssertionError(f"{type(self).__name__} output {name!r} is "
                                     f"{getattr(out, 'dtype', type(out).__name__)}, expected float32")
            if out.ndim == 0 or (n is not None and out.shape[0] != n):
                raise AssertionError(f"{type(self).__name__} output {name!r} has shape {out.shape}, "
                                     f"expected the batch size {n} on axis 0")
        return outputs


class LayerContext:
    """Facts about the enclosing network that a layer may read at load time."""

    def __init__(self, *, where: str, exact_shapes: bool, spec_version: int, rng: np.random.Generator | None = None):
        self.where = where
        self.exact_shapes = exact_shapes
        self.spec_version = spec_version
        self.rng = rng
