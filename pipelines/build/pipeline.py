"""Building pipeline models in Python: ``Pipeline``, ``PipelineClassifier``, ``PipelineRegressor``.

Stages are model specs, loaded ``RunnableModel``\\ s or paths to ``.mlmodel``
files. Each added stage is type-checked against the features available before
it (the pipeline's inputs and earlier stages' outputs): a stage input of the same
name but another type is an error naming both features and their types. The
pipeline's inputs default to the stage inputs no earlier stage produces, its
outputs to the last stage's outputs.
"""

from __future__ import annotations

import os
from typing import Any

from ...spec import Model
from ...spec import io as spec_io
from ..errors import PipelineError
from .base import SpecBuilder
from ..runtime.features import feature_kind
from ..runtime.pipeline import describe_feature

__all__ = ["Pipeline", "PipelineClassifier", "PipelineRegressor", "as_spec"]


def as_spec(model: Any) -> Model:
    """A copy of ``model``'s spec: ``model`` is a spec, a ``RunnableModel``, bytes or a path."""
    if isinstance(model, (str, os.PathLike)):
        return spec_io.load(model)
    if isinstance(model, (bytes, bytearray)):
        return spec_io.loads(bytes(model))
    spec = getattr(model, "spec", model)
    if not hasattr(spec, "SerializeToString") or not hasattr(spec, "specificationVersion"):
        raise TypeError(f"a pipeline stage must be a spec, a loaded model or a path, not {type(model).__name__}")
    return spec_io.loads(spec.SerializeToString())


def same_type(a, b) -> bool:
    """Whether two feature descriptions carry the same type (Core ML's ``isEquivalent`` on types)."""
    ka, kb = feature_kind(a), feature_kind(b)
    if ka != kb:
        return False
    if ka == "multiArrayType":
        x, y = a.type.multiArrayType, b.type.multiArrayType
        if x.dataType and y.dataType and x.dataType != y.dataType:
            return False
        return not (x.shape and y.shape) or list(x.shape) == list(y.shape)
    if ka == "dictionaryType":
        return a.type.dictionaryType.WhichOneof("KeyType") == b.type.dictionaryType.WhichOneof("KeyType")
    if ka == "imageType":
        x, y = a.type.imageType, b.type.imageType
        return (x.width, x.height, x.colorSpace) == (y.width, y.height, y.colorSpace)
    return True


