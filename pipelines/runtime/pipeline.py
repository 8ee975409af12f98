"""Running ``pipeline``, ``pipelineClassifier`` and ``pipelineRegressor`` models.

A Core ML pipeline is a chain of models whose features flow by name: the
pipeline's inputs and every earlier stage's outputs are visible to each later
stage, which takes the ones its own description names. The pipeline returns the
outputs its own description declares. Each stage is built once, at load.

Only the last stage of an updatable pipeline may be updatable (Core ML's rule);
``update`` runs the frozen stages over the training data and hands the
resulting features to the last stage's own ``update``.
"""

from __future__ import annotations

from typing import Any

from ..errors import PipelineError
from .features import feature_kind
from .model import RunnableModel, build, register_kind

__all__ = ["PipelineModel", "pipeline_message", "load_stage"]


def pipeline_message(spec):
    """The ``Pipeline`` message inside a pipeline, pipelineClassifier or pipelineRegressor spec."""
    kind = spec.WhichOneof("Type")
    if kind == "pipeline":
        return spec.pipeline
    if kind in ("pipelineClassifier", "pipelineRegressor"):
        return getattr(spec, kind).pipeline
    raise PipelineError(f"model kind {kind!r} is not a pipeline")


def load_stage(stage_spec, *, parent: RunnableModel, where: str) -> RunnableModel:
    """Build one stage of ``parent``; linked models resolve relative to the parent's file."""
    if stage_spec.WhichOneof("Type") == "linkedModel":
        from .linked import LinkedModel  # a stage kind that needs its parent's folder

        stage = LinkedModel(stage_spec, path=parent.path)
    else:
        stage = build(stage_spec)  # the pipeline was checked as a whole by ``load``
    stage.where = where
    return stage


@register_kind("pipeline", "pipelineClassifier", "pipelineRegressor")
class PipelineModel(RunnableModel):
    """A loaded pipeline: its stages, in order, and the names they go by.

    Attributes
    ----------
    stages : list[RunnableModel]
        One runnable per ``Pipeline.models`` entry.
    names : list[str]
        ``Pipeline.names``, or ``stage0``, ``stage1``, ... when the spec has none.
    """

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = pipeline_message(spec)
        if not message.models:
            raise PipelineError("pipeline has no models", where=self.where)
        self.names = list(message.names)
        if len(self.names) != len(message.models):  # none, or a count `validate` reports (pipeline-names)
            self.names = [f"stage{i}" for i in range(len(message.models))]
        self.stages = [
            load_stage(model, parent=self, where=f"{self.where}: pipeline.models[{i}]({self.names[i]})")
            for i, model in enumerate(message.models)
        ]
        self._check_flow()

    def _check_flow(self) -> None:
        known = set(self.input_descriptions)
        for i, stage in enumerate(self.stages):
            missing = [n for n, d in stage.input_descriptions.items() if n not in known and not d.type.isOptional]
            if missing:
                raise PipelineError(
                    f"stage {self.names[i]!r} takes {missing[0]!r}, which neither the pipeline's inputs "
                    f"nor an earlier stage provides (known: {sorted(known)})",
                    where=self.where,
                )
            known.update(stage.output_descriptions)
        absent = [n for n in self.output_descriptions if n not in known]
        if absent:
            raise PipelineError(f"pipeline output {absent[0]!r} is produced by no stage", where=self.where)

    @property
    def class_labels(self) -> list | None:
        """The labels of the stage that produces the pipeline's probabilities (classifiers only)."""
        wanted = self.spec.description.predictedProbabilitiesName or self.spec.description.predictedFeatureName
        for stage in reversed(self.stages):
            if wanted in stage.output_descriptions:
                return getattr(stage, "class_labels", None)
        return None

    # -- prediction -------------------------------------------------------
    def _flow(self, inputs: dict[str, Any], *, batch: bool) -> dict[str, Any]:
        values = dict(inputs)
        for stage in self.stages:
            feeds = {name: values[name] for name in stage.input_descriptions if name in values}
            values.update(stage.predict_batch(feeds) if batch else stage.predict(feeds))
        return values

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        values = self._flow(inputs, batch=True)
        return {name: values[name] for name in self.output_descriptions}

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Predict one example; each stage's own ``predict`` runs, so classifier outputs are dicts."""
        self._check_names(inputs)
        values = self._flow({n: v for n, v in inputs.items() if n in self.input_descriptions}, batch=False)
        return {name: values[name] for name in self.output_descriptions}

    # -- update -------------------------------------------------------------
    @property
    def training_input_names(self) -> list[str]:
        return [f.name for f in self.spec.description.trainingInput]

    def frozen_features(self, training_data: dict[str, Any]) -> dict[str, Any]:
        """Run every stage but the last over ``training_data`` (batch form) and return all features."""
        values = dict(training_data)
        for stage in self.stages[:-1]:
            feeds = {name: values[name] for name in stage.input_descriptions if name in values}
            values.update(stage.predict_batch(feeds))
        return values

    def update(self, training_data: dict[str, Any], *, epochs: int | None = None, progress=None,
               frozen: dict[str, Any] | None = None, **parameter_overrides) -> "PipelineModel":
        """Update the last stage with features made by the frozen stages; returns a new pipeline.

        Parameters
        ----------
        training_data : dict[str, array-like]
            The pipeline's training inputs, each with a leading example axis.
        frozen : dict[str, array-like], optional
            The last stage's frozen blobs, already computed from the frozen stages' outputs
            (``pippin.pipelines.update.core_ml_update.FrozenPrefix``); ``training_data`` then
            holds only the label.
        **kwargs
            Passed to the last stage's ``update`` (``epochs``, ``progress``, overrides).
        """
        if not self.spec.isUpdatable:
            raise PipelineError("pipeline is not updatable (isUpdatable is false)", where=self.where,
                                hint="make the last stage updatable with pippin.pipelines.Pipeline.make_updatable")
        if not isinstance(training_data, dict):
            raise PipelineError("training data must be a dict of training input name -> batch", where=self.where)
        last = self.stages[-1]
        values = self.frozen_features(training_data) if frozen is None else dict(training_data)
        wanted = [f.name for f in last.spec.description.trainingInput] or list(last.input_descriptions)
        if frozen is not None:  # the stage's inputs are replaced by its frozen blobs
            wanted = [n for n in wanted if n not in last.input_descriptions]
            parameter_overrides["frozen"] = frozen
        missing = [n for n in wanted if n not in values]
        if missing:
            raise PipelineError(
                f"training data lacks {missing[0]!r}, a training input of the last stage "
                f"{self.names[-1]!r}; it has {sorted(training_data)}",
                where=self.where,
            )
        updated = last.update({n: values[n] for n in wanted}, epochs=epochs, progress=progress,
                              **parameter_overrides)
        spec = type(self.spec)()
        spec.CopyFrom(self.spec)
        pipeline_message(spec).models[-1].CopyFrom(updated.spec)
        return type(self)(spec, path=self.path)


def describe_feature(description) -> str:
    """A short type string for a feature description, e.g. ``multiArray(FLOAT32, [96, 64])``."""
    kind = feature_kind(description)
    if kind == "multiArrayType":
        array = description.type.multiArrayType
        names = {65568: "FLOAT32", 65600: "DOUBLE", 131104: "INT32", 65552: "FLOAT16"}
        return f"multiArray({names.get(array.dataType, array.dataType)}, {list(array.shape)})"
    if kind == "dictionaryType":
        return f"dictionary({description.type.dictionaryType.WhichOneof('KeyType')})"
    return kind[:-4] if kind.endswith("Type") else kind
