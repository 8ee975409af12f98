"""Loading a model file into something that runs, and the contract every model kind follows.

Each model kind (``Model.Type`` oneof member) has one small module in
``pippin.pipelines`` whose class subclasses ``RunnableModel`` and registers with
``@register_kind("neuralNetworkClassifier", ...)``. ``load`` resolves the kind
once, builds everything up front, and ``predict_batch`` then only computes.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable, ClassVar

from ...spec import Model
from ...spec import io as spec_io
from ..errors import PipelineError
from .features import batch_to_single, feature_kind, single_to_batch, to_batch

MODEL_KINDS: dict[str, type["RunnableModel"]] = {}

# Modules that register model kinds; imported on first `load`. Add new ones here.
KIND_MODULES: tuple[str, ...] = ("sound_analysis", "pipeline", "identity", "linked", "knn", "neural_network", "item_similarity")


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
            if name in self.input_descriptions
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
            if name in self.input_descriptions
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
            if name not in inputs and not desc.type.isOptional
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

    def __repr__(self) -> str:
        ins = ", ".join(f"{n}:{feature_kind(d)[:-4]}" for n, d in self.input_descriptions.items())
        outs = ", ".join(self.output_descriptions)
        return f"<{type(self).__name__} {self.kind} ({ins}) -> ({outs})>"


def load(path_or_spec: str | os.PathLike | Model | bytes, **options: Any) -> RunnableModel:
    """Load a model file, bytes or spec into a ``RunnableModel`` of its kind.

    Raises
    ------
    SpecError
        The file cannot be read.
    PipelineError
        The model's kind (or a layer in it) is one Pippin does not run.
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
    _import_kind_modules()
    kind = spec.WhichOneof("Type")
    if kind not in MODEL_KINDS:
        runs = ", ".join(sorted(MODEL_KINDS)) or "none yet"
        raise PipelineError(
            f"model kind {kind!r} is not one Pippin runs (it runs: {runs})",
            where=str(path) if path else "<model>",
        )
    return MODEL_KINDS[kind](spec, path=path, **options)
