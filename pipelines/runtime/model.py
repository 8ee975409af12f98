"""Loading a model file into something that runs, and the contract every model kind follows.

Each model kind (``Model.Type`` oneof member) has one small module in
``pippin.pipelines`` whose class subclasses ``RunnableModel`` and registers with
``@register_kind("neuralNetworkClassifier", ...)``. ``load`` resolves the kind
once, builds everything up front, and ``predict_batch`` then only computes.
"""

from __future__ import annotations

import contextvars
import importlib
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import numpy as np

from ...spec import Model
from ...spec import io as spec_io
from ...spec.errors import SpecError
from ...spec.validate import validate
from ..errors import ModelLoadError, PipelineError
from .features import batch_to_single, feature_kind, single_to_batch, to_batch
from .proprietary import PROPRIETARY_KINDS

MODEL_KINDS: dict[str, type["RunnableModel"]] = {}

# Modules that register model kinds; imported on first `load`. Add new ones here.
KIND_MODULES: tuple[str, ...] = ("sound_analysis", "pipeline", "identity", "linked", "knn", "neural_network", "item_similarity",
                                 "glm", "svm", "tree_ensemble", "transforms", "encoders")


def register_kind(*kinds: str) -> Callable[[type], type]:
    """Class decorator: run models whose ``Model.Type`` is one of ``kinds`` with this class."""

    def decorate(cls):
        for kind in kinds:
            if kind in MODEL_KINDS and MODEL_KINDS[kind] is not cls:
                raise TypeError(f"model kind {kind!r} registered twice")
            MODEL_KINDS[kind] = cls
        cls.kinds = kinds
        return cls

    return decorate


def _import_kind_modules() -> None:
    for name in KIND_MODULES:
        importlib.import_module(f"{__package__}.{name}")


class RunnableModel:
    """A loaded model, ready to predict.

    Parameters
    ----------
    spec : pippin.spec.Model
        The model's spec; the runnable never mutates it.
    path : Path, optional
        The file it came from (names errors; resolves linked models).
    """

    kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: Model, *, path: Path | None = None):
        self.spec = spec
        self.path = path
        self.where = str(path) if path is not None else "<model>"
        self.input_descriptions = {f.name: f for f in spec.description.input}
        self.output_descriptions = {f.name: f for f in spec.description.output}

    # -- prediction -------------------------------------------------------
    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Predict one example: values shaped as the spec declares, no batch axis.

        Returns every declared output; a classifier's ``predictedProbabilitiesName``
        output is a ``{label: probability}`` dict.
        """
        self._check_names(inputs)
        batch = {
            name: single_to_batch(self.input_descriptions[name], value)
            for name, value in inputs.items()
            if name in self.input_descriptions and value is not None  # None: an omitted optional input
        }
        return {name: batch_to_single(value) for name, value in self.predict_batch(batch).items()}

    def predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Predict many examples at once: every input with a leading example axis.

        Returns arrays (labels as an array; class probabilities as a 2-D array in
        label order, and the dicts only from ``predict``) -- see ``features``.
        """
        self._check_names(inputs)
        checked = {
            name: to_batch(self.input_descriptions[name], value, where=self.where)
            for name, value in inputs.items()
            if name in self.input_descriptions and value is not None  # None: an omitted optional input
        }
        return self._predict_batch(checked)

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _check_names(self, inputs: dict[str, Any]) -> None:
        if not isinstance(inputs, dict):
            raise PipelineError(f"inputs must be a dict of feature name -> value, got {type(inputs).__name__}",
                                where=self.where)
        missing = [
            name for name, desc in self.input_descriptions.items()
            if inputs.get(name) is None and not desc.type.isOptional
        ]
        if missing:
            raise PipelineError(
                f"missing input {missing[0]!r}; the model takes {sorted(self.input_descriptions)}",
                where=self.where,
            )

    # -- update & save ----------------------------------------------------
    @property
    def is_updatable(self) -> bool:
        return bool(self.spec.isUpdatable)

    def update(self, training_data: dict[str, Any], *, epochs: int | None = None, progress=None,
               **parameter_overrides) -> "RunnableModel":
        """Train further with Core ML 3's semantics; returns a new model. Kinds that can, override."""
        raise PipelineError(f"{self.kind} models cannot be updated", where=self.where)

    @property
    def kind(self) -> str:
        return self.spec.WhichOneof("Type") or "unset"

    def save(self, path: str | os.PathLike) -> Path:
        """Write this model's spec atomically."""
        return spec_io.save(self.spec, path)

    def dry_run(self) -> bool:
        """Predict once on inputs made from the description (zeros; see ``example_inputs``).

        ``pippin validate`` runs it after ``load``, so that a model it accepts is one that
        predicts. Returns False when no example can be made (an image input, a flexible
        shape with no size), True when the prediction ran.

        Raises
        ------
        PippinError
            The prediction failed: a layer whose parameters do not fit the shapes it gets, ...
        """
        inputs = example_inputs(self.spec)
        if inputs is None:
            return False
        self.predict(inputs)
        return True

    def __repr__(self) -> str:
        ins = ", ".join(f"{n}:{feature_kind(d)[:-4]}" for n, d in self.input_descriptions.items())
        outs = ", ".join(self.output_descriptions)
        return f"<{type(self).__name__} {self.kind} ({ins}) -> ({outs})>"


