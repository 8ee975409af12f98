"""Building a network's layers from the spec once, feeding it inputs, and walking it over a blob dict.

The one place both the runtime (``NeuralNetworkModel``, and the control-flow layers
for their nested networks) and the training engine (``pipelines.update``) build
layers (``build_layers``) and turn multi-array inputs into blobs (``array_to_blob``).
Faster variants registered in ``OVERRIDES`` (see ``base.register_fast``) are used
unless ``fast=False``: per layer by ``build_layers``, and for runs of layers at
inference by ``fuse_layers``. See the package docstring for the tensor layout.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Sequence

import numpy as np

from ...spec.errors import PippinError, SpecError
from ..errors import PipelineError
from ._blas import n_cpus
from .base import LAYERS, OVERRIDES, Layer, LayerContext, check_arity

__all__ = ["uses_exact_shapes", "build_layers", "fuse_layers", "array_to_blob", "run_layers", "layer_where", "splittable",
           "run_layers_split"]


def layer_where(prefix: str, index: int, spec: Any) -> str:
    """The location string of one layer: ``<prefix>.layers[3](conv1)``."""
    return f"{prefix}.layers[{index}]({spec.name})"


def _supported() -> str:
    return f"Pippin runs these {len(LAYERS)} kinds: {', '.join(sorted(LAYERS))}"


def build_layers(
    layer_specs: Iterable[Any],
    *,
    prefix: str,
    exact_shapes: bool,
    spec_version: int,
    rng: np.random.Generator | None = None,
    fast: bool = True,
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
    fast : bool
        Build a kind's registered faster variant (``OVERRIDES``) where there is one;
        False builds the plain reference classes only.

    Raises
    ------
    SpecError
        A layer has no kind, or a kind Pippin does not run (names its index, name and
        kind, and lists the supported kinds), or its parameters or weights are malformed.
    """
    layers = []
    for index, spec in enumerate(layer_specs):
        where = layer_where(prefix, index, spec)
        kind = spec.WhichOneof("layer")
        if kind is None:
            raise SpecError(f"layer {index} ({spec.name!r}) has no layer kind set", where=where, hint=_supported())
        cls = LAYERS.get(kind)
        if cls is None:
            raise SpecError(f"layer {index} ({spec.name!r}) is of kind {kind!r}, which Pippin does not run",
                            where=where, hint=_supported())
        check_arity(cls, spec, where)  # issue 12.4: the declared inputs and outputs, at load
        if fast:
            cls = OVERRIDES.get((kind,), cls)
        context = LayerContext(where=where, exact_shapes=exact_shapes, spec_version=spec_version, rng=rng,
                               fast=fast)
        layers.append(cls(spec, context))
    return layers


def fuse_layers(layers: Sequence[Layer], keep: Iterable[str]) -> list:
    """``layers`` with each run that a registered chain override matches replaced by its fused layer.

    Inference only (fused layers have no gradients). A run is fused only when the blobs
    it hides are read by nobody else and are not in ``keep`` (model outputs); each
    override's ``match(layers, index, keep, reads)`` decides that.
    """
    chains = [cls for key, cls in OVERRIDES.items() if len(key) > 1]
    keep = set(keep)
    reads = Counter(name for layer in layers for name in layer.inputs)
    out, i = [], 0
    while i < len(layers):
        found = next((m for m in (cls.match(layers, i, keep, reads) for cls in chains) if m is not None), None)
        if found is None:
            out.append(layers[i])
            i += 1
        else:
            out.append(found[0])
            i += found[1]
    return out


def uses_exact_shapes(network) -> bool:
    """Whether a ``NeuralNetwork*`` message maps arrays exactly (Core ML 3's ND mapping) rather than to rank 5."""
    return int(network.arrayInputShapeMapping) == 1  # fact: NeuralNetwork.proto EXACT_ARRAY_MAPPING = 1


