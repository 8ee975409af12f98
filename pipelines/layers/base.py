"""The ``Layer`` contract, the registry of layer kinds and the one override hook.

One plain reference class per ``NeuralNetworkLayer.layer`` oneof member, registered
with ``@register`` in ``LAYERS``. The runtime builds every layer once at load
(``__init__`` reads the proto parameters and turns weights into NumPy arrays of
their final shape and dtype, raising ``SpecError`` for missing or ill-sized ones)
and then only calls ``forward`` on arrays. See the package docstring for the
tensor layout.

Faster variants never replace a reference class in place: they register with
``@register_fast(kind, ...)`` in ``OVERRIDES`` and ``network.build_layers`` (and
``network.fuse_layers`` for chains of layers) uses them unless asked for the
reference network with ``fast=False``. ``tests/pipelines/layers/test_fast_paths.py``
checks every registered override against its reference classes.

Which ``specificationVersion`` a layer needs is not kept here: the one table is
``pippin.spec.validate.versions.layer_min_version``.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from ...spec.errors import SpecError

LAYERS: dict[str, type["Layer"]] = {}
#: faster stand-ins, keyed by the run of layer kinds they replace: ``("activation",)`` for a
#: subclass built in place of ``LAYERS["activation"]``, ``("convolution", "batchnorm")`` for a
#: layer that ``network.fuse_layers`` puts in place of such a run at inference
OVERRIDES: dict[tuple[str, ...], type] = {}

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


class FusedChain:
    """Base of the fused overrides ``register_fast`` chains build: the fused layer stands in for
    layers ``first`` .. ``last``, so it takes the first's inputs and location and the last's name
    and outputs."""

    def _span(self, first, last) -> None:
        self.name, self.where = last.name, first.where
        self.inputs, self.outputs = list(first.inputs), list(last.outputs)


def private_output(layer, keep, reads) -> bool:
    """Whether ``layer``'s one output is read by the next layer alone: not a blob in ``keep``
    (model outputs) and read once (``reads``: blob -> number of layers reading it), so a fused
    chain may skip producing it."""
    return len(layer.outputs) == 1 and layer.outputs[0] not in keep and reads[layer.outputs[0]] == 1


def relu_after(layers, index):
    """``layers[index + 1]`` when it is a ReLU ``activation`` reading exactly ``layers[index]``'s
    outputs, else None."""
    nxt = layers[index + 1] if index + 1 < len(layers) else None
    if (nxt is not None and nxt.kind == "activation" and getattr(nxt, "which", None) == "ReLU"
            and nxt.inputs == layers[index].outputs):
        return nxt
    return None


def register_fast(kind: str, *then: str):
    """Class decorator: register a faster variant of ``kind`` (followed by ``then``) in ``OVERRIDES``.

    With one kind the class must subclass the reference ``LAYERS[kind]`` and compute the
    same function (``build_layers`` builds it in the reference's place). With a chain of
    kinds the class must offer ``match(layers, index, keep, reads) -> (layer, n_replaced)
    or None`` (``fuse_layers`` calls it at inference, never in training).
    """
    key = (kind,) + then

    def decorate(cls: type) -> type:
        if key in OVERRIDES and OVERRIDES[key] is not cls:
            raise TypeError(f"override {'+'.join(key)!r} registered twice ({OVERRIDES[key].__name__}, {cls.__name__})")
        if not then and not (kind in LAYERS and issubclass(cls, LAYERS[kind])):
            raise TypeError(f"{cls.__name__} overrides {kind!r} but does not subclass its reference class")
        if then and not callable(getattr(cls, "match", None)):
            raise TypeError(f"{cls.__name__} overrides the chain {'+'.join(key)!r} but has no match()")
        OVERRIDES[key] = cls
        return cls

    return decorate


def input_range(cls: type) -> tuple[int, int | None]:
    """(fewest, most) inputs ``cls.forward`` takes; most is None for ``*inputs``.

    A ``*inputs`` layer takes at least one input, unless its kind makes its own data
    (``...Static``, ``loop``) or its catch-all is named ``unused``.
    """
    cached = cls.__dict__.get("_input_range")
    if cached is not None:
        return cached
    params = list(inspect.signature(cls.forward).parameters.values())[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    low = sum(p.default is p.empty for p in positional)
    rest = next((p for p in params if p.kind == p.VAR_POSITIONAL), None)
    high = None if rest is not None else len(positional)
    if rest is not None and low == 0 and rest.name != "unused" and not (
            cls.kind.endswith("Static") or cls.kind == "loop"):
        low = 1
    cls._input_range = (low, high)
    return low, high


def check_arity(cls: type, spec: Any, where: str) -> None:
    """Refuse at load a layer whose declared inputs ``cls`` cannot take, or with no outputs.

    Raises
    ------
    SpecError
        Naming ``<where>.input`` or ``<where>.output``.
    """
    # branch/loop write into the enclosing namespace and loopBreak/loopContinue only signal: no outputs of
    # their own (coremltools converts a PyTorch GRU to such a loop)
    if not len(spec.output) and not getattr(cls, "controls_flow", False) and cls.kind not in ("loopBreak",
                                                                                             "loopContinue"):
        raise SpecError(f"layer {spec.name!r} ({cls.kind}) declares no outputs, expected at least one",
                        where=f"{where}.output")
    low, high = input_range(cls)
    n = len(spec.input)
    if n < low or (high is not None and n > high):
        expected = f"{low}" if low == high else (f"at least {low}" if high is None else f"{low} to {high}")
        raise SpecError(f"layer {spec.name!r} ({cls.kind}) has {n} inputs, expected {expected}",
                        where=f"{where}.input")


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
        if isinstance(outputs, tuple) and len(outputs) != len(self.outputs):  # the spec's count is wrong
            raise SpecError(f"layer {self.name!r} ({self.kind}) computes {len(outputs)} outputs, but the spec "
                            f"declares {len(self.outputs)}", where=f"{self.where}.output")
        if not isinstance(outputs, tuple):
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

    def __init__(self, *, where: str, exact_shapes: bool, spec_version: int, rng: np.random.Generator | None = None,
                 fast: bool = True):
        self.where = where
        self.exact_shapes = exact_shapes
        self.spec_version = spec_version
        self.rng = rng
        #: whether nested networks (branch and loop bodies) are built with faster variants
        self.fast = fast