class Pipeline(SpecBuilder):
    """Build a ``pipeline`` model from stages.

    Parameters
    ----------
    stages : list, optional
        Models (spec, ``RunnableModel``, bytes or path) or ``(name, model)`` pairs.
    inputs : list[str], optional
        Pipeline input names; default: stage inputs no earlier stage produces.
    outputs : list[str], optional
        Pipeline output names; default: the last stage's outputs.

    Examples
    --------
    >>> pipe = Pipeline([("scale", scaler_spec), ("knn", knn_spec)])  # doctest: +SKIP
    >>> pipe.make_updatable().save("personal.mlmodel")  # doctest: +SKIP
    """

    kind = "pipeline"

    def __init__(self, stages=None, *, inputs: list[str] | None = None, outputs: list[str] | None = None):
        self.names: list[str] = []
        self.specs: list[Model] = []
        self.inputs = inputs
        self.outputs = outputs
        self.training_inputs: list[str] | None = None
        self.updatable = False
        self.description = ""
        for item in stages or []:
            name, model = item if isinstance(item, tuple) else (None, item)
            self.add(model, name=name)

    # -- stages ---------------------------------------------------------------
    def _available(self, upto: int) -> dict:
        """Feature name -> (description, producer) visible to stage ``upto``."""
        known = {}
        if self.inputs is not None:
            for spec in self.specs:
                for f in spec.description.input:
                    if f.name in self.inputs and f.name not in known:
                        known[f.name] = (f, "pipeline input")
        for name, spec in zip(self.names[:upto], self.specs[:upto]):
            for f in spec.description.input:
                known.setdefault(f.name, (f, "pipeline input"))
            for f in spec.description.output:
                known[f.name] = (f, f"stage {name!r} output")
        return known

    def add(self, model, *, name: str | None = None) -> "Pipeline":
        """Append a stage, checking its inputs against the features before it."""
        spec = as_spec(model)
        name = name or f"stage{len(self.specs)}"
        if name in self.names:
            raise PipelineError(f"stage name {name!r} is used twice", where="Pipeline.add")
        known = self._available(len(self.specs))
        for f in spec.description.input:
            if f.name in known and not same_type(f, known[f.name][0]):
                other, source = known[f.name]
                raise PipelineError(
                    f"stage {name!r} input {f.name!r} is {describe_feature(f)} but {source} "
                    f"{other.name!r} is {describe_feature(other)}",
                    where="Pipeline.add",
                    hint="convert the feature or rename one of them",
                )
        self.names.append(name)
        self.specs.append(spec)
        return self

    def make_updatable(self, *, training_inputs: list[str] | None = None) -> "Pipeline":
        """Mark the pipeline updatable; its last stage becomes (or must already be) updatable.

        A k-NN last stage is made updatable here (its training inputs are its input and
        label); a neural network must already be updatable (see ``pippin.pipelines.builder``).
        """
        if not self.specs:
            raise PipelineError("the pipeline has no stages", where="Pipeline.make_updatable")
        last = self.specs[-1]
        if not last.isUpdatable:
            if last.WhichOneof("Type") != "kNearestNeighborsClassifier":
                raise PipelineError(
                    f"last stage {self.names[-1]!r} ({last.WhichOneof('Type')}) is not updatable",
                    where="Pipeline.make_updatable",
                    hint="mark its layers updatable and give it a loss and optimizer first",
                )
            _make_knn_updatable(last)
        for spec in self.specs[:-1]:
            spec.isUpdatable = False
        self.updatable = True
        self.training_inputs = training_inputs
        return self

    # -- spec ---------------------------------------------------------------------
    def _interface(self, spec: Model) -> None:
        produced, inputs = set(), []
        for s in self.specs:
            for f in s.description.input:
                if f.name not in produced and f.name not in [i.name for i in inputs]:
                    if self.inputs is None or f.name in self.inputs:
                        inputs.append(f)
            produced.update(f.name for f in s.description.output)
        if self.inputs is not None:
            missing = set(self.inputs) - {f.name for f in inputs}
            if missing:
                raise PipelineError(f"pipeline input {sorted(missing)[0]!r} is taken by no stage", where="Pipeline")
        spec.description.input.extend(inputs)
        known = self._available(len(self.specs))
        for name in self.outputs or [f.name for f in self.specs[-1].description.output]:
            if name not in known:
                raise PipelineError(f"pipeline output {name!r} is produced by no stage", where="Pipeline")
            spec.description.output.add().CopyFrom(known[name][0])
        last = self.specs[-1].description
        if self.kind == "pipelineClassifier":
            spec.description.predictedFeatureName = last.predictedFeatureName
            spec.description.predictedProbabilitiesName = last.predictedProbabilitiesName
        if self.updatable:
            self._training_interface(spec, inputs)

    def _training_interface(self, spec: Model, inputs) -> None:
        last = self.specs[-1]
        wanted = list(self.training_inputs or [])
        if not wanted:
            wanted = [f.name for f in inputs]
            produced = {f.name for s in self.specs[:-1] for f in s.description.output}
            wanted += [f.name for f in last.description.trainingInput
                       if f.name not in produced and f.name not in wanted]
        pool = {f.name: f for s in self.specs for f in list(s.description.trainingInput) + list(s.description.input)}
        for name in wanted:
            if name not in pool:
                raise PipelineError(f"training input {name!r} is no stage's input", where="Pipeline.make_updatable")
            spec.description.trainingInput.add().CopyFrom(pool[name])

    def to_spec(self) -> Model:
        """The pipeline's spec (a new ``pippin.spec.Model`` each call)."""
        if not self.specs:
            raise PipelineError("the pipeline has no stages", where="Pipeline")
        spec = Model()
        versions = [s.specificationVersion for s in self.specs]
        spec.specificationVersion = max(versions + ([4] if self.updatable else []))
        spec.isUpdatable = self.updatable
        if self.description:
            spec.description.metadata.shortDescription = self.description
        message = spec.pipeline if self.kind == "pipeline" else getattr(spec, self.kind).pipeline
        for s in self.specs:
            message.models.add().CopyFrom(s)
        message.names.extend(self.names)
        self._interface(spec)
        return spec


class PipelineClassifier(Pipeline):
    """A ``pipelineClassifier``: the last stage is a classifier whose label and probabilities it returns."""

    kind = "pipelineClassifier"


class PipelineRegressor(Pipeline):
    """A ``pipelineRegressor``: the last stage's outputs are the prediction."""

    kind = "pipelineRegressor"


def _make_knn_updatable(spec: Model) -> None:
    spec.isUpdatable = True
    spec.specificationVersion = max(spec.specificationVersion, 4)
    del spec.description.trainingInput[:]
    arrays = [f for f in spec.description.input if feature_kind(f) == "multiArrayType"]
    spec.description.trainingInput.add().CopyFrom(arrays[0])
    label = [f for f in spec.description.output if f.name == spec.description.predictedFeatureName]
    spec.description.trainingInput.add().CopyFrom(label[0])