def array_to_blob(name: str, array: Any, *, exact_shapes: bool, where: str) -> np.ndarray:
    """A multi-array batch as a float32 blob of the network's layout.

    Parameters
    ----------
    array : np.ndarray [shape=(n_samples, *shape)]
        Under the rank-5 mapping ``shape`` is ``(C,)``, ``(C, H, W)`` or ``(S, 1, C, H, W)``;
        under the exact mapping any shape.

    Returns
    -------
    blob : np.ndarray [shape=(n_samples, S, C, H, W)] or [shape=(n_samples, *shape)], float32

    Raises
    ------
    PipelineError
        A rank the rank-5 mapping does not take, or a rank-5 example whose batch axis is not 1.
    """
    array = np.asarray(array, dtype=np.float32)
    if exact_shapes:
        return array
    n, shape = array.shape[0], array.shape[1:]
    if len(shape) == 1:
        return array.reshape(n, 1, shape[0], 1, 1)
    if len(shape) == 3:
        return array.reshape(n, 1, *shape)
    if len(shape) == 5:  # [S, B, C, H, W] per example, B must be 1
        if shape[1] != 1:
            raise PipelineError(f"input {name!r} has a rank-5 shape {shape} with batch axis {shape[1]}, expected 1",
                                where=where)
        return array.reshape(n, shape[0], *shape[2:])
    raise PipelineError(
        f"input {name!r} has rank {len(shape)}, which the rank-5 shape mapping does not take (1, 3 or 5)",
        where=where, hint="use arrayInputShapeMapping = EXACT_ARRAY_MAPPING for other ranks",
    )


#: what NumPy raises when a layer's parameters do not fit the arrays it gets at run time
#: (shapes that do not match, a zero step, more than 64 dimensions, an allocation that
#: cannot be made): ``run_layers`` turns them into a ``PipelineError`` naming the layer
_LAYER_FAULTS = (ValueError, IndexError, ZeroDivisionError, OverflowError, FloatingPointError, MemoryError)


def layer_fault(layer: Layer, args: Sequence, exc: BaseException) -> PipelineError:
    """The ``PipelineError`` for a layer that failed on its inputs: names the layer and the shapes."""
    shapes = [None if a is None else tuple(np.shape(a)) for a in args]
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return PipelineError(f"layer {layer.name!r} ({layer.kind}) cannot run on inputs of shapes {shapes}: "
                         f"{type(exc).__name__}{': ' + text if text else ''}", where=layer.where)


def run_layers(
    layers: Sequence[Layer],
    blobs: dict[str, np.ndarray],
    *,
    optional: frozenset[str] | set[str] = frozenset(),
    keep: frozenset[str] | set[str] | None = None,
) -> dict[str, np.ndarray]:
    """Run ``layers`` in order over ``blobs`` (name -> array), adding each layer's outputs.

    ``blobs`` is updated in place and returned. An input named in ``optional`` (an
    optional model input that was not given) is passed as ``None``. With ``keep`` (inference:
    the blobs the caller reads afterwards), every other blob is dropped after the last layer
    that reads it, so its memory serves the next layers' outputs (``DenseNet-121``'s intermediate
    blobs alone would hold gigabytes); without it, or when a layer runs nested networks (which
    read blobs their layer does not list), every blob stays.

    Raises
    ------
    PipelineError
        A layer reads a blob that no input or earlier layer produced.
    """
    drops = _drops(layers, keep) if keep is not None else None
    for index, layer in enumerate(layers):
        if getattr(layer, "controls_flow", False):  # branch / loop: run nested networks on the namespace
            for name in layer.inputs:
                if name not in blobs:
                    raise PipelineError(
                        f"layer {layer.name!r} ({layer.kind}) reads blob {name!r}, which does not exist; "
                        f"blobs present: {sorted(blobs)}",
                        where=layer.where,
                    )
            try:
                layer.run_control(blobs, optional=optional)
            except PippinError:
                raise
            except _LAYER_FAULTS as exc:
                raise layer_fault(layer, [blobs.get(n) for n in layer.inputs], exc) from exc
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
        try:
            outputs = layer(*args)
        except PippinError:
            raise
        except _LAYER_FAULTS as exc:  # shapes or values the spec's parameters cannot take
            raise layer_fault(layer, args, exc) from exc
        if not layer.inputs and blobs:
            # a layer without inputs (a constant, a static fill) makes one example: repeat it
            n = next(iter(blobs.values())).shape[0]
            outputs = tuple(np.repeat(o, n, axis=0) if o.shape[0] == 1 and n != 1 else o for o in outputs)
        for name, value in zip(layer.outputs, outputs):
            blobs[name] = value
        if drops:
            for name in drops[index]:
                blobs.pop(name, None)
    return blobs