_MAX_EXAMPLE_VALUES = 1 << 24


def example_inputs(spec: Model) -> dict[str, Any] | None:
    """One example per input, made from the description: zero arrays of the declared (or
    smallest allowed) shape, 1 for an int64, 0.0 for a double, ``""``, an empty dictionary or
    sequence. An optional input that cannot be made is left out; None when a required one
    cannot be made (an image, a shape with no size, more than 16M values)."""
    out: dict[str, Any] = {}
    for feature in spec.description.input:
        value = _example(feature)
        if value is not None:
            out[feature.name] = value
        elif not feature.type.isOptional:
            return None
    return out


def _example(feature) -> Any:
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        shape = list(array.shape)
        flex = array.WhichOneof("ShapeFlexibility")
        if not shape and flex == "enumeratedShapes" and len(array.enumeratedShapes.shapes):
            shape = list(array.enumeratedShapes.shapes[0].shape)
        elif not shape and flex == "shapeRange":
            shape = [max(1, int(r.lowerBound)) for r in array.shapeRange.sizeRanges]
        if not shape or min(shape) <= 0 or float(np.prod(shape, dtype=np.float64)) > _MAX_EXAMPLE_VALUES:
            return None
        return np.zeros(shape, dtype=np.float32)
    return {"int64Type": 1, "doubleType": 0.0, "stringType": "", "dictionaryType": {},
            "sequenceType": []}.get(kind)


#: ``{"allowed": tuple of folders, "chain": [resolved paths]}`` while a model loads: what the
#: linked models inside it may resolve into, and the files already on the chain
LINK_SCOPE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("pippin_link_scope", default=None)


def load(path_or_spec: str | os.PathLike | Model | bytes, *, allowed_paths: Iterable[str | os.PathLike] = (),
         **options: Any) -> RunnableModel:
    """Load a model file, bytes or spec into a ``RunnableModel`` of its kind.

    The one loading boundary: the model is first checked with the rules ``pippin validate``
    applies (``pippin.spec.validate``, linked files included), so a model that loads is one
    ``validate`` accepts, and every model kind and layer then checks what it reads.

    Parameters
    ----------
    path_or_spec : path, bytes or Model
    allowed_paths : iterable of path
        Folders linked models may resolve into besides the model's own folder (the
        current folder for bytes or a spec).
    **options
        Passed to the model kind's class (``fast=False`` for a neural network).

    Raises
    ------
    SpecError
        The file cannot be read, or the model breaks a rule (``ModelLoadError``, which is
        also a ``PipelineError``, names the first problem's field), or its kind (or a layer
        in it) is one Pippin does not run.
    """
    path = None
    if isinstance(path_or_spec, (str, os.PathLike)):
        path = Path(path_or_spec)
        spec = spec_io.load(path)
    elif isinstance(path_or_spec, (bytes, bytearray)):
        spec = spec_io.loads(bytes(path_or_spec))
    elif hasattr(path_or_spec, "SerializeToString") and hasattr(path_or_spec, "specificationVersion"):
        spec = path_or_spec if isinstance(path_or_spec, Model) else spec_io.loads(path_or_spec.SerializeToString())
    else:
        raise TypeError(f"load() takes a path, bytes or a Model, not {type(path_or_spec).__name__}")
    where = str(path) if path else "<model>"
    allowed = tuple(allowed_paths)
    anchor = path if path is not None else Path.cwd() / "<model>"
    check_loadable(spec, where=where, path=anchor, allowed_paths=allowed)
    token = LINK_SCOPE.set({"allowed": allowed, "chain": [Path(os.path.realpath(anchor))]})
    try:
        return build(spec, path=path, **options)
    finally:
        LINK_SCOPE.reset(token)