_DROPS: dict[int, tuple] = {}


def _drops(layers: Sequence[Layer], keep) -> list[tuple[str, ...]] | None:
    """Per layer, the blobs no later layer reads and ``keep`` does not name (None with control flow)."""
    key = id(layers)
    cached = _DROPS.get(key)
    if cached is not None and cached[0] is layers and cached[1] == keep:
        return cached[2]
    if any(getattr(layer, "controls_flow", False) for layer in layers):
        drops = None
    else:
        last: dict[str, int] = {}
        for index, layer in enumerate(layers):
            for name in (*layer.inputs, *layer.outputs):
                last[name] = index
        drops = [[] for _ in layers]
        for name, index in last.items():
            if name not in keep:
                drops[index].append(name)
        drops = [tuple(d) for d in drops]
    if len(_DROPS) > 64:
        _DROPS.clear()
    _DROPS[key] = (layers, frozenset(keep), drops)
    return drops


# Layer kinds that compute each example on its own, so a batch may run in parts.
_PER_EXAMPLE_KINDS = frozenset({"convolution", "pooling", "activation", "innerProduct", "concat", "flatten",
                                "softmax", "batchnorm", "add", "multiply", "clip",
                                # shape and ND layers: they read the example's axes only (axis 0 is the batch)
                                "reshapeStatic", "transpose", "squeeze", "expandDims", "splitND", "sliceStatic",
                                "concatND", "mvn", "scale", "bias", "batchedMatmul", "softmaxND", "gelu", "unary",
                                # recurrent layers: each example's sequence on its own
                                "uniDirectionalLSTM", "biDirectionalLSTM", "gru", "simpleRecurrent"})
_POOL: dict[str, Any] = {}
_POOL_LOCK = threading.Lock()


def splittable(layers: Sequence[Layer]) -> bool:
    """True when every layer computes examples independently (batchnorm only with stored statistics)."""
    for layer in layers:
        if layer.kind not in _PER_EXAMPLE_KINDS or not layer.inputs:
            return False
        if layer.kind == "batchnorm" and layer.compute_mean_var and not layer.instance:
            return False
    return True


def _workers() -> int:
    return max(1, n_cpus())


def _pool():
    with _POOL_LOCK:
        if not _POOL:
            from threadpoolctl import ThreadpoolController

            _POOL["executor"] = ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="pippin-nn")
            _POOL["blas"] = ThreadpoolController()
        return _POOL["executor"], _POOL["blas"]


def run_layers_split(
    layers: Sequence[Layer],
    blobs: dict[str, np.ndarray],
    *,
    keep: Iterable[str],
    optional: frozenset[str] | set[str] = frozenset(),
    min_part: int = 4,
) -> dict[str, np.ndarray]:
    """``run_layers`` over the batch cut into one part per core, each part on its own thread
    with single-threaded BLAS; returns the blobs named in ``keep`` re-joined along axis 0.

    Only for layers where ``splittable(layers)`` is True. Measured on 2 loaded cores
    (sound CNN, batch 32): 2.5-3x the patches/s of one batch with 2 BLAS threads,
    whose threads spin-wait against each other and against other processes.
    Falls back to ``run_layers`` when the batch is too small to give each part
    ``min_part`` examples.
    """
    keep = frozenset(keep)
    n = next((v.shape[0] for v in blobs.values() if v is not None), 0)
    parts = min(_workers(), n // max(min_part, 1))
    if parts < 2:
        return run_layers(layers, blobs, optional=optional, keep=keep)
    bounds = np.linspace(0, n, parts + 1).astype(int)
    chunks = [{k: (None if v is None else v[a:b]) for k, v in blobs.items()} for a, b in zip(bounds[:-1], bounds[1:])]
    executor, blas = _pool()
    with blas.limit(limits=1, user_api="blas"):
        results = list(executor.map(lambda c: run_layers(layers, c, optional=optional, keep=keep), chunks))
    out = dict(blobs)
    for name in keep:
        if all(name in r for r in results):
            out[name] = np.concatenate([r[name] for r in results], axis=0)
    return out