#: rules of ``pippin.spec.validate`` that are about Core ML's platform (which OS release, what
#: an on-device update needs, declared output types Pippin converts to) and not about
#: what the runtime computes: ``load`` reports every other rule
LOAD_TOLERATED_RULES = frozenset({
    "spec-version", "updatable", "updatable-layer", "update-params", "loss-layer", "training-inputs",
    "pipeline-updatable", "pipeline-names", "pipeline-types", "nn-shape-mapping", "nn-inputs",
    "optional-input", "optional-output", "regressor-outputs", "classifier-outputs",
})


def load_tolerates(problem) -> bool:
    """Whether ``load`` runs a model despite ``problem`` (see ``LOAD_TOLERATED_RULES``).

    A ``feature-type`` problem of a declared output is tolerated too: outputs are what the
    runtime computes, converted to the declared type where it can.
    """
    if problem.rule in LOAD_TOLERATED_RULES:
        return True
    return problem.rule == "feature-type" and ("." + problem.path).rsplit(".description.", 1)[-1].startswith(
        "output[")


def check_loadable(spec: Model, *, where: str, path: str | os.PathLike | None = None,
                   allowed_paths: Iterable[str | os.PathLike] = ()) -> None:
    """Raise ``ModelLoadError`` naming the first problem ``validate`` finds, or an unsupported kind."""
    kind = spec.WhichOneof("Type")
    if kind in PROPRIETARY_KINDS:  # refused by name first, whatever else the file holds
        raise ModelLoadError(f"model kind {kind!r} is Apple-proprietary and not run by Pippin: "
                             f"{PROPRIETARY_KINDS[kind]}", where=where)
    problems = [p for p in validate(spec, path=path, allowed_paths=allowed_paths) if not load_tolerates(p)]
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more; `pippin validate` lists them)" if len(problems) > 1 else ""
        raise ModelLoadError(first.message + more, where=f"{where}: {first.path}" if first.path else where,
                             hint="run `pippin validate` on the file for every problem")
    _import_kind_modules()
    kind = spec.WhichOneof("Type")
    if kind not in MODEL_KINDS:
        runs = ", ".join(sorted(MODEL_KINDS)) or "none yet"
        raise ModelLoadError(f"model kind {kind!r} is not one Pippin runs (it runs: {runs})", where=where)


def build(spec: Model, *, path: Path | None = None, **options: Any) -> RunnableModel:
    """Build the runnable of an already checked spec (pipeline stages, linked files).

    A ``PipelineError`` raised while building (a layer Pippin does not run, ...) becomes a
    ``ModelLoadError``: whatever stops a model from loading is a ``SpecError``.
    """
    _import_kind_modules()
    kind = spec.WhichOneof("Type")
    where = str(path) if path else "<model>"
    if kind in PROPRIETARY_KINDS:  # a pipeline stage: refused by name as at the top level
        raise ModelLoadError(f"model kind {kind!r} is Apple-proprietary and not run by Pippin: "
                             f"{PROPRIETARY_KINDS[kind]}", where=where)
    if kind not in MODEL_KINDS:
        runs = ", ".join(sorted(MODEL_KINDS)) or "none yet"
        raise ModelLoadError(f"model kind {kind!r} is not one Pippin runs (it runs: {runs})", where=where)
    try:
        return MODEL_KINDS[kind](spec, path=path, **options)
    except PipelineError as exc:
        if isinstance(exc, SpecError):
            raise
        raise ModelLoadError(exc.message, where=exc.where, hint=exc.hint) from None
